// Command saga is a runnable example of an event-driven saga under trouble: an order service
// (the orchestrator), an inventory service and a payment service, each with its own database,
// talking only through a message broker (commands and replies through transactional outboxes,
// applied once through saga barriers), while messages are delayed and duplicated and each
// service is killed and restarted mid-run. At the end it checks that no money or stock was
// created or lost and that every order ended approved (reserved and charged) or rejected
// (neither).
//
//	go run ./examples/saga                                      # embedded NATS, SQLite in a temp dir
//	go run ./examples/saga -nats nats://127.0.0.1:4222 -postgres 'postgres://postgres@127.0.0.1:5432/test?sslmode=disable'
//	go run ./examples/saga -nats nats://127.0.0.1:4222 -data /tmp/shop -processes
//
// It exits 0 when every invariant holds, 1 otherwise. See README.md.
package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/faultline-dev/faultline/examples/saga/shop"
	"github.com/faultline-dev/faultline/messaging"
	"github.com/faultline-dev/faultline/messaging/kafkabus"
	"github.com/faultline-dev/faultline/messaging/natsbus"
)

// childEnv marks a process started by -processes: the test binary runs main's run instead of the
// tests when it sees it.
const childEnv = "FAULTLINE_SAGA_EXAMPLE_CHILD"

// postgresEnv passes -postgres to a child: in its environment rather than on its command line,
// where every user of the machine could read a password in it.
const postgresEnv = "FAULTLINE_SAGA_EXAMPLE_POSTGRES"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout)
	stop()
	os.Exit(code)
}

// options are the command line.
type options struct {
	seed        uint64
	orders      int
	concurrency int
	natsURL     string
	kafka       string
	postgres    string
	prefix      string
	data        string
	processes   bool
	role        string
	namespace   string
	noTrouble   bool
	timeout     time.Duration
	down        time.Duration
	stepTimeout time.Duration
	deadline    time.Duration
	verbose     bool
}

func parse(args []string, stderr io.Writer) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("saga", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Uint64Var(&o.seed, "seed", 0, "seed of the scenario and the trouble (0: pick one and print it)")
	fs.IntVar(&o.orders, "orders", 300, "orders to place")
	fs.IntVar(&o.concurrency, "concurrency", 16, "orders in flight at once")
	fs.StringVar(&o.natsURL, "nats", "", "external NATS server with JetStream, e.g. nats://127.0.0.1:4222 (default: embedded, in process)")
	fs.StringVar(&o.kafka, "kafka", "", "external Kafka brokers host:port,... instead of NATS")
	fs.StringVar(&o.postgres, "postgres", "", "PostgreSQL connection string: each service gets a schema of its own (default: SQLite files)")
	fs.StringVar(&o.prefix, "schema-prefix", "saga_example", "with -postgres: the schemas are PREFIX_orders, PREFIX_inventory, PREFIX_payment (dropped and recreated at the start)")
	fs.StringVar(&o.data, "data", "", "directory for the SQLite files orders.db, inventory.db, payment.db (recreated at the start; default: a temporary directory)")
	fs.BoolVar(&o.processes, "processes", false, "run inventory and payment as separate OS processes (needs -nats or -kafka, and -postgres or -data)")
	fs.StringVar(&o.role, "role", "", "internal: run one service (inventory or payment) for -processes")
	fs.StringVar(&o.namespace, "ns", "", "internal: topic namespace (default: a fresh one per run)")
	fs.BoolVar(&o.noTrouble, "no-trouble", false, "inject no trouble: no delays, duplicates or kills")
	fs.DurationVar(&o.timeout, "timeout", 3*time.Minute, "give up when the sagas have not all ended by then")
	fs.DurationVar(&o.down, "down", 2*time.Second, "how long a killed service stays down")
	fs.DurationVar(&o.stepTimeout, "step-timeout", shop.DefaultStepTimeout, "saga: each attempt of reserve-stock and charge-payment")
	fs.DurationVar(&o.deadline, "deadline", shop.DefaultDeadline, "saga: an order not approved by then is rejected")
	fs.BoolVar(&o.verbose, "v", false, "show the services' logs on stderr")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if o.role != "" && o.postgres == "" {
		o.postgres = os.Getenv(postgresEnv)
	}
	var errs []error
	if o.orders < 1 {
		errs = append(errs, fmt.Errorf("-orders %d: want ≥ 1", o.orders))
	}
	if o.concurrency < 1 {
		errs = append(errs, fmt.Errorf("-concurrency %d: want ≥ 1", o.concurrency))
	}
	if o.natsURL != "" && o.kafka != "" {
		errs = append(errs, errors.New("-nats and -kafka: choose one broker"))
	}
	if o.postgres != "" && o.data != "" {
		errs = append(errs, errors.New("-postgres and -data: choose one store"))
	}
	if o.processes || o.role != "" {
		if o.natsURL == "" && o.kafka == "" {
			errs = append(errs, errors.New("-processes: the services must share an external broker: add -nats URL or -kafka BROKERS"))
		}
		if o.postgres == "" && o.data == "" {
			errs = append(errs, errors.New("-processes: the services must find their databases: add -postgres DSN or -data DIR"))
		}
	}
	switch o.role {
	case "", string(shop.Inventory), string(shop.Payment):
	default:
		errs = append(errs, fmt.Errorf("-role %q: want inventory or payment", o.role))
	}
	if o.role != "" && (o.namespace == "" || o.seed == 0) {
		errs = append(errs, errors.New("-role is internal to -processes: it needs -ns and -seed"))
	}
	if o.timeout <= 0 || o.down < 0 || o.stepTimeout <= 0 || o.deadline <= 0 {
		errs = append(errs, errors.New("-timeout, -step-timeout and -deadline must be positive, -down not negative"))
	}
	return o, errors.Join(errs...)
}

