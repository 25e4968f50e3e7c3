package bench

// Settings for the messaging benchmarks (messaging_test.go): the same workload for faultline and
// watermill, and where watermill cannot be given a setting, the closest it offers, with the
// difference written next to it (and in docs/benchmarks.md, "Messaging against watermill").

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/nats-io/nats-server/v2/server"

	"github.com/faultline-dev/faultline/messaging"
)

const (
	// Every message carries a 256-byte payload, no headers and an empty key.
	msgPayloadSize = 256

	// Outbox: the rows are written in transactions of outboxWriteTx messages (one multi-row
	// INSERT each, both libraries) before the timer starts; the relay (faultline) or the forwarder's
	// SQL subscriber (watermill) reads outboxBatch rows per SELECT and marks/acks them per batch.
	outboxWriteTx = 100
	outboxBatch   = 500 // faultline's DefaultBatchSize; watermill's SubscribeBatchSize (default 100) set to match

	// NATS: synchronous, acknowledged publishes of one message per call; consumers handle one
	// message at a time (natsbus Concurrency 1, watermill SubscribersCount 1) and wait for the
	// server's confirmation of every ack (natsbus DoubleAck, watermill AckSync).
	natsAckWait = 30 * time.Second
)

// watermillQueueSchema picks watermill-sql's PostgreSQLQueueSchema (ack = mark the rows, the same
// work as faultline's relay) for the watermill outbox. false uses DefaultPostgreSQLSchema (a log
// read by transaction id, with the position in an offsets table), watermill's default; it measured
// within the noise of the queue schema here (35,000-51,000 msg/s against 37,000).
const watermillQueueSchema = true

// defaultPostgresURL is used when FAULTLINE_POSTGRES_URL is unset (as in the main module's tests).
const defaultPostgresURL = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

func postgresURL() string {
	if u := os.Getenv("FAULTLINE_POSTGRES_URL"); u != "" {
		return u
	}
	return defaultPostgresURL
}

// openPostgres opens the database through pgx's database/sql driver (both libraries use it), or
// skips the benchmark when the server is unreachable.
func openPostgres(b *testing.B) *sql.DB {
	db, err := sql.Open("pgx", postgresURL())
	if err != nil {
		b.Skipf("PostgreSQL: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		b.Skipf("PostgreSQL at %s unreachable: %v", postgresURL(), err)
	}
	db.SetMaxOpenConns(8)
	b.Cleanup(func() { db.Close() })
	return db
}

var uniq atomic.Int64

// uniqueName is a table, topic or stream name no other run (nor another process's) uses.
func uniqueName(prefix string) string {
	return fmt.Sprintf("%s_%d_%d", prefix, os.Getpid(), uniq.Add(1))
}

func payload() []byte {
	p := make([]byte, msgPayloadSize)
	for i := range p {
		p[i] = 'a' + byte(i%26)
	}
	return p
}

// --- sinks: the outbox's destination publishes nowhere, counting what it is given ---

type nopFaultlinePub struct{ n atomic.Int64 }

func (p *nopFaultlinePub) Publish(_ context.Context, msgs ...*messaging.Message) error {
	p.n.Add(int64(len(msgs)))
	return nil
}

type nopWatermillPub struct {
	n    atomic.Int64
	want int64
	done chan struct{}
}

func (p *nopWatermillPub) Publish(_ string, msgs ...*message.Message) error {
	if p.n.Add(int64(len(msgs))) == p.want {
		close(p.done)
	}
	return nil
}

func (p *nopWatermillPub) Close() error { return nil }

var wmLogger watermill.LoggerAdapter = watermill.NopLogger{}

// --- NATS: one embedded JetStream server per benchmark function, shared by both libraries ---

// startNATS starts an in-process nats-server with JetStream on a random loopback port and a
// temporary file store; both libraries connect to it over TCP.
func startNATS(b *testing.B) *server.Server {
	ns, err := server.NewServer(&server.Options{
		ServerName: "bench",
		Host:       "127.0.0.1",
		Port:       server.RANDOM_PORT,
		JetStream:  true,
		StoreDir:   b.TempDir(),
		NoLog:      true,
		NoSigs:     true,
	})
	if err != nil {
		b.Fatal(err)
	}
	ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		ns.Shutdown()
		b.Fatal("nats-server not ready")
	}
	b.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	return ns
}
