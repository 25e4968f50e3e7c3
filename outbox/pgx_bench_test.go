package outbox

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/faultline-dev/faultline/internal/testkit"
	"github.com/faultline-dev/faultline/messaging"
)

// AddPgx writes in a pgx transaction: committed rows are published, rolled-back ones are not.
func TestAddPgx(t *testing.T) {
	b := newPostgres(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, testkit.PostgresURL())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	write := func(commit bool, ms ...*messaging.Message) {
		tx, err := conn.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := b.table.AddPgx(ctx, tx, ms...); err != nil {
			t.Fatal(err)
		}
		if commit {
			err = tx.Commit(ctx)
		} else {
			err = tx.Rollback(ctx)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	gone := msg("t.pgx", "k", "gone")
	write(false, gone)
	kept := &messaging.Message{Topic: "t.pgx", Key: "k", Headers: map[string]string{"a": "b"}, Payload: []byte{0, 1, 2}}
	write(true, kept, msg("t.pgx", "k", "second"))
	pub := &fakePub{}
	r := newRelay(t, RelayConfig{Store: b.store(t, false), Publisher: pub})
	if n, err := r.RunOnce(ctx); err != nil || n != 2 {
		t.Fatalf("RunOnce = %d, %v; want 2", n, err)
	}
	got := pub.published()
	if got[0].ID != kept.ID || got[0].Headers["a"] != "b" || string(got[0].Payload) != "\x00\x01\x02" || string(got[1].Payload) != "second" {
		t.Fatalf("published %+v", got)
	}
	for _, m := range got {
		if m.ID == gone.ID {
			t.Fatal("a rolled-back message was published")
		}
	}
}

type nopPub struct{}

func (nopPub) Publish(context.Context, ...*messaging.Message) error { return nil }

// BenchmarkRelay measures the relay's throughput (select, publish to a no-op publisher, mark) in
// msg/s; the rows are written before the timer starts.
func BenchmarkRelay(b *testing.B) {
	for _, name := range []string{"sqlite", "postgres"} {
		for _, batch := range []int{100, 1000} {
			b.Run(fmt.Sprintf("%s/batch=%d", name, batch), func(b *testing.B) {
				var be *backend
				if name == "sqlite" {
					be = newSQLite(b)
				} else {
					be = newPostgres(b)
				}
				ctx := context.Background()
				n := max(b.N, 1000)
				for done := 0; done < n; {
					tx, err := be.db.Begin()
					if err != nil {
						b.Fatal(err)
					}
					var ms []*messaging.Message
					for i := 0; i < 1000 && done < n; i, done = i+1, done+1 {
						ms = append(ms, &messaging.Message{Topic: "bench", Key: fmt.Sprint(done % 16), Headers: map[string]string{"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}, Payload: make([]byte, 200)})
					}
					if err := be.table.Add(ctx, tx, ms...); err != nil {
						b.Fatal(err)
					}
					if err := tx.Commit(); err != nil {
						b.Fatal(err)
					}
				}
				var store Store
				if name == "sqlite" {
					s, _ := NewSQLiteStore(SQLiteConfig{DB: be.db, Table: be.table.Name})
					store = s
				} else {
					s, _ := NewPostgresStore(PostgresConfig{DB: be.db, Table: be.table.Name, Channel: be.table.Channel})
					store = s
				}
				r, err := NewRelay(RelayConfig{Store: store, Publisher: nopPub{}, BatchSize: batch})
				if err != nil {
					b.Fatal(err)
				}
				b.ResetTimer()
				start := time.Now()
				total := 0
				for total < n {
					k, err := r.RunOnce(ctx)
					if err != nil {
						b.Fatal(err)
					}
					if k == 0 {
						b.Fatalf("relay stopped at %d of %d", total, n)
					}
					total += k
				}
				b.StopTimer()
				b.ReportMetric(float64(total)/time.Since(start).Seconds(), "msg/s")
			})
		}
	}
}
