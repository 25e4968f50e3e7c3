package bench

// Messaging benchmarks against watermill: the transactional outbox (faultline's outbox.Relay
// against watermill's forwarder over watermill-sql) and NATS JetStream (faultline's natsbus against
// watermill-nats in JetStream mode). One op is one message: ns/op is the time per message, and
// every benchmark also reports msg/s. See messaging_settings_test.go for the settings.

import (
	"context"
	"database/sql"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	wmnats "github.com/ThreeDotsLabs/watermill-nats/v2/pkg/nats"
	wmsql "github.com/ThreeDotsLabs/watermill-sql/v4/pkg/sql"
	"github.com/ThreeDotsLabs/watermill/components/forwarder"
	"github.com/ThreeDotsLabs/watermill/message"
	_ "github.com/jackc/pgx/v5/stdlib"
	"github.com/nats-io/nats.go"
	_ "modernc.org/sqlite"

	"github.com/faultline-dev/faultline/messaging"
	"github.com/faultline-dev/faultline/messaging/natsbus"
	"github.com/faultline-dev/faultline/outbox"
)

// reportRate turns the timed drain of n messages into msg/s.
func reportRate(b *testing.B, n int, d time.Duration) {
	if d > 0 {
		b.ReportMetric(float64(n)/d.Seconds(), "msg/s")
	}
}

// --- 1. Outbox relay: b.N rows written beforehand, then drained to a no-op publisher ---

// drainFaultline writes b.N messages to tbl in transactions, then times a relay publishing them
// all (select a batch, publish it, mark it sent) until the table has no unsent row.
func drainFaultline(b *testing.B, db *sql.DB, tbl outbox.Table, store outbox.Store) {
	ctx := context.Background()
	n := b.N
	body := payload()
	for done := 0; done < n; {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			b.Fatal(err)
		}
		k := min(outboxWriteTx, n-done)
		msgs := make([]*messaging.Message, k)
		for i := range msgs {
			msgs[i] = &messaging.Message{Topic: "bench.orders", Payload: body}
		}
		if err := tbl.Add(ctx, tx, msgs...); err != nil {
			b.Fatal(err)
		}
		if err := tx.Commit(); err != nil {
			b.Fatal(err)
		}
		done += k
	}
	pub := &nopFaultlinePub{}
	relay, err := outbox.NewRelay(outbox.RelayConfig{Store: store, Publisher: pub, BatchSize: outboxBatch})
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	start := time.Now()
	// Relay.Run's hot path: RunOnce back to back while batches come back full.
	for sent := 0; sent < n; {
		k, err := relay.RunOnce(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if k == 0 {
			b.Fatalf("relay marked %d of %d rows, then found none", sent, n)
		}
		sent += k
	}
	elapsed := time.Since(start)
	b.StopTimer()
	reportRate(b, n, elapsed)
	if got := pub.n.Load(); got != int64(n) {
		b.Fatalf("published %d, want %d", got, n)
	}
}

