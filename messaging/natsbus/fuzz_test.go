package natsbus

import (
	"bytes"
	"maps"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/faultline-dev/faultline/messaging"
)

// fakeMsg is a delivered JetStream message without a connection: the parts toMessage and handle
// read. The acknowledgement methods are not implemented (the embedded nil interface panics).
type fakeMsg struct {
	jetstream.Msg
	subject, reply string
	data           []byte
	header         nats.Header
}

func (m *fakeMsg) Subject() string      { return m.subject }
func (m *fakeMsg) Reply() string        { return m.reply }
func (m *fakeMsg) Data() []byte         { return m.data }
func (m *fakeMsg) Headers() nats.Header { return m.header }

// Metadata parses the reply subject ("$JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<dseq>.<ts>
// .<pending>", or the longer form with domain and account) with the client's own parser.
func (m *fakeMsg) Metadata() (*jetstream.MsgMetadata, error) {
	md, err := (&nats.Msg{Reply: m.reply, Sub: &nats.Subscription{}}).Metadata()
	if err != nil {
		return nil, err
	}
	return &jetstream.MsgMetadata{
		Sequence:     jetstream.SequencePair{Stream: md.Sequence.Stream, Consumer: md.Sequence.Consumer},
		NumDelivered: md.NumDelivered,
		NumPending:   md.NumPending,
		Timestamp:    md.Timestamp,
		Stream:       md.Stream,
		Consumer:     md.Consumer,
		Domain:       md.Domain,
	}, nil
}

// fuzzNATSHeader reads the fuzzer's header bytes: on the wire form ("NATS/1.0\r\nk: v\r\n\r\n", as
// the client decodes it) when wire is set, else one header per line ("k=v" adds v to k's values, a
// bare "k" gives k an empty list of values).
func fuzzNATSHeader(raw []byte, wire bool) nats.Header {
	if wire {
		h, err := nats.DecodeHeadersMsg(raw)
		if err != nil {
			return nil
		}
		return h
	}
	if len(raw) == 0 {
		return nil
	}
	h := nats.Header{}
	for line := range strings.SplitSeq(string(raw), "\n") {
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			if _, seen := h[k]; !seen {
				h[k] = []string{}
			}
			continue
		}
		h[k] = append(h[k], v)
	}
	return h
}

func first(h nats.Header, k string) string {
	if vs := h[k]; len(vs) > 0 {
		return vs[0]
	}
	return ""
}

// FuzzToMessage feeds arbitrary JetStream deliveries (headers on the wire or as a map, any reply
// subject, any delivery count) to toMessage: it must never panic; it must carry the subject,
// payload and first value of each header over, take the ID from HeaderID, else Nats-Msg-Id, else
// the stream position (never empty), the key from HeaderKey, and give an Attempt of at least 1
// that equals JetStream's count whenever that count is a valid int.
func FuzzToMessage(f *testing.F) {
	const reply = "$JS.ACK.ORDERS.workers.3.42.7.1700000000000000000.0"
	f.Add("orders", []byte("payload"), []byte("NATS/1.0\r\nNats-Msg-Id: abc\r\nfaultline-key: k1\r\ntraceparent: 00-a-b-01\r\n\r\n"), true, reply, uint64(0), uint64(0), "")
	f.Add("orders", []byte(nil), []byte("NATS/1.0\r\nfaultline-id: real\r\nNats-Msg-Id: real.group\r\n\r\n"), true, reply, uint64(0), uint64(0), "")
	f.Add("orders", []byte("x"), []byte("NATS/1.0 503\r\n\r\n"), true, "$JS.ACK.hub.acc.S.c.1.2.3.4.5.tok", uint64(0), uint64(0), "")
	f.Add("orders", []byte("x"), []byte("NATS/1.0\r\nbad line\r\n\r\n"), true, "$JS.ACK.S.c.0.2.3.4.5", uint64(0), uint64(0), "")
	f.Add("t", []byte("x"), []byte("faultline-id=\nNats-Msg-Id=\nh=1\nh=2\nempty"), false, "", uint64(5), uint64(9), "S")
	f.Add("t", []byte("x"), []byte("faultline-id=a\nfaultline-key"), false, "not-a-js-reply", uint64(0), uint64(0), "")
	f.Add("t", []byte("x"), []byte(""), false, "$JS.ACK.S.c.99999999999999999999.2.3.4.5", uint64(0), uint64(0), "")
	f.Add("t", []byte("x"), []byte(""), false, "", uint64(math.MaxUint64), uint64(math.MaxUint64), "")
	f.Add("t", []byte("x"), []byte(""), false, "", uint64(1)<<63, uint64(0), "S")
	f.Fuzz(func(t *testing.T, subject string, data, rawHeader []byte, wire bool, reply string, delivered, seq uint64, stream string) {
		m := &fakeMsg{subject: subject, reply: reply, data: data, header: fuzzNATSHeader(rawHeader, wire)}
		md, err := m.Metadata()
		if err != nil {
			// handle terminates such a delivery without converting it; fuzz the conversion
			// with metadata made up from the fuzzer's numbers instead.
			md = &jetstream.MsgMetadata{NumDelivered: delivered, Stream: stream, Timestamp: time.Unix(0, int64(seq))}
			md.Sequence.Stream = seq
		}
		msg := toMessage(m, md)

		if msg.Topic != subject || !bytes.Equal(msg.Payload, data) || !msg.PublishedAt.Equal(md.Timestamp) {
			t.Fatalf("delivery %+v (%+v) became %+v", m, md, msg)
		}
		if msg.Attempt < 1 {
			t.Fatalf("Attempt = %d for NumDelivered %d", msg.Attempt, md.NumDelivered)
		}
		if md.NumDelivered >= 1 && md.NumDelivered <= math.MaxInt && uint64(msg.Attempt) != md.NumDelivered {
			t.Fatalf("Attempt = %d, want NumDelivered %d", msg.Attempt, md.NumDelivered)
		}
		wantID := first(m.header, HeaderID)
		if wantID == "" {
			wantID = first(m.header, jetstream.MsgIDHeader)
		}
		if wantID == "" {
			wantID = md.Stream + ":" + strconv.FormatUint(md.Sequence.Stream, 10)
		}
		if msg.ID != wantID || msg.ID == "" {
			t.Fatalf("ID = %q, want %q (headers %v)", msg.ID, wantID, m.header)
		}
		if msg.Key != first(m.header, HeaderKey) {
			t.Fatalf("Key = %q from headers %v", msg.Key, m.header)
		}
		want := map[string]string{}
		for k, vs := range m.header {
			if len(vs) == 0 || k == HeaderID || k == HeaderKey || k == jetstream.MsgIDHeader {
				continue
			}
			want[k] = vs[0]
		}
		if !maps.Equal(msg.Headers, want) || len(want) == 0 && msg.Headers != nil {
			t.Fatalf("Headers = %v, want %v", msg.Headers, want)
		}
	})
}

