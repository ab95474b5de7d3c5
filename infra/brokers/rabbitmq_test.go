package brokers_test

import (
	"context"
	"net"
	"slices"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/rapport-crm/rapport/infra/app"
	"github.com/rapport-crm/rapport/infra/app/apptest"
	"github.com/rapport-crm/rapport/infra/brokers"
)

// rabbitURL is the development and CI machines' RabbitMQ (RAPPORT_RABBITMQ_URL
// to use another).
func rabbitURL(t *testing.T) string {
	url := "amqp://guest:guest@127.0.0.1:5672/"
	if v := envOr("RAPPORT_RABBITMQ_URL", ""); v != "" {
		url = v
	}
	conn, err := net.DialTimeout("tcp", hostOf(url), 2*time.Second)
	if err != nil {
		if required("RAPPORT_RABBITMQ") {
			t.Fatalf("RabbitMQ is required (RAPPORT_RABBITMQ=required) but %s is unreachable: %v", url, err)
		}
		t.Skipf("RabbitMQ is not reachable at %s (%v): start it (.ci/run does) or set RAPPORT_RABBITMQ=required to fail instead", url, err)
	}
	conn.Close()
	return url
}

// TestFeedPublishedToRabbitMQ publishes a generated history through
// watermill-amqp to a topic exchange, kills the relay halfway and starts
// another: a queue bound to every key receives every event at least once,
// routed by customer, each customer's in order.
func TestFeedPublishedToRabbitMQ(t *testing.T) {
	url := rabbitURL(t)
	m := apptest.MustOpen(t, func(c *app.Config) { c.Webhooks.Off = true })
	exchange := "rapport.test." + time.Now().Format("150405.000000")
	// A queue bound before anything is published, to every routing key.
	conn, err := amqp091.Dial(url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.ExchangeDeclare(exchange, "topic", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	q, err := ch.QueueDeclare("", false, true, true, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.QueueBind(q.Name, "#", exchange, false, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ch.ExchangeDelete(exchange, false, false) })
	deliveries, err := ch.Consume(q.Name, "", true, true, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	m.Generate(t, 12, 300)
	want := feedEvents(t, m)
	newPub := func() func() {
		p, err := brokers.NewRabbitMQPublisher(url, exchange, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = p.Close() })
		return runRelay(t, m, "rabbitmq", p)
	}
	ctx := context.Background()
	first := newPub()
	waitFor(t, 20*time.Second, "some published", func() bool {
		cp, _ := brokers.Checkpoint(ctx, m.Pool, "rabbitmq")
		return cp > 0
	})
	first()
	newPub()
	var got []consumed
	deadline := time.After(30 * time.Second)
	for distinct := map[string]bool{}; len(distinct) < len(want); {
		select {
		case d := <-deliveries:
			id, _ := d.Headers["_watermill_message_uuid"].(string)
			got = append(got, consumed{key: d.RoutingKey, msgID: id, payload: d.Body})
			distinct[id] = true
		case <-deadline:
			t.Fatalf("%d of %d events received", len(got), len(want))
		}
	}
	checkPublished(t, want, got)
	ids := make([]string, 0, len(got))
	for _, g := range got {
		ids = append(ids, g.msgID)
	}
	slices.Sort(ids)
	t.Logf("%d events published to RabbitMQ across a killed relay (%d messages, %d again)", len(want), len(got), len(got)-len(slices.Compact(ids)))
}
