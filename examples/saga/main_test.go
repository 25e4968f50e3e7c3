package main

import (
	"bytes"
	"context"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/faultline-dev/faultline/examples/saga/shop"
	"github.com/faultline-dev/faultline/messaging"
	"github.com/faultline-dev/faultline/messaging/natsbus"
)

// TestMain lets the test binary stand in for the example's binary: -processes re-executes
// os.Executable() (here, the test binary) with childEnv set, and such a child runs the example
// instead of the tests.
func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "1" {
		os.Exit(run(context.Background(), os.Args[1:], os.Stdout))
	}
	os.Exit(m.Run())
}

// checkNoLeak fails the test when goroutines it started are still running at its end.
func checkNoLeak(t *testing.T) {
	t.Helper()
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(10 * time.Second)
		for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		if n := runtime.NumGoroutine(); n > before {
			buf := make([]byte, 1<<20)
			t.Errorf("goroutine leak: %d before, %d after\n%s", before, n, buf[:runtime.Stack(buf, true)])
		}
	})
}

// runExample runs the example with args and returns its exit code and output.
func runExample(t *testing.T, args ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Second)
	defer cancel()
	var out bytes.Buffer
	code := run(ctx, args, &out)
	return code, out.String()
}

// checkOutput checks what a reader of the output relies on.
func checkOutput(t *testing.T, code int, out string, want ...string) {
	t.Helper()
	if code != 0 {
		t.Fatalf("exit %d, want 0:\n%s", code, out)
	}
	for _, w := range append([]string{
		"seed 1 (replay",
		"✗ killed inventory", "↻ inventory", "✗ killed payment", "↻ payment", "✗ killed orders", "↻ orders restarted",
		"30 placed: ", "0 unfinished",
		"✓ every order ended", "✓ stock conserved", "✓ money conserved", "✓ approved ⇒", "✓ rejected ⇒",
		"all invariants hold",
	}, want...) {
		if !strings.Contains(out, w) {
			t.Errorf("output lacks %q:\n%s", w, out)
		}
	}
	if strings.Contains(out, "✗ ") && strings.Contains(out, "violations") {
		t.Errorf("an invariant failed:\n%s", out)
	}
	t.Logf("output:\n%s", out)
}

// TestRunEmbedded is `go run ./examples/saga -orders 30`: embedded NATS, SQLite in a temporary
// directory, the default trouble (kills shortened).
func TestRunEmbedded(t *testing.T) {
	checkNoLeak(t)
	code, out := runExample(t, "-orders", "30", "-seed", "1", "-down", "300ms")
	checkOutput(t, code, out, "embedded NATS JetStream", "SQLite, a file per service", "in this process")
}

// TestRunProcesses runs inventory and payment as separate processes against the machine's NATS,
// with SQLite files in a directory they share and with PostgreSQL: the kills are SIGKILLs.
func TestRunProcesses(t *testing.T) {
	url := os.Getenv("FAULTLINE_NATS_URL")
	if url == "" {
		url = "nats://127.0.0.1:4222"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	b, err := natsbus.Open(ctx, natsbus.Config{URL: url})
	cancel()
	if err != nil {
		if os.Getenv("FAULTLINE_REQUIRE_SERVICES") == "1" {
			t.Fatalf("NATS at %s unreachable and FAULTLINE_REQUIRE_SERVICES=1: %v", url, err)
		}
		t.Skipf("NATS at %s unreachable (set FAULTLINE_REQUIRE_SERVICES=1 to fail): %v", url, err)
	}
	b.Close(context.Background())
	want := []string{"NATS JetStream at " + url, "as separate processes", "✗ killed inventory (pid ", "✗ killed payment (pid "}
	t.Run("sqlite", func(t *testing.T) {
		code, out := runExample(t, "-orders", "30", "-seed", "1", "-down", "300ms", "-processes", "-nats", url, "-data", t.TempDir())
		checkOutput(t, code, out, want...)
	})
	t.Run("postgres", func(t *testing.T) {
		dsn := os.Getenv("FAULTLINE_POSTGRES_URL")
		if dsn == "" {
			dsn = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
		}
		st := shop.Store{Postgres: dsn, Prefix: "saga_main_" + messaging.NewID()[:8]}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		err := st.Reset(ctx) // also tells whether PostgreSQL is there
		cancel()
		if err != nil {
			if os.Getenv("FAULTLINE_REQUIRE_SERVICES") == "1" {
				t.Fatalf("PostgreSQL at %s unreachable and FAULTLINE_REQUIRE_SERVICES=1: %v", dsn, err)
			}
			t.Skipf("PostgreSQL at %s unreachable (set FAULTLINE_REQUIRE_SERVICES=1 to fail): %v", dsn, err)
		}
		t.Cleanup(func() { st.Reset(context.Background()) })
		code, out := runExample(t, "-orders", "30", "-seed", "1", "-down", "300ms", "-processes", "-nats", url, "-postgres", dsn, "-schema-prefix", st.Prefix)
		checkOutput(t, code, out, append(want, "PostgreSQL, a schema per service: "+st.Prefix+"_orders")...)
	})
}

// TestRunKafka runs the example on Kafka (an in-process kfake cluster), the way -kafka talks to a
// real one.
func TestRunKafka(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.GroupMinSessionTimeout(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	code, out := runExample(t, "-orders", "30", "-seed", "1", "-down", "300ms", "-kafka", strings.Join(c.ListenAddrs(), ","))
	checkOutput(t, code, out, "Kafka at ")
}

// TestFlags: bad command lines exit 2 and say what is wrong, all at once.
func TestFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"-processes"}, []string{"-nats URL or -kafka", "-postgres DSN or -data DIR"}},
		{[]string{"-orders", "0", "-concurrency", "0"}, []string{"-orders 0", "-concurrency 0"}},
		{[]string{"-nats", "x", "-kafka", "y"}, []string{"choose one broker"}},
		{[]string{"-role", "orders", "-nats", "x", "-data", "d"}, []string{`-role "orders"`}},
	} {
		_, err := parse(tc.args, &bytes.Buffer{})
		for _, w := range tc.want {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("%q: error %v, want it to say %q", tc.args, err, w)
			}
		}
		if code, _ := runExample(t, tc.args...); code != 2 {
			t.Errorf("%q: exit %d, want 2", tc.args, code)
		}
	}
}
