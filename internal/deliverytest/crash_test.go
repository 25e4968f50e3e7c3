package deliverytest

import (
	"context"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/faultline-dev/faultline/messaging"
	"github.com/faultline-dev/faultline/messaging/amqpbus"
	"github.com/faultline-dev/faultline/messaging/kafkabus"
	"github.com/faultline-dev/faultline/messaging/membus"
	"github.com/faultline-dev/faultline/messaging/natsbus"
	"github.com/twmb/franz-go/pkg/kfake"
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

// TestCrashKafka runs the chain on an in-process kfake cluster. Consumers rejoin through a group
// rebalance (seconds), so the chaos is slower.
func TestCrashKafka(t *testing.T) {
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.GroupMinSessionTimeout(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	st := Run(t, Config{
		Open: func(t testing.TB) messaging.Broker {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			b, err := kafkabus.Open(ctx, kafkabus.Config{Brokers: cluster.ListenAddrs(), MinSessionTimeout: time.Second,
				CommitInterval: 50 * time.Millisecond})
			if err != nil {
				t.Fatalf("kafkabus.Open: %v", err)
			}
			return b
		},
		N:          messages(t, 200),
		Seed:       seed(t),
		AckWait:    time.Second,
		ChaosScale: 6,
		Pace:       15 * time.Millisecond,
	})
	t.Logf("%+v", st)
	if st.RelayKills+st.ConsumerKills == 0 {
		t.Errorf("no relay or consumer was killed during the run: the chaos never struck (%+v)", st)
	}
}

// TestCrashRabbitMQ runs the chain on the machine's RabbitMQ with connection drops (skipped when it
// is unreachable, failed instead with FAULTLINE_REQUIRE_SERVICES=1). Queues expire a minute after
// the run.
func TestCrashRabbitMQ(t *testing.T) {
	url := os.Getenv("FAULTLINE_AMQP_URL")
	if url == "" {
		url = amqpbus.DefaultURL
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	probe, err := amqpbus.Open(ctx, amqpbus.Config{URL: url})
	if err != nil {
		if os.Getenv("FAULTLINE_REQUIRE_SERVICES") == "1" {
			t.Fatalf("RabbitMQ at %s: %v", url, err)
		}
		t.Skipf("RabbitMQ at %s unreachable: %v", url, err)
	}
	probe.Close(ctx)
	st := Run(t, Config{
		Open: func(t testing.TB) messaging.Broker {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			b, err := amqpbus.Open(ctx, amqpbus.Config{URL: url, QueueExpires: time.Minute})
			if err != nil {
				t.Fatalf("amqpbus.Open: %v", err)
			}
			return b
		},
		Drop: func(b messaging.Broker) {
			if ab, ok := b.(*amqpbus.Bus); ok {
				ab.DropConnection()
			}
		},
		N:          messages(t, 200),
		Seed:       seed(t),
		AckWait:    time.Second,
		ChaosScale: 2,
		Pace:       5 * time.Millisecond,
	})
	t.Logf("%+v", st)
}
