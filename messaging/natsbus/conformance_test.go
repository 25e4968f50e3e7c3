package natsbus

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/faultline-dev/faultline/messaging"
	"github.com/faultline-dev/faultline/messaging/messagingtest"
)

const conformanceAckWait = time.Second

// harness runs the conformance suite with clients of the server at url; each client's streams
// are deleted through admin after the test (nil: left, as on a throwaway embedded server).
func harness(url string, cfg Config, admin *Bus) messagingtest.Harness {
	return messagingtest.Harness{
		Open: func(t *testing.T) messaging.Broker {
			t.Helper()
			c := cfg
			c.URL = url
			c.FetchWait = 2 * time.Second
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			b, err := Open(ctx, c)
			if err != nil {
				t.Fatalf("natsbus.Open(%s): %v", url, err)
			}
			if admin != nil {
				// Registered before the suite's Close of b, so it runs after it.
				t.Cleanup(func() { deleteStreams(t, admin, b) })
			}
			return b
		},
		Drop: func(t *testing.T, b messaging.Broker) {
			if err := b.(*Bus).DropConnection(); err != nil {
				t.Errorf("DropConnection: %v", err)
			}
		},
		AckWait: conformanceAckWait,
	}
}

func deleteStreams(t *testing.T, admin *Bus, b *Bus) {
	b.mu.Lock()
	names := append([]string(nil), b.created...)
	b.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, name := range names {
		if err := admin.js.DeleteStream(ctx, name); err != nil {
			t.Logf("deleting stream %s: %v", name, err)
		}
	}
}

// TestConformanceEmbedded runs the suite against one embedded server that every client reaches
// at its URL (OrderedByKey off: the ordering test skips).
func TestConformanceEmbedded(t *testing.T) {
	checkNoLeak(t)
	owner := openBus(t, Config{})
	messagingtest.Run(t, harness(owner.ClientURL(), Config{}, nil))
}

// TestConformanceEmbeddedOrdered runs the suite with OrderedByKey (every group one message at a
// time), where the ordering test must hold.
func TestConformanceEmbeddedOrdered(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	checkNoLeak(t)
	owner := openBus(t, Config{OrderedByKey: true})
	messagingtest.Run(t, harness(owner.ClientURL(), Config{OrderedByKey: true}, nil))
}

// TestConformanceExternal runs the suite against the machine's NATS server (FAULTLINE_NATS_URL,
// default nats://127.0.0.1:4222, JetStream enabled). It skips when the server is unreachable,
// unless FAULTLINE_REQUIRE_SERVICES=1.
func TestConformanceExternal(t *testing.T) {
	url := os.Getenv("FAULTLINE_NATS_URL")
	if url == "" {
		url = "nats://127.0.0.1:4222"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	admin, err := Open(ctx, Config{URL: url, Name: "faultline-conformance-admin"})
	if err != nil {
		if os.Getenv("FAULTLINE_REQUIRE_SERVICES") == "1" {
			t.Fatalf("NATS with JetStream at %s (FAULTLINE_REQUIRE_SERVICES=1): %v", url, err)
		}
		t.Skipf("no NATS with JetStream at %s (set FAULTLINE_NATS_URL, or FAULTLINE_REQUIRE_SERVICES=1 to fail): %v", url, err)
	}
	checkNoLeak(t)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = admin.Close(ctx)
	})
	// Streams outlive the test only by accident (a crash): bound them anyway.
	messagingtest.Run(t, harness(url, Config{MaxAge: time.Hour}, admin))
}
