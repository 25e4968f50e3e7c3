package shop

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/faultline-dev/faultline/messaging"
	"github.com/faultline-dev/faultline/saga"
)

// Trouble is the trouble a Simulate run injects.
type Trouble struct {
	// Broker is the message trouble: each service talks through a TroubledBroker with this
	// configuration (its Seed replaced by TroubleSeed(run seed, service)).
	Broker TroubleConfig
	// Kills are the crashes, in the order they happen.
	Kills []Kill
}

// Kill is a crash of one service in the middle of a run.
type Kill struct {
	// Service is the service to kill.
	Service Service
	// After is the fraction of the orders that have ended (approved or rejected) when the service
	// is killed, in (0, 1).
	After float64
	// Down is how long it stays down before a fresh instance starts over the same database.
	Down time.Duration
}

// DefaultTrouble is the trouble of `go run ./examples/saga`: 8% of deliveries delayed by up to
// 6 s (so a few step attempts time out, and a few sagas miss their deadline), 5% delivered twice,
// 5% of publishes duplicated, and each service killed once for down.
func DefaultTrouble(down time.Duration) Trouble {
	return Trouble{
		Broker: TroubleConfig{DuplicateDelivery: 0.05, DuplicatePublish: 0.05, Delay: 0.10, MaxDelay: 3 * time.Second},
		Kills: []Kill{
			{Service: Inventory, After: 0.25, Down: down},
			{Service: Payment, After: 0.5, Down: down},
			{Service: Orders, After: 0.75, Down: down},
		},
	}
}

// TroubleSeed is the seed of svc's TroubledBroker in a run seeded with seed.
func TroubleSeed(seed uint64, svc Service) uint64 {
	h := seed ^ 0x9e3779b97f4a7c15
	for _, c := range []byte(svc) {
		h = (h ^ uint64(c)) * 0x100000001b3
	}
	return h
}

// Process is a running instance of a participant service that Simulate can kill: in this
// process (the default) or another one (SimConfig.Launch).
type Process interface {
	// Kill stops the instance abruptly, losing its work in flight, and waits until it is gone.
	Kill() error
	// Stop stops the instance at the end of the run and waits until it is gone.
	Stop() error
	// Trouble returns what the instance's TroubledBroker has done, as far as known.
	Trouble() TroubleStats
}

// A Process that is also a fmt.Stringer is named by its String in the progress lines (the
// example's child processes say "pid 1234").

// SimConfig configures Simulate.
type SimConfig struct {
	// Store is where the services keep their databases. Simulate empties it first (Reset).
	// Required.
	Store Store
	// Broker is the broker the services share. Required.
	Broker messaging.Broker
	// Namespace prefixes the topics (see Config.Namespace). Empty means DefaultNamespace.
	Namespace string
	// Scenario is the shop and its orders. Required.
	Scenario *Scenario
	// Concurrency is how many orders are in flight at once: each of that many customers places
	// an order, waits until it is approved or rejected, and places the next. Zero means 16.
	Concurrency int
	// Trouble is the trouble to inject; the zero value injects none.
	Trouble Trouble
	// Timing sets the saga's timeouts.
	Timing Timing
	// Timeout bounds the time until every saga has ended. Zero means no bound but ctx.
	Timeout time.Duration
	// Progress, when set, receives a progress line every second and a line per kill and
	// restart.
	Progress io.Writer
	// Logger receives the services' logs. Nil discards them.
	Logger *slog.Logger
	// Launch, when set, starts the inventory and payment services out of this process: a fresh
	// instance of svc over the Store, talking through the broker with TroubleSeed(seed, svc),
	// returning once it consumes its command topic. Nil runs them in this process.
	Launch func(ctx context.Context, svc Service) (Process, error)
}

// SimResult is the outcome of Simulate.
type SimResult struct {
	// Report is Check's report after the run.
	Report *Report
	// Trouble sums what the TroubledBrokers did.
	Trouble TroubleStats
	// Kills lists the crashes that happened, as printed.
	Kills []string
	// Elapsed is the time from the first order until every saga ended (or the timeout).
	Elapsed time.Duration
	// TimedOut is set when Timeout passed before every saga ended.
	TimedOut bool
}

