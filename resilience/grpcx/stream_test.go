package grpcx

import (
	"context"
	"errors"
	"io"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/faultline-dev/faultline/resilience"
)

func streamClient(t *testing.T, s *testServer, target string, cfg ClientConfig) healthpb.HealthClient {
	t.Helper()
	ic := must(StreamClientInterceptor(cfg))
	return s.dial(t, target, grpc.WithStreamInterceptor(ic))
}

// blockUntilDone is a Watch handler that sends one message and then waits for the client to go.
func blockUntilDone(stream healthpb.Health_WatchServer) error {
	if err := stream.Send(serving); err != nil {
		return err
	}
	<-stream.Context().Done()
	return status.FromContextError(stream.Context().Err()).Err()
}

// TestStreamSlotReleasedOnce ends a stream in every way a stream ends, then tries to end it again,
// while another stream holds a slot: the bulkhead must count exactly that one slot (a second
// release would free the other stream's), and the breaker must count the outcome once.
func TestStreamSlotReleasedOnce(t *testing.T) {
	cases := []struct {
		name         string
		watch        func(healthpb.Health_WatchServer) error // the subject's handler
		client       func(t *testing.T, w healthpb.Health_WatchClient, cancel func())
		wantCalls    int
		wantFailures int
	}{
		{
			name: "EOF, then more reads",
			watch: func(s healthpb.Health_WatchServer) error {
				_ = s.Send(serving)
				return s.Send(serving)
			},
			client: func(t *testing.T, w healthpb.Health_WatchClient, _ func()) {
				drain(t, w, io.EOF)
				if _, err := w.Recv(); err != io.EOF {
					t.Errorf("Recv after EOF: %v", err)
				}
			},
			wantCalls: 1,
		},
		{
			name: "server error",
			watch: func(s healthpb.Health_WatchServer) error {
				_ = s.Send(serving)
				return status.Error(codes.Unavailable, "gone")
			},
			client: func(t *testing.T, w healthpb.Health_WatchClient, _ func()) {
				drain(t, w, nil)
				_, _ = w.Recv()
			},
			wantCalls: 1, wantFailures: 1,
		},
		{
			name:  "caller cancels",
			watch: blockUntilDone,
			client: func(t *testing.T, w healthpb.Health_WatchClient, cancel func()) {
				if _, err := w.Recv(); err != nil {
					t.Fatal(err)
				}
				cancel()
				if _, err := w.Recv(); status.Code(err) != codes.Canceled {
					t.Errorf("Recv after cancel: %v", err)
				}
			},
		},
		{
			name: "CloseSend then drain",
			watch: func(s healthpb.Health_WatchServer) error {
				return s.Send(serving)
			},
			client: func(t *testing.T, w healthpb.Health_WatchClient, cancel func()) {
				if err := w.CloseSend(); err != nil {
					t.Fatal(err)
				}
				drain(t, w, io.EOF)
				cancel() // after the end: must not end it again
			},
			wantCalls: 1,
		},
		{
			name: "caller cancels during the server's error",
			watch: func(s healthpb.Health_WatchServer) error {
				_ = s.Send(serving)
				<-s.Context().Done()
				return status.Error(codes.Internal, "late")
			},
			client: func(t *testing.T, w healthpb.Health_WatchClient, cancel func()) {
				_, _ = w.Recv()
				cancel()
				drain(t, w, nil)
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := &healthServer{watch: func(n int, s healthpb.Health_WatchServer) error {
				if n == 1 {
					return blockUntilDone(s) // the holder
				}
				return tc.watch(s)
			}}
			bh := must(resilience.NewBulkhead(resilience.BulkheadConfig{MaxConcurrent: 2}))
			br := must(resilience.NewBreaker(resilience.BreakerConfig{WindowSize: 100, MinCalls: 100}))
			cl := streamClient(t, startServer(t, h), "a", ClientConfig{
				Bulkhead: bh, Breaker: func(string) (*resilience.Breaker, error) { return br, nil },
			})

			hctx, hcancel := context.WithCancel(context.Background())
			defer hcancel()
			holder := must(cl.Watch(hctx, req))
			if _, err := holder.Recv(); err != nil {
				t.Fatal(err)
			}

			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			w := must(cl.Watch(ctx, req))
			if got := bh.InFlight(); got != 2 {
				t.Fatalf("InFlight = %d with two open streams", got)
			}
			tc.client(t, w, cancel)
			eventually(t, "the subject's slot to be freed", func() bool { return bh.InFlight() <= 1 })
			cancel()
			_, _ = w.Recv()
			_ = w.CloseSend()
			if got := bh.InFlight(); got != 1 {
				t.Fatalf("InFlight = %d after the subject ended, want 1 (the holder's slot)", got)
			}
			if c := br.Counts(time.Now()); c.Calls != tc.wantCalls || c.Failures != tc.wantFailures {
				t.Errorf("breaker counts %+v, want %d calls, %d failures", c, tc.wantCalls, tc.wantFailures)
			}

			hcancel()
			eventually(t, "the holder's slot to be freed", func() bool { return bh.InFlight() == 0 })
			if c := br.Counts(time.Now()); c.Calls != tc.wantCalls {
				t.Errorf("the abandoned holder was counted: %+v", c)
			}
		})
	}
}

