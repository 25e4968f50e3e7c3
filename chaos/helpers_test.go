package chaos

import (
	"io"
	"net"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// newTestServer returns a server with a fixed seed, closed when the test ends.
func newTestServer(t testing.TB, cfg Config) *Server {
	t.Helper()
	if cfg.Seed == 0 {
		cfg.Seed = 42
	}
	s, err := NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// tcpServer is a local upstream on 127.0.0.1 that runs handle for each connection.
type tcpServer struct {
	ln net.Listener
	wg sync.WaitGroup
}

func startTCPServer(t testing.TB, handle func(net.Conn)) *tcpServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &tcpServer{ln: ln}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				defer c.Close()
				handle(c)
			}()
		}
	}()
	t.Cleanup(func() { _ = ln.Close(); s.wg.Wait() })
	return s
}

func (s *tcpServer) addr() string { return s.ln.Addr().String() }

// startEcho starts an upstream that echoes what it reads.
func startEcho(t testing.TB) *tcpServer {
	return startTCPServer(t, func(c net.Conn) { _, _ = io.Copy(c, c) })
}

// waitGoroutines waits until the goroutine count is at most want, failing after a few seconds.
func waitGoroutines(t testing.TB, want int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		n := runtime.NumGoroutine()
		if n <= want {
			return
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			t.Fatalf("goroutines: %d, want <= %d\n%s", n, want, buf)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// roundTrip writes msg and reads len(msg) bytes back, returning the elapsed time.
func roundTrip(t testing.TB, c net.Conn, msg []byte) time.Duration {
	t.Helper()
	start := time.Now()
	if _, err := c.Write(msg); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatal(err)
	}
	if string(got) != string(msg) {
		t.Fatalf("echo: got %q, want %q", got, msg)
	}
	return time.Since(start)
}

// openSockets counts the process's open socket descriptors (-1 where /proc is missing). Other
// descriptors are left out: the net package keeps a pool of splice pipes that the GC frees.
func openSockets() int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return -1
	}
	n := 0
	for _, e := range ents {
		if l, err := os.Readlink("/proc/self/fd/" + e.Name()); err == nil && strings.HasPrefix(l, "socket:") {
			n++
		}
	}
	return n
}

// waitSockets waits until at most want sockets are open, failing after a few seconds.
func waitSockets(t testing.TB, want int) {
	t.Helper()
	if want < 0 {
		t.Log("no /proc/self/fd: descriptor leak not checked")
		return
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		n := openSockets()
		if n <= want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("open sockets: %d, want <= %d", n, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
