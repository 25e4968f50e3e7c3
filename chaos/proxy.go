package chaos

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"sort"
	"sync"
)

// ProxyConfig describes a proxy to create. Its JSON form is Toxiproxy's proxy body.
type ProxyConfig struct {
	// Name identifies the proxy; required.
	Name string `json:"name"`
	// Listen is the TCP address to listen on; default "127.0.0.1:0" (a free port, reported by
	// Proxy.Listen once started).
	Listen string `json:"listen"`
	// Upstream is the TCP address connections are forwarded to; required.
	Upstream string `json:"upstream"`
	// Enabled says whether the proxy listens; nil means true.
	Enabled *bool `json:"enabled"`
}

// toxicEntry is a toxic installed on a proxy. id is unique within the proxy and survives updates,
// so a connection keeps its toxicity draw when the toxic's attributes change.
type toxicEntry struct {
	id    uint64
	toxic Toxic // Attributes are never modified once installed; updates install a copy
}

// Proxy is a TCP proxy with a chain of toxics per direction. Its methods are safe for concurrent
// use, including while connections are flowing.
type Proxy struct {
	srv  *Server
	name string

	life sync.Mutex // serialises start, stop and address changes

	mu       sync.Mutex
	listen   string
	upstream string
	enabled  bool
	toxics   []toxicEntry
	nextID   uint64
	changed  chan struct{} // closed and replaced whenever toxics change
	conns    map[*conn]struct{}
	seq      uint64 // connections accepted so far, across restarts
	ln       net.Listener
	cancel   context.CancelFunc
	wg       sync.WaitGroup // accept loop and connections of the current listener
	stopping bool
}

func newProxy(s *Server, name, listen, upstream string) *Proxy {
	if listen == "" {
		listen = "127.0.0.1:0"
	}
	return &Proxy{
		srv: s, name: name, listen: listen, upstream: upstream,
		changed: make(chan struct{}), conns: make(map[*conn]struct{}),
	}
}

// Name returns the proxy's name.
func (p *Proxy) Name() string { return p.name }

// Listen returns the listen address: the bound address (with the real port) once started.
func (p *Proxy) Listen() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.listen
}

// Upstream returns the upstream address.
func (p *Proxy) Upstream() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.upstream
}

// Enabled reports whether the proxy is listening.
func (p *Proxy) Enabled() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.enabled
}

// Connections returns the number of open client connections.
func (p *Proxy) Connections() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.conns)
}

// Enable starts listening; it is a no-op on an enabled proxy.
func (p *Proxy) Enable() error {
	p.life.Lock()
	defer p.life.Unlock()
	return p.start()
}

// Disable stops listening and closes every connection, waiting for their goroutines to end.
func (p *Proxy) Disable() {
	p.life.Lock()
	defer p.life.Unlock()
	p.stop()
}

// Update changes the addresses and the enabled state, as Toxiproxy's POST/PATCH /proxies/{name}:
// a changed address restarts the listener (closing connections).
func (p *Proxy) Update(listen, upstream string, enabled bool) error {
	p.life.Lock()
	defer p.life.Unlock()
	if listen == "" {
		listen = "127.0.0.1:0"
	}
	differs, err := p.differs(listen, upstream)
	if err != nil {
		return err
	}
	if differs {
		p.stop()
		p.mu.Lock()
		p.listen, p.upstream = listen, upstream
		p.mu.Unlock()
	}
	if enabled {
		return p.start()
	}
	p.stop()
	return nil
}

// differs reports whether listen or upstream differ from the proxy's, resolving listen as
// Toxiproxy does (so "localhost:80" equals "127.0.0.1:80").
func (p *Proxy) differs(listen, upstream string) (bool, error) {
	addr, err := net.ResolveTCPAddr("tcp", listen)
	if err != nil {
		return false, badRequest(fmt.Errorf("listen %q: %w", listen, err))
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.listen != addr.String() || p.upstream != upstream, nil
}

// start listens and runs the accept loop; the caller holds p.life.
func (p *Proxy) start() error {
	p.mu.Lock()
	if p.enabled {
		p.mu.Unlock()
		return nil
	}
	listen := p.listen
	p.mu.Unlock()
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return newAPIError(http.StatusInternalServerError, "proxy %s: listen on %s: %v", p.name, listen, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p.mu.Lock()
	p.listen = ln.Addr().String()
	p.enabled, p.stopping = true, false
	p.ln, p.cancel = ln, cancel
	p.wg.Add(1)
	p.mu.Unlock()
	go p.acceptLoop(ctx, ln)
	return nil
}

// stop closes the listener and every connection and waits for their goroutines; the caller holds
// p.life.
func (p *Proxy) stop() {
	p.mu.Lock()
	if !p.enabled {
		p.mu.Unlock()
		return
	}
	p.enabled, p.stopping = false, true
	_ = p.ln.Close()
	p.cancel()
	conns := make([]*conn, 0, len(p.conns))
	for c := range p.conns {
		conns = append(conns, c)
	}
	p.mu.Unlock()
	for _, c := range conns {
		c.close()
	}
	p.wg.Wait()
}

func (p *Proxy) acceptLoop(ctx context.Context, ln net.Listener) {
	defer p.wg.Done()
	for {
		client, err := ln.Accept()
		if err != nil {
			if ctx.Err() == nil {
				p.srv.logger.Warn("chaos: accept failed; proxy stops accepting", "proxy", p.name, "err", err)
			}
			return
		}
		p.mu.Lock()
		if p.stopping || p.ln != ln {
			p.mu.Unlock()
			_ = client.Close()
			continue
		}
		p.seq++
		c := newConn(p, p.seq, client, p.upstream)
		p.conns[c] = struct{}{}
		p.wg.Add(1)
		p.mu.Unlock()
		go func() {
			defer p.wg.Done()
			c.run(ctx)
			p.mu.Lock()
			delete(p.conns, c)
			p.mu.Unlock()
		}()
	}
}

// chain returns the toxics of one stream, in order, and a channel closed at the next change.
func (p *Proxy) chain(stream string) ([]toxicEntry, <-chan struct{}) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []toxicEntry
	for _, e := range p.toxics {
		if e.toxic.Stream == stream {
			out = append(out, e)
		}
	}
	return out, p.changed
}

// lookup returns the installed attributes of toxic id (nil once removed), and a channel closed
// at the next change.
func (p *Proxy) lookup(id uint64) (Attributes, <-chan struct{}) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, e := range p.toxics {
		if e.id == id {
			return e.toxic.Attributes, p.changed
		}
	}
	return nil, p.changed
}

