package inbox_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/faultline-dev/faultline/messaging"
)

// BenchmarkInboxHandler measures messages per second through Inbox.Handler (and PgxInbox) with a
// handler that makes one business write: new messages one at a time (serial), from several
// goroutines (parallel), and duplicates (acknowledged without running the handler).
func BenchmarkInboxHandler(b *testing.B) {
	for _, be := range backends {
		b.Run(be.name, func(b *testing.B) {
			s := be.open(b)
			c := s.inbox(b, consumerConf{Consumer: "bench"})
			var runs atomic.Int64
			h := c.handle(counting(s, "bench", &runs))
			ctx := context.Background()
			var seq atomic.Int64
			next := func(prefix string) *messaging.Message {
				return msg(fmt.Sprintf("%s-%d", prefix, seq.Add(1)))
			}
			report := func(b *testing.B, start time.Time) {
				b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
			}

			b.Run("serial", func(b *testing.B) {
				start := time.Now()
				for b.Loop() {
					if err := h(ctx, next("s")); err != nil {
						b.Fatal(err)
					}
				}
				report(b, start)
			})
			b.Run("parallel", func(b *testing.B) {
				b.SetParallelism(4)
				start := time.Now()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						m := next("p")
						for attempt := 1; ; attempt++ { // SQLite may report busy: redeliver
							err := h(ctx, m)
							if err == nil {
								break
							}
							if attempt == 20 {
								b.Error(err)
								return
							}
						}
					}
				})
				report(b, start)
			})
			b.Run("duplicate", func(b *testing.B) {
				m := next("d")
				if err := h(ctx, m); err != nil {
					b.Fatal(err)
				}
				start := time.Now()
				for b.Loop() {
					if err := h(ctx, m); err != nil {
						b.Fatal(err)
					}
				}
				report(b, start)
			})
		})
	}
}
