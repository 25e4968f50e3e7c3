package bench

// Settings for the Kafka and RabbitMQ rows (messaging_kafka_amqp_test.go). Each library is given
// the same work; where watermill has a different default, the setting is changed to faultline's
// and noted here (and in docs/benchmarks.md, "Messaging against watermill").

import (
	"context"
	"net"
	"os"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill"
	wmamqp "github.com/ThreeDotsLabs/watermill-amqp/v3/pkg/amqp"
	wmkafka "github.com/ThreeDotsLabs/watermill-kafka/v3/pkg/kafka"
	"github.com/ThreeDotsLabs/watermill/message"
	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/faultline-dev/faultline/messaging/amqpbus"
	"github.com/faultline-dev/faultline/messaging/kafkabus"
)

const (
	// Kafka: topics of kafkaPartitions partitions (kafkabus's DefaultPartitions; the watermill
	// topic is created with the same count beforehand), one broker. Publishing is synchronous,
	// acks=all, idempotent producer, no linger, on both sides. Consumers are one group member
	// handling one record at a time, committing the offsets of handled records every
	// kafkaCommitInterval (kafkabus's DefaultCommitInterval; sarama's auto-commit interval, 1 s by
	// default, set to match).
	kafkaPartitions     = kafkabus.DefaultPartitions
	kafkaCommitInterval = kafkabus.DefaultCommitInterval
	kafkaAckWait        = 30 * time.Second

	// RabbitMQ: a durable topic exchange, a durable quorum queue bound to it with the topic as
	// binding key, persistent messages published mandatory, one per call, each waiting for its
	// publisher confirm; consumers with prefetch 1 acknowledging each message (basic.ack).
	amqpQueueType = "quorum"
	amqpAckWait   = 30 * time.Second

	// prefillBatch is how many messages the consume benchmarks publish per call while filling the
	// topic or queue before the timer starts.
	prefillBatch = 500
)

// --- Kafka: one in-process kfake cluster per benchmark function, shared by both libraries ---

// startKafka starts a one-broker kfake cluster on a random loopback port; both libraries connect
// to it over TCP.
func startKafka(b *testing.B) []string {
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(c.Close)
	return c.ListenAddrs()
}

func newKafkabus(b *testing.B, brokers []string) *kafkabus.Bus {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	bus, err := kafkabus.Open(ctx, kafkabus.Config{
		Brokers:        brokers,
		Partitions:     kafkaPartitions,
		CommitInterval: kafkaCommitInterval,
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { bus.Close(context.Background()) })
	return bus
}

// createKafkaTopic creates topic as kafkabus creates its own (kafkaPartitions partitions, the
// broker's replication factor).
func createKafkaTopic(b *testing.B, brokers []string, topic string) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	resp, err := kadm.NewClient(cl).CreateTopics(context.Background(), kafkaPartitions, -1, nil, topic)
	if err == nil {
		err = resp.Error()
	}
	if err != nil {
		b.Fatal(err)
	}
}

// watermillKafkaPublisherConfig is watermill-kafka's DefaultSaramaSyncPublisherConfig (sync
// producer, Return.Successes, 10 retries, protocol version 1.0) with kafkabus's guarantees:
// acks from all in-sync replicas (sarama's default is the leader only, WaitForLocal) and the
// idempotent producer (which sarama requires to have one request in flight per broker).
func watermillKafkaPublisherConfig() *sarama.Config {
	c := wmkafka.DefaultSaramaSyncPublisherConfig()
	c.Producer.RequiredAcks = sarama.WaitForAll
	c.Producer.Idempotent = true
	c.Net.MaxOpenRequests = 1
	return c
}

func newWatermillKafkaPublisher(b *testing.B, brokers []string) *wmkafka.Publisher {
	pub, err := wmkafka.NewPublisher(wmkafka.PublisherConfig{
		Brokers:               brokers,
		Marshaler:             wmkafka.DefaultMarshaler{},
		OverwriteSaramaConfig: watermillKafkaPublisherConfig(),
	}, wmLogger)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { pub.Close() })
	return pub
}

// watermillKafkaSubscriberConfig is watermill-kafka's DefaultSaramaSubscriberConfig with the group
// starting at the oldest offset (the group is new and the messages are already there; kafkabus
// gets the same start by creating its group before producing) and auto-commit every
// kafkaCommitInterval, as kafkabus commits. watermill marks each message after its Ack
// (sess.MarkMessage) and sarama commits the marks on that interval.
func watermillKafkaSubscriberConfig() *sarama.Config {
	c := wmkafka.DefaultSaramaSubscriberConfig()
	c.Consumer.Offsets.Initial = sarama.OffsetOldest
	c.Consumer.Offsets.AutoCommit.Enable = true
	c.Consumer.Offsets.AutoCommit.Interval = kafkaCommitInterval
	return c
}

// --- RabbitMQ: the machine's server ---

// defaultAMQPURL is used when FAULTLINE_AMQP_URL is unset (as amqpbus's own tests).
const defaultAMQPURL = amqpbus.DefaultURL

func amqpURL() string {
	if u := os.Getenv("FAULTLINE_AMQP_URL"); u != "" {
		return u
	}
	return defaultAMQPURL
}