// notify wakes every connection to look at the toxics again; the caller holds p.mu.
func (p *Proxy) notify() {
	close(p.changed)
	p.changed = make(chan struct{})
}

// Toxics returns the installed toxics, upstream ones first, each in the order added (Toxiproxy's
// order).
func (p *Proxy) Toxics() []Toxic {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]Toxic, 0, len(p.toxics))
	for _, stream := range []string{Upstream, Downstream} {
		for _, e := range p.toxics {
			if e.toxic.Stream == stream {
				out = append(out, e.toxic)
			}
		}
	}
	return out
}

// Toxic returns the toxic called name.
func (p *Proxy) Toxic(name string) (Toxic, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, e := range p.toxics {
		if e.toxic.Name == name {
			return e.toxic, nil
		}
	}
	return Toxic{}, errToxicNotFound()
}

// AddToxic installs t, filling in Toxiproxy's defaults for an empty stream and name. A zero
// Toxicity means 0 (never applies); DecodeToxic is the way to get the default of 1 from JSON.
// Open connections pick the toxic up at once.
func (p *Proxy) AddToxic(t Toxic) (Toxic, error) {
	if err := t.normalize(); err != nil {
		return Toxic{}, err
	}
	t.Attributes = cloneAttributes(t.Attributes)
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, e := range p.toxics {
		if e.toxic.Name == t.Name {
			return Toxic{}, errToxicExists()
		}
	}
	p.nextID++
	p.toxics = append(p.toxics, toxicEntry{id: p.nextID, toxic: t})
	p.notify()
	return t, nil
}

// UpdateToxic replaces the toxicity and attributes of the toxic named t.Name (nil Attributes keep
// the old ones); its type and stream cannot change. Open connections keep their toxicity draw;
// data the toxic is holding (latency, bandwidth, slicer) goes on at once, and the new attributes
// apply from the next chunk of data.
func (p *Proxy) UpdateToxic(t Toxic) (Toxic, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i, e := range p.toxics {
		if e.toxic.Name != t.Name {
			continue
		}
		t.Type, t.Stream = e.toxic.Type, e.toxic.Stream
		if t.Attributes == nil {
			t.Attributes = e.toxic.Attributes
		}
		if err := t.normalize(); err != nil {
			return Toxic{}, err
		}
		t.Attributes = cloneAttributes(t.Attributes)
		p.toxics[i].toxic = t
		p.notify()
		return t, nil
	}
	return Toxic{}, errToxicNotFound()
}

// updateToxicJSON applies a Toxiproxy PATCH body to the toxic called name.
func (p *Proxy) updateToxicJSON(name string, body []byte) (Toxic, error) {
	old, err := p.Toxic(name)
	if err != nil {
		return Toxic{}, err
	}
	t, err := decodeToxicUpdate(old, body)
	if err != nil {
		return Toxic{}, err
	}
	return p.UpdateToxic(t)
}

// RemoveToxic uninstalls the toxic called name. Connections stop applying it at once; a timeout
// toxic that was stalling a connection closes it, as in Toxiproxy.
func (p *Proxy) RemoveToxic(name string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i, e := range p.toxics {
		if e.toxic.Name == name {
			p.toxics = append(p.toxics[:i:i], p.toxics[i+1:]...)
			p.notify()
			return nil
		}
	}
	return errToxicNotFound()
}

// ResetToxics removes every toxic.
func (p *Proxy) ResetToxics() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.toxics) > 0 {
		p.toxics = nil
		p.notify()
	}
}

// proxyJSON is Toxiproxy's proxy representation.
type proxyJSON struct {
	Name     string  `json:"name"`
	Listen   string  `json:"listen"`
	Upstream string  `json:"upstream"`
	Enabled  bool    `json:"enabled"`
	Toxics   []Toxic `json:"toxics"`
}

// MarshalJSON encodes the proxy as Toxiproxy does: {name, listen, upstream, enabled, toxics}.
func (p *Proxy) MarshalJSON() ([]byte, error) {
	toxics := p.Toxics()
	p.mu.Lock()
	v := proxyJSON{Name: p.name, Listen: p.listen, Upstream: p.upstream, Enabled: p.enabled, Toxics: toxics}
	p.mu.Unlock()
	return json.Marshal(v)
}

func sortedProxies(m map[string]*Proxy) []*Proxy {
	out := make([]*Proxy, 0, len(m))
	for _, p := range m {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}
