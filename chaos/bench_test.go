package chaos

import (
	"bytes"
	"io"
	"net"
	"testing"
)

// benchEcho returns the address of an echo server and of a proxy in front of it (no toxics).
func benchEcho(b *testing.B) (direct, proxied string) {
	echo := startEcho(b)
	s := newTestServer(b, Config{})
	p, err := s.CreateProxy(ProxyConfig{Name: "bench", Upstream: echo.addr()})
	if err != nil {
		b.Fatal(err)
	}
	return echo.addr(), p.Listen()
}

// BenchmarkRoundTrip measures a 64-byte echo round trip, direct and through the proxy with no
// toxics; the difference is the latency the proxy adds.
func BenchmarkRoundTrip(b *testing.B) {
	direct, proxied := benchEcho(b)
	for _, bc := range []struct{ name, addr string }{{"direct", direct}, {"proxy", proxied}} {
		b.Run(bc.name, func(b *testing.B) {
			c, err := net.Dial("tcp", bc.addr)
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			msg, buf := bytes.Repeat([]byte("x"), 64), make([]byte, 64)
			b.ResetTimer()
			for range b.N {
				if _, err := c.Write(msg); err != nil {
					b.Fatal(err)
				}
				if _, err := io.ReadFull(c, buf); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkThroughput measures bulk transfer (1 MB per op, echoed back) through the proxy.
func BenchmarkThroughput(b *testing.B) {
	direct, proxied := benchEcho(b)
	for _, bc := range []struct{ name, addr string }{{"direct", direct}, {"proxy", proxied}} {
		b.Run(bc.name, func(b *testing.B) {
			c, err := net.Dial("tcp", bc.addr)
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			const size = 1 << 20
			msg, buf := bytes.Repeat([]byte("y"), size), make([]byte, size)
			b.SetBytes(size)
			b.ResetTimer()
			for range b.N {
				go func() { _, _ = c.Write(msg) }()
				if _, err := io.ReadFull(c, buf); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