func newAmqpbus(b *testing.B, url, exchange string) *amqpbus.Bus {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	bus, err := amqpbus.Open(ctx, amqpbus.Config{URL: url, Exchange: exchange, QueueType: amqpQueueType})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { bus.Close(context.Background()) })
	return bus
}

// watermillAMQPConfig is watermill-amqp's NewDurableTopicConfig (a topic exchange, a durable
// queue bound with the topic as routing key, persistent messages, prefetch 1) made equal to
// amqpbus: the exchange durable (NewDurableTopicConfig leaves it transient), the queue a quorum
// queue (x-queue-type), publisher confirms on (ConfirmDelivery: Publish waits for each message's
// confirm), mandatory publishing, and one pooled channel kept open (ChannelPoolSize 1; by default
// watermill opens and closes a channel, and puts it in confirm mode, on every Publish call).
// watermill does not listen for basic.return, so an unroutable message would still count as
// published; every message here is routable.
func watermillAMQPConfig(url, exchange, queue string) wmamqp.Config {
	c := wmamqp.NewDurableTopicConfig(url, exchange, queue)
	c.Exchange.Durable = true
	c.Queue.Arguments = amqp.Table{amqp.QueueTypeArg: amqpQueueType}
	c.Publish.ConfirmDelivery = true
	c.Publish.ChannelPoolSize = 1
	c.Publish.Mandatory = true
	c.Consume.Qos.PrefetchCount = 1
	return c
}

func newWatermillAMQPPublisher(b *testing.B, url, exchange, queue string) *wmamqp.Publisher {
	pub, err := wmamqp.NewPublisher(watermillAMQPConfig(url, exchange, queue), wmLogger)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { pub.Close() })
	return pub
}

// amqpAdmin is a plain amqp091-go connection for declaring the publish benchmarks' queues,
// filling watermill's queue and deleting what a benchmark created.
type amqpAdmin struct{ conn *amqp.Connection }

// dialAMQP connects to the server, or skips the benchmark when it is unreachable.
func dialAMQP(b *testing.B, url string) *amqpAdmin {
	conn, err := amqp.DialConfig(url, amqp.Config{
		Dial: func(network, addr string) (net.Conn, error) { return net.DialTimeout(network, addr, 3*time.Second) },
	})
	if err != nil {
		b.Skipf("RabbitMQ at %s unreachable: %v", url, err)
	}
	b.Cleanup(func() { conn.Close() })
	return &amqpAdmin{conn: conn}
}

// declareQueue declares the durable topic exchange and a durable quorum queue bound to it with
// key, and deletes both when the benchmark ends.
func (a *amqpAdmin) declareQueue(b *testing.B, exchange, queue, key string) {
	ch, err := a.conn.Channel()
	if err != nil {
		b.Fatal(err)
	}
	defer ch.Close()
	if err := ch.ExchangeDeclare(exchange, amqp.ExchangeTopic, true, false, false, false, nil); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { a.deleteExchange(exchange) })
	if _, err := ch.QueueDeclare(queue, true, false, false, false, amqp.Table{amqp.QueueTypeArg: amqpQueueType}); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { a.deleteQueue(queue) })
	if err := ch.QueueBind(queue, key, exchange, false, nil); err != nil {
		b.Fatal(err)
	}
}

func (a *amqpAdmin) deleteQueue(name string) {
	if ch, err := a.conn.Channel(); err == nil {
		ch.QueueDelete(name, false, false, false)
		ch.Close()
	}
}

func (a *amqpAdmin) deleteExchange(name string) {
	if ch, err := a.conn.Channel(); err == nil {
		ch.ExchangeDelete(name, false, false)
		ch.Close()
	}
}

// prefillWatermill publishes n messages as watermill-amqp's publisher would (cfg.Marshaler's
// amqp.Publishing, to exchange with the topic as routing key, mandatory), pipelined on a confirm
// channel in batches, so that filling the queue does not take as long as the publish benchmark
// (amqpbus's Publish of a batch pipelines the same way for the faultline side).
func (a *amqpAdmin) prefillWatermill(b *testing.B, cfg wmamqp.Config, exchange, topic string, n int, body []byte) {
	ch, err := a.conn.Channel()
	if err != nil {
		b.Fatal(err)
	}
	defer ch.Close()
	if err := ch.Confirm(false); err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	for done := 0; done < n; {
		k := min(prefillBatch, n-done)
		dcs := make([]*amqp.DeferredConfirmation, 0, k)
		for range k {
			p, err := cfg.Marshaler.Marshal(message.NewMessage(watermill.NewUUID(), body))
			if err != nil {
				b.Fatal(err)
			}
			dc, err := ch.PublishWithDeferredConfirmWithContext(ctx, exchange, topic, true, false, p)
			if err != nil {
				b.Fatal(err)
			}
			dcs = append(dcs, dc)
		}
		for _, dc := range dcs {
			if ok, err := dc.WaitContext(ctx); err != nil || !ok {
				b.Fatalf("prefill: confirm %v %v", ok, err)
			}
		}
		done += k
	}
}
