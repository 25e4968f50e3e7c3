package bench

// Saga benchmarks against dtm (github.com/dtm-labs/dtm): completed three-step sagas per second,
// both sides durable on the machine's PostgreSQL, every step a row inserted behind the library's
// sub-transaction barrier in a participant database.
//
//	cd bench && BENCH=Saga BENCHTIME=2000x ./run.sh 6
//
// BenchmarkSagaHTTP/faultline: saga.Orchestrator on PostgreSQL, steps invoked with saga.HTTP
// against an httptest server serving (*saga.Participant).HTTPHandler.
// BenchmarkSagaHTTP/dtm: the dtm server started in this process (dtmsvr.StartSvr, store: its
// postgres driver), sagas submitted with dtmcli.NewSaga(...).Add(...)×3.Submit(), branches served
// by an httptest server through dtmcli's barrier (BarrierFromQuery + CallWithDB).
// BenchmarkSagaNATS/faultline: faultline with Command steps over the machine's NATS JetStream
// (the participant replies through its own outbox), for comparison with its HTTP row.
//
// One op is one saga: ns/op is wall time per completed saga, and every row reports sagas/s =
// b.N / (time from the first start to the last saga recorded as completed by its coordinator).
// PostgreSQL comes from FAULTLINE_POSTGRES_URL (default defaultPostgresURL), NATS from
// FAULTLINE_NATS_URL (default nats://127.0.0.1:4222); a row is skipped when its service is
// unreachable, unless FAULTLINE_REQUIRE_SERVICES=1. See docs/benchmarks.md, "Sagas: faultline vs
// dtm".

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dtm-labs/dtm/client/dtmcli"
	"github.com/dtm-labs/dtm/dtmsvr"
	dtmconfig "github.com/dtm-labs/dtm/dtmsvr/config"
	"github.com/dtm-labs/dtm/dtmsvr/storage/registry"
	dtmlogger "github.com/dtm-labs/logger"
	_ "github.com/jackc/pgx/v5/stdlib"
	gormlogger "gorm.io/gorm/logger"

	"github.com/faultline-dev/faultline/messaging"
	"github.com/faultline-dev/faultline/messaging/natsbus"
	"github.com/faultline-dev/faultline/outbox"
	"github.com/faultline-dev/faultline/saga"
)

// Settings, the same for both libraries where both have them.
const (
	// sagaStarters goroutines start (faultline: Orchestrator.Start; dtm: Saga.Submit) the b.N
	// sagas, each as fast as its call returns; neither waits for its saga to finish.
	sagaStarters = 16
	// sagaPool is the connection pool (max open and max idle) of each participant database and of
	// faultline's orchestrator database. dtm's own store pool is given the same size (dtm's
	// default, 500 open, is more than this PostgreSQL's max_connections of 100).
	sagaPool = 16
	// sagaHTTPIdle is the idle HTTP connections kept per host by the client that invokes the
	// steps (faultline: the http.Client given to saga.HTTP; dtm: its resty client, which also
	// carries Submit). Both libraries' defaults keep 2-3 (net/http's DefaultMaxIdleConnsPerHost;
	// resty's GOMAXPROCS+1), so 16+ concurrent calls would open a TCP connection per request.
	sagaHTTPIdle = 64
	// sagaStepTimeout bounds one attempt of a step (faultline: Step.Timeout; dtm: its server's
	// RequestTimeout, default 3 s, which also bounds Submit). The sagas are started as fast as
	// possible, so thousands are in flight at once and a step can wait seconds for the
	// participant's 16 connections: with dtm's 3 s a branch times out and is retried only by its
	// cron, 10+ s later.
	sagaStepTimeout = time.Minute
	// dtmSchema holds dtm's store tables and its barrier table, created from the SQL files the
	// dtm module ships (sqls/), with the barrier's schema renamed from dtm_barrier.
	dtmSchema = "dtm_bench"
)

// sagaSteps are the three steps, run in order; each action inserts one row, each compensation
// (never run here) deletes it.
var sagaSteps = []string{"one", "two", "three"}

// sagaInput is every saga's input (faultline) / every branch's body (dtm).
type sagaInput struct {
	Amount int `json:"amount"`
}

var sagaBody = sagaInput{Amount: 30}

func requireServices() bool { return os.Getenv("FAULTLINE_REQUIRE_SERVICES") == "1" }

