package twophase

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/faultline-dev/faultline/internal/testkit"
)

// benchSetup opens a coordinator and two participants, on the wall clock, talking in-process:
// on SQLite each has its own file (WAL, synchronous=NORMAL) in b.TempDir(); on PostgreSQL its own
// tables in a schema of the test's.
func benchSetup(b *testing.B, dialect Dialect) (*Coordinator, *Participant, *Participant) {
	b.Helper()
	ctx := context.Background()
	dir := b.TempDir()
	var pg *backend
	if dialect == Postgres {
		pg = postgresBackend(b)
	}
	open := func(name string) (*sql.DB, string) {
		if pg != nil {
			return pg.open(b, name)
		}
		return testkit.SQLite(b, filepath.Join(dir, name+".db"), 0), name
	}
	parts := map[string]*Participant{}
	for _, name := range []string{"bank_a", "bank_b"} {
		db, table := open(name)
		p, err := NewParticipant(ParticipantConfig{Name: name, DB: db, Dialect: dialect, Table: table})
		if err != nil {
			b.Fatal(err)
		}
		if err := p.Migrate(ctx); err != nil {
			b.Fatal(err)
		}
		if _, err := p.Recover(ctx); err != nil {
			b.Fatal(err)
		}
		parts[name] = p
	}
	db, table := open("coord")
	co, err := NewCoordinator(Config{DB: db, Dialect: dialect, Table: table, Participants: map[string]Resource{
		"bank-a": parts["bank_a"], "bank-b": parts["bank_b"],
	}})
	if err != nil {
		b.Fatal(err)
	}
	if err := co.Migrate(ctx); err != nil {
		b.Fatal(err)
	}
	return co, parts["bank_a"], parts["bank_b"]
}

// BenchmarkTwoPhaseTransfer measures committed transfers per second between two participants:
// each transfer is a begin record, two prepares (lock, validate, durable prepared row), a
// decision record, two commits (apply, outcome row, unlock) and a forget: seven durable writes
// in three databases. "sequential" runs one transfer at a time on one pair of accounts, on
// SQLite files; "parallel" runs GOMAXPROCS transfer loops on disjoint accounts; and
// "postgres-sequential" is "sequential" on PostgreSQL (skipped when it is unreachable).
// lock-hold-µs is the mean time a lock was held (for a transfer, from prepare to commit).
//
//	go test ./twophase -run '^$' -bench BenchmarkTwoPhaseTransfer -benchtime 2000x
func BenchmarkTwoPhaseTransfer(b *testing.B) {
	b.Run("sequential", func(b *testing.B) { benchSequential(b, SQLite) })
	b.Run("parallel", func(b *testing.B) {
		co, pa, pb := benchSetup(b, SQLite)
		ctx := context.Background()
		var workers, seq atomic.Int64
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			acct := fmt.Sprintf("acct-%d", workers.Add(1))
			if _, err := pa.Update(ctx, acct, 1<<40); err != nil {
				b.Error(err)
				return
			}
			for pb.Next() {
				id := fmt.Sprintf("tx-%d", seq.Add(1))
				o, err := co.Run(ctx, id, transfer("bank-a", acct, "bank-b", acct, 1))
				if err != nil || o != Committed {
					b.Errorf("%s: %v, %v", id, o, err)
					return
				}
			}
		})
		b.StopTimer()
		reportTransfers(b, pa, pb)
	})
	// PostgreSQL commits with fsync: each transfer waits for seven of them.
	b.Run("postgres-sequential", func(b *testing.B) { benchSequential(b, Postgres) })
}

// benchSequential runs one transfer at a time from alice (bank-a) to bob (bank-b).
func benchSequential(b *testing.B, dialect Dialect) {
	co, pa, pb := benchSetup(b, dialect)
	ctx := context.Background()
	if _, err := pa.Update(ctx, "alice", int64(b.N)); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		o, err := co.Run(ctx, fmt.Sprintf("tx-%d", i), transfer("bank-a", "alice", "bank-b", "bob", 1))
		if err != nil || o != Committed {
			b.Fatalf("transfer %d: %v, %v", i, o, err)
		}
	}
	b.StopTimer()
	reportTransfers(b, pa, pb)
	if got, _ := pb.Get(ctx, "bob"); got != int64(b.N) {
		b.Fatalf("bob %d, want %d", got, b.N)
	}
}

// reportTransfers reports txn/s and the mean time a lock was held.
func reportTransfers(b *testing.B, pa, pb *Participant) {
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "txn/s")
	var holds int64
	var total float64
	for _, p := range []*Participant{pa, pb} {
		s := p.Stats()
		holds += s.Holds
		total += float64(s.HoldTotal.Microseconds())
	}
	if holds > 0 {
		b.ReportMetric(total/float64(holds), "lock-hold-µs")
	}
}
