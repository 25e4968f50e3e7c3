package kafkabus

import (
	"bytes"
	"maps"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/faultline-dev/faultline/messaging"
)

// fuzzHeaders decodes the fuzzer's header bytes: one header per line, "key=value" (a line without
// '=' is a key with a nil value), so that the seeds stay readable.
func fuzzHeaders(b []byte) []kgo.RecordHeader {
	if len(b) == 0 {
		return nil
	}
	var hs []kgo.RecordHeader
	for line := range bytes.SplitSeq(b, []byte("\n")) {
		k, v, ok := bytes.Cut(line, []byte("="))
		h := kgo.RecordHeader{Key: string(k)}
		if ok {
			h.Value = v
		}
		hs = append(hs, h)
	}
	return hs
}

// FuzzToMessage feeds arbitrary consumed records (from any producer, not only this bus) to
// toMessage: it must never panic, must carry topic, key, value and attempt over as they are, take
// the ID from the last HeaderID header and every other header's last value, and the message must
// survive a round trip through toRecord (the writer) unchanged.
func FuzzToMessage(f *testing.F) {
	f.Add("orders", []byte("k1"), []byte(`{"id":1}`), []byte("faultline-id=0123456789abcdef\ntraceparent=00-abc-def-01"), 1)
	f.Add("orders", []byte(nil), []byte(nil), []byte(nil), 3)
	f.Add("t", []byte(""), []byte("x"), []byte("faultline-id=a\nfaultline-id=b"), 2)
	f.Add("t", []byte("k"), []byte("x"), []byte("h=1\nh=2\n=\nnovalue"), 1)
	f.Add("t", []byte("\xff\xfe"), []byte("\x00"), []byte("\xff=\xfe\nfaultline-id"), 7)
	f.Add("", []byte("k"), []byte("v"), []byte("faultline-id=\nkey="), 0)
	f.Add("t", []byte("k"), []byte("v"), []byte("h=v"), math.MaxInt)
	f.Fuzz(func(t *testing.T, topic string, key, value, rawHeaders []byte, attempt int) {
		rec := &kgo.Record{
			Topic:     topic,
			Key:       key,
			Value:     value,
			Headers:   fuzzHeaders(rawHeaders),
			Timestamp: time.Unix(1700000000, 0),
		}
		m := toMessage(rec, attempt)

		if m.Topic != topic || m.Key != string(key) || !bytes.Equal(m.Payload, value) || m.Attempt != attempt || !m.PublishedAt.Equal(rec.Timestamp) {
			t.Fatalf("record %+v became %+v", rec, m)
		}
		wantID := ""
		want := map[string]string{}
		for _, h := range rec.Headers {
			if h.Key == HeaderID {
				wantID = string(h.Value)
				continue
			}
			want[h.Key] = string(h.Value)
		}
		if m.ID != wantID {
			t.Fatalf("ID = %q, want %q", m.ID, wantID)
		}
		if len(want) == 0 {
			if m.Headers != nil {
				t.Fatalf("no headers but Headers = %v", m.Headers)
			}
		} else if !maps.Equal(m.Headers, want) {
			t.Fatalf("Headers = %v, want %v", m.Headers, want)
		}
		// Round trip through the writer.
		out := toRecord(m)
		if out.Value == nil {
			t.Fatal("toRecord wrote a nil value (a tombstone)")
		}
		if len(out.Headers) == 0 || out.Headers[0].Key != HeaderID {
			t.Fatalf("toRecord headers %v: want %s first", out.Headers, HeaderID)
		}
		seen := map[string]bool{}
		for _, h := range out.Headers {
			if seen[h.Key] {
				t.Fatalf("toRecord wrote header %q twice", h.Key)
			}
			seen[h.Key] = true
		}
		out.Timestamp = rec.Timestamp
		back := toMessage(out, attempt)
		if back.ID != m.ID || back.Topic != m.Topic || back.Key != m.Key || !bytes.Equal(back.Payload, m.Payload) || !maps.Equal(back.Headers, m.Headers) || back.Attempt != attempt {
			t.Fatalf("round trip changed the message:\n%+v\n%+v", m, back)
		}
	})
}