// sagaPostgres opens the database through pgx's database/sql driver with a pool of sagaPool, or
// skips (fails, with FAULTLINE_REQUIRE_SERVICES=1) when it is unreachable.
func sagaPostgres(b *testing.B) *sql.DB {
	b.Helper()
	db, err := sql.Open("pgx", postgresURL())
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		err = db.PingContext(ctx)
		cancel()
	}
	if err != nil {
		if requireServices() {
			b.Fatalf("PostgreSQL at %s unreachable: %v", postgresURL(), err)
		}
		b.Skipf("PostgreSQL at %s unreachable (set FAULTLINE_REQUIRE_SERVICES=1 to fail): %v", postgresURL(), err)
	}
	db.SetMaxOpenConns(sagaPool)
	db.SetMaxIdleConns(sagaPool)
	b.Cleanup(func() { db.Close() })
	return db
}

func sagaExec(b *testing.B, db *sql.DB, q string, args ...any) {
	b.Helper()
	if _, err := db.Exec(q, args...); err != nil {
		b.Fatalf("%s: %v", q, err)
	}
}

func sagaCount(b *testing.B, db *sql.DB, q string, args ...any) int {
	b.Helper()
	var n int
	if err := db.QueryRow(q, args...).Scan(&n); err != nil {
		b.Fatalf("%s: %v", q, err)
	}
	return n
}

// sagaTransport is the HTTP transport of both libraries' step clients.
func sagaTransport() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns = sagaHTTPIdle
	t.MaxIdleConnsPerHost = sagaHTTPIdle
	return t
}

// startSagas runs start(i) for i in 1..n from sagaStarters goroutines.
func startSagas(n int, start func(i int)) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < sagaStarters; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1)
				if i > int64(n) {
					return
				}
				start(int(i))
			}
		}()
	}
	wg.Wait()
}

func reportSagas(b *testing.B, n int, d time.Duration) {
	if d > 0 {
		b.ReportMetric(float64(n)/d.Seconds(), "sagas/s")
	}
}

func BenchmarkSagaHTTP(b *testing.B) {
	b.Run("faultline", func(b *testing.B) {
		benchFaultlineSagas(b, false)
	})
	b.Run("dtm", benchDtmSagas)
}

// BenchmarkSagaNATS has no dtm row: dtm's branches are HTTP, gRPC or JSON-RPC calls.
func BenchmarkSagaNATS(b *testing.B) {
	b.Run("faultline", func(b *testing.B) {
		benchFaultlineSagas(b, true)
	})
}

// --- faultline ---

