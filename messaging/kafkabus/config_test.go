package kafkabus

import (
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/faultline-dev/faultline/messaging"
)

func TestSessionTimeout(t *testing.T) {
	cfg := Config{}
	for _, tc := range []struct{ ackWait, want time.Duration }{
		{time.Second, DefaultMinSessionTimeout},
		{30 * time.Second, 30 * time.Second},
		{time.Hour, DefaultMaxSessionTimeout},
	} {
		if got := cfg.SessionTimeout(tc.ackWait); got != tc.want {
			t.Errorf("SessionTimeout(%v) = %v, want %v", tc.ackWait, got, tc.want)
		}
	}
	cfg.MinSessionTimeout = 100 * time.Millisecond
	if got := cfg.SessionTimeout(time.Second); got != time.Second {
		t.Errorf("with MinSessionTimeout 100ms: SessionTimeout(1s) = %v", got)
	}
}

func TestConfigDefaults(t *testing.T) {
	if _, err := (Config{}).withDefaults(); err == nil {
		t.Error("no brokers accepted")
	}
	cfg, err := Config{Brokers: []string{"x:9092"}}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Partitions != DefaultPartitions || cfg.ReplicationFactor != -1 || cfg.CommitInterval != DefaultCommitInterval || cfg.Logger == nil {
		t.Errorf("defaults: %+v", cfg)
	}
	if _, err := (Config{Brokers: []string{"x"}, MinSessionTimeout: time.Minute, MaxSessionTimeout: time.Second}).withDefaults(); err == nil {
		t.Error("max session timeout below min accepted")
	}
}

func TestRecordMapping(t *testing.T) {
	m := &messaging.Message{ID: "id1", Topic: "t", Key: "k", Headers: map[string]string{"a": "1", HeaderID: "spoof"}, Payload: nil}
	r := toRecord(m)
	if string(r.Key) != "k" || r.Value == nil || len(r.Headers) != 2 {
		t.Fatalf("record %+v", r)
	}
	r.Timestamp = time.Unix(10, 0)
	got := toMessage(r, 3)
	if got.ID != "id1" || got.Key != "k" || got.Topic != "t" || got.Attempt != 3 || len(got.Headers) != 1 || got.Headers["a"] != "1" || !got.PublishedAt.Equal(r.Timestamp) {
		t.Errorf("message %+v", got)
	}
	if r := toRecord(&messaging.Message{ID: "x", Topic: "t"}); r.Key != nil {
		t.Errorf("empty key became %q (want nil: the partitioner spreads keyless records)", r.Key)
	}
	if got := toMessage(&kgo.Record{Topic: "t"}, 1); got.Headers != nil {
		t.Errorf("no headers became %v", got.Headers)
	}
}
