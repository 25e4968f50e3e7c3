package shop

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/faultline-dev/faultline/messaging"
	"github.com/faultline-dev/faultline/outbox"
	"github.com/faultline-dev/faultline/saga"
)

// participant is what the inventory and payment services share: their own database with a
// barrier and an outbox, a saga.Participant subscribed on their command topic, and the relay
// that publishes their replies.
type participant struct {
	svc     Service
	cfg     Config
	topic   string
	db      *db
	p       *saga.Participant
	relay   *outbox.Relay
	ready   chan struct{}
	started atomic.Bool
}

func newParticipant(svc Service, cfg Config, topic func(Topics) string) (*participant, error) {
	cfg, err := cfg.withDefaults(svc)
	if err != nil {
		return nil, err
	}
	d, err := cfg.Store.open(svc)
	if err != nil {
		return nil, err
	}
	ob := cfg.Store.outboxTable(svc)
	var store outbox.Store
	if d.dialect == saga.SQLite {
		store, err = outbox.NewSQLiteStore(outbox.SQLiteConfig{DB: d.DB, Table: ob.Name})
	} else {
		store, err = outbox.NewPostgresStore(outbox.PostgresConfig{DB: d.DB, Table: ob.Name, Channel: ob.Channel})
	}
	if err != nil {
		d.Close()
		return nil, fmt.Errorf("%s service: %w", svc, err)
	}
	// A fixed relay ID: the instance started after a crash takes the SQLite outbox's lease over at
	// once instead of waiting for the dead instance's lease to expire.
	relay, err := outbox.NewRelay(outbox.RelayConfig{Store: store, Publisher: cfg.Broker, ID: group(cfg.Namespace, svc), Logger: cfg.Logger})
	if err != nil {
		d.Close()
		return nil, fmt.Errorf("%s service: %w", svc, err)
	}
	p, err := saga.NewParticipant(saga.ParticipantConfig{
		DB: d.DB, Dialect: d.dialect, BarrierTable: cfg.Store.barrierTable(svc), Outbox: ob, Logger: cfg.Logger,
		// A reply committed: publish it now rather than at the relay's next poll (SQLite has no
		// notifications to wake the relay).
		ReplyWritten: relay.Wake,
	})
	if err != nil {
		d.Close()
		return nil, fmt.Errorf("%s service: %w", svc, err)
	}
	return &participant{
		svc: svc, cfg: cfg, topic: topic(TopicsOf(cfg.Namespace)),
		db: d, p: p, relay: relay, ready: make(chan struct{}),
	}, nil
}

// migrate creates the business tables, the barrier and the outbox.
func (p *participant) migrate(ctx context.Context, schema ...string) error {
	if err := p.db.migrate(ctx, schema...); err != nil {
		return fmt.Errorf("%s service: migrate: %w", p.svc, err)
	}
	if err := p.p.Migrate(ctx); err != nil {
		return fmt.Errorf("%s service: migrate: %w", p.svc, err)
	}
	return nil
}

// Run subscribes the participant to its command topic and relays its outbox until ctx ends.
// Then it closes the subscription without waiting: handlers in flight are cancelled, their
// transactions roll back and the broker delivers those commands again, as after a crash. It
// returns ctx's error.
func (p *participant) Run(ctx context.Context) error {
	if !p.started.CompareAndSwap(false, true) {
		return fmt.Errorf("%s service: Run called twice (start a new instance instead)", p.svc)
	}
	sub, err := p.cfg.Broker.Subscribe(ctx, messaging.SubscribeConfig{
		Topic: p.topic, Group: group(p.cfg.Namespace, p.svc),
		Concurrency: p.cfg.Concurrency, AckWait: p.cfg.AckWait,
	}, p.p.Handler())
	if err != nil {
		return fmt.Errorf("%s service: subscribe to %s: %w", p.svc, p.topic, err)
	}
	close(p.ready)
	relayDone := make(chan error, 1)
	go func() { relayDone <- p.relay.Run(ctx) }()
	<-ctx.Done()
	abandon, cancel := context.WithCancel(context.Background())
	cancel()
	_ = sub.Close(abandon) // ends at once: handlers in flight are cancelled
	if err := <-relayDone; err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%s service: outbox relay: %w", p.svc, err)
	}
	return ctx.Err()
}

// Ready is closed once Run has subscribed to the command topic.
func (p *participant) Ready() <-chan struct{} { return p.ready }

// Close closes the database. Call it after Run returned.
func (p *participant) Close() error { return p.db.Close() }

// BarrierCounts returns how many barrier rows the service has in each status (see
// saga.BarrierStatus): operations applied, refused, compensations with nothing to undo, and
// actions fenced off by their compensation.
func (p *participant) BarrierCounts(ctx context.Context) (map[string]int, error) {
	return countBy(ctx, p.db, "SELECT status, COUNT(*) FROM "+p.cfg.Store.barrierTable(p.svc)+" GROUP BY status")
}
