package chaos

import (
	"context"
	"math/rand/v2"
	"net"
	"sync"
	"time"
)

// conn is one client connection and its upstream connection. Both close together: when either
// side ends, when a toxic ends the connection, or when the proxy stops.
type conn struct {
	p        *Proxy
	seq      uint64
	client   net.Conn
	upstream string

	mu     sync.Mutex
	up     net.Conn
	closed bool
	done   chan struct{}
}

func newConn(p *Proxy, seq uint64, client net.Conn, upstream string) *conn {
	return &conn{p: p, seq: seq, client: client, upstream: upstream, done: make(chan struct{})}
}

func (c *conn) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	c.closed = true
	close(c.done)
	_ = c.client.Close()
	if c.up != nil {
		_ = c.up.Close()
	}
}

// reset closes both sides with SO_LINGER 0, so that the peers see a TCP RST.
func (c *conn) reset() {
	c.mu.Lock()
	for _, nc := range []net.Conn{c.client, c.up} {
		if tc, ok := nc.(*net.TCPConn); ok {
			_ = tc.SetLinger(0)
		}
	}
	c.mu.Unlock()
	c.close()
}

// run dials the upstream and pumps both directions until the connection ends.
func (c *conn) run(ctx context.Context) {
	defer c.close()
	d := net.Dialer{Timeout: c.p.srv.dialTimeout}
	up, err := d.DialContext(ctx, "tcp", c.upstream)
	if err != nil {
		c.p.srv.logger.Warn("chaos: dial upstream failed; closing client", "proxy", c.p.name, "upstream", c.upstream, "err", err)
		return
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		_ = up.Close()
		return
	}
	c.up = up
	c.mu.Unlock()

	links := []*link{newLink(c, Upstream, c.client, up), newLink(c, Downstream, up, c.client)}
	var wg sync.WaitGroup
	for _, l := range links {
		wg.Add(2)
		go func() { defer wg.Done(); l.read() }()
		go func() { defer wg.Done(); l.process() }()
	}
	wg.Wait()
}

type chunk struct {
	data []byte
	at   time.Time // when it was read, on the server's clock
	buf  *[]byte   // the pooled buffer holding data, released by the processor
}

// toxicState is what one connection knows about one toxic: its random source, its toxicity draw
// and its own counters.
type toxicState struct {
	rng    *rand.Rand
	active bool
	sent   int64     // limit_data: bytes passed
	next   time.Time // bandwidth: when the next byte may go
}

// link is one direction of a connection: a reader goroutine feeding chunks to a processor that
// runs them through the stream's toxic chain and writes them to dst.
type link struct {
	c      *conn
	stream string
	src    net.Conn
	dst    net.Conn
	in     chan chunk
	states map[uint64]*toxicState // owned by the processor goroutine
}

func newLink(c *conn, stream string, src, dst net.Conn) *link {
	return &link{c: c, stream: stream, src: src, dst: dst, in: make(chan chunk, 4), states: make(map[uint64]*toxicState)}
}

// read copies src into chunks until src ends; closing l.in tells the processor.
func (l *link) read() {
	defer close(l.in)
	clk := l.c.p.srv.clock
	for {
		buf := bufPool.Get().(*[]byte)
		n, err := l.src.Read(*buf)
		if n > 0 {
			ch := chunk{data: (*buf)[:n], at: clk.Now(), buf: buf}
			select {
			case l.in <- ch:
			case <-l.c.done:
				bufPool.Put(buf)
				return
			}
		} else {
			bufPool.Put(buf)
		}
		if err != nil {
			return
		}
	}
}

// bufPool holds read buffers. A chunk's buffer goes back to the pool once the processor is done
// with the chunk: toxics write synchronously and keep no reference to the data.
var bufPool = sync.Pool{New: func() any { b := make([]byte, 32*1024); return &b }}

func (ch chunk) release() {
	if ch.buf != nil {
		bufPool.Put(ch.buf)
	}
}

func (l *link) event(t Toxic, decision string) Event {
	return Event{
		Time: l.c.p.srv.clock.Now(), Proxy: l.c.p.name, Connection: l.c.seq,
		Toxic: t.Name, Type: t.Type, Stream: t.Stream, Decision: decision,
	}
}

