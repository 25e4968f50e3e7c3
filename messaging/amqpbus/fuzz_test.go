package amqpbus

import (
	"bytes"
	"maps"
	"math"
	"math/big"
	"strconv"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/faultline-dev/faultline/messaging"
)

// fuzzValue builds a header value of the type kind selects (every type amqp091 decodes a field
// table into, plus the Go ints it accepts on publish) from the fuzzer's scalars. It also returns
// the integer the value stands for, or nil when it is no integer.
func fuzzValue(kind byte, i int64, u uint64, fl float64, s string, b bool, depth int) (any, *big.Int) {
	bi := func(v int64) *big.Int { return big.NewInt(v) }
	switch kind % 20 {
	case 0:
		return int8(i), bi(int64(int8(i)))
	case 1:
		return int16(i), bi(int64(int16(i)))
	case 2:
		return int32(i), bi(int64(int32(i)))
	case 3:
		return i, bi(i)
	case 4:
		return int(i), bi(int64(int(i)))
	case 5:
		return uint8(u), bi(int64(uint8(u)))
	case 6:
		return uint16(u), bi(int64(uint16(u)))
	case 7:
		return uint32(u), bi(int64(uint32(u)))
	case 8:
		return u, new(big.Int).SetUint64(u)
	case 9:
		return uint(u), new(big.Int).SetUint64(uint64(uint(u)))
	case 10:
		return float32(fl), nil
	case 11:
		return fl, nil
	case 12:
		n, _ := new(big.Int).SetString(s, 10)
		return s, n
	case 13:
		return b, nil
	case 14:
		return nil, nil
	case 15:
		return []byte(s), nil
	case 16:
		return amqp.Decimal{Scale: uint8(u), Value: int32(i)}, nil
	case 17:
		return time.Unix(i%(1<<40), 0).UTC(), nil
	case 18:
		if depth > 2 {
			return s, nil
		}
		inner, _ := fuzzValue(byte(u), i, u>>8, fl, s, b, depth+1)
		return amqp.Table{"n": inner, s: []any{inner, b, nil}}, nil
	default:
		if depth > 2 {
			return nil, nil
		}
		inner, _ := fuzzValue(byte(i), i, u, fl, s, b, depth+1)
		return []any{inner, amqp.Table{}}, nil
	}
}

// countOf is the model of a count header: an integer value (or a decimal string) between 1 and
// math.MaxInt counts as itself, anything else as 0.
func countOf(n *big.Int) *big.Int {
	if n == nil || n.Sign() <= 0 || n.Cmp(big.NewInt(math.MaxInt)) > 0 {
		return new(big.Int)
	}
	return n
}

// FuzzDeliveryMessage feeds deliveries with header values of every AMQP table type (as any
// publisher, not only this bus, may send them) to deliveryMessage: it must never panic, must carry
// the ID, body and plain headers over, and must compute Attempt = 1 + prior attempts
// (faultline-attempt) + queue's count (x-delivery-count, or Redelivered on a classic queue), where
// a malformed, negative or out-of-range count is 0, saturating at math.MaxInt: never below 1.
func FuzzDeliveryMessage(f *testing.F) {
	f.Add("0123456789abcdef", []byte("body"), []byte{3, 12, 12, 12}, int64(2), uint64(0), 0.0, "4", true, "traceparent", true, false)
	f.Add("", []byte(nil), []byte{}, int64(0), uint64(0), 0.0, "", false, "", false, true)
	f.Add("id", []byte("x"), []byte{3}, int64(-5), uint64(0), 0.0, "", false, "h", true, false)
	f.Add("id", []byte("x"), []byte{8}, int64(0), uint64(math.MaxUint64), 0.0, "", false, "h", true, false)
	f.Add("id", []byte("x"), []byte{3, 3}, int64(math.MaxInt64), uint64(0), 0.0, "", false, "h", true, false)
	f.Add("id", []byte("x"), []byte{12, 12}, int64(0), uint64(0), 0.0, "99999999999999999999", false, "h", true, false)
	f.Add("id", []byte("x"), []byte{12, 12}, int64(0), uint64(0), 0.0, "-3", false, "h", true, false)
	f.Add("id", []byte("x"), []byte{11, 10, 13, 14}, int64(0), uint64(0), 3.0, "k", true, "h", false, true)
	f.Add("id", []byte("x"), []byte{18, 19, 16, 17, 15, 18, 19}, int64(7), uint64(300), math.NaN(), "s", true, "x-death", true, false)
	f.Add("id", []byte("x"), []byte{0, 1, 2, 4, 5, 6, 7, 9}, int64(-1), uint64(1<<63), math.Inf(1), " 1", false, "x-last-death-queue", true, true)
	f.Fuzz(func(t *testing.T, id string, body, kinds []byte, i int64, u uint64, fl float64, s string, b bool, name string, quorum, redelivered bool) {
		// The headers the decoder reads, then a plain one, then those it drops.
		keys := []string{"x-delivery-count", HeaderAttempt, HeaderKey, name, "x-death", "x-first-death-reason", "plain"}
		h := amqp.Table{}
		ints := map[string]*big.Int{}
		for n, k := range kinds[:min(len(kinds), 16)] {
			key := keys[n%len(keys)]
			// Vary the scalars from one header to the next.
			v, num := fuzzValue(k, i+int64(n), u^uint64(n), fl, s, b, 0)
			h[key] = v
			ints[key] = num
		}
		d := amqp.Delivery{Headers: h, MessageId: id, Body: body, Redelivered: redelivered}
		m := deliveryMessage(d, "topic", quorum)

		if m.ID != id || m.Topic != "topic" || !bytes.Equal(m.Payload, body) {
			t.Fatalf("delivery %+v became %+v", d, m)
		}
		if v, ok := h[HeaderKey]; ok && m.Key != headerString(v) || !ok && m.Key != "" {
			t.Fatalf("Key = %q from %#v", m.Key, h[HeaderKey])
		}
		want := map[string]string{}
		for k, v := range h {
			switch {
			case k == HeaderKey || k == HeaderAttempt || k == "x-delivery-count" || k == "x-death",
				strings.HasPrefix(k, "x-first-death-"), strings.HasPrefix(k, "x-last-death-"):
				continue
			}
			want[k] = headerString(v)
		}
		if !maps.Equal(m.Headers, want) || len(want) == 0 && m.Headers != nil {
			t.Fatalf("Headers = %v, want %v", m.Headers, want)
		}

		if m.Attempt < 1 {
			t.Fatalf("Attempt = %d from %#v", m.Attempt, h)
		}
		var prior *big.Int
		if v, ok := h[HeaderAttempt]; ok {
			prior, _ = new(big.Int).SetString(headerString(v), 10)
		}
		count := countOf(ints["x-delivery-count"])
		if !quorum && redelivered {
			count = big.NewInt(1)
		}
		wantAttempt := new(big.Int).Add(countOf(prior), count)
		wantAttempt.Add(wantAttempt, big.NewInt(1))
		if wantAttempt.Cmp(big.NewInt(math.MaxInt)) > 0 {
			wantAttempt.SetInt64(math.MaxInt)
		}
		if int64(m.Attempt) != wantAttempt.Int64() {
			t.Fatalf("Attempt = %d, want %v, from %#v (quorum %v, redelivered %v)", m.Attempt, wantAttempt, h, quorum, redelivered)
		}
	})
}

