package chaos

import (
	"bytes"
	"errors"
	"io"
	"net"
	"net/http/httptest"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2/client"
)

// These tests drive the server with Toxiproxy's own Go client and measure real connections on
// 127.0.0.1, so that a Toxiproxy user's code and expectations carry over unchanged.

func newCompat(t *testing.T) (*Server, *toxiproxy.Client) {
	t.Helper()
	s := newTestServer(t, Config{})
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(ts.Close)
	return s, toxiproxy.NewClient(ts.URL)
}

func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func TestCompatEndpoints(t *testing.T) {
	_, client := newCompat(t)
	echo := startEcho(t)

	v, err := client.Version()
	if err != nil || !strings.Contains(string(v), `"version"`) {
		t.Fatalf("Version: %s, %v", v, err)
	}

	p, err := client.CreateProxy("echo", "127.0.0.1:0", echo.addr())
	if err != nil {
		t.Fatalf("CreateProxy: %v", err)
	}
	if !p.Enabled || strings.HasSuffix(p.Listen, ":0") {
		t.Fatalf("CreateProxy: want enabled and a bound port, got %+v", p)
	}
	roundTrip(t, dial(t, p.Listen), []byte("hello"))

	if _, err := client.CreateProxy("echo", "127.0.0.1:0", echo.addr()); !isAPIStatus(err, 409) {
		t.Fatalf("duplicate CreateProxy: want 409, got %v", err)
	}

	all, err := client.Proxies()
	if err != nil || len(all) != 1 || all["echo"] == nil || all["echo"].Upstream != echo.addr() {
		t.Fatalf("Proxies: %+v, %v", all, err)
	}
	got, err := client.Proxy("echo")
	if err != nil || got.Listen != p.Listen {
		t.Fatalf("Proxy: %+v, %v", got, err)
	}
	if _, err := client.Proxy("nope"); !isAPIStatus(err, 404) {
		t.Fatalf("Proxy(nope): want 404, got %v", err)
	}

	// Toxics: add with defaults, list, update, remove.
	tx, err := p.AddToxic("", "latency", "", 1, toxiproxy.Attributes{"latency": 10})
	if err != nil {
		t.Fatalf("AddToxic: %v", err)
	}
	if tx.Name != "latency_downstream" || tx.Stream != "downstream" || tx.Toxicity != 1 || tx.Attributes["latency"] != float64(10) {
		t.Fatalf("AddToxic defaults: %+v", tx)
	}
	if _, err := p.AddToxic("up", "bandwidth", "upstream", 0.5, toxiproxy.Attributes{"rate": 1000}); err != nil {
		t.Fatalf("AddToxic upstream: %v", err)
	}
	list, err := p.Toxics()
	if err != nil || len(list) != 2 || list[0].Name != "up" || list[1].Name != "latency_downstream" {
		t.Fatalf("Toxics: %+v, %v", list, err)
	}
	tx, err = p.UpdateToxic("latency_downstream", -1, toxiproxy.Attributes{"jitter": 5})
	if err != nil || tx.Attributes["latency"] != float64(10) || tx.Attributes["jitter"] != float64(5) || tx.Toxicity != 1 {
		t.Fatalf("UpdateToxic keeps unset fields: %+v, %v", tx, err)
	}
	tx, err = client.UpdateToxic(&toxiproxy.ToxicOptions{ProxyName: "echo", ToxicName: "up", Toxicity: 0.25, Attributes: toxiproxy.Attributes{"rate": 2000}})
	if err != nil || tx.Toxicity != 0.25 || tx.Attributes["rate"] != float64(2000) {
		t.Fatalf("Client.UpdateToxic: %+v, %v", tx, err)
	}
	if err := p.RemoveToxic("up"); err != nil {
		t.Fatalf("RemoveToxic: %v", err)
	}
	if err := p.RemoveToxic("up"); !isAPIStatus(err, 404) {
		t.Fatalf("RemoveToxic twice: want 404, got %v", err)
	}

	// Disable, then Enable through Save (POST /proxies/{name}).
	if err := p.Disable(); err != nil || p.Enabled {
		t.Fatalf("Disable: %v (%+v)", err, p)
	}
	if _, err := net.DialTimeout("tcp", p.Listen, time.Second); err == nil {
		t.Fatal("dial a disabled proxy: want refused")
	}
	if err := p.Enable(); err != nil || !p.Enabled {
		t.Fatalf("Enable: %v", err)
	}
	roundTrip(t, dial(t, p.Listen), []byte("again"))

	// ResetState enables every proxy and removes every toxic.
	if err := p.Disable(); err != nil {
		t.Fatal(err)
	}
	if err := client.ResetState(); err != nil {
		t.Fatalf("ResetState: %v", err)
	}
	got, _ = client.Proxy("echo")
	if !got.Enabled || len(got.ActiveToxics) != 0 {
		t.Fatalf("after ResetState: %+v", got)
	}

	// Populate is idempotent: same addresses keep the proxy (and its toxics), new ones create.
	if _, err := got.AddToxic("keep", "noop", "", 1, nil); err != nil {
		t.Fatal(err)
	}
	cfg := []toxiproxy.Proxy{
		{Name: "echo", Listen: got.Listen, Upstream: echo.addr(), Enabled: true},
		{Name: "second", Listen: "127.0.0.1:0", Upstream: echo.addr(), Enabled: true},
	}
	populated, err := client.Populate(cfg)
	if err != nil || len(populated) != 2 {
		t.Fatalf("Populate: %+v, %v", populated, err)
	}
	if populated[0].Listen != got.Listen || len(populated[0].ActiveToxics) != 1 {
		t.Fatalf("Populate replaced an unchanged proxy: %+v", populated[0])
	}
	cfg[1].Listen = populated[1].Listen
	again, err := client.Populate(cfg)
	if err != nil || len(again) != 2 || again[1].Listen != populated[1].Listen {
		t.Fatalf("Populate twice: %+v, %v", again, err)
	}
	if _, err := client.Populate([]toxiproxy.Proxy{{Name: "x"}}); !isAPIStatus(err, 400) {
		t.Fatalf("Populate without upstream: want 400, got %v", err)
	}

	if err := p.Delete(); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if _, err := client.Proxy("echo"); !isAPIStatus(err, 404) {
		t.Fatalf("deleted proxy: want 404, got %v", err)
	}
}