// process runs chunks through the toxic chain until the connection ends; it closes the connection
// when it returns.
func (l *link) process() {
	defer l.c.close()
	for {
		chain, changed := l.c.p.chain(l.stream)
		if !l.observe(chain) {
			return
		}
		select {
		case ch, ok := <-l.in:
			if !ok {
				l.finish()
				return
			}
			chain, _ = l.c.p.chain(l.stream)
			ok = l.observe(chain) && l.run(ch, chain, 0)
			ch.release()
			if !ok {
				return
			}
		case <-changed:
		case <-l.c.done:
			return
		}
	}
}

// observe draws toxicity for toxics this connection has not seen, and starts a timeout toxic's
// stall at once (as Toxiproxy's timeout acts without waiting for data). It returns false when the
// connection is over.
func (l *link) observe(chain []toxicEntry) bool {
	if len(l.states) > 2*len(chain)+16 {
		// Forget toxics removed since, so that churn does not grow a long connection's state.
		keep := make(map[uint64]*toxicState, len(chain))
		for _, e := range chain {
			if st, ok := l.states[e.id]; ok {
				keep[e.id] = st
			}
		}
		l.states = keep
	}
	for _, e := range chain {
		st := l.state(e)
		if st.active && e.toxic.Type == "timeout" {
			return l.stall(e)
		}
	}
	return true
}

// state returns the connection's state for toxic e, drawing its toxicity the first time, once per
// connection as Toxiproxy does.
func (l *link) state(e toxicEntry) *toxicState {
	if st, ok := l.states[e.id]; ok {
		return st
	}
	srv := l.c.p.srv
	rng := toxicRand(srv.seed, l.c.p.name, l.c.seq, e.toxic.Name, e.id)
	st := &toxicState{rng: rng, active: rng.Float32() < e.toxic.Toxicity}
	l.states[e.id] = st
	decision := DecisionApplied
	if !st.active {
		decision = DecisionSkipped
	}
	srv.events.add(l.event(e.toxic, decision))
	return st
}

// waitUntil waits on the server's clock until deadline. It returns true at the deadline, or at
// once when toxic e is removed or updated (as Toxiproxy releases held data when it restarts a
// toxic), and false when the connection ends.
func (l *link) waitUntil(deadline time.Time, e toxicEntry) bool {
	clk := l.c.p.srv.clock
	for {
		attrs, changed := l.c.p.lookup(e.id)
		if attrs != e.toxic.Attributes {
			return true
		}
		d := deadline.Sub(clk.Now())
		if d <= 0 {
			return true
		}
		t := clk.NewTimer(d)
		select {
		case <-t.C():
			return true
		case <-changed:
			t.Stop()
		case <-l.c.done:
			t.Stop()
			return false
		}
	}
}

func (l *link) wait(d time.Duration, e toxicEntry) bool {
	return l.waitUntil(l.c.p.srv.clock.Now().Add(d), e)
}

// write sends data to the destination; a failed write ends the connection.
func (l *link) write(data []byte) bool {
	_, err := l.dst.Write(data)
	return err == nil
}

