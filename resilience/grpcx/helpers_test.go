package grpcx

import (
	"context"
	"net"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/test/bufconn"

	"github.com/faultline-dev/faultline/clock"
)

// healthServer is a health service whose handlers the test controls: Check runs check with the
// number of the call (1-based), Watch runs watch.
type healthServer struct {
	healthpb.UnimplementedHealthServer
	check  func(ctx context.Context, n int) (*healthpb.HealthCheckResponse, error)
	watch  func(n int, stream healthpb.Health_WatchServer) error
	checks atomic.Int32
	watchs atomic.Int32
}

func (h *healthServer) Check(ctx context.Context, _ *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	n := int(h.checks.Add(1))
	if h.check == nil {
		return serving, nil
	}
	return h.check(ctx, n)
}

func (h *healthServer) Watch(_ *healthpb.HealthCheckRequest, stream healthpb.Health_WatchServer) error {
	n := int(h.watchs.Add(1))
	if h.watch == nil {
		return stream.Send(serving)
	}
	return h.watch(n, stream)
}

var serving = &healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_SERVING}

// testServer serves h in memory; dial makes clients to it.
type testServer struct {
	lis *bufconn.Listener
	srv *grpc.Server
}

func startServer(t *testing.T, h *healthServer, opts ...grpc.ServerOption) *testServer {
	t.Helper()
	lis := bufconn.Listen(1 << 20)
	srv := grpc.NewServer(opts...)
	healthpb.RegisterHealthServer(srv, h)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	return &testServer{lis: lis, srv: srv}
}

// dial returns a client to the server under the given target name (each name is a distinct
// target for per-target breakers).
func (s *testServer) dial(t *testing.T, target string, opts ...grpc.DialOption) healthpb.HealthClient {
	t.Helper()
	opts = append([]grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return s.lis.DialContext(ctx) }),
		grpc.WithDisableRetry(), // gRPC's own retries would hide ours
	}, opts...)
	cc, err := grpc.NewClient("passthrough:///"+target, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	return healthpb.NewHealthClient(cc)
}

// checkNoLeak fails the test when goroutines started during it are still running at its end,
// after giving finishing goroutines a bounded chance to exit (yielding, not sleeping).
func checkNoLeak(t *testing.T) {
	t.Helper()
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(2 * time.Second)
		for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
			runtime.Gosched()
		}
		if n := runtime.NumGoroutine(); n > before {
			buf := make([]byte, 1<<16)
			t.Errorf("goroutine leak: %d before, %d after\n%s", before, n, buf[:runtime.Stack(buf, true)])
		}
	})
}

// waitTimers waits until m has n pending timers, failing the test after a wall-clock bound.
func waitTimers(t *testing.T, m *clock.Manual, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := m.WaitForTimers(ctx, n); err != nil {
		t.Fatalf("waiting for %d timers (have %d): %v", n, m.Timers(), err)
	}
}

// eventually waits (yielding, bounded by wall time) until cond holds.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		runtime.Gosched()
	}
}

// must returns v, panicking on err (a setup error: a bad config in the test itself).
func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// recv waits for one value from ch, failing after a wall-clock bound.
func recv[T any](t *testing.T, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(5 * time.Second):
		t.Fatal("timed out waiting for a result")
		panic("unreachable")
	}
}