// drainWatermill writes b.N messages through watermill's forwarder publisher (an envelope per
// message, inserted by watermill-sql's publisher inside the caller's transaction), then times the
// forwarder (watermill-sql subscriber -> router -> no-op publisher) until every row is acked.
func drainWatermill(b *testing.B, db *sql.DB, queue bool) {
	ctx := context.Background()
	n := b.N
	body := payload()
	fwdTopic := uniqueName("bench_fwd")
	var (
		schema  wmsql.SchemaAdapter
		offsets wmsql.OffsetsAdapter
		table   string
		drained string // a query true once every row is acked
	)
	if queue {
		// The queue schema: ack = UPDATE ... SET acked = TRUE WHERE "offset" = ANY($1), the same
		// work as faultline's mark (which also keeps sent rows).
		qs := wmsql.PostgreSQLQueueSchema{
			GeneratePayloadType: func(string) string { return "JSON" }, // the envelope is JSON
			SubscribeBatchSize:  outboxBatch,
		}
		schema, offsets = qs, wmsql.PostgreSQLQueueOffsetsAdapter{}
		table = qs.MessagesTable(fwdTopic)
		drained = `SELECT NOT EXISTS (SELECT 1 FROM ` + table + ` WHERE NOT acked)`
	} else {
		// watermill-sql's default schema: a log read by transaction id and offset, with the
		// consumer group's position in an offsets table.
		ds := wmsql.DefaultPostgreSQLSchema{SubscribeBatchSize: outboxBatch}
		oa := wmsql.DefaultPostgreSQLOffsetsAdapter{}
		schema, offsets = ds, oa
		table = ds.MessagesTable(fwdTopic)
		ot := oa.MessagesOffsetsTable(fwdTopic)
		b.Cleanup(func() { db.Exec(`DROP TABLE IF EXISTS ` + ot) })
		drained = `SELECT coalesce((SELECT offset_acked FROM ` + ot + ` WHERE consumer_group = ''), 0) >= (SELECT max("offset") FROM ` + table + `)`
	}
	b.Cleanup(func() { db.Exec(`DROP TABLE IF EXISTS ` + table) })

	sub, err := wmsql.NewSubscriber(wmsql.BeginnerFromStdSQL(db), wmsql.SubscriberConfig{
		SchemaAdapter:  schema,
		OffsetsAdapter: offsets,
		PollInterval:   outboxPoll,
	}, wmLogger)
	if err != nil {
		b.Fatal(err)
	}
	// Schema, once, outside the timer (as faultline's Migrate).
	if err := sub.SubscribeInitialize(fwdTopic); err != nil {
		b.Fatal(err)
	}
	for done := 0; done < n; {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			b.Fatal(err)
		}
		sqlPub, err := wmsql.NewPublisher(wmsql.TxFromStdSQL(tx), wmsql.PublisherConfig{SchemaAdapter: schema}, wmLogger)
		if err != nil {
			b.Fatal(err)
		}
		pub := forwarder.NewPublisher(sqlPub, forwarder.PublisherConfig{ForwarderTopic: fwdTopic})
		k := min(outboxWriteTx, n-done)
		msgs := make([]*message.Message, k)
		for i := range msgs {
			msgs[i] = message.NewMessage(watermill.NewUUID(), body)
		}
		if err := pub.Publish("bench_orders", msgs...); err != nil {
			b.Fatal(err)
		}
		if err := tx.Commit(); err != nil {
			b.Fatal(err)
		}
		done += k
	}
	sink := &nopWatermillPub{want: int64(n), done: make(chan struct{})}
	fwd, err := forwarder.NewForwarder(sub, sink, wmLogger, forwarder.Config{ForwarderTopic: fwdTopic, CloseTimeout: time.Second})
	if err != nil {
		b.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	ran := make(chan error, 1)

	b.ResetTimer()
	start := time.Now()
	go func() { ran <- fwd.Run(runCtx) }()
	<-sink.done
	// The sink has seen every message; the subscriber acks a batch in its transaction after the
	// batch's last message, so wait for that commit too.
	for {
		var ok bool
		if err := db.QueryRowContext(ctx, drained).Scan(&ok); err != nil {
			b.Fatal(err)
		}
		if ok {
			break
		}
		time.Sleep(100 * time.Microsecond)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	reportRate(b, n, elapsed)
	stop()
	fwd.Close()
	<-ran
	sub.Close()
}

// outboxPoll is watermill's wait between polls that found nothing; it never waits while rows are
// there (a full batch is followed by the next SELECT at once), as faultline's relay.
const outboxPoll = 100 * time.Millisecond

func BenchmarkOutboxRelaySQLite(b *testing.B) {
	b.Run("faultline", func(b *testing.B) {
		path := filepath.Join(b.TempDir(), "outbox.db")
		db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(20000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_txlock=immediate")
		if err != nil {
			b.Fatal(err)
		}
		defer db.Close()
		ctx := context.Background()
		tbl := outbox.Table{Dialect: outbox.SQLite}
		if err := tbl.Migrate(ctx, db); err != nil {
			b.Fatal(err)
		}
		store, err := outbox.NewSQLiteStore(outbox.SQLiteConfig{DB: db})
		if err != nil {
			b.Fatal(err)
		}
		drainFaultline(b, db, tbl, store)
	})
	// watermill has no SQLite Pub/Sub among the served modules (watermill-sql supports MySQL and
	// PostgreSQL; watermill-sqlite is not on the module proxy), so this row has no peer.
}

func BenchmarkOutboxRelayPostgres(b *testing.B) {
	b.Run("faultline", func(b *testing.B) {
		db := openPostgres(b)
		ctx := context.Background()
		name := uniqueName("bench_outbox")
		tbl := outbox.Table{Dialect: outbox.Postgres, Name: name, Channel: name}
		if err := tbl.Migrate(ctx, db); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() {
			db.Exec(`DROP TABLE IF EXISTS ` + name)
			db.Exec(`DROP FUNCTION IF EXISTS ` + name + `_notify()`)
		})
		store, err := outbox.NewPostgresStore(outbox.PostgresConfig{DB: db, Table: name, Channel: name})
		if err != nil {
			b.Fatal(err)
		}
		drainFaultline(b, db, tbl, store)
	})
	b.Run("watermill", func(b *testing.B) {
		drainWatermill(b, openPostgres(b), watermillQueueSchema)
	})
}

// --- 2. NATS JetStream ---

// newNatsbus connects faultline's bus to the benchmark's server (Config.URL, so no embedded one).
func newNatsbus(b *testing.B, url string) *natsbus.Bus {
	bus, err := natsbus.Open(context.Background(), natsbus.Config{URL: url})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { bus.Close(context.Background()) })
	return bus
}

