package bench

// Messaging benchmarks against watermill on Kafka and RabbitMQ: faultline's kafkabus against
// watermill-kafka (IBM/sarama) on one in-process kfake cluster, and faultline's amqpbus against
// watermill-amqp on the machine's RabbitMQ. Same conventions as the NATS rows (messaging_test.go):
// one op is one message, a 256-byte payload, one synchronous acknowledged publish per call, a
// consumer handling one message at a time and acknowledging it; every benchmark reports msg/s.
// The settings and every difference between the two sides are in
// messaging_kafka_amqp_settings_test.go.

import (
	"context"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	wmamqp "github.com/ThreeDotsLabs/watermill-amqp/v3/pkg/amqp"
	wmkafka "github.com/ThreeDotsLabs/watermill-kafka/v3/pkg/kafka"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/faultline-dev/faultline/messaging"
)

// --- 3. Kafka ---

func BenchmarkKafkaPublish(b *testing.B) {
	brokers := startKafka(b)
	ctx := context.Background()
	body := payload()
	b.Run("faultline", func(b *testing.B) {
		bus := newKafkabus(b, brokers)
		topic := uniqueName("bench_pub")
		// The first publish creates the topic (kafkaPartitions partitions), fetches metadata and
		// the producer ID; untimed.
		if err := bus.Publish(ctx, &messaging.Message{Topic: topic, Payload: body}); err != nil {
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
		createKafkaTopic(b, brokers, topic)
		pub := newWatermillKafkaPublisher(b, brokers)
		// Untimed first publish: metadata and producer ID, as faultline's.
		benchWatermillPublish(b, pub, topic, body, true)
	})
}

// BenchmarkKafkaConsume produces b.N messages beforehand, then times a consumer-group member
// joining, receiving and acknowledging all of them (from the Subscribe call to the last handler's
// return).
func BenchmarkKafkaConsume(b *testing.B) {
	brokers := startKafka(b)
	ctx := context.Background()
	body := payload()
	b.Run("faultline", func(b *testing.B) {
		bus := newKafkabus(b, brokers)
		topic := uniqueName("bench_con")
		cfg := messaging.SubscribeConfig{Topic: topic, Group: "bench", Concurrency: 1, AckWait: kafkaAckWait}
		benchFaultlineConsume(b, bus, cfg, body, true)
	})
	b.Run("watermill", func(b *testing.B) {
		topic := uniqueName("bench_con")
		createKafkaTopic(b, brokers, topic)
		prefillWatermillKafka(b, brokers, topic, b.N, body)
		sub, err := wmkafka.NewSubscriber(wmkafka.SubscriberConfig{
			Brokers:               brokers,
			Unmarshaler:           wmkafka.DefaultMarshaler{},
			OverwriteSaramaConfig: watermillKafkaSubscriberConfig(),
			ConsumerGroup:         "bench",
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

// prefillWatermillKafka produces n records exactly as watermill-kafka's DefaultMarshaler writes
// them (value = payload, no key, the UUID in the _watermill_message_uuid header), in batches
// through a franz-go client, so that filling the topic does not take as long as the publish
// benchmark (untimed either way).
func prefillWatermillKafka(b *testing.B, brokers []string, topic string, n int, body []byte) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.RequiredAcks(kgo.AllISRAcks()))
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	for done := 0; done < n; {
		k := min(prefillBatch, n-done)
		recs := make([]*kgo.Record, k)
		for i := range recs {
			recs[i] = &kgo.Record{
				Topic:   topic,
				Value:   body,
				Headers: []kgo.RecordHeader{{Key: wmkafka.UUIDHeaderKey, Value: []byte(watermill.NewUUID())}},
			}
		}
		if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
			b.Fatal(err)
		}
		done += k
	}
}

// --- 4. RabbitMQ ---

func BenchmarkAMQPPublish(b *testing.B) {
	url := amqpURL()
	ctx := context.Background()
	body := payload()
	b.Run("faultline", func(b *testing.B) {
		admin := dialAMQP(b, url)
		exchange, topic := uniqueName("bench_ex"), uniqueName("bench_pub")
		bus := newAmqpbus(b, url, exchange)
		// amqpbus publishes mandatory and fails an unroutable message, so a queue is bound to the
		// topic first: the same durable quorum queue the watermill side gets.
		admin.declareQueue(b, exchange, topic, topic)
		if err := bus.Publish(ctx, &messaging.Message{Topic: topic, Payload: body}); err != nil {
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
		admin := dialAMQP(b, url)
		exchange, topic := uniqueName("bench_ex"), uniqueName("bench_pub")
		admin.declareQueue(b, exchange, topic, topic)
		pub := newWatermillAMQPPublisher(b, url, exchange, topic)
		// Untimed first publish: declares the exchange (once per topic) and opens the pooled
		// channel's confirm mode, as faultline's Open does.
		benchWatermillPublish(b, pub, topic, body, true)
	})
}

// BenchmarkAMQPConsume publishes b.N messages into the group's queue beforehand, then times a
// consumer (prefetch 1) receiving and acknowledging all of them (from the Subscribe call to the
// last handler's return).
func BenchmarkAMQPConsume(b *testing.B) {
	url := amqpURL()
	ctx := context.Background()
	body := payload()
	b.Run("faultline", func(b *testing.B) {
		admin := dialAMQP(b, url)
		exchange, topic := uniqueName("bench_ex"), uniqueName("bench_con")
		bus := newAmqpbus(b, url, exchange)
		b.Cleanup(func() {
			for _, q := range bus.Queues() { // the group queue and the topic's parking (.dlq) queue
				admin.deleteQueue(q)
			}
			admin.deleteExchange(exchange)
		})
		cfg := messaging.SubscribeConfig{Topic: topic, Group: "bench", Concurrency: 1, AckWait: amqpAckWait}
		benchFaultlineConsume(b, bus, cfg, body, true)
	})
	b.Run("watermill", func(b *testing.B) {
		admin := dialAMQP(b, url)
		exchange, topic := uniqueName("bench_ex"), uniqueName("bench_con")
		queue := topic + ".bench" // named as amqpbus names a group's queue
		cfg := watermillAMQPConfig(url, exchange, queue)
		sub, err := wmamqp.NewSubscriber(cfg, wmLogger)
		if err != nil {
			b.Fatal(err)
		}
		defer sub.Close()
		b.Cleanup(func() { admin.deleteQueue(queue); admin.deleteExchange(exchange) })
		// Declares the exchange, the queue and the binding, as the timed Subscribe does again.
		if err := sub.SubscribeInitialize(topic); err != nil {
			b.Fatal(err)
		}
		admin.prefillWatermill(b, cfg, exchange, topic, b.N, body)
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
