package http_test

import (
	"encoding/json"
	"maps"
	"slices"
	"testing"

	"github.com/rapport-crm/rapport/domain/integration"
	"github.com/rapport-crm/rapport/infra/http/openapitest"
)

// TestOpenAPIDocumentsEveryIntegrationEvent holds the public event schema
// to the mapping: every integration type has its data schema, with exactly
// the fields the Go data type encodes, and the type enum lists them all.
func TestOpenAPIDocumentsEveryIntegrationEvent(t *testing.T) {
	data, err := openapitest.ReadDocument()
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Components struct {
			Schemas map[string]struct {
				Type       any            `json:"type"`
				Enum       []string       `json:"enum"`
				Properties map[string]any `json:"properties"`
				XType      string         `json:"x-integration-type"`
			} `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	schemas := doc.Components.Schemas
	m := integration.NewMapper()
	for _, d := range m.Describe() {
		s, ok := schemas[d.Schema]
		if !ok {
			t.Errorf("integration event %s (from %s) has no schema %s in openapi.json", d.Type, d.DomainType, d.Schema)
			continue
		}
		if s.XType != d.Type {
			t.Errorf("schema %s: x-integration-type %q, want %q", d.Schema, s.XType, d.Type)
		}
		if got := slices.Sorted(maps.Keys(s.Properties)); !slices.Equal(got, d.Fields) && !(len(got) == 0 && len(d.Fields) == 0) {
			t.Errorf("schema %s documents %v, the event carries %v", d.Schema, got, d.Fields)
		}
	}
	if got := schemas["IntegrationEventType"].Enum; !slices.Equal(got, m.Types()) {
		t.Errorf("IntegrationEventType lists %v, the mapper %v", got, m.Types())
	}
}