// run runs the example with args and returns the exit code: 0 when every invariant holds, 1
// when one does not, 2 when the run could not be made.
func run(ctx context.Context, args []string, stdout io.Writer) int {
	o, err := parse(args, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		for _, line := range strings.Split(err.Error(), "\n") {
			fmt.Fprintln(os.Stderr, "saga:", line)
		}
		return 2
	}
	logger := slog.New(slog.DiscardHandler)
	if o.verbose {
		logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	if o.role != "" {
		if err := serve(ctx, o, logger, stdout); err != nil && ctx.Err() == nil {
			fmt.Fprintf(os.Stderr, "saga -role %s: %v\n", o.role, err)
			return 2
		}
		return 0
	}
	ok, err := drive(ctx, o, logger, stdout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "saga:", err)
		return 2
	}
	if !ok {
		return 1
	}
	return 0
}

func (o *options) trouble() shop.Trouble {
	if o.noTrouble {
		return shop.Trouble{}
	}
	return shop.DefaultTrouble(o.down)
}

func (o *options) store(tmp string) shop.Store {
	if o.postgres != "" {
		return shop.Store{Postgres: o.postgres, Prefix: o.prefix}
	}
	if o.data != "" {
		return shop.Store{Dir: o.data}
	}
	return shop.Store{Dir: tmp}
}

// openBroker opens the broker the flags name; describe says which for people.
func openBroker(ctx context.Context, o *options, storeDir string) (b messaging.Broker, describe string, err error) {
	switch {
	case o.kafka != "":
		kb, err := kafkabus.Open(ctx, kafkabus.Config{Brokers: strings.Split(o.kafka, ",")})
		return kb, "Kafka at " + o.kafka, err
	case o.natsURL != "":
		nb, err := natsbus.Open(ctx, natsbus.Config{URL: o.natsURL, Name: "faultline-saga-example"})
		return nb, "NATS JetStream at " + o.natsURL, err
	default:
		nb, err := natsbus.Open(ctx, natsbus.Config{StoreDir: storeDir, NoListen: true})
		return nb, "embedded NATS JetStream (in process, store in " + storeDir + ")", err
	}
}