func isAPIStatus(err error, status int) bool {
	var apiErr *toxiproxy.ApiError
	return errors.As(err, &apiErr) && apiErr.Status == status
}

func newEchoProxy(t *testing.T) (*Server, *toxiproxy.Proxy) {
	t.Helper()
	s, client := newCompat(t)
	echo := startEcho(t)
	p, err := client.CreateProxy("echo", "127.0.0.1:0", echo.addr())
	if err != nil {
		t.Fatal(err)
	}
	return s, p
}

func TestCompatLatency(t *testing.T) {
	_, p := newEchoProxy(t)
	c := dial(t, p.Listen)
	msg := []byte("ping")
	base := roundTrip(t, c, msg)
	if _, err := p.AddToxic("", "latency", "downstream", 1, toxiproxy.Attributes{"latency": 100, "jitter": 20}); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		rt := roundTrip(t, c, msg) // an existing connection picks the toxic up
		if rt < 80*time.Millisecond || rt > 120*time.Millisecond+base+50*time.Millisecond {
			t.Fatalf("round trip %d: %v, want 100ms ± 20ms (base %v)", i, rt, base)
		}
	}
	// An update reaches the open connection too.
	if _, err := p.UpdateToxic("latency_downstream", -1, toxiproxy.Attributes{"latency": 200, "jitter": 0}); err != nil {
		t.Fatal(err)
	}
	if rt := roundTrip(t, c, msg); rt < 195*time.Millisecond || rt > 400*time.Millisecond {
		t.Fatalf("after update to 200ms: round trip %v", rt)
	}
	if err := p.RemoveToxic("latency_downstream"); err != nil {
		t.Fatal(err)
	}
	if rt := roundTrip(t, c, msg); rt > 50*time.Millisecond {
		t.Fatalf("after removal: round trip %v", rt)
	}
}

