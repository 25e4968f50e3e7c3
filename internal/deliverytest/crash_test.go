package deliverytest

import (
	"context"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/faultline-dev/faultline/messaging"
	"github.com/faultline-dev/faultline/messaging/membus"
	"github.com/faultline-dev/faultline/messaging/natsbus"
)

// seed returns FAULTLINE_SEED when set, else a fresh seed; it is logged for replay.
func seed(t testing.TB) int64 {
	s := time.Now().UnixNano()
	if v := os.Getenv("FAULTLINE_SEED"); v != "" {
		p, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			t.Fatalf("FAULTLINE_SEED=%q: %v", v, err)
		}
		s = p
	}
	t.Logf("seed %d (replay with FAULTLINE_SEED=%d)", s, s)
	return s
}

// messages is the run's size: small by default, FAULTLINE_CRASH_N (e.g. 10000) for the soak run.
func messages(t testing.TB, def int) int {
	if v := os.Getenv("FAULTLINE_CRASH_N"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("FAULTLINE_CRASH_N=%q: want a positive number", v)
		}
		return n
	}
	return def
}

func TestCrashMembus(t *testing.T) {
	bus := membus.New()
	st := Run(t, Config{
		Open:    func(testing.TB) messaging.Broker { return bus.Client() },
		N:       messages(t, 400),
		Seed:    seed(t),
		AckWait: 300 * time.Millisecond,
	})
	t.Logf("%+v", st)
}

// TestCrashNATS runs the chain on an embedded NATS JetStream server, with connection drops.
func TestCrashNATS(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	server, err := natsbus.Open(ctx, natsbus.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close(context.Background())
	st := Run(t, Config{
		Open: func(t testing.TB) messaging.Broker {
			b, err := natsbus.Open(ctx, natsbus.Config{URL: server.ClientURL(), FetchWait: 500 * time.Millisecond})
			if err != nil {
				t.Fatalf("natsbus.Open: %v", err)
			}
			return b
		},
		Drop: func(b messaging.Broker) {
			if nb, ok := b.(*natsbus.Bus); ok {
				_ = nb.DropConnection()
			}
		},
		N:       messages(t, 300),
		Seed:    seed(t),
		AckWait: time.Second,
	})
	t.Logf("%+v", st)
}