// drain reads until an error and checks it (want nil: any error but io.EOF).
func drain(t *testing.T, w healthpb.Health_WatchClient, want error) {
	t.Helper()
	for {
		_, err := w.Recv()
		if err == nil {
			continue
		}
		if (want == nil) == (err == io.EOF) || (want != nil && err != want) {
			t.Fatalf("stream ended with %v, want %v", err, want)
		}
		return
	}
}

func TestStreamBulkheadFull(t *testing.T) {
	h := &healthServer{watch: func(_ int, s healthpb.Health_WatchServer) error { return blockUntilDone(s) }}
	bh := must(resilience.NewBulkhead(resilience.BulkheadConfig{MaxConcurrent: 1}))
	cl := streamClient(t, startServer(t, h), "a", ClientConfig{Bulkhead: bh})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	first := must(cl.Watch(ctx, req))
	if _, err := first.Recv(); err != nil {
		t.Fatal(err)
	}
	_, err := cl.Watch(context.Background(), req)
	if status.Code(err) != codes.ResourceExhausted || !errors.Is(err, resilience.ErrBulkheadFull) {
		t.Fatalf("err = %v, want RESOURCE_EXHAUSTED matching ErrBulkheadFull", err)
	}
	if h.watchs.Load() != 1 {
		t.Errorf("server saw %d streams, want 1", h.watchs.Load())
	}
}

func TestStreamBreakerOpensOnStreamErrors(t *testing.T) {
	h := &healthServer{watch: func(int, healthpb.Health_WatchServer) error {
		return status.Error(codes.Unavailable, "down")
	}}
	br := must(resilience.NewBreaker(resilience.BreakerConfig{ConsecutiveFailures: 1, OpenDuration: time.Hour}))
	cl := streamClient(t, startServer(t, h), "a", ClientConfig{Breaker: func(string) (*resilience.Breaker, error) { return br, nil }})
	w := must(cl.Watch(context.Background(), req))
	if _, err := w.Recv(); status.Code(err) != codes.Unavailable {
		t.Fatalf("Recv: %v", err)
	}
	_, err := cl.Watch(context.Background(), req)
	if status.Code(err) != codes.Unavailable || !errors.Is(err, resilience.ErrOpen) {
		t.Fatalf("err = %v, want UNAVAILABLE matching ErrOpen", err)
	}
	if h.watchs.Load() != 1 {
		t.Errorf("the open breaker let a stream reach the server (%d)", h.watchs.Load())
	}
}

// fakeStream is a ClientStream whose RecvMsg the test scripts; it ends with its context.
type fakeStream struct {
	ctx  context.Context
	recv func() error
}

func (f *fakeStream) Header() (metadata.MD, error) { return nil, nil }
func (f *fakeStream) Trailer() metadata.MD         { return nil }
func (f *fakeStream) CloseSend() error             { return nil }
func (f *fakeStream) Context() context.Context     { return f.ctx }
func (f *fakeStream) SendMsg(any) error            { return f.ctx.Err() }
func (f *fakeStream) RecvMsg(any) error {
	if f.recv != nil {
		return f.recv()
	}
	<-f.ctx.Done()
	return status.FromContextError(f.ctx.Err()).Err()
}

var serverStreamDesc = &grpc.StreamDesc{StreamName: "Watch", ServerStreams: true}

func TestStreamRetriesEstablishmentOnly(t *testing.T) {
	checkNoLeak(t)
	var attempts atomic.Int32
	var streamCtx context.Context
	streamer := func(ctx context.Context, _ *grpc.StreamDesc, _ *grpc.ClientConn, _ string, _ ...grpc.CallOption) (grpc.ClientStream, error) {
		if attempts.Add(1) < 3 {
			return nil, status.Error(codes.Unavailable, "connecting")
		}
		streamCtx = ctx
		return &fakeStream{ctx: ctx, recv: func() error { return status.Error(codes.Unavailable, "broke mid-stream") }}, nil
	}
	r := must(resilience.NewRetry(resilience.RetryConfig{MaxAttempts: 5, Backoff: resilience.Backoff{Base: 1, Max: 1}, PerAttemptTimeout: time.Hour}))
	bh := must(resilience.NewBulkhead(resilience.BulkheadConfig{MaxConcurrent: 1}))
	ic := must(StreamClientInterceptor(ClientConfig{Retry: r, Bulkhead: bh}))
	cs, err := ic(context.Background(), serverStreamDesc, nil, "/svc/Watch", streamer)
	if err != nil {
		t.Fatal(err)
	}
	if attempts.Load() != 3 {
		t.Fatalf("%d attempts, want 3", attempts.Load())
	}
	if streamCtx.Err() != nil {
		t.Fatal("the stream's context ended with the attempt (PerAttemptTimeout must not bind a stream)")
	}
	if bh.InFlight() != 1 {
		t.Fatalf("InFlight = %d while the stream is open, want 1 (failed attempts must free theirs)", bh.InFlight())
	}
	if err := cs.RecvMsg(nil); status.Code(err) != codes.Unavailable {
		t.Fatalf("RecvMsg: %v", err)
	}
	if attempts.Load() != 3 {
		t.Error("a failure after the stream was established was retried")
	}
	if bh.InFlight() != 0 {
		t.Errorf("InFlight = %d after the stream ended", bh.InFlight())
	}
}