// benchFaultlineSagas runs b.N three-step sagas through a saga.Orchestrator on PostgreSQL; the
// steps are HTTP steps to the participant's HTTPHandler, or (overNATS) Command steps to the
// participant's messaging Handler over the machine's NATS. A saga counts as completed when
// OnTransition reports its terminal state, i.e. after the transaction that records it committed.
func benchFaultlineSagas(b *testing.B, overNATS bool) {
	od, pd := sagaPostgres(b), sagaPostgres(b) // orchestrator's and participant's databases
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	name := uniqueName("flsaga")
	b.Cleanup(func() {
		for _, t := range []string{name, name + "_log", name + "_outbox"} {
			od.Exec("DROP TABLE IF EXISTS " + t + " CASCADE")
		}
		for _, t := range []string{name + "_applied", name + "_barrier", name + "_pout"} {
			pd.Exec("DROP TABLE IF EXISTS " + t + " CASCADE")
		}
	})

	// The participant: one row per applied action, deleted by its compensation.
	sagaExec(b, pd, "CREATE TABLE "+name+"_applied (k TEXT PRIMARY KEY)")
	insert := "INSERT INTO " + name + "_applied (k) VALUES ($1)"
	remove := "DELETE FROM " + name + "_applied WHERE k = $1"
	pout := outbox.Table{Dialect: outbox.Postgres, Name: name + "_pout", Channel: name + "_pch"}
	var wake func()
	p, err := saga.NewParticipant(saga.ParticipantConfig{DB: pd, Dialect: saga.Postgres, BarrierTable: name + "_barrier",
		Outbox: pout, ReplyWritten: func() { wake() }})
	if err != nil {
		b.Fatal(err)
	}
	if err := p.Migrate(ctx); err != nil {
		b.Fatal(err)
	}
	for _, s := range sagaSteps {
		p.Handle(s, func(ctx context.Context, tx *sql.Tx, req *saga.Request) (json.RawMessage, error) {
			var in sagaInput
			if err := json.Unmarshal(req.Input, &in); err != nil {
				return nil, saga.Fail(err)
			}
			_, err := tx.ExecContext(ctx, insert, req.SagaID+"/"+req.Step)
			return nil, err
		}, func(ctx context.Context, tx *sql.Tx, req *saga.Request) (json.RawMessage, error) {
			_, err := tx.ExecContext(ctx, remove, req.SagaID+"/"+req.Step)
			return nil, err
		})
	}

	def := saga.New("three")
	cfg := saga.Config{
		DB: od, Dialect: saga.Postgres, Table: name,
		Outbox:      outbox.Table{Dialect: outbox.Postgres, Name: name + "_outbox", Channel: name + "_ch"},
		Definitions: []*saga.Definition{def},
	}
	var bg sync.WaitGroup
	defer func() { cancel(); bg.Wait() }()
	var calls atomic.Int64 // HTTP requests to the participant
	if overNATS {
		natsURL := os.Getenv("FAULTLINE_NATS_URL")
		if natsURL == "" {
			natsURL = "nats://127.0.0.1:4222"
		}
		bus, err := natsbus.Open(ctx, natsbus.Config{URL: natsURL})
		if err != nil {
			if requireServices() {
				b.Fatalf("NATS at %s: %v", natsURL, err)
			}
			b.Skipf("NATS at %s unreachable (set FAULTLINE_REQUIRE_SERVICES=1 to fail): %v", natsURL, err)
		}
		defer bus.Close(context.Background())
		topic := name + ".commands"
		for _, s := range sagaSteps {
			def.Step(saga.Step{Name: s, Action: saga.Command(topic), Compensate: saga.Command(topic), Timeout: sagaStepTimeout})
		}
		cfg.Broker, cfg.Name = bus, name
		cfg.ReplyConcurrency = 64
		cfg.RelayPollInterval = 50 * time.Millisecond
		// The participant's replies go out through its own outbox and relay.
		pstore, err := outbox.NewPostgresStore(outbox.PostgresConfig{DB: pd, Table: pout.Name, Channel: pout.Channel})
		if err != nil {
			b.Fatal(err)
		}
		relay, err := outbox.NewRelay(outbox.RelayConfig{Store: pstore, Publisher: bus, PollInterval: 50 * time.Millisecond})
		if err != nil {
			b.Fatal(err)
		}
		wake = relay.Wake
		sub, err := bus.Subscribe(ctx, messaging.SubscribeConfig{Topic: topic, Group: "participant", Concurrency: 64}, p.Handler())
		if err != nil {
			b.Fatal(err)
		}
		defer sub.Close(context.Background())
		bg.Add(1)
		go func() { defer bg.Done(); _ = relay.Run(ctx) }()
	} else {
		wake = func() {}
		h := p.HTTPHandler()
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			calls.Add(1)
			h.ServeHTTP(w, r)
		}))
		defer srv.Close()
		client := &http.Client{Transport: sagaTransport()}
		defer client.CloseIdleConnections()
		for _, s := range sagaSteps {
			def.Step(saga.Step{Name: s, Action: saga.HTTP(client, srv.URL), Compensate: saga.HTTP(client, srv.URL), Timeout: sagaStepTimeout})
		}
	}

	var done sync.WaitGroup
	cfg.OnTransition = func(st *saga.State, _ []saga.LogEntry) {
		if st.Status.Terminal() {
			done.Done()
		}
	}
	o, err := saga.NewOrchestrator(cfg)
	if err != nil {
		b.Fatal(err)
	}
	if err := o.Migrate(ctx); err != nil {
		b.Fatal(err)
	}
	bg.Add(1)
	go func() { defer bg.Done(); _ = o.Run(ctx) }()

	done.Add(b.N)
	b.ResetTimer()
	start := time.Now()
	startSagas(b.N, func(i int) {
		if err := o.Start(ctx, "three", "s"+strconv.Itoa(i), sagaBody); err != nil {
			b.Error(err)
			done.Done()
		}
	})
	done.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	reportSagas(b, b.N, elapsed)

	counts, err := o.Store().Counts(ctx)
	if err != nil {
		b.Fatal(err)
	}
	if counts[saga.StatusCompleted] != b.N {
		b.Fatalf("completed %d of %d sagas: %v", counts[saga.StatusCompleted], b.N, counts)
	}
	if n := sagaCount(b, pd, "SELECT count(*) FROM "+name+"_applied"); n != 3*b.N {
		b.Fatalf("%d rows applied, want %d", n, 3*b.N)
	}
	if !overNATS && calls.Load() != int64(3*b.N) {
		b.Logf("%d step requests for %d sagas (retries or duplicates)", calls.Load(), b.N)
	}
}

// --- dtm ---