// newWatermillNATSPublisher is watermill-nats in JetStream mode: synchronous js.PublishMsg, the
// message UUID as Nats-Msg-Id (TrackMsgId, as natsbus always does). AutoProvision is off because
// it costs a StreamInfo request on every Publish call; the stream is created beforehand instead.
func newWatermillNATSPublisher(b *testing.B, url string) *wmnats.Publisher {
	pub, err := wmnats.NewPublisher(wmnats.PublisherConfig{
		URL:       url,
		JetStream: wmnats.JetStreamConfig{TrackMsgId: true},
	}, wmLogger)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { pub.Close() })
	return pub
}

// createStream makes a file-storage stream for topic, as natsbus creates its own.
func createStream(b *testing.B, url, topic string) {
	nc, err := nats.Connect(url)
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	js, err := nc.JetStream()
	if err != nil {
		b.Fatal(err)
	}
	if _, err := js.AddStream(&nats.StreamConfig{Name: topic, Subjects: []string{topic}, Storage: nats.FileStorage}); err != nil {
		b.Fatal(err)
	}
}

func BenchmarkNATSPublish(b *testing.B) {
	ns := startNATS(b)
	url := ns.ClientURL()
	ctx := context.Background()
	body := payload()
	b.Run("faultline", func(b *testing.B) {
		bus := newNatsbus(b, url)
		topic := uniqueName("bench_pub")
		if err := bus.Publish(ctx, &messaging.Message{Topic: topic, Payload: body}); err != nil { // creates the stream
			b.Fatal(err)
		}
		b.ReportAllocs()
		b.ResetTimer()
		start := time.Now()
		for b.Loop() {
			if err := bus.Publish(ctx, &messaging.Message{Topic: topic, Payload: body}); err != nil {
				b.Fatal(err)
			}
		}
		reportRate(b, b.N, time.Since(start))
	})
	b.Run("watermill", func(b *testing.B) {
		topic := uniqueName("bench_pub")
		createStream(b, url, topic)
		pub := newWatermillNATSPublisher(b, url)
		benchWatermillPublish(b, pub, topic, body, false)
	})
}

