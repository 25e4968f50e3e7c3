package outbox

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/faultline-dev/faultline/clock"
	"github.com/faultline-dev/faultline/messaging"
)

// Store is the relay's view of an outbox table. SQLiteStore and PostgresStore implement it.
type Store interface {
	// Claim takes up to c.Limit unsent rows, lowest id first, passes them to publish in id order
	// and, only when publish returns nil, marks them sent at c.Now. It returns how many rows it
	// marked. Rows that another relay is working on are left alone; a store may also return 0
	// without looking when another relay holds its lease. If publish fails, or marking fails after
	// publish succeeded, the rows stay unsent and are published again later with the same IDs.
	Claim(ctx context.Context, c Claim, publish func(ctx context.Context, msgs []*messaging.Message) error) (int, error)
	// DeleteSent deletes rows marked sent before the given time and returns how many.
	DeleteSent(ctx context.Context, before time.Time) (int64, error)
}

// Claim is one batch request to a Store.
type Claim struct {
	// Owner identifies the relay (for leases).
	Owner string
	// Limit is the largest number of rows to take.
	Limit int
	// Now is the relay clock's time: rows are marked sent at Now, leases expire relative to it.
	Now time.Time
}

// Notifier is implemented by stores that can tell the relay that rows were added
// (PostgresStore: LISTEN/NOTIFY).
type Notifier interface {
	// Listen calls wake once it listens and again whenever rows may have been added, until ctx
	// ends (then it returns nil) or the connection fails (then it returns the error; the relay
	// calls it again after a pause, and polls meanwhile).
	Listen(ctx context.Context, wake func()) error
}

// Defaults for RelayConfig's zero fields.
const (
	DefaultBatchSize       = 500
	DefaultPollInterval    = time.Second
	DefaultCleanupInterval = time.Minute
)

// RelayConfig configures a Relay.
type RelayConfig struct {
	// Store is the outbox table. Required.
	Store Store
	// Publisher publishes the rows. Required.
	Publisher messaging.Publisher
	// BatchSize is the most rows read, published (in one Publish call) and marked at once. Zero
	// means DefaultBatchSize.
	BatchSize int
	// PollInterval is how long Run waits between polls when the outbox is drained, unless the
	// store's notifications wake it sooner; also the pause after an error. Zero means
	// DefaultPollInterval.
	PollInterval time.Duration
	// Retention: Run deletes rows sent longer than Retention ago, every CleanupInterval. Zero
	// keeps sent rows (call Cleanup, or delete them yourself).
	Retention time.Duration
	// CleanupInterval is how often Run deletes old sent rows when Retention is set. Zero means
	// DefaultCleanupInterval.
	CleanupInterval time.Duration
	// ID identifies this relay in leases and logs. Empty means a new random ID.
	ID string
	// Clock is the time source. Nil means clock.Real().
	Clock clock.Clock
	// Logger receives errors and progress. Nil discards.
	Logger *slog.Logger
}

// Relay publishes an outbox table's rows.
type Relay struct {
	cfg  RelayConfig
	wake chan struct{}
}

