package amqpbus_test

import (
	"testing"
	"time"

	"github.com/faultline-dev/faultline/messaging"
	"github.com/faultline-dev/faultline/messaging/amqpbus"
	"github.com/faultline-dev/faultline/messaging/messagingtest"
)

// TestConformance runs the messaging conformance suite against the machine's RabbitMQ. Every
// client of the run shares one fresh exchange and queue prefix; the queues are deleted at the end.
func TestConformance(t *testing.T) {
	e := newEnv(t)
	messagingtest.Run(t, messagingtest.Harness{
		Open: func(t *testing.T) messaging.Broker {
			return e.open(func(c *amqpbus.Config) { c.ReconnectBackoff = 50 * time.Millisecond })
		},
		Drop:    func(t *testing.T, b messaging.Broker) { b.(*amqpbus.Bus).DropConnection() },
		AckWait: time.Second,
	})
}