// BenchmarkNATSConsume publishes b.N messages beforehand, then times a subscription receiving and
// acknowledging all of them (from the Subscribe call to the last handler's return).
func BenchmarkNATSConsume(b *testing.B) {
	ns := startNATS(b)
	url := ns.ClientURL()
	ctx := context.Background()
	body := payload()
	b.Run("faultline", func(b *testing.B) {
		bus := newNatsbus(b, url)
		topic := uniqueName("bench_con")
		cfg := messaging.SubscribeConfig{Topic: topic, Group: "bench", Concurrency: 1, AckWait: natsAckWait}
		benchFaultlineConsume(b, bus, cfg, body, false) // one message per Publish, as before
	})
	b.Run("watermill", func(b *testing.B) {
		topic := uniqueName("bench_con")
		createStream(b, url, topic)
		pub := newWatermillNATSPublisher(b, url)
		for range b.N {
			if err := pub.Publish(topic, message.NewMessage(watermill.NewUUID(), body)); err != nil {
				b.Fatal(err)
			}
		}
		sub, err := wmnats.NewSubscriber(wmnats.SubscriberConfig{
			URL:              url,
			SubscribersCount: 1,
			AckWaitTimeout:   natsAckWait,
			CloseTimeout:     time.Second,
			JetStream: wmnats.JetStreamConfig{
				DurablePrefix:    topic, // a durable consumer, as natsbus's groups
				SubscribeOptions: []nats.SubOpt{nats.DeliverAll(), nats.AckExplicit(), nats.AckWait(natsAckWait)},
			},
		}, wmLogger)
		if err != nil {
			b.Fatal(err)
		}
		defer sub.Close()
		n := b.N
		b.ReportAllocs()
		b.ResetTimer()
		start := time.Now()
		msgs, err := sub.Subscribe(ctx, topic)
		if err != nil {
			b.Fatal(err)
		}
		for i := 0; i < n; i++ {
			m, ok := <-msgs
			if !ok {
				b.Fatalf("subscription closed after %d of %d", i, n)
			}
			m.Ack()
		}
		elapsed := time.Since(start)
		b.StopTimer()
		reportRate(b, n, elapsed)
	})
}

// benchFaultlineConsume times bus consuming b.N messages of cfg.Topic: it subscribes once so the
// group exists (faultline's groups start at new messages) and closes, fills the topic with fill
// (untimed; batched = publish in batches of prefillBatch, else one by one), then times a new
// subscription from the Subscribe call to the last handler's return.
func benchFaultlineConsume(b *testing.B, bus messaging.Broker, cfg messaging.SubscribeConfig, body []byte, batched bool) {
	ctx := context.Background()
	sub, err := bus.Subscribe(ctx, cfg, func(context.Context, *messaging.Message) error { return nil })
	if err != nil {
		b.Fatal(err)
	}
	if err := sub.Close(ctx); err != nil {
		b.Fatal(err)
	}
	batch := 1
	if batched {
		batch = prefillBatch
	}
	for done := 0; done < b.N; {
		k := min(batch, b.N-done)
		msgs := make([]*messaging.Message, k)
		for i := range msgs {
			msgs[i] = &messaging.Message{Topic: cfg.Topic, Payload: body}
		}
		if err := bus.Publish(ctx, msgs...); err != nil {
			b.Fatal(err)
		}
		done += k
	}
	n := int64(b.N)
	var got atomic.Int64
	done := make(chan struct{})
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	sub, err = bus.Subscribe(ctx, cfg, func(context.Context, *messaging.Message) error {
		if got.Add(1) == n {
			close(done)
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	<-done
	elapsed := time.Since(start)
	b.StopTimer()
	reportRate(b, b.N, elapsed)
	sub.Close(ctx)
}

// benchWatermillPublish times pub publishing one message per call to topic; warm, when set, sends
// one untimed message first (connection set-up that faultline's Open already did).
func benchWatermillPublish(b *testing.B, pub message.Publisher, topic string, body []byte, warm bool) {
	publish := func() {
		if err := pub.Publish(topic, message.NewMessage(watermill.NewUUID(), body)); err != nil {
			b.Fatal(err)
		}
	}
	if warm {
		publish()
	}
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for b.Loop() {
		publish()
	}
	reportRate(b, b.N, time.Since(start))
}