// FuzzToRecord publishes arbitrary messages through toRecord and reads them back with toMessage:
// everything but a header named HeaderID (the writer's own) must come back as it was.
func FuzzToRecord(f *testing.F) {
	f.Add("0123456789abcdef", "orders", "k", []byte("payload"), []byte("traceparent=00-a-b-01\nx=y"))
	f.Add("", "t", "", []byte(nil), []byte(nil))
	f.Add("id", "t", "k", []byte{}, []byte("faultline-id=other\n=empty"))
	f.Fuzz(func(t *testing.T, id, topic, key string, payload, rawHeaders []byte) {
		m := &messaging.Message{ID: id, Topic: topic, Key: key, Payload: payload}
		for _, h := range fuzzHeaders(rawHeaders) {
			if m.Headers == nil {
				m.Headers = map[string]string{}
			}
			m.Headers[h.Key] = string(h.Value)
		}
		back := toMessage(toRecord(m), 1)
		want := maps.Clone(m.Headers)
		delete(want, HeaderID)
		if len(want) == 0 {
			want = nil
		}
		if back.ID != id || back.Topic != topic || back.Key != key || !bytes.Equal(back.Payload, payload) || !maps.Equal(back.Headers, want) || (want == nil) != (back.Headers == nil) {
			t.Fatalf("round trip changed the message:\n%+v\n%+v", m, back)
		}
	})
}

// FuzzAttemptsMeta feeds arbitrary commit metadata (any client of the group may have committed
// it) to parseAttemptsMeta: it must never panic; anything but a positive count is refused, so the
// record starts again at Attempt 1; an accepted count N gives first attempt N+1 without overflow;
// and what formatAttemptsMeta writes reads back exactly.
func FuzzAttemptsMeta(f *testing.F) {
	for _, seed := range []string{
		"faultline-attempts=1", "faultline-attempts=3", "faultline-attempts=0", "faultline-attempts=-2",
		"faultline-attempts=", "faultline-attempts=+4", "faultline-attempts=007", "faultline-attempts= 5",
		"faultline-attempts=5x", "faultline-attempts=1e3", "faultline-attempts=9223372036854775806",
		"faultline-attempts=9223372036854775807", "faultline-attempts=9223372036854775808",
		"faultline-attempts=99999999999999999999", "", "other-client", "FAULTLINE-ATTEMPTS=2",
		"faultline-attempts=faultline-attempts=2",
	} {
		f.Add(seed, 1)
	}
	f.Add("", 0)
	f.Add("", -1)
	f.Add("", math.MaxInt)
	f.Add("", math.MaxInt-1)
	f.Add("", math.MinInt)
	f.Fuzz(func(t *testing.T, meta string, n int) {
		got, ok := parseAttemptsMeta(meta)
		first := 1 // as partWorker.process: without a carried count the record starts at 1
		if ok {
			first = got + 1
		}
		if !ok && got != 0 {
			t.Fatalf("%q: refused but count %d", meta, got)
		}
		if ok && (got <= 0 || first <= got) {
			t.Fatalf("%q: count %d, first attempt %d", meta, got, first)
		}
		if first < 1 {
			t.Fatalf("%q: first attempt %d", meta, first)
		}
		if num, found := strings.CutPrefix(meta, attemptsMeta); found {
			if v, err := strconv.Atoi(num); err == nil && v > 0 && v < math.MaxInt && (!ok || got != v) {
				t.Fatalf("%q: got (%d, %v), want (%d, true)", meta, got, ok, v)
			}
		} else if ok {
			t.Fatalf("%q: accepted without the %q prefix", meta, attemptsMeta)
		}
		if ok {
			if back, ok2 := parseAttemptsMeta(formatAttemptsMeta(got)); !ok2 || back != got {
				t.Fatalf("%q: formatAttemptsMeta(%d) reads back as (%d, %v)", meta, got, back, ok2)
			}
		}

		// The writer's side: any count the worker may commit.
		back, ok2 := parseAttemptsMeta(formatAttemptsMeta(n))
		switch {
		case n > 0 && n < math.MaxInt:
			if !ok2 || back != n {
				t.Fatalf("formatAttemptsMeta(%d) reads back as (%d, %v)", n, back, ok2)
			}
		default:
			if ok2 {
				t.Fatalf("formatAttemptsMeta(%d) accepted as %d", n, back)
			}
		}
	})
}