// sim is one Simulate run.
type sim struct {
	cfg    SimConfig
	runCtx context.Context
	t0     time.Time
	log    *slog.Logger

	outMu sync.Mutex

	brokers map[Service]*TroubledBroker // in-process services' brokers

	// the order service: nil while down
	ordMu     sync.RWMutex
	ord       *OrderService
	ordUp     chan struct{} // closed when ord is set again
	ordEnded  map[string]chan struct{}
	endMu     sync.Mutex
	outcomes  map[string]saga.Status
	approved  atomic.Int64
	rejected  atomic.Int64
	placed    atomic.Int64
	stuckSeen atomic.Int64

	procMu   sync.Mutex
	procs    map[Service]Process
	down     map[Service]bool
	oldStats TroubleStats // of external processes gone
	kills    []string
	endedSig chan struct{}
}

// Simulate runs the shop: it empties the store, migrates the three services and fills the
// inventory and accounts from the scenario, starts the services, places the scenario's orders
// with cfg.Concurrency in flight, injects the trouble (message trouble throughout, the kills at
// their points), waits until every saga has ended (or Timeout), stops the services and checks
// the invariants.
func Simulate(ctx context.Context, cfg SimConfig) (*SimResult, error) {
	var errs []error
	if err := cfg.Store.Validate(); err != nil {
		errs = append(errs, err)
	}
	if cfg.Broker == nil {
		errs = append(errs, errors.New("shop: SimConfig.Broker is nil"))
	}
	if cfg.Scenario == nil {
		errs = append(errs, errors.New("shop: SimConfig.Scenario is nil"))
	}
	if cfg.Concurrency < 0 {
		errs = append(errs, fmt.Errorf("shop: SimConfig.Concurrency %d: must not be negative", cfg.Concurrency))
	}
	if err := cfg.Trouble.Broker.Validate(); err != nil {
		errs = append(errs, err)
	}
	for _, k := range cfg.Trouble.Kills {
		if !k.Service.Valid() || !(k.After > 0 && k.After < 1) || k.Down < 0 {
			errs = append(errs, fmt.Errorf("shop: SimConfig.Trouble.Kills: %+v: want a service, After in (0, 1) and Down ≥ 0", k))
		}
	}
	if _, err := cfg.Timing.withDefaults(); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if cfg.Concurrency == 0 {
		cfg.Concurrency = 16
	}
	if cfg.Namespace == "" {
		cfg.Namespace = DefaultNamespace
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Progress == nil {
		cfg.Progress = io.Discard
	}
	s := &sim{
		cfg: cfg, log: cfg.Logger,
		brokers:  map[Service]*TroubledBroker{},
		ordEnded: map[string]chan struct{}{},
		outcomes: map[string]saga.Status{},
		procs:    map[Service]Process{},
		down:     map[Service]bool{},
		endedSig: make(chan struct{}, 1),
	}
	for _, svc := range Services {
		tc := cfg.Trouble.Broker
		tc.Seed = TroubleSeed(cfg.Scenario.Seed, svc)
		b, err := NewTroubledBroker(cfg.Broker, tc)
		if err != nil {
			return nil, err
		}
		s.brokers[svc] = b
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		for _, b := range s.brokers {
			_ = b.Close(cctx)
		}
	}()
	if err := s.setup(ctx); err != nil {
		return nil, err
	}
	return s.run(ctx)
}

// printf writes one line of progress.
func (s *sim) printf(format string, args ...any) {
	s.outMu.Lock()
	defer s.outMu.Unlock()
	fmt.Fprintf(s.cfg.Progress, "%7s  ", fmt.Sprintf("+%.1fs", time.Since(s.t0).Seconds()))
	fmt.Fprintf(s.cfg.Progress, format+"\n", args...)
}

func (s *sim) config(svc Service) Config {
	return Config{Store: s.cfg.Store, Broker: s.brokers[svc], Namespace: s.cfg.Namespace, Logger: s.log}
}

// setup empties the store, migrates the services and loads the scenario.
func (s *sim) setup(ctx context.Context) error {
	st := s.cfg.Store
	if err := st.Reset(ctx); err != nil {
		return err
	}
	inv, err := NewInventoryService(s.config(Inventory))
	if err != nil {
		return err
	}
	err = inv.Migrate(ctx)
	if err == nil {
		err = s.cfg.Scenario.Stock(ctx, inv)
	}
	if cerr := inv.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	pay, err := NewPaymentService(s.config(Payment))
	if err != nil {
		return err
	}
	err = pay.Migrate(ctx)
	if err == nil {
		err = s.cfg.Scenario.Fund(ctx, pay)
	}
	if cerr := pay.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	ord, err := s.newOrders()
	if err != nil {
		return err
	}
	err = ord.Migrate(ctx)
	if cerr := ord.Close(); err == nil {
		err = cerr
	}
	return err
}

func (s *sim) newOrders() (*OrderService, error) {
	return NewOrderService(OrderConfig{Config: s.config(Orders), Timing: s.cfg.Timing, Seed: s.cfg.Scenario.Seed, OnEnd: s.ended})
}

// ended records an order's end and wakes its customer.
func (s *sim) ended(o Outcome) {
	s.endMu.Lock()
	defer s.endMu.Unlock()
	if _, ok := s.outcomes[o.OrderID]; ok {
		return
	}
	s.outcomes[o.OrderID] = o.Status
	switch o.Status {
	case saga.StatusCompleted:
		s.approved.Add(1)
	case saga.StatusCompensated:
		s.rejected.Add(1)
	default:
		s.stuckSeen.Add(1)
	}
	select {
	case s.endedSig <- struct{}{}:
	default:
	}
	if ch, ok := s.ordEnded[o.OrderID]; ok {
		close(ch)
		delete(s.ordEnded, o.OrderID)
	}
}

// localProc is a service running in this process.
type localProc struct {
	svc    interface{ Close() error }
	cancel context.CancelFunc
	done   chan error
}

// Kill cancels the instance's Run, waits for it to return and closes its database.
func (p *localProc) Kill() error {
	p.cancel()
	err := <-p.done
	if cerr := p.svc.Close(); cerr != nil {
		return cerr
	}
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// Stop is Kill: a service in this process stops as it crashes (see OrderService.Run).
func (p *localProc) Stop() error { return p.Kill() }

// Trouble is zero: the run counts the trouble of its in-process services on their brokers.
func (p *localProc) Trouble() TroubleStats { return TroubleStats{} }

// startLocal starts a fresh instance of svc in this process and returns once it serves.
func (s *sim) startLocal(ctx context.Context, svc Service) (*localProc, *OrderService, error) {
	var (
		run   func(context.Context) error
		ready <-chan struct{}
		ord   *OrderService
		c     interface{ Close() error }
	)
	switch svc {
	case Orders:
		o, err := s.newOrders()
		if err != nil {
			return nil, nil, err
		}
		run, ready, ord, c = o.Run, o.Ready(), o, o
	case Inventory:
		x, err := NewInventoryService(s.config(svc))
		if err != nil {
			return nil, nil, err
		}
		run, ready, c = x.Run, x.Ready(), x
	case Payment:
		x, err := NewPaymentService(s.config(svc))
		if err != nil {
			return nil, nil, err
		}
		run, ready, c = x.Run, x.Ready(), x
	}
	rctx, cancel := context.WithCancel(s.runCtx)
	p := &localProc{svc: c, cancel: cancel, done: make(chan error, 1)}
	go func() { p.done <- run(rctx) }()
	select {
	case <-ready:
		return p, ord, nil
	case err := <-p.done:
		cancel()
		c.Close()
		return nil, nil, fmt.Errorf("start %s: %w", svc, err)
	case <-ctx.Done():
		p.Kill()
		return nil, nil, ctx.Err()
	}
}

// start starts a fresh instance of svc: the order service always here, the participants here or
// through Launch.
func (s *sim) start(ctx context.Context, svc Service) error {
	if svc != Orders && s.cfg.Launch != nil {
		p, err := s.cfg.Launch(ctx, svc)
		if err != nil {
			return fmt.Errorf("start %s: %w", svc, err)
		}
		s.procMu.Lock()
		s.procs[svc], s.down[svc] = p, false
		s.procMu.Unlock()
		return nil
	}
	p, ord, err := s.startLocal(ctx, svc)
	if err != nil {
		return err
	}
	if svc == Orders {
		s.ordMu.Lock()
		s.ord = ord
		if s.ordUp != nil {
			close(s.ordUp)
			s.ordUp = nil
		}
		s.ordMu.Unlock()
	}
	s.procMu.Lock()
	s.procs[svc], s.down[svc] = p, false
	s.procMu.Unlock()
	return nil
}

// describe names svc's running instance for people: "inventory", or "inventory (pid 1234)"
// when its Process is a fmt.Stringer.
func (s *sim) describe(svc Service) string {
	s.procMu.Lock()
	defer s.procMu.Unlock()
	if p, ok := s.procs[svc].(fmt.Stringer); ok {
		return string(svc) + " (" + p.String() + ")"
	}
	return string(svc)
}

// kill kills the running instance of svc.
func (s *sim) kill(svc Service) error {
	s.procMu.Lock()
	p := s.procs[svc]
	delete(s.procs, svc)
	s.down[svc] = true
	s.procMu.Unlock()
	if p == nil {
		return nil
	}
	if svc == Orders {
		// Wait for orders being placed (a few milliseconds), then the service is gone until
		// restarted; customers wait for it.
		s.ordMu.Lock()
		s.ord = nil
		s.ordUp = make(chan struct{})
		s.ordMu.Unlock()
	}
	err := p.Kill()
	s.procMu.Lock()
	s.oldStats.Add(p.Trouble())
	s.procMu.Unlock()
	return err
}

// trouble sums the trouble so far.
func (s *sim) trouble() TroubleStats {
	var t TroubleStats
	for svc, b := range s.brokers {
		if svc == Orders || s.cfg.Launch == nil {
			t.Add(b.Stats())
		}
	}
	s.procMu.Lock()
	defer s.procMu.Unlock()
	t.Add(s.oldStats)
	for _, p := range s.procs {
		t.Add(p.Trouble())
	}
	return t
}

// orders returns the running order service, waiting while it is down.
func (s *sim) orders(ctx context.Context) (*OrderService, func(), error) {
	for {
		s.ordMu.RLock()
		if s.ord != nil {
			return s.ord, s.ordMu.RUnlock, nil
		}
		up := s.ordUp
		s.ordMu.RUnlock()
		if up == nil {
			return nil, nil, errors.New("the order service is not running")
		}
		select {
		case <-up:
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		}
	}
}

// place places o and waits until its saga has ended.
func (s *sim) place(ctx context.Context, o Order) error {
	ch := make(chan struct{})
	s.endMu.Lock()
	if _, ok := s.outcomes[o.ID]; ok {
		s.endMu.Unlock()
		return nil
	}
	s.ordEnded[o.ID] = ch
	s.endMu.Unlock()
	for {
		ord, release, err := s.orders(ctx)
		if err != nil {
			return err
		}
		err = ord.PlaceOrder(ctx, o)
		release()
		if err == nil || errors.Is(err, saga.ErrExists) {
			break
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		// The service died under the call: the saga may or may not exist; placing it again
		// tells (ErrExists).
		s.log.Warn("place order: retrying", "order", o.ID, "err", err)
		if err := sleep(ctx, 100*time.Millisecond); err != nil {
			return err
		}
	}
	s.placed.Add(1)
	// Wait for the end. The notification comes from the orchestrator right after the commit; a
	// crash exactly in between would lose it, so look at the saga now and then too.
	poll := time.NewTicker(time.Second)
	defer poll.Stop()
	for {
		select {
		case <-ch:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		case <-poll.C:
			s.ordMu.RLock()
			ord := s.ord
			if ord != nil {
				if st, err := ord.Orchestrator().Get(ctx, o.ID); err == nil && (st.Status.Terminal() || st.Status == saga.StatusNeedsAttention) {
					s.ended(Outcome{OrderID: o.ID, Status: st.Status, Reason: st.Reason})
				}
			}
			s.ordMu.RUnlock()
		}
	}
}

// endedCount is how many orders have ended.
func (s *sim) endedCount() int64 {
	return s.approved.Load() + s.rejected.Load() + s.stuckSeen.Load()
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// chaos carries out the kills at their points.
func (s *sim) chaos(ctx context.Context) {
	n := len(s.cfg.Scenario.Orders)
	for _, k := range s.cfg.Trouble.Kills {
		for int(s.endedCount()) < int(k.After*float64(n)) {
			select {
			case <-s.endedSig:
			case <-ctx.Done():
				return
			}
		}
		name := s.describe(k.Service)
		if err := s.kill(k.Service); err != nil {
			s.log.Warn("kill", "service", k.Service, "err", err)
		}
		msg := fmt.Sprintf("✗ killed %s after %d of %d orders ended: its work in flight is lost; restarting in %v", name, s.endedCount(), n, k.Down)
		s.printf("%s", msg)
		s.procMu.Lock()
		s.kills = append(s.kills, msg)
		s.procMu.Unlock()
		if sleep(ctx, k.Down) != nil {
			return
		}
		for {
			err := s.start(ctx, k.Service)
			if err == nil {
				break
			}
			if ctx.Err() != nil {
				return
			}
			s.printf("restart %s failed, trying again: %v", k.Service, err)
			if sleep(ctx, time.Second) != nil {
				return
			}
		}
		s.printf("↻ %s restarted: a fresh instance over the same database", s.describe(k.Service))
	}
}

// progress prints a line every second.
func (s *sim) progress(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	n := len(s.cfg.Scenario.Orders)
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		placed, ok, ko := s.placed.Load(), s.approved.Load(), s.rejected.Load()
		tr := s.trouble()
		line := fmt.Sprintf("placed %d/%d  approved %d  rejected %d  in flight %d | delayed %d, delivered twice %d, published twice %d",
			placed, n, ok, ko, placed-ok-ko-s.stuckSeen.Load(), tr.Delayed, tr.DeliveredTwice, tr.PublishedTwice)
		s.procMu.Lock()
		var down []string
		for svc, d := range s.down {
			if d {
				down = append(down, string(svc))
			}
		}
		s.procMu.Unlock()
		if len(down) > 0 {
			sort.Strings(down)
			line += " | down: " + strings.Join(down, ", ")
		}
		s.printf("%s", line)
	}
}

// run starts the services, places the orders, waits and checks.
func (s *sim) run(ctx context.Context) (*SimResult, error) {
	runCtx, stopServices := context.WithCancel(context.WithoutCancel(ctx))
	defer stopServices()
	s.runCtx = runCtx
	s.t0 = time.Now()
	defer s.stopAll()
	for _, svc := range Services {
		if err := s.start(ctx, svc); err != nil {
			return nil, err
		}
	}

	wctx := ctx
	if s.cfg.Timeout > 0 {
		var cancel context.CancelFunc
		wctx, cancel = context.WithTimeout(ctx, s.cfg.Timeout)
		defer cancel()
	}
	start := time.Now()
	s.t0 = start
	var bg sync.WaitGroup
	bgCtx, stopBG := context.WithCancel(wctx)
	bg.Go(func() { s.chaos(bgCtx) })
	bg.Go(func() { s.progress(bgCtx) })

	orders := s.cfg.Scenario.Orders
	var next atomic.Int64
	var workers sync.WaitGroup
	errc := make(chan error, s.cfg.Concurrency)
	for range min(s.cfg.Concurrency, len(orders)) {
		workers.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= len(orders) || wctx.Err() != nil {
					return
				}
				if err := s.place(wctx, orders[i]); err != nil {
					if wctx.Err() == nil {
						errc <- err
					}
					return
				}
			}
		})
	}
	workers.Wait()
	elapsed := time.Since(start)
	timedOut := wctx.Err() != nil && ctx.Err() == nil
	stopBG()
	bg.Wait()
	close(errc)
	if err := <-errc; err != nil {
		return nil, err
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	s.printf("%d orders done: approved %d, rejected %d (in %.1fs)", s.placed.Load(), s.approved.Load(), s.rejected.Load(), elapsed.Seconds())
	s.stopAll()
	trouble := s.trouble()

	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	rep, err := Check(cctx, s.cfg.Store, len(orders))
	if err != nil {
		return nil, err
	}
	return &SimResult{Report: rep, Trouble: trouble, Kills: s.kills, Elapsed: elapsed, TimedOut: timedOut}, nil
}

// stopAll stops every running service (idempotent).
func (s *sim) stopAll() {
	s.procMu.Lock()
	procs := s.procs
	s.procs = map[Service]Process{}
	s.procMu.Unlock()
	s.ordMu.Lock()
	s.ord = nil
	s.ordMu.Unlock()
	var wg sync.WaitGroup
	for svc, p := range procs {
		wg.Go(func() {
			if err := p.Stop(); err != nil {
				s.log.Warn("stop", "service", svc, "err", err)
			}
			s.procMu.Lock()
			s.oldStats.Add(p.Trouble())
			s.procMu.Unlock()
		})
	}
	wg.Wait()
}
