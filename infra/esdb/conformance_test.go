package esdb_test

import (
	"testing"

	"github.com/rapport-crm/rapport/domain/eventstore"
	"github.com/rapport-crm/rapport/domain/eventstore/eventstoretest"
)

// TestConformance runs the port's conformance suite through the adapter and
// the real client, over gRPC, against the test server and (with ESDB_URL)
// a real EventStoreDB.
func TestConformance(t *testing.T) {
	forEachTarget(t, func(t *testing.T, tg target) {
		eventstoretest.Run(t, func(t *testing.T) eventstore.Store {
			return newStore(t, tg.url)
		})
	})
}
