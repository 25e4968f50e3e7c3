package review

import (
	"context"
	"testing"

	"github.com/faultline-dev/faultline/internal/testkit"
	"github.com/faultline-dev/faultline/model"
)

// BenchmarkReview is the review's budget: every rule plus the availability of every entrypoint on a
// generated 1,000-service / 5,000-edge model (target: under 1 s on a 2-core box).
func BenchmarkReview(b *testing.B) {
	sys, err := model.Load("gen.yaml", testkit.LayeredSystem(1000, 5000))
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		if _, err := Review(context.Background(), sys, nil); err != nil {
			b.Fatal(err)
		}
	}
}
