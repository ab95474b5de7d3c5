package brokers

import (
	"log/slog"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill-amqp/v3/pkg/amqp"
	"github.com/ThreeDotsLabs/watermill/message"
)

// NewRabbitMQPublisher returns watermill-amqp's publisher to a durable
// topic exchange: the topic (the customer id) is the routing key, so a
// consumer can bind all ("#") or partition by customer (a consistent-hash
// exchange bound behind it); messages are persistent and Publish waits for
// the broker's confirmation of each.
func NewRabbitMQPublisher(url, exchange string, logger *slog.Logger) (message.Publisher, error) {
	if exchange == "" {
		exchange = "rapport.events"
	}
	cfg := amqp.Config{
		Connection: amqp.ConnectionConfig{AmqpURI: url, Reconnect: amqp.DefaultReconnectConfig()},
		Marshaler:  amqp.DefaultMarshaler{},
		Exchange: amqp.ExchangeConfig{
			GenerateName: amqp.GenerateExchangeNameConstant(exchange),
			Type:         "topic",
			Durable:      true,
		},
		Publish: amqp.PublishConfig{
			GenerateRoutingKey: func(topic string) string { return topic },
			ConfirmDelivery:    true,
			ChannelPoolSize:    1,
		},
		TopologyBuilder: &amqp.DefaultTopologyBuilder{},
	}
	return amqp.NewPublisher(cfg, watermill.NewSlogLogger(logger))
}