// FuzzToNATSMsg publishes arbitrary messages with toNATSMsg (as Publish does, and as the
// dead-letter copy does with idHeader) and reads them back with toMessage: ID, key, payload and
// headers must come back as they were written.
func FuzzToNATSMsg(f *testing.F) {
	f.Add("0123456789abcdef", "orders", "k", []byte("payload"), "traceparent=00-a-b-01\nx=y", false, uint64(1))
	f.Add("", "t", "", []byte(nil), "", false, uint64(2))
	f.Add("id", "t.dlq", "key", []byte{}, "=\nfaultline-dead-letter-reason=boom", true, uint64(0))
	f.Fuzz(func(t *testing.T, id, topic, key string, payload []byte, rawHeaders string, idHeader bool, delivered uint64) {
		m := &messaging.Message{ID: id, Topic: topic, Key: key, Payload: payload}
		for line := range strings.SplitSeq(rawHeaders, "\n") {
			k, v, _ := strings.Cut(line, "=")
			if k == HeaderID || k == HeaderKey || k == jetstream.MsgIDHeader {
				continue // reserved for the bus and JetStream
			}
			if m.Headers == nil {
				m.Headers = map[string]string{}
			}
			m.Headers[k] = v
		}
		dedupID := id
		if idHeader {
			dedupID = id + ".group"
		}
		nm := toNATSMsg(m, dedupID, idHeader)
		if nm.Subject != topic || !bytes.Equal(nm.Data, payload) {
			t.Fatalf("toNATSMsg(%+v) = %+v", m, nm)
		}
		md := &jetstream.MsgMetadata{NumDelivered: delivered, Stream: "S"}
		md.Sequence.Stream = 42
		back := toMessage(&fakeMsg{subject: nm.Subject, data: nm.Data, header: nm.Header}, md)
		wantID := id
		if wantID == "" && idHeader {
			wantID = ".group" // the dedup ID stands in for an empty ID
		}
		if wantID == "" {
			wantID = "S:42"
		}
		if back.ID != wantID || back.Topic != topic || back.Key != key || !bytes.Equal(back.Payload, payload) || !maps.Equal(back.Headers, m.Headers) || (m.Headers == nil) != (back.Headers == nil) {
			t.Fatalf("round trip changed the message:\n%+v\n%+v", m, back)
		}
		if back.Attempt != max(1, int(min(delivered, math.MaxInt))) {
			t.Fatalf("Attempt = %d for NumDelivered %d", back.Attempt, delivered)
		}
	})
}
