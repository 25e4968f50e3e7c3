package kafkabus

import (
	"context"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/faultline-dev/faultline/messaging"
	"github.com/faultline-dev/faultline/messaging/messagingtest"
)

// brokers are the listen addresses of the in-process kfake cluster all tests share.
var brokers []string

func TestMain(m *testing.M) {
	c, err := kfake.NewCluster(
		kfake.NumBrokers(1),
		kfake.GroupMinSessionTimeout(100*time.Millisecond),
	)
	if err != nil {
		panic(err)
	}
	brokers = c.ListenAddrs()
	code := m.Run()
	c.Close()
	os.Exit(code)
}

// testAckWait is the AckWait of the conformance suite's subscriptions, and the session timeout.
const testAckWait = 3 * time.Second

// conns tracks the connections of one Bus, so that a test can break them all.
type conns struct {
	mu   sync.Mutex
	list []net.Conn
}

func (c *conns) dial(ctx context.Context, network, host string) (net.Conn, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, network, host)
	if err == nil {
		c.mu.Lock()
		c.list = append(c.list, conn)
		c.mu.Unlock()
	}
	return conn, err
}

func (c *conns) drop() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, conn := range c.list {
		_ = conn.Close()
	}
	n := len(c.list)
	c.list = nil
	return n
}

var (
	dialersMu sync.Mutex
	dialers   = map[*Bus]*conns{}
)

func open(t *testing.T) *Bus {
	t.Helper()
	cs := &conns{}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	b, err := Open(ctx, Config{
		Brokers:           brokers,
		MinSessionTimeout: time.Second,
		CommitInterval:    50 * time.Millisecond,
		Options:           []kgo.Opt{kgo.Dialer(cs.dial)},
	})
	if err != nil {
		t.Fatal(err)
	}
	dialersMu.Lock()
	dialers[b] = cs
	dialersMu.Unlock()
	return b
}

func TestConformance(t *testing.T) {
	messagingtest.Run(t, messagingtest.Harness{
		Open: func(t *testing.T) messaging.Broker { return open(t) },
		Drop: func(t *testing.T, b messaging.Broker) {
			dialersMu.Lock()
			cs := dialers[b.(*Bus)]
			dialersMu.Unlock()
			t.Logf("dropped %d connections", cs.drop())
		},
		AckWait: testAckWait,
	})
}

// TestRetryInPlace: a record retried after a Nack holds back the later records of its partition
// (so of its key) but not the other partitions.
func TestRetryInPlace(t *testing.T) {
	b := open(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	defer b.Close(ctx)
	topic := "retry." + messaging.NewID()[:8]
	var (
		mu    sync.Mutex
		order []string
	)
	done := make(chan struct{})
	sub, err := b.Subscribe(ctx, messaging.SubscribeConfig{Topic: topic, Group: "g", Concurrency: 4, AckWait: testAckWait},
		func(_ context.Context, m *messaging.Message) error {
			mu.Lock()
			defer mu.Unlock()
			if string(m.Payload) == "first" && m.Attempt < 3 {
				return messaging.Nack(nil, 300*time.Millisecond)
			}
			order = append(order, string(m.Payload))
			if len(order) == 22 {
				close(done)
			}
			return nil
		})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close(ctx)
	msgs := []*messaging.Message{{Topic: topic, Key: "blocked", Payload: []byte("first")}, {Topic: topic, Key: "blocked", Payload: []byte("second")}}
	for i := range 20 {
		msgs = append(msgs, &messaging.Message{Topic: topic, Key: "other" + string(rune('a'+i)), Payload: []byte("other")})
	}
	if err := b.Publish(ctx, msgs...); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-ctx.Done():
		t.Fatal("timeout")
	}
	mu.Lock()
	defer mu.Unlock()
	first, second := -1, -1
	for i, p := range order {
		switch p {
		case "first":
			first = i
		case "second":
			second = i
		}
	}
	if first < 0 || second < first {
		t.Fatalf("order %v: want first (after its retries) before second", order)
	}
	if first < 10 {
		t.Errorf("order %v: the other keys' records should not wait for the retried one", order)
	}
}