func TestCompatLimitData(t *testing.T) {
	_, p := newEchoProxy(t)
	if _, err := p.AddToxic("", "limit_data", "downstream", 1, toxiproxy.Attributes{"bytes": 10}); err != nil {
		t.Fatal(err)
	}
	c := dial(t, p.Listen)
	if _, err := c.Write(bytes.Repeat([]byte("x"), 100)); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	got, err := io.ReadAll(c)
	if len(got) != 10 {
		t.Fatalf("read %d bytes (%v), want 10 then close", len(got), err)
	}
}

func TestCompatTimeout(t *testing.T) {
	t.Run("zero stalls until removed, then closes", func(t *testing.T) {
		_, p := newEchoProxy(t)
		if _, err := p.AddToxic("", "timeout", "downstream", 1, toxiproxy.Attributes{"timeout": 0}); err != nil {
			t.Fatal(err)
		}
		c := dial(t, p.Listen)
		if _, err := c.Write([]byte("hello")); err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		if n, err := c.Read(make([]byte, 10)); !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("stalled read: n=%d err=%v, want a deadline error", n, err)
		}
		if err := p.RemoveToxic("timeout_downstream"); err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
		if n, err := c.Read(make([]byte, 10)); err != io.EOF {
			t.Fatalf("after removal: n=%d err=%v, want EOF", n, err)
		}
	})
	t.Run("closes after the timeout", func(t *testing.T) {
		_, p := newEchoProxy(t)
		if _, err := p.AddToxic("", "timeout", "upstream", 1, toxiproxy.Attributes{"timeout": 100}); err != nil {
			t.Fatal(err)
		}
		c := dial(t, p.Listen)
		start := time.Now()
		_, _ = c.Write([]byte("hello"))
		_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
		n, err := c.Read(make([]byte, 10))
		if err != io.EOF || n != 0 {
			t.Fatalf("read: n=%d err=%v, want EOF and no data", n, err)
		}
		if el := time.Since(start); el < 90*time.Millisecond || el > time.Second {
			t.Fatalf("closed after %v, want about 100ms", el)
		}
	})
}

func TestCompatResetPeer(t *testing.T) {
	_, p := newEchoProxy(t)
	if _, err := p.AddToxic("", "reset_peer", "upstream", 1, toxiproxy.Attributes{"timeout": 50}); err != nil {
		t.Fatal(err)
	}
	c := dial(t, p.Listen)
	start := time.Now()
	if _, err := c.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
	_, err := c.Read(make([]byte, 10))
	if !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("read: %v, want connection reset", err)
	}
	if el := time.Since(start); el < 45*time.Millisecond {
		t.Fatalf("reset after %v, want >= 50ms", el)
	}
}

func TestCompatBandwidth(t *testing.T) {
	_, p := newEchoProxy(t)
	if _, err := p.AddToxic("", "bandwidth", "downstream", 1, toxiproxy.Attributes{"rate": 200}); err != nil {
		t.Fatal(err)
	}
	c := dial(t, p.Listen)
	const size = 100_000 // 100 KB at 200 KB/s: about 500 ms
	go func() { _, _ = c.Write(bytes.Repeat([]byte("b"), size)) }()
	start := time.Now()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(c, make([]byte, size)); err != nil {
		t.Fatal(err)
	}
	el := time.Since(start)
	rate := float64(size) / 1000 / el.Seconds()
	t.Logf("100 KB at rate 200 KB/s took %v (%.0f KB/s)", el, rate)
	if el < 400*time.Millisecond || el > 2*time.Second {
		t.Fatalf("took %v, want about 500ms", el)
	}
}

