package amqpbus

// RetryTTLForTest exposes retryTTL to the external tests.
var RetryTTLForTest = retryTTL

// Reconnects returns how many times b reconnected.
func (b *Bus) Reconnects() int64 { return b.reconnects.Load() }
