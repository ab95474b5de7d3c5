package domain

import (
	"strings"
	"testing"

	"github.com/google/uuid"
)

func TestStreamName(t *testing.T) {
	name := StreamName(customerID)
	if name != "customer-6f1c2a9e-2f55-4c0e-9d4b-0a8c5d1e7b01" {
		t.Fatalf("stream %q", name)
	}
	id, ok := CustomerIDFromStream(name)
	if !ok || id != customerID {
		t.Fatalf("round trip: %v %v", id, ok)
	}
}

func TestCustomerIDFromStreamRejectsOtherForms(t *testing.T) {
	for _, stream := range []string{
		"",
		"customer-",
		customerID.String(),
		"account-" + customerID.String(),
		"customer-" + strings.ToUpper(customerID.String()),
		"customer-{" + customerID.String() + "}",
		"customer-" + strings.ReplaceAll(customerID.String(), "-", ""),
		"customer-urn:uuid:" + customerID.String(),
		"customer-" + uuid.Nil.String(),
		"customer-" + customerID.String() + "-x",
	} {
		if id, ok := CustomerIDFromStream(stream); ok {
			t.Errorf("accepted %q as %v", stream, id)
		}
	}
}