func TestCompatSlicer(t *testing.T) {
	s, p := newEchoProxy(t)
	if _, err := p.AddToxic("", "slicer", "downstream", 1, toxiproxy.Attributes{"average_size": 10, "size_variation": 5, "delay": 1000}); err != nil {
		t.Fatal(err)
	}
	c := dial(t, p.Listen)
	msg := bytes.Repeat([]byte("0123456789"), 30)
	if _, err := c.Write(msg); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	got := make([]byte, 0, len(msg))
	reads := 0
	buf := make([]byte, 1024)
	for len(got) < len(msg) {
		n, err := c.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, buf[:n]...)
		reads++
	}
	if !bytes.Equal(got, msg) {
		t.Fatal("slicer changed the bytes")
	}
	if reads < 5 {
		t.Fatalf("%d reads, want the data in many pieces", reads)
	}
	total := 0
	for _, e := range s.Events() {
		if e.Decision == DecisionSliced {
			for _, n := range e.Sizes {
				if n < 1 || n > 15 {
					t.Fatalf("piece of %d bytes, want 10 ± 5", n)
				}
				total += n
			}
		}
	}
	if total != len(msg) {
		t.Fatalf("fault log: sliced %d bytes, want %d", total, len(msg))
	}
}

func TestCompatSlowClose(t *testing.T) {
	s, client := newCompat(t)
	hello := startTCPServer(t, func(c net.Conn) { _, _ = c.Write([]byte("hi")) }) // then closes
	p, err := client.CreateProxy("hello", "127.0.0.1:0", hello.addr())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.AddToxic("", "slow_close", "downstream", 1, toxiproxy.Attributes{"delay": 200}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	c := dial(t, p.Listen)
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	got, err := io.ReadAll(c)
	el := time.Since(start)
	if string(got) != "hi" || err != nil {
		t.Fatalf("read %q, %v", got, err)
	}
	if el < 190*time.Millisecond || el > 2*time.Second {
		t.Fatalf("closed after %v, want about 200ms", el)
	}
	_ = s
}

func TestCompatNoop(t *testing.T) {
	_, p := newEchoProxy(t)
	if _, err := p.AddToxic("", "noop", "upstream", 1, nil); err != nil {
		t.Fatal(err)
	}
	c := dial(t, p.Listen)
	msg := bytes.Repeat([]byte("abc"), 10000)
	go func() { _, _ = c.Write(msg) }()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("noop changed the bytes: %v", err)
	}
}

func TestCompatToxicityZero(t *testing.T) {
	s, p := newEchoProxy(t)
	if _, err := p.AddToxic("", "latency", "downstream", 0, toxiproxy.Attributes{"latency": 500}); err != nil {
		t.Fatal(err)
	}
	for range 5 {
		c := dial(t, p.Listen)
		if rt := roundTrip(t, c, []byte("x")); rt > 250*time.Millisecond {
			t.Fatalf("toxicity 0: round trip %v", rt)
		}
	}
	skipped := 0
	for _, e := range s.Events() {
		if e.Decision == DecisionApplied {
			t.Fatalf("toxicity 0 applied: %+v", e)
		}
		if e.Decision == DecisionSkipped {
			skipped++
		}
	}
	if skipped != 5 {
		t.Fatalf("%d skip decisions, want 5 (one per connection)", skipped)
	}
}

func TestCompatDisabledRefuses(t *testing.T) {
	_, p := newEchoProxy(t)
	c := dial(t, p.Listen)
	roundTrip(t, c, []byte("up"))
	p.Enabled = false
	if err := p.Save(); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	if n, err := c.Read(make([]byte, 10)); err == nil {
		t.Fatalf("open connection survived disable (read %d bytes)", n)
	}
	if c2, err := net.DialTimeout("tcp", p.Listen, time.Second); err == nil {
		c2.Close()
		t.Fatal("dial a disabled proxy: want refused")
	}
}