func TestStreamNoRetryOfOtherCodes(t *testing.T) {
	var attempts atomic.Int32
	streamer := func(context.Context, *grpc.StreamDesc, *grpc.ClientConn, string, ...grpc.CallOption) (grpc.ClientStream, error) {
		attempts.Add(1)
		return nil, status.Error(codes.PermissionDenied, "no")
	}
	ic := must(StreamClientInterceptor(ClientConfig{Retry: quickRetry(t, 3, nil)}))
	if _, err := ic(context.Background(), serverStreamDesc, nil, "/svc/Watch", streamer); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("err = %v", err)
	}
	if attempts.Load() != 1 {
		t.Errorf("%d attempts, want 1", attempts.Load())
	}
}

func TestStreamClientStreamingEndsWithResponse(t *testing.T) {
	bh := must(resilience.NewBulkhead(resilience.BulkheadConfig{MaxConcurrent: 1}))
	br := must(resilience.NewBreaker(resilience.BreakerConfig{WindowSize: 10, MinCalls: 10}))
	ic := must(StreamClientInterceptor(ClientConfig{Bulkhead: bh, Breaker: func(string) (*resilience.Breaker, error) { return br, nil }}))
	streamer := func(ctx context.Context, _ *grpc.StreamDesc, _ *grpc.ClientConn, _ string, _ ...grpc.CallOption) (grpc.ClientStream, error) {
		return &fakeStream{ctx: ctx, recv: func() error { return nil }}, nil
	}
	cs := must(ic(context.Background(), &grpc.StreamDesc{ClientStreams: true}, nil, "/svc/Upload", streamer))
	if err := cs.CloseSend(); err != nil {
		t.Fatal(err)
	}
	if err := cs.RecvMsg(nil); err != nil { // CloseAndRecv's response
		t.Fatal(err)
	}
	if bh.InFlight() != 0 {
		t.Errorf("InFlight = %d after the response of a client-streaming RPC", bh.InFlight())
	}
	if c := br.Counts(time.Now()); c.Calls != 1 || c.Failures != 0 {
		t.Errorf("breaker counts %+v, want one success", c)
	}
}

func TestStreamCancelNoLeak(t *testing.T) {
	checkNoLeak(t)
	bh := must(resilience.NewBulkhead(resilience.BulkheadConfig{MaxConcurrent: 1, MaxQueue: 1}))
	br := must(resilience.NewBreaker(resilience.BreakerConfig{ConsecutiveFailures: 1}))
	ic := must(StreamClientInterceptor(ClientConfig{Bulkhead: bh, Breaker: func(string) (*resilience.Breaker, error) { return br, nil }}))
	streamer := func(ctx context.Context, _ *grpc.StreamDesc, _ *grpc.ClientConn, _ string, _ ...grpc.CallOption) (grpc.ClientStream, error) {
		return &fakeStream{ctx: ctx}, nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	cs := must(ic(ctx, serverStreamDesc, nil, "/svc/Watch", streamer))

	// A second stream queues for the slot; its caller gives up while it waits.
	qctx, qcancel := context.WithCancel(context.Background())
	queued := make(chan error, 1)
	go func() { _, err := ic(qctx, serverStreamDesc, nil, "/svc/Watch", streamer); queued <- err }()
	eventually(t, "the second stream to queue", func() bool { return bh.Queued() == 1 })
	qcancel()
	if err := recv(t, queued); status.Code(err) != codes.Canceled || !errors.Is(err, context.Canceled) {
		t.Fatalf("queued stream: %v, want CANCELED", err)
	}

	cancel() // the caller abandons the open stream without reading it
	eventually(t, "the slot to be freed", func() bool { return bh.InFlight() == 0 })
	if err := cs.RecvMsg(nil); status.Code(err) != codes.Canceled {
		t.Fatalf("RecvMsg: %v", err)
	}
	if bh.InFlight() != 0 || bh.Queued() != 0 {
		t.Errorf("bulkhead: %d in flight, %d queued", bh.InFlight(), bh.Queued())
	}
	if st := br.State(time.Now()); st != resilience.BreakerClosed {
		t.Errorf("an abandoned stream opened the breaker (%v)", st)
	}
}