// cleanupBroker deletes the run's topics from an external broker.
func cleanupBroker(b messaging.Broker, topics []string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	switch b := b.(type) {
	case *natsbus.Bus:
		js, err := jetstream.New(b.Conn())
		if err != nil {
			return
		}
		for _, t := range topics {
			_ = js.DeleteStream(ctx, natsbus.StreamName(t)) // ErrStreamNotFound for topics never used
		}
	case *kafkabus.Bus:
		_, _ = kadm.NewClient(b.Client()).DeleteTopics(ctx, topics...)
	}
}

func newSeed() uint64 {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return binary.LittleEndian.Uint64(b[:])%1_000_000 + 1
}

func newNamespace() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return "saga-example." + hex.EncodeToString(b[:])
}

// drive is the main process: it sets everything up, runs the simulation and prints the report.
func drive(ctx context.Context, o *options, logger *slog.Logger, w io.Writer) (bool, error) {
	if o.seed == 0 {
		o.seed = newSeed()
	}
	if o.namespace == "" {
		o.namespace = newNamespace()
	}
	tmp, err := os.MkdirTemp("", "faultline-saga-example-")
	if err != nil {
		return false, err
	}
	defer os.RemoveAll(tmp)
	st := o.store(filepath.Join(tmp, "db"))
	broker, brokerDesc, err := openBroker(ctx, o, filepath.Join(tmp, "nats"))
	if err != nil {
		return false, err
	}
	defer func() {
		if o.natsURL != "" || o.kafka != "" {
			cleanupBroker(broker, shop.TopicsOf(o.namespace).All())
		}
		cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = broker.Close(cctx)
	}()

	tr := o.trouble()
	timing := shop.Timing{StepTimeout: o.stepTimeout, Deadline: o.deadline}
	sc := shop.NewScenario(o.seed, o.orders)
	cfg := shop.SimConfig{
		Store: st, Broker: broker, Namespace: o.namespace, Scenario: sc,
		Concurrency: o.concurrency, Trouble: tr, Timing: timing, Timeout: o.timeout,
		Progress: w, Logger: logger,
	}
	var l *launcher
	if o.processes {
		exe, err := os.Executable()
		if err != nil {
			return false, err
		}
		l = &launcher{exe: exe, opts: o, out: w, verbose: o.verbose}
		cfg.Launch = l.launch
	}

	fmt.Fprintf(w, "saga example: %d orders, each a saga create-order → reserve-stock → charge-payment → approve-order\n", o.orders)
	fmt.Fprintf(w, "seed %d (replay the scenario and the trouble's draws with -seed %d)\n", o.seed, o.seed)
	fmt.Fprintf(w, "broker:    %s, topics %s.*\n", brokerDesc, o.namespace)
	if st.Postgres != "" {
		fmt.Fprintf(w, "databases: PostgreSQL, a schema per service: %s, %s, %s\n", st.Schema(shop.Orders), st.Schema(shop.Inventory), st.Schema(shop.Payment))
	} else {
		fmt.Fprintf(w, "databases: SQLite, a file per service: %s, %s, %s in %s\n", "orders.db", "inventory.db", "payment.db", st.Dir)
	}
	where := "in this process"
	if o.processes {
		where = "as separate processes (" + filepath.Base(l.exe) + " -role inventory|payment)"
	}
	fmt.Fprintf(w, "services:  orders (the orchestrator) in this process; inventory and payment %s\n", where)
	var stocked, wanted int
	for _, p := range sc.Products {
		stocked += p.Stock
	}
	for _, x := range sc.Orders {
		wanted += x.Qty
	}
	low := 0
	for _, c := range sc.Customers {
		if c.Balance < 100_000 {
			low++
		}
	}
	fmt.Fprintf(w, "scenario:  %d products, %d units in stock for %d ordered; %d customers, %d of them with low balances\n",
		len(sc.Products), stocked, wanted, len(sc.Customers), low)
	fmt.Fprintf(w, "saga:      %v per attempt of a command step, 3 attempts; deadline %v; %d orders in flight at once\n",
		o.stepTimeout, o.deadline, o.concurrency)
	if !tr.Broker.Any() && len(tr.Kills) == 0 {
		fmt.Fprintf(w, "trouble:   none (-no-trouble)\n")
	} else {
		b := tr.Broker
		fmt.Fprintf(w, "trouble:   %.0f%% of deliveries delayed by up to %v, %.0f%% delivered twice, %.0f%% of publishes duplicated\n",
			100*b.Delay, b.MaxDelay, 100*b.DuplicateDelivery, 100*b.DuplicatePublish)
		var ks []string
		for _, k := range tr.Kills {
			ks = append(ks, fmt.Sprintf("%s at %.0f%%", k.Service, 100*k.After))
		}
		fmt.Fprintf(w, "           kills: %s of the orders ended, each down for %v\n", strings.Join(ks, ", "), o.down)
	}
	fmt.Fprintln(w)

	res, err := shop.Simulate(ctx, cfg)
	if err != nil {
		return false, err
	}
	fmt.Fprintln(w)
	if res.TimedOut {
		fmt.Fprintf(w, "TIMED OUT after %v: not every saga ended\n", o.timeout)
	}
	t := res.Trouble
	fmt.Fprintf(w, "trouble:   %d deliveries delayed (%d cut short by a kill), %d delivered twice, %d of %d publishes duplicated, %d kills\n",
		t.Delayed, t.DelayCut, t.DeliveredTwice, t.PublishedTwice, t.Published, len(res.Kills))
	fmt.Fprint(w, res.Report.String())
	fmt.Fprintf(w, "elapsed:   %.1fs\n", res.Elapsed.Seconds())
	return res.Report.OK() && !res.TimedOut, nil
}

