package resilience

import (
	"context"
	"errors"
	"testing"
)

func TestFallback(t *testing.T) {
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name    string
		ctx     context.Context
		err     error
		when    func(error) bool
		want    int
		wantErr error
	}{
		{"success kept", context.Background(), nil, nil, 1, nil},
		{"any error falls back", context.Background(), errRetryFlaky, nil, 7, nil},
		{"class matches", context.Background(), ErrOpen, FallbackOn(ErrOpen, ErrTimeout), 7, nil},
		{"class does not match", context.Background(), errRetryFlaky, FallbackOn(ErrOpen), 0, errRetryFlaky},
		{"caller cancelled: no fallback", canceled, nil, nil, 0, context.Canceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Fallback(func(ctx context.Context, err error) (int, error) { return 7, nil }, tt.when).Apply(
				func(context.Context) (int, error) {
					if tt.err != nil {
						return 0, tt.err
					}
					return 1, nil
				})(tt.ctx)
			if got != tt.want || !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Errorf("got %d, %v; want %d, %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestFallbackNotOnCallerCancellationMidCall(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	got, err := Execute(ctx, func(ctx context.Context) (string, error) {
		cancel()
		return "", ctx.Err()
	}, FallbackValue("cached", nil))
	if got != "" || !errors.Is(err, context.Canceled) {
		t.Errorf("got %q, %v", got, err)
	}
	got, err = Execute(context.Background(), func(ctx context.Context) (string, error) {
		return "", errRetryFlaky
	}, FallbackValue("cached", nil))
	if got != "cached" || err != nil {
		t.Errorf("got %q, %v", got, err)
	}
}
