package chaos

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/faultline-dev/faultline/clock"
)

// Version is what GET /version reports. It has Toxiproxy's form so that clients which parse it
// accept it.
const Version = "2.12.0-faultline"

// Config configures a Server. The zero value is usable.
type Config struct {
	// Seed drives every random decision; 0 picks a random seed, reported by Server.Seed.
	Seed int64
	// Clock is the time source of the time-based toxics and of the fault log; default clock.Real().
	Clock clock.Clock
	// Logger receives operational warnings (failed dials); default: discard.
	Logger *slog.Logger
	// EventLogSize is how many fault-log events are kept (the newest); default 10,000.
	EventLogSize int
	// DialTimeout bounds dialing an upstream; default 10 s.
	DialTimeout time.Duration
}

// Server is a set of named proxies and the Toxiproxy-compatible API that manages them.
type Server struct {
	seed        int64
	clock       clock.Clock
	logger      *slog.Logger
	dialTimeout time.Duration
	events      *eventLog

	mu      sync.Mutex
	proxies map[string]*Proxy
	closed  bool
}

// NewServer returns a server with no proxies. It returns an error naming the bad field of cfg.
func NewServer(cfg Config) (*Server, error) {
	if cfg.EventLogSize < 0 {
		return nil, fmt.Errorf("chaos: Config.EventLogSize: want >= 0, got %d", cfg.EventLogSize)
	}
	if cfg.DialTimeout < 0 {
		return nil, fmt.Errorf("chaos: Config.DialTimeout: want >= 0, got %v", cfg.DialTimeout)
	}
	s := &Server{
		seed: cfg.Seed, clock: cfg.Clock, logger: cfg.Logger, dialTimeout: cfg.DialTimeout,
		proxies: make(map[string]*Proxy),
	}
	for s.seed == 0 {
		var b [8]byte
		if _, err := rand.Read(b[:]); err != nil {
			return nil, fmt.Errorf("chaos: pick a random seed: %w", err)
		}
		s.seed = int64(binary.LittleEndian.Uint64(b[:]))
	}
	if s.clock == nil {
		s.clock = clock.Real()
	}
	if s.logger == nil {
		s.logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if s.dialTimeout == 0 {
		s.dialTimeout = 10 * time.Second
	}
	size := cfg.EventLogSize
	if size == 0 {
		size = 10000
	}
	s.events = newEventLog(size)
	return s, nil
}

// Seed returns the seed driving the random decisions (the chosen one when Config.Seed was 0).
func (s *Server) Seed() int64 { return s.seed }

// Events returns the fault log, oldest first.
func (s *Server) Events() []Event { return s.events.snapshot() }

// CreateProxy creates a proxy and, unless cfg.Enabled is false, starts it. It fails with a 409
// *APIError when the name is taken, 400 when a field is missing.
func (s *Server) CreateProxy(cfg ProxyConfig) (*Proxy, error) {
	if cfg.Name == "" {
		return nil, errMissingField("name")
	}
	if cfg.Upstream == "" {
		return nil, errMissingField("upstream")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, newAPIError(http.StatusServiceUnavailable, "server is closed")
	}
	if _, ok := s.proxies[cfg.Name]; ok {
		return nil, errProxyExists()
	}
	p := newProxy(s, cfg.Name, cfg.Listen, cfg.Upstream)
	if cfg.Enabled == nil || *cfg.Enabled {
		if err := p.Enable(); err != nil {
			return nil, err
		}
	}
	s.proxies[cfg.Name] = p
	return p, nil
}

// Proxy returns the proxy called name, or a 404 *APIError.
func (s *Server) Proxy(name string) (*Proxy, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.proxies[name]
	if !ok {
		return nil, errProxyNotFound()
	}
	return p, nil
}

// Proxies returns the proxies sorted by name.
func (s *Server) Proxies() []*Proxy {
	s.mu.Lock()
	defer s.mu.Unlock()
	return sortedProxies(s.proxies)
}

// DeleteProxy stops and removes the proxy called name.
func (s *Server) DeleteProxy(name string) error {
	s.mu.Lock()
	p, ok := s.proxies[name]
	delete(s.proxies, name)
	s.mu.Unlock()
	if !ok {
		return errProxyNotFound()
	}
	p.Disable()
	return nil
}

// Populate creates or replaces proxies, as Toxiproxy's POST /populate: every entry is checked
// first; an existing proxy with the same listen and upstream addresses is kept (with its toxics),
// one that differs is replaced. It returns the proxies created or kept before any error.
func (s *Server) Populate(cfgs []ProxyConfig) ([]*Proxy, error) {
	for i, c := range cfgs {
		if c.Name == "" {
			return nil, errMissingField(fmt.Sprintf("name at proxy %d", i+1))
		}
		if c.Upstream == "" {
			return nil, errMissingField(fmt.Sprintf("upstream at proxy %d", i+1))
		}
	}
	out := make([]*Proxy, 0, len(cfgs))
	for _, c := range cfgs {
		listen := c.Listen
		if listen == "" {
			listen = "127.0.0.1:0"
		}
		if old, err := s.Proxy(c.Name); err == nil {
			differs, err := old.differs(listen, c.Upstream)
			if err != nil {
				return out, err
			}
			if !differs {
				out = append(out, old)
				continue
			}
			if err := s.DeleteProxy(c.Name); err != nil {
				return out, err
			}
		}
		p, err := s.CreateProxy(c)
		if err != nil {
			return out, err
		}
		out = append(out, p)
	}
	return out, nil
}

// Reset enables every proxy and removes every toxic, as Toxiproxy's POST /reset.
func (s *Server) Reset() error {
	for _, p := range s.Proxies() {
		if err := p.Enable(); err != nil {
			return err
		}
		p.ResetToxics()
	}
	return nil
}

// Close stops every proxy and waits for their connections to end. It is idempotent; the server
// accepts no new proxies afterwards.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closed = true
	ps := sortedProxies(s.proxies)
	s.mu.Unlock()
	for _, p := range ps {
		p.Disable()
	}
	return nil
}