// serve is a -role process: one participant service until stdin closes or a signal comes. It
// prints "ready" once it consumes its commands and "stats {json}" with its trouble every second
// and at the end.
func serve(ctx context.Context, o *options, logger *slog.Logger, w io.Writer) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() { // the parent closes stdin to stop us, and dies with it
		_, _ = io.Copy(io.Discard, os.Stdin)
		cancel()
	}()
	svc := shop.Service(o.role)
	broker, _, err := openBroker(ctx, o, "")
	if err != nil {
		return err
	}
	defer func() {
		cctx, ccancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer ccancel()
		_ = broker.Close(cctx)
	}()
	tc := o.trouble().Broker
	tc.Seed = shop.TroubleSeed(o.seed, svc)
	tb, err := shop.NewTroubledBroker(broker, tc)
	if err != nil {
		return err
	}
	cfg := shop.Config{Store: o.store(""), Broker: tb, Namespace: o.namespace, Logger: logger}
	var s interface {
		Migrate(context.Context) error
		Run(context.Context) error
		Ready() <-chan struct{}
		Close() error
	}
	if svc == shop.Inventory {
		s, err = shop.NewInventoryService(cfg)
	} else {
		s, err = shop.NewPaymentService(cfg)
	}
	if err != nil {
		return err
	}
	defer s.Close()
	if err := s.Migrate(ctx); err != nil {
		return err
	}
	var mu sync.Mutex // serializes the lines
	report := func() {
		b, _ := json.Marshal(tb.Stats())
		mu.Lock()
		fmt.Fprintf(w, "stats %s\n", b)
		mu.Unlock()
	}
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	select {
	case <-s.Ready():
		mu.Lock()
		fmt.Fprintln(w, "ready")
		mu.Unlock()
	case err := <-done:
		return err
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
			report()
		case err := <-done:
			_ = tb.Close(context.Background())
			report()
			if errors.Is(err, context.Canceled) {
				return nil
			}
			return err
		}
	}
}

