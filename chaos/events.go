package chaos

import (
	"encoding/binary"
	"hash/fnv"
	"math/rand/v2"
	"sync"
	"time"
)

// Decisions recorded in Event.Decision.
const (
	// DecisionApplied: the toxicity draw chose to apply the toxic to the connection.
	DecisionApplied = "applied"
	// DecisionSkipped: the toxicity draw chose not to apply the toxic to the connection.
	DecisionSkipped = "skipped by toxicity"
	// DecisionDelayed: a chunk was delayed by a latency toxic with jitter; DelayMS says by how
	// much (latency ± the jitter drawn).
	DecisionDelayed = "delayed"
	// DecisionSliced: a chunk was sliced; Sizes lists the pieces.
	DecisionSliced = "sliced"
	// DecisionLimited: limit_data closed the connection after Bytes bytes.
	DecisionLimited = "limited"
	// DecisionTimedOut: timeout closed the connection.
	DecisionTimedOut = "timed out"
	// DecisionReset: reset_peer reset the connection.
	DecisionReset = "reset"
	// DecisionSlowClosed: slow_close delayed the close by DelayMS.
	DecisionSlowClosed = "slow closed"
)

// Event is one fault decision in the fault log.
type Event struct {
	// Time is when the decision was made, on the server's clock.
	Time time.Time `json:"time"`
	// Proxy is the proxy's name.
	Proxy string `json:"proxy"`
	// Connection is the connection's sequence number within the proxy, from 1.
	Connection uint64 `json:"connection"`
	// Toxic, Type and Stream identify the toxic.
	Toxic  string `json:"toxic"`
	Type   string `json:"type"`
	Stream string `json:"stream"`
	// Decision is one of the Decision... constants.
	Decision string `json:"decision"`
	// DelayMS is the delay chosen, for latency and slow_close decisions.
	DelayMS float64 `json:"delay_ms,omitempty"`
	// Bytes is the number of bytes concerned, for limit_data.
	Bytes int64 `json:"bytes,omitempty"`
	// Sizes are the piece sizes chosen by slicer.
	Sizes []int `json:"sizes,omitempty"`
}

// eventLog is a bounded ring of events: it keeps the newest size entries.
type eventLog struct {
	mu      sync.Mutex
	buf     []Event
	next    int
	full    bool
	dropped uint64
}

func newEventLog(size int) *eventLog { return &eventLog{buf: make([]Event, size)} }

func (l *eventLog) add(e Event) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.full {
		l.dropped++
	}
	l.buf[l.next] = e
	l.next++
	if l.next == len(l.buf) {
		l.next, l.full = 0, true
	}
}

// snapshot returns the events oldest first.
func (l *eventLog) snapshot() []Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.full {
		return append([]Event(nil), l.buf[:l.next]...)
	}
	out := make([]Event, 0, len(l.buf))
	out = append(out, l.buf[l.next:]...)
	return append(out, l.buf[:l.next]...)
}

// toxicRand returns the random source of one toxic on one connection. It depends only on
// (seed, proxy, connection sequence number, toxic name, toxic id), so the same seed and the same
// traffic give the same draws whatever the interleaving of connections. The id (the proxy's count
// of toxics added) makes a toxic removed and added again under the same name draw afresh.
func toxicRand(seed int64, proxy string, conn uint64, toxic string, id uint64) *rand.Rand {
	h := fnv.New128a()
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], uint64(seed))
	h.Write(b[:])
	h.Write([]byte(proxy))
	h.Write([]byte{0})
	binary.LittleEndian.PutUint64(b[:], conn)
	h.Write(b[:])
	h.Write([]byte(toxic))
	binary.LittleEndian.PutUint64(b[:], id)
	h.Write(b[:])
	sum := h.Sum(nil)
	return rand.New(rand.NewPCG(binary.LittleEndian.Uint64(sum[:8]), binary.LittleEndian.Uint64(sum[8:])))
}