// NewRelay checks cfg and returns a relay; Run starts it.
func NewRelay(cfg RelayConfig) (*Relay, error) {
	switch {
	case cfg.Store == nil:
		return nil, errors.New("outbox: RelayConfig.Store is required")
	case cfg.Publisher == nil:
		return nil, errors.New("outbox: RelayConfig.Publisher is required")
	case cfg.BatchSize < 0:
		return nil, fmt.Errorf("outbox: RelayConfig.BatchSize %d: must not be negative", cfg.BatchSize)
	case cfg.PollInterval < 0:
		return nil, fmt.Errorf("outbox: RelayConfig.PollInterval %v: must not be negative", cfg.PollInterval)
	case cfg.Retention < 0:
		return nil, fmt.Errorf("outbox: RelayConfig.Retention %v: must not be negative", cfg.Retention)
	case cfg.CleanupInterval < 0:
		return nil, fmt.Errorf("outbox: RelayConfig.CleanupInterval %v: must not be negative", cfg.CleanupInterval)
	}
	if cfg.BatchSize == 0 {
		cfg.BatchSize = DefaultBatchSize
	}
	if cfg.PollInterval == 0 {
		cfg.PollInterval = DefaultPollInterval
	}
	if cfg.CleanupInterval == 0 {
		cfg.CleanupInterval = DefaultCleanupInterval
	}
	if cfg.ID == "" {
		cfg.ID = messaging.NewID()
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.Real()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	cfg.Logger = cfg.Logger.With("relay", cfg.ID)
	return &Relay{cfg: cfg, wake: make(chan struct{}, 1)}, nil
}

// Wake makes a running relay poll now instead of at the end of its poll interval (for example
// after an in-process commit on SQLite). It never blocks.
func (r *Relay) Wake() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// RunOnce publishes and marks one batch and returns how many rows it marked sent.
func (r *Relay) RunOnce(ctx context.Context) (int, error) {
	n, err := r.cfg.Store.Claim(ctx, Claim{Owner: r.cfg.ID, Limit: r.cfg.BatchSize, Now: r.cfg.Clock.Now()},
		func(ctx context.Context, msgs []*messaging.Message) error {
			return r.cfg.Publisher.Publish(ctx, msgs...)
		})
	if err != nil {
		return n, fmt.Errorf("outbox: relay: %w", err)
	}
	return n, nil
}

// Cleanup deletes rows sent more than cfg.Retention ago (nothing when Retention is zero).
func (r *Relay) Cleanup(ctx context.Context) (int64, error) {
	if r.cfg.Retention <= 0 {
		return 0, nil
	}
	n, err := r.cfg.Store.DeleteSent(ctx, r.cfg.Clock.Now().Add(-r.cfg.Retention))
	if err != nil {
		return n, fmt.Errorf("outbox: cleanup: %w", err)
	}
	return n, nil
}

// Run publishes batches until ctx ends, then returns ctx's error. A full batch is followed at
// once by the next; otherwise Run waits for PollInterval, a store notification or Wake. Errors
// are logged and retried after PollInterval; Run does not stop for them.
func (r *Relay) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if n, ok := r.cfg.Store.(Notifier); ok {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.listen(ctx, n)
		}()
	}
	log := r.cfg.Logger
	nextCleanup := r.cfg.Clock.Now()
	timer := r.cfg.Clock.NewTimer(r.cfg.PollInterval)
	defer timer.Stop()
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		n, err := r.RunOnce(ctx)
		if err != nil && ctx.Err() == nil {
			log.Warn("outbox relay batch failed", "err", err)
		} else if n > 0 {
			log.Debug("outbox relay published", "count", n)
		}
		if r.cfg.Retention > 0 && !r.cfg.Clock.Now().Before(nextCleanup) && ctx.Err() == nil {
			if d, err := r.Cleanup(ctx); err != nil {
				log.Warn("outbox relay cleanup failed", "err", err)
			} else if d > 0 {
				log.Debug("outbox relay deleted sent rows", "count", d)
			}
			nextCleanup = r.cfg.Clock.Now().Add(r.cfg.CleanupInterval)
		}
		if err == nil && n >= r.cfg.BatchSize {
			continue // probably more waiting
		}
		if !timer.Stop() {
			select { // drain a fired timer so Reset starts afresh
			case <-timer.C():
			default:
			}
		}
		timer.Reset(r.cfg.PollInterval)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-timer.C():
		case <-r.wake:
		}
	}
}

// listen keeps the store's notifications flowing into r.wake until ctx ends.
func (r *Relay) listen(ctx context.Context, n Notifier) {
	pause := r.cfg.PollInterval
	for {
		err := n.Listen(ctx, r.Wake)
		if ctx.Err() != nil {
			return
		}
		r.cfg.Logger.Warn("outbox relay notifications lost; polling until they resume", "err", err)
		if r.cfg.Clock.Sleep(ctx, pause) != nil {
			return
		}
	}
}