var (
	dtmOnce   sync.Once
	dtmServer string // the dtm server's HTTP API, http://127.0.0.1:port/api/dtmsvr
	dtmErr    error
)

// startDtm starts one dtm server in this process (it cannot be stopped: its goroutines run until
// the process exits) and returns its API address.
func startDtm(b *testing.B) string {
	b.Helper()
	sagaPostgres(b).Close() // skips when PostgreSQL is unreachable
	dtmOnce.Do(func() { dtmServer, dtmErr = startDtmServer() })
	if dtmErr != nil {
		b.Fatalf("dtm server: %v", dtmErr)
	}
	return dtmServer
}

// dtmSQLDir is the sqls/ directory of the dtm module in the module cache.
func dtmSQLDir() (string, error) {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/dtm-labs/dtm").Output()
	if err != nil {
		return "", fmt.Errorf("go list -m github.com/dtm-labs/dtm: %v", err)
	}
	return filepath.Join(strings.TrimSpace(string(out)), "sqls"), nil
}

// runDtmScript runs a dtm SQL file statement by statement on one connection with search_path set
// to dtmSchema, as dtm's own dtmutil.RunSQLScript does (split on ";").
func runDtmScript(db *sql.DB, path string, rename map[string]string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	text := string(data)
	for from, to := range rename {
		text = strings.ReplaceAll(text, from, to)
	}
	ctx := context.Background()
	conn, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "SET search_path TO "+dtmSchema); err != nil {
		return err
	}
	for _, stmt := range strings.Split(text, ";") {
		if s := strings.TrimSpace(stmt); s != "" {
			if _, err := conn.ExecContext(ctx, s); err != nil {
				return fmt.Errorf("%s: %s: %v", filepath.Base(path), s, err)
			}
		}
	}
	return nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func startDtmServer() (string, error) {
	u, err := url.Parse(postgresURL())
	if err != nil {
		return "", err
	}
	pgPort := 5432
	if p := u.Port(); p != "" {
		if pgPort, err = strconv.Atoi(p); err != nil {
			return "", err
		}
	}
	password, _ := u.User.Password()
	if password == "" {
		// dtm writes the DSN as "... password=%s dbname=..."; an empty password would make the
		// next key its value. The value is not checked under trust authentication.
		password = "unused"
	}

	// The schema, from dtm's own SQL files.
	dir, err := dtmSQLDir()
	if err != nil {
		return "", err
	}
	admin, err := sql.Open("pgx", postgresURL())
	if err != nil {
		return "", err
	}
	defer admin.Close()
	if _, err := admin.Exec("DROP SCHEMA IF EXISTS " + dtmSchema + " CASCADE; CREATE SCHEMA " + dtmSchema); err != nil {
		return "", err
	}
	if err := runDtmScript(admin, filepath.Join(dir, "dtmsvr.storage.postgres.sql"), nil); err != nil {
		return "", err
	}
	if err := runDtmScript(admin, filepath.Join(dir, "dtmcli.barrier.postgres.sql"), map[string]string{"dtm_barrier": dtmSchema}); err != nil {
		return "", err
	}

	httpPort, err := freePort()
	if err != nil {
		return "", err
	}
	grpcPort, err := freePort()
	if err != nil {
		return "", err
	}
	// What dtm's entry.Main does, without its flags, automaxprocs and admin UI: load the config
	// (defaults and environment), then set the store and ports; errors only in the log.
	dtmlogger.InitLog("error")
	// dtm's SQL store opens gorm without a logger, so gorm's default one prints every statement
	// slower than 200 ms to stdout, into the benchmark's output; faultline logs nothing either.
	gormlogger.Default = gormlogger.Default.LogMode(gormlogger.Silent)
	dtmconfig.MustLoadConfig("")
	conf := &dtmconfig.Config
	conf.LogLevel = "error"
	conf.Store.Driver = dtmconfig.Postgres
	conf.Store.Host = u.Hostname()
	conf.Store.Port = int64(pgPort)
	conf.Store.User = u.User.Username()
	conf.Store.Password = password
	conf.Store.Db = strings.TrimPrefix(u.Path, "/")
	conf.Store.Schema = dtmSchema
	conf.Store.MaxOpenConns = sagaPool
	conf.Store.MaxIdleConns = sagaPool
	conf.RequestTimeout = int64(sagaStepTimeout / time.Second)
	conf.HTTPPort = int64(httpPort)
	conf.GrpcPort = int64(grpcPort)
	registry.WaitStoreUp()
	dtmsvr.StartSvr()              // HTTP (gin) and gRPC APIs; listens on ":port", i.e. every interface
	go dtmsvr.CronExpiredTrans(-1) // retries transactions whose branches failed or timed out
	// The step client: dtm's shared resty client carries Submit and the server's branch calls.
	dtmcli.GetRestyClient().SetTransport(sagaTransport())

	server := fmt.Sprintf("http://127.0.0.1:%d/api/dtmsvr", httpPort)
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/api/ping", httpPort))
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return server, nil
			}
			err = fmt.Errorf("ping: %s", resp.Status)
		}
		if time.Now().After(deadline) {
			return "", err
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// benchDtmSagas runs b.N three-step sagas through the in-process dtm server. A saga counts as
// completed when dtm has recorded it as succeeded: the timer runs until the third step's action
// has committed for every saga, then until trans_global has every saga in status "succeed"
// (dtm marks it right after the last branch answers; this tail is polled every millisecond).
func benchDtmSagas(b *testing.B) {
	server := startDtm(b)
	pd := sagaPostgres(b) // the participant's database
	name := uniqueName("dtmsaga")
	b.Cleanup(func() { pd.Exec("DROP TABLE IF EXISTS " + name + "_applied") })
	sagaExec(b, pd, "CREATE TABLE "+name+"_applied (k TEXT PRIMARY KEY)")
	insert := "INSERT INTO " + name + "_applied (k) VALUES ($1)"
	remove := "DELETE FROM " + name + "_applied WHERE k = $1"

	var done sync.WaitGroup
	var calls atomic.Int64 // HTTP requests to the participant
	mux := http.NewServeMux()
	for _, s := range sagaSteps {
		for _, op := range []string{"action", "compensate"} {
			q := insert
			if op == "compensate" {
				q = remove
			}
			last := s == sagaSteps[len(sagaSteps)-1] && op == "action"
			mux.HandleFunc("POST /"+s+"/"+op, func(w http.ResponseWriter, r *http.Request) {
				calls.Add(1)
				var in sagaInput
				body, err := io.ReadAll(r.Body)
				if err == nil {
					err = json.Unmarshal(body, &in)
				}
				if err != nil {
					http.Error(w, `{"dtm_result":"FAILURE","message":"bad body"}`, http.StatusConflict)
					return
				}
				bb, err := dtmcli.BarrierFromQuery(r.URL.Query())
				if err != nil {
					http.Error(w, `{"dtm_result":"FAILURE","message":"bad query"}`, http.StatusConflict)
					return
				}
				bb.DBType = dtmcli.DBTypePostgres
				bb.BarrierTableName = dtmSchema + ".barrier"
				ran := false
				err = bb.CallWithDB(pd, func(tx *sql.Tx) error {
					ran = true
					_, err := tx.Exec(q, bb.Gid+"/"+s)
					return err
				})
				if err != nil { // transient: dtm retries the branch
					http.Error(w, err.Error(), http.StatusInternalServerError)
					return
				}
				w.Header().Set("Content-Type", "application/json")
				_, _ = w.Write([]byte(`{"dtm_result":"SUCCESS"}`))
				if ran && last {
					done.Done()
				}
			})
		}
	}
	srv := httptest.NewServer(mux)
	defer srv.Close()

	prefix := name + "-"
	done.Add(b.N)
	b.ResetTimer()
	start := time.Now()
	startSagas(b.N, func(i int) {
		s := dtmcli.NewSaga(server, prefix+strconv.Itoa(i))
		for _, st := range sagaSteps {
			s.Add(srv.URL+"/"+st+"/action", srv.URL+"/"+st+"/compensate", sagaBody)
		}
		if err := s.Submit(); err != nil {
			b.Error(err)
			done.Done()
		}
	})
	done.Wait()
	succeeded := "SELECT count(*) FROM " + dtmSchema + ".trans_global WHERE starts_with(gid, $1) AND status = 'succeed'"
	deadline := time.Now().Add(2 * time.Minute)
	for sagaCount(b, pd, succeeded, prefix) < b.N {
		if time.Now().After(deadline) {
			b.Fatalf("dtm: %d of %d sagas succeeded after 2 minutes", sagaCount(b, pd, succeeded, prefix), b.N)
		}
		time.Sleep(time.Millisecond)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	reportSagas(b, b.N, elapsed)

	if n := sagaCount(b, pd, "SELECT count(*) FROM "+name+"_applied"); n != 3*b.N {
		b.Fatalf("%d rows applied, want %d", n, 3*b.N)
	}
	if calls.Load() != int64(3*b.N) {
		b.Logf("%d branch requests for %d sagas (retries or duplicates)", calls.Load(), b.N)
	}
}
