// Package brokers publishes the change feed's integration events to
// message brokers through Watermill publishers: RabbitMQ (watermill-amqp)
// and NATS JetStream (a small Watermill publisher over nats.go, since no
// Watermill NATS adapter is available to this module).
//
// A Relay reads the feed (readmodels.feed) after its checkpoint, in log
// order, publishes each event with its customer id as the topic (the
// routing key on RabbitMQ, the last subject token on NATS: "keyed by
// customer", so a consumer partitioning by key keeps each customer's
// order) and the event id as the message id, waits for the broker's
// confirmation, and only then moves its checkpoint (rapport.feed_relays):
// at least once. NATS JetStream drops the redelivered copies of a crash
// within its duplicate window (Nats-Msg-Id). One process publishes per
// relay at a time (a session advisory lock).
package brokers
