package saga

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/faultline-dev/faultline/internal/testkit"
	"github.com/faultline-dev/faultline/messaging"
	"github.com/faultline-dev/faultline/messaging/natsbus"
	"github.com/faultline-dev/faultline/outbox"
)

// BenchmarkSagaThroughput measures completed three-step sagas per second, durably: each step
// is a command to a participant in another database, sent through the orchestrator's outbox,
// applied behind the participant's barrier and answered through the participant's outbox.
//
//	go test ./saga -run '^$' -bench SagaThroughput -benchtime 3000x
//
// sqlite+embedded-nats: SQLite files (WAL) and NATS JetStream in process.
// postgres+nats: the machine's PostgreSQL and NATS server (skipped when unreachable).
func BenchmarkSagaThroughput(b *testing.B) {
	b.Run("sqlite+embedded-nats", func(b *testing.B) {
		dir := b.TempDir()
		open := func(name string) *orchDB {
			db := testkit.SQLite(b, filepath.Join(dir, name), 0)
			return &orchDB{name: "sqlite", db: db, dialect: SQLite, table: DefaultTable}
		}
		bus, err := natsbus.Open(context.Background(), natsbus.Config{StoreDir: filepath.Join(dir, "nats"), NoListen: true})
		if err != nil {
			b.Fatal(err)
		}
		defer bus.Close(context.Background())
		benchSagas(b, open("orchestrator.db"), open("participant.db"), bus)
	})
	b.Run("postgres+nats", func(b *testing.B) {
		url := os.Getenv("FAULTLINE_NATS_URL")
		if url == "" {
			url = "nats://127.0.0.1:4222"
		}
		bus, err := natsbus.Open(context.Background(), natsbus.Config{URL: url})
		if err != nil {
			if os.Getenv("FAULTLINE_REQUIRE_SERVICES") == "1" {
				b.Fatalf("NATS at %s: %v", url, err)
			}
			b.Skipf("NATS at %s unreachable: %v", url, err)
		}
		defer bus.Close(context.Background())
		benchSagas(b, orchPostgres(b), orchPostgres(b), bus)
	})
}

var benchRun atomic.Int64

func benchSagas(b *testing.B, od, pd *orchDB, bus messaging.Broker) {
	// Keep a pool of open connections: database/sql keeps 2 idle by default, so 64 concurrent
	// handlers would open and close a connection per transaction.
	for _, d := range []*orchDB{od, pd} {
		d.db.SetMaxOpenConns(16)
		d.db.SetMaxIdleConns(16)
		if d.dialect == SQLite {
			// One writer at a time anyway: queueing in database/sql beats SQLite's busy
			// handler, which sleeps.
			d.db.SetMaxOpenConns(1)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	run := benchRun.Add(1)
	topic := fmt.Sprintf("bench%d_%d.commands", time.Now().UnixNano()%1e9, run)
	cmd := Command(topic)
	def := New("three")
	for _, s := range []string{"one", "two", "three"} {
		def.Step(Step{Name: s, Action: cmd, Compensate: cmd, Timeout: time.Minute})
	}

	var done sync.WaitGroup
	cfg := od.config(def)
	cfg.Broker = bus
	cfg.Name = fmt.Sprintf("bench%d_%d", time.Now().UnixNano()%1e9, run)
	cfg.ReplyConcurrency = 64
	cfg.RelayPollInterval = 50 * time.Millisecond
	cfg.OnTransition = func(st *State, _ []LogEntry) {
		if st.Status.Terminal() {
			done.Done()
		}
	}
	o := newOrch(b, cfg)

	// The participant: one table, one row per applied action, deleted by its compensation.
	pd.exec(b, "CREATE TABLE IF NOT EXISTS "+pd.table+"_applied (k TEXT PRIMARY KEY)")
	ob := outbox.Table{Dialect: pd.dialect}
	if pd.dialect == Postgres {
		ob.Name, ob.Channel = pd.table+"_outbox", pd.table+"_ch"
	}
	var written func()
	p, err := NewParticipant(ParticipantConfig{DB: pd.db, Dialect: pd.dialect, BarrierTable: pd.table + "_barrier", Outbox: ob,
		ReplyWritten: func() { written() }})
	if err != nil {
		b.Fatal(err)
	}
	if err := p.Migrate(ctx); err != nil {
		b.Fatal(err)
	}
	if pd.dialect == Postgres {
		b.Cleanup(func() { pd.db.Exec("DROP TABLE IF EXISTS " + pd.table + "_barrier, " + pd.table + "_applied") })
	}
	insert := fmt.Sprintf("INSERT INTO %s_applied (k) VALUES (%s)", pd.table, ph(pd.dialect, 1))
	apply := func(ctx context.Context, tx *sql.Tx, req *Request) (json.RawMessage, error) {
		_, err := tx.ExecContext(ctx, insert, req.SagaID+"/"+req.Step)
		return nil, err
	}
	for _, s := range []string{"one", "two", "three"} {
		p.Handle(s, apply, nil)
	}
	var pstore outbox.Store
	if pd.dialect == SQLite {
		pstore, err = outbox.NewSQLiteStore(outbox.SQLiteConfig{DB: pd.db})
	} else {
		pstore, err = outbox.NewPostgresStore(outbox.PostgresConfig{DB: pd.db, Table: ob.Name, Channel: ob.Channel})
	}
	if err != nil {
		b.Fatal(err)
	}
	relay, err := outbox.NewRelay(outbox.RelayConfig{Store: pstore, Publisher: bus, PollInterval: 50 * time.Millisecond})
	if err != nil {
		b.Fatal(err)
	}
	written = relay.Wake
	sub, err := bus.Subscribe(ctx, messaging.SubscribeConfig{Topic: topic, Group: "participant", Concurrency: 64}, p.Handler())
	if err != nil {
		b.Fatal(err)
	}
	defer sub.Close(context.Background())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); _ = relay.Run(ctx) }()
	go func() { defer wg.Done(); _ = o.Run(ctx) }()
	defer func() { cancel(); wg.Wait() }()

	done.Add(b.N)
	b.ResetTimer()
	start := time.Now()
	var next atomic.Int64
	var starters sync.WaitGroup
	for w := 0; w < 16; w++ {
		starters.Add(1)
		go func() {
			defer starters.Done()
			for {
				i := next.Add(1)
				if i > int64(b.N) {
					return
				}
				if err := o.Start(ctx, "three", "s"+strconv.FormatInt(i, 10), nil); err != nil {
					b.Error(err)
					done.Done()
				}
			}
		}()
	}
	starters.Wait()
	done.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "sagas/s")
	counts, _ := o.Store().Counts(ctx)
	if counts[StatusCompleted] != b.N {
		b.Fatalf("completed %d of %d: %v", counts[StatusCompleted], b.N, counts)
	}
}