// launcher starts -role child processes for shop.Simulate.
type launcher struct {
	exe     string
	opts    *options
	out     io.Writer
	verbose bool
}

func (l *launcher) args(svc shop.Service) []string {
	o := l.opts
	a := []string{"-role", string(svc), "-seed", fmt.Sprint(o.seed), "-ns", o.namespace, "-down", o.down.String()}
	switch {
	case o.kafka != "":
		a = append(a, "-kafka", o.kafka)
	default:
		a = append(a, "-nats", o.natsURL)
	}
	if o.postgres != "" {
		a = append(a, "-schema-prefix", o.prefix) // -postgres goes in the environment
	} else {
		a = append(a, "-data", o.data)
	}
	if o.noTrouble {
		a = append(a, "-no-trouble")
	}
	if o.verbose {
		a = append(a, "-v")
	}
	return a
}

// launch starts a child running svc and returns once it consumes its commands.
func (l *launcher) launch(ctx context.Context, svc shop.Service) (shop.Process, error) {
	cmd := exec.Command(l.exe, l.args(svc)...)
	cmd.Env = append(os.Environ(), childEnv+"=1")
	if l.opts.postgres != "" {
		cmd.Env = append(cmd.Env, postgresEnv+"="+l.opts.postgres)
	}
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &child{svc: svc, cmd: cmd, stdin: stdin, ready: make(chan struct{}), read: make(chan struct{})}
	go p.readLines(stdout)
	timer := time.NewTimer(30 * time.Second)
	defer timer.Stop()
	select {
	case <-p.ready:
		return p, nil
	case <-p.read:
		err = p.wait()
		return nil, fmt.Errorf("%s process exited before it was ready: %v", svc, err)
	case <-timer.C:
		_ = p.Kill()
		return nil, fmt.Errorf("%s process not ready after 30s", svc)
	case <-ctx.Done():
		_ = p.Kill()
		return nil, ctx.Err()
	}
}

// child is a -role process.
type child struct {
	svc   shop.Service
	cmd   *exec.Cmd
	stdin io.WriteCloser
	ready chan struct{}
	read  chan struct{} // closed when stdout is at EOF

	mu    sync.Mutex
	stats shop.TroubleStats
	once  sync.Once
	err   error
}

func (c *child) readLines(r io.Reader) {
	defer close(c.read)
	sc := bufio.NewScanner(r)
	readyOnce := sync.Once{}
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "ready":
			readyOnce.Do(func() { close(c.ready) })
		case strings.HasPrefix(line, "stats "):
			var s shop.TroubleStats
			if json.Unmarshal([]byte(line[len("stats "):]), &s) == nil {
				c.mu.Lock()
				c.stats = s
				c.mu.Unlock()
			}
		}
	}
}

// wait reaps the process once.
func (c *child) wait() error {
	c.once.Do(func() {
		<-c.read // all of stdout read before Wait closes the pipe
		c.err = c.cmd.Wait()
	})
	return c.err
}

// Kill kills the process with SIGKILL: no cleanup of any kind runs in it.
func (c *child) Kill() error {
	_ = c.cmd.Process.Kill()
	_ = c.wait()
	return nil
}

// Stop closes the child's stdin, which ends it cleanly, and waits (killing it after 15 s).
func (c *child) Stop() error {
	_ = c.stdin.Close()
	done := make(chan error, 1)
	go func() { done <- c.wait() }()
	select {
	case err := <-done:
		return err
	case <-time.After(15 * time.Second):
		return c.Kill()
	}
}

// String names the process for the progress lines.
func (c *child) String() string { return fmt.Sprintf("pid %d", c.cmd.Process.Pid) }

// Trouble is the last stats line the child printed.
func (c *child) Trouble() shop.TroubleStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stats
}