// FuzzPublishingRoundTrip publishes arbitrary messages with toPublishing (as Publish, and the
// classic queue's republish with HeaderAttempt, do) and reads the delivery back: ID, key, payload,
// headers and the attempt count must come back as they were written.
func FuzzPublishingRoundTrip(f *testing.F) {
	f.Add("0123456789abcdef", "k", []byte("payload"), "traceparent=00-a-b-01\nx=y", 0, uint8(0), true)
	f.Add("", "", []byte(nil), "", 2, uint8(1), false)
	f.Add("id", "key", []byte{}, "=\nfaultline-key=other\nx-death=1", 4, uint8(3), true)
	f.Add("id", "key", []byte{}, "", math.MaxInt, uint8(255), true)
	f.Fuzz(func(t *testing.T, id, key string, payload []byte, rawHeaders string, attempt int, deliveries uint8, quorum bool) {
		headers := map[string]string{}
		for line := range strings.SplitSeq(rawHeaders, "\n") {
			k, v, _ := strings.Cut(line, "=")
			switch {
			case k == HeaderKey || k == HeaderAttempt || k == "x-delivery-count" || k == "x-death",
				strings.HasPrefix(k, "x-first-death-"), strings.HasPrefix(k, "x-last-death-"):
				continue // reserved for the bus and the broker
			}
			headers[k] = v
		}
		if len(headers) == 0 {
			headers = nil
		}
		m := &messaging.Message{ID: id, Key: key, Payload: payload, Headers: headers}
		var extra amqp.Table
		prior := 0
		if attempt > 0 {
			extra = amqp.Table{HeaderAttempt: strconv.Itoa(attempt)}
			prior = attempt
		}
		p := toPublishing(m, extra)
		if err := p.Headers.Validate(); err != nil {
			t.Fatalf("toPublishing wrote an invalid table: %v", err)
		}
		d := amqp.Delivery{Headers: p.Headers, MessageId: p.MessageId, Body: p.Body, Redelivered: deliveries > 0}
		count := 0
		if quorum {
			d.Headers = maps.Clone(p.Headers)
			d.Headers["x-delivery-count"] = int64(deliveries)
			count = int(deliveries)
		} else if deliveries > 0 {
			count = 1
		}
		back := deliveryMessage(d, "topic", quorum)
		if back.ID != id || back.Key != key || !bytes.Equal(back.Payload, payload) || !maps.Equal(back.Headers, headers) || (headers == nil) != (back.Headers == nil) {
			t.Fatalf("round trip changed the message:\n%+v\n%+v", m, back)
		}
		want := prior + count + 1
		if prior > math.MaxInt-1-count {
			want = math.MaxInt
		}
		if back.Attempt != want {
			t.Fatalf("Attempt = %d, want %d (prior %d, count %d)", back.Attempt, want, prior, count)
		}
	})
}
