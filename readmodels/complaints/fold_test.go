package complaints

import (
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/rapport-crm/rapport/domain"
)

// TestFold: a filing starts a complaint once, later events evolve it, and
// events about no complaint or a complaint never filed change nothing.
func TestFold(t *testing.T) {
	id := uuid.New()
	at := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	filed := domain.ComplaintFiled{ComplaintID: id, Category: "billing", Severity: domain.SeverityHigh, OccurredAt: at}
	ack := domain.ComplaintAcknowledged{ComplaintID: id, By: "ann", OccurredAt: at.Add(time.Hour)}
	if got, ok := ComplaintOf(ack); !ok || got != id {
		t.Fatalf("ComplaintOf(acknowledged) = %v, %v", got, ok)
	}
	if _, ok := ComplaintOf(domain.CustomerDataErased{}); ok {
		t.Fatal("an erasure is about no complaint")
	}
	if _, ok := Fold(nil, ack); ok {
		t.Fatal("an acknowledgement of a complaint never filed changed something")
	}
	c, ok := Fold(nil, filed)
	if !ok || c.ID != id || c.Severity != domain.SeverityHigh || !c.OpenedAt.Equal(at) || c.Acknowledged {
		t.Fatalf("filed: %+v %v", c, ok)
	}
	if _, ok := Fold(&c, filed); ok {
		t.Fatal("a second filing changed something")
	}
	c, ok = Fold(&c, ack)
	if !ok || !c.Acknowledged || !c.AcknowledgedAt.Equal(at.Add(time.Hour)) {
		t.Fatalf("acknowledged: %+v %v", c, ok)
	}
}