// run passes ch through chain[i:], then writes it. It returns false when the connection is over.
func (l *link) run(ch chunk, chain []toxicEntry, i int) bool {
	if i == len(chain) {
		return l.write(ch.data)
	}
	e := chain[i]
	st := l.state(e)
	if !st.active {
		return l.run(ch, chain, i+1)
	}
	switch a := e.toxic.Attributes.(type) {
	case *LatencyAttributes:
		delay := time.Duration(a.Latency) * time.Millisecond
		if a.Jitter > 0 {
			// A random decision per chunk, so it goes to the fault log; a fixed latency is
			// recorded once, by the toxicity decision.
			delay += time.Duration(st.rng.Int64N(2*a.Jitter+1)-a.Jitter) * time.Millisecond
			ev := l.event(e.toxic, DecisionDelayed)
			ev.DelayMS = float64(delay) / float64(time.Millisecond)
			l.c.p.srv.events.add(ev)
		}
		if !l.waitUntil(ch.at.Add(delay), e) {
			return false
		}
		return l.run(ch, chain, i+1)
	case *BandwidthAttributes:
		if a.Rate <= 0 {
			return l.run(ch, chain, i+1)
		}
		// Pieces of at most 100 ms worth of data, each released when the rate allows.
		max := int(a.Rate * 100)
		clk := l.c.p.srv.clock
		for data := ch.data; len(data) > 0; {
			n := min(len(data), max)
			now := clk.Now()
			if st.next.Before(now) {
				st.next = now
			}
			st.next = st.next.Add(time.Duration(n) * time.Millisecond / time.Duration(a.Rate))
			if !l.waitUntil(st.next, e) || !l.run(chunk{data: data[:n], at: ch.at}, chain, i+1) {
				return false
			}
			data = data[n:]
		}
		return true
	case *SlicerAttributes:
		sizes := sliceSizes(len(ch.data), a, st.rng)
		ev := l.event(e.toxic, DecisionSliced)
		ev.Sizes = sizes
		l.c.p.srv.events.add(ev)
		off := 0
		for k, n := range sizes {
			if !l.run(chunk{data: ch.data[off : off+n], at: ch.at}, chain, i+1) {
				return false
			}
			off += n
			if k < len(sizes)-1 && !l.wait(time.Duration(a.Delay)*time.Microsecond, e) {
				return false
			}
		}
		return true
	case *LimitDataAttributes:
		left := a.Bytes - st.sent
		data := ch.data
		if int64(len(data)) > left {
			data = data[:max(left, 0)]
		}
		if len(data) > 0 {
			if !l.run(chunk{data: data, at: ch.at}, chain, i+1) {
				return false
			}
			st.sent += int64(len(data))
		}
		if st.sent >= a.Bytes {
			ev := l.event(e.toxic, DecisionLimited)
			ev.Bytes = st.sent
			l.c.p.srv.events.add(ev)
			l.c.close()
			return false
		}
		return true
	case *TimeoutAttributes:
		return l.stall(e)
	case *ResetPeerAttributes:
		if !l.wait(time.Duration(a.Timeout)*time.Millisecond, e) {
			return false
		}
		if attrs, _ := l.c.p.lookup(e.id); attrs == nil {
			return l.run(ch, chain, i+1)
		}
		l.c.p.srv.events.add(l.event(e.toxic, DecisionReset))
		l.c.reset()
		return false
	default: // noop, slow_close (acts only at the end of the stream)
		return l.run(ch, chain, i+1)
	}
}

// stall drops all data until the timeout toxic e fires, is removed or its source ends; the
// connection then closes, as Toxiproxy's timeout does. It always returns false.
func (l *link) stall(e toxicEntry) bool {
	a := e.toxic.Attributes.(*TimeoutAttributes)
	var fire <-chan time.Time
	if a.Timeout > 0 {
		t := l.c.p.srv.clock.NewTimer(time.Duration(a.Timeout) * time.Millisecond)
		defer t.Stop()
		fire = t.C()
	}
	for {
		attrs, changed := l.c.p.lookup(e.id)
		if attrs == nil {
			l.c.close()
			return false
		}
		select {
		case ch, ok := <-l.in: // dropped
			ch.release()
			if !ok { // the source ended: close, as Toxiproxy's timeout does
				l.c.close()
				return false
			}
		case <-fire:
			l.c.p.srv.events.add(l.event(e.toxic, DecisionTimedOut))
			l.c.close()
			return false
		case <-changed:
		case <-l.c.done:
			return false
		}
	}
}

// finish runs at the end of the source stream: active slow_close toxics delay the close.
func (l *link) finish() {
	chain, _ := l.c.p.chain(l.stream)
	for _, e := range chain {
		a, ok := e.toxic.Attributes.(*SlowCloseAttributes)
		if !ok || !l.state(e).active {
			continue
		}
		d := time.Duration(a.Delay) * time.Millisecond
		ev := l.event(e.toxic, DecisionSlowClosed)
		ev.DelayMS = float64(d) / float64(time.Millisecond)
		l.c.p.srv.events.add(ev)
		if !l.wait(d, e) {
			return
		}
	}
	l.c.close()
}

// sliceSizes splits n bytes into pieces of average ± variation bytes (at least 1 each).
func sliceSizes(n int, a *SlicerAttributes, rng *rand.Rand) []int {
	var sizes []int
	for n > 0 {
		size := a.AverageSize
		if a.SizeVariation > 0 {
			size += rng.IntN(2*a.SizeVariation+1) - a.SizeVariation
		}
		size = min(max(size, 1), n)
		sizes = append(sizes, size)
		n -= size
	}
	return sizes
}
