package integration

import (
	"encoding/json"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/rapport-crm/rapport/domain"
)

// The integration event types. Their names are the public contract: a
// change that removes or changes a field gets a new version suffix, and
// the old one is kept until consumers have moved.
const (
	TypeCustomerRegistered     = "customer.registered.v1"
	TypeCustomerProfileUpdated = "customer.profile_updated.v1"
	TypeCustomerClassified     = "customer.classified.v1"
	TypeTeamMemberAssigned     = "customer.team_member_assigned.v1"
	TypeContactLogged          = "contact.logged.v1"
	TypeFollowUpScheduled      = "follow_up.scheduled.v1"
	TypeComplaintFiled         = "complaint.filed.v1"
	TypeComplaintAssigned      = "complaint.assigned.v1"
	TypeComplaintAcknowledged  = "complaint.acknowledged.v1"
	TypeComplaintEscalated     = "complaint.escalated.v1"
	TypeComplaintResolved      = "complaint.resolved.v1"
	TypeComplaintReopened      = "complaint.reopened.v1"
	TypeSurveyRecorded         = "survey.recorded.v1"
	TypeCustomerChurned        = "customer.churned.v1"
	TypeCustomerReactivated    = "customer.reactivated.v1"
	TypeCustomerDataErased     = "customer.data_erased.v1"
)

// The data of each integration event. Every field is deliberately chosen:
// a field is here only if it is not personal (PRODUCT.md: ids, types,
// times, classification, team, channels, severities, scores). Staff names
// (by, member, assignee, to) are the team, not the customer, and the domain
// does not count them personal. Free text never leaves — not even the
// erasure reason, which the domain keeps readable for auditors only.
type (
	CustomerRegisteredData struct {
		Segment  string `json:"segment"`
		Tier     string `json:"tier"`
		Region   string `json:"region"`
		Industry string `json:"industry"`
	}
	// CustomerProfileUpdatedData names the profile fields that changed,
	// never their values (all of them are personal).
	CustomerProfileUpdatedData struct {
		Changed []string `json:"changed"`
	}
	// CustomerClassifiedData carries only the labels that changed.
	CustomerClassifiedData struct {
		Segment  *string `json:"segment,omitempty"`
		Tier     *string `json:"tier,omitempty"`
		Region   *string `json:"region,omitempty"`
		Industry *string `json:"industry,omitempty"`
	}
	TeamMemberAssignedData struct {
		Role           string `json:"role"`
		Member         string `json:"member"`
		PreviousMember string `json:"previous_member"`
	}
	ContactLoggedData struct {
		ContactID uuid.UUID `json:"contact_id"`
		Channel   string    `json:"channel"`
		Direction string    `json:"direction"`
		By        string    `json:"by"`
	}
	FollowUpScheduledData struct {
		FollowUpID uuid.UUID `json:"follow_up_id"`
		DueAt      time.Time `json:"due_at"`
		By         string    `json:"by"`
	}
	ComplaintFiledData struct {
		ComplaintID uuid.UUID `json:"complaint_id"`
		Category    string    `json:"category"`
		Severity    string    `json:"severity"`
		Channel     string    `json:"channel"`
	}
	ComplaintAssignedData struct {
		ComplaintID uuid.UUID `json:"complaint_id"`
		Assignee    string    `json:"assignee"`
	}
	ComplaintAcknowledgedData struct {
		ComplaintID uuid.UUID `json:"complaint_id"`
		By          string    `json:"by"`
	}
	ComplaintEscalatedData struct {
		ComplaintID uuid.UUID `json:"complaint_id"`
		To          string    `json:"to"`
	}
	ComplaintResolvedData struct {
		ComplaintID uuid.UUID `json:"complaint_id"`
		By          string    `json:"by"`
	}
	ComplaintReopenedData struct {
		ComplaintID uuid.UUID `json:"complaint_id"`
	}
	SurveyRecordedData struct {
		SurveyID    uuid.UUID  `json:"survey_id"`
		CSAT        *int       `json:"csat"`
		NPS         *int       `json:"nps"`
		Channel     string     `json:"channel"`
		ComplaintID *uuid.UUID `json:"complaint_id"`
	}
	// NoData is the data of events whose only public facts are their
	// envelope (type, customer, time).
	NoData struct{}
)

// mapping turns one domain event type into its integration event.
type mapping struct {
	domainType string
	publicType string
	data       func(domain.Event) (any, error)
	dataType   reflect.Type
}

// entry builds the mapping of event type E with the typed function f; the
// domain type name comes from E itself, so it lives in one place.
func entry[E domain.Event, D any](publicType string, f func(E) D) mapping {
	var zero E
	var d D
	return mapping{
		domainType: zero.EventType(),
		publicType: publicType,
		dataType:   reflect.TypeOf(d),
		data: func(e domain.Event) (any, error) {
			if v, ok := e.(E); ok {
				return f(v), nil
			}
			// A pointer to the event maps like the event.
			if rv := reflect.ValueOf(e); rv.Kind() == reflect.Pointer && !rv.IsNil() {
				if v, ok := rv.Elem().Interface().(E); ok {
					return f(v), nil
				}
			}
			return nil, fmt.Errorf("integration: %T is not a %s", e, zero.EventType())
		},
	}
}

// Mapper maps domain events to integration events. Its table is fixed at
// construction; it is safe for concurrent use.
type Mapper struct {
	byDomain map[string]mapping
}

// NewMapper returns the mapper of every current domain event type.
func NewMapper() *Mapper {
	m := &Mapper{byDomain: map[string]mapping{}}
	for _, e := range table() {
		m.byDomain[e.domainType] = e
	}
	return m
}

// table is the mapping of each domain event. A domain event added without
// a line here fails TestEveryDomainEventIsMapped, naming it.
func table() []mapping {
	return append([]mapping{
		entry(TypeCustomerRegistered, func(e domain.CustomerRegistered) CustomerRegisteredData {
			return CustomerRegisteredData{Segment: e.Segment, Tier: e.Tier, Region: e.Region, Industry: e.Industry}
		}),
		entry(TypeCustomerProfileUpdated, func(e domain.CustomerProfileUpdated) CustomerProfileUpdatedData {
			changed := []string{}
			for _, f := range []struct {
				name string
				set  bool
			}{{"company", e.Company != nil}, {"email", e.Email != nil}, {"name", e.Name != nil}, {"phone", e.Phone != nil}, {"tags", e.Tags != nil}} {
				if f.set {
					changed = append(changed, f.name)
				}
			}
			return CustomerProfileUpdatedData{Changed: changed}
		}),
		entry(TypeCustomerClassified, func(e domain.CustomerClassified) CustomerClassifiedData {
			return CustomerClassifiedData{Segment: clone(e.Segment), Tier: clone(e.Tier), Region: clone(e.Region), Industry: clone(e.Industry)}
		}),
		entry(TypeTeamMemberAssigned, func(e domain.TeamMemberAssigned) TeamMemberAssignedData {
			return TeamMemberAssignedData{Role: string(e.Role), Member: e.Member, PreviousMember: e.PreviousMember}
		}),
		entry(TypeContactLogged, func(e domain.ContactLogged) ContactLoggedData {
			return ContactLoggedData{ContactID: e.ContactID, Channel: string(e.Channel), Direction: string(e.Direction), By: e.By}
		}),
		entry(TypeFollowUpScheduled, func(e domain.FollowUpScheduled) FollowUpScheduledData {
			return FollowUpScheduledData{FollowUpID: e.FollowUpID, DueAt: e.DueAt.UTC(), By: e.By}
		}),
		entry(TypeComplaintFiled, func(e domain.ComplaintFiled) ComplaintFiledData {
			return ComplaintFiledData{ComplaintID: e.ComplaintID, Category: e.Category, Severity: string(e.Severity), Channel: string(e.Channel)}
		}),
		entry(TypeComplaintAssigned, func(e domain.ComplaintAssigned) ComplaintAssignedData {
			return ComplaintAssignedData{ComplaintID: e.ComplaintID, Assignee: e.Assignee}
		}),
		entry(TypeComplaintAcknowledged, func(e domain.ComplaintAcknowledged) ComplaintAcknowledgedData {
			return ComplaintAcknowledgedData{ComplaintID: e.ComplaintID, By: e.By}
		}),
		entry(TypeComplaintEscalated, func(e domain.ComplaintEscalated) ComplaintEscalatedData {
			return ComplaintEscalatedData{ComplaintID: e.ComplaintID, To: e.To}
		}),
		entry(TypeComplaintResolved, func(e domain.ComplaintResolved) ComplaintResolvedData {
			return ComplaintResolvedData{ComplaintID: e.ComplaintID, By: e.By}
		}),
		entry(TypeComplaintReopened, func(e domain.ComplaintReopened) ComplaintReopenedData {
			return ComplaintReopenedData{ComplaintID: e.ComplaintID}
		}),
		entry(TypeSurveyRecorded, func(e domain.SurveyRecorded) SurveyRecordedData {
			return SurveyRecordedData{SurveyID: e.SurveyID, CSAT: clone(e.CSAT), NPS: clone(e.NPS), Channel: string(e.Channel), ComplaintID: clone(e.ComplaintID)}
		}),
		entry(TypeCustomerChurned, func(domain.CustomerChurned) NoData { return NoData{} }),
		entry(TypeCustomerReactivated, func(domain.CustomerReactivated) NoData { return NoData{} }),
		entry(TypeCustomerDataErased, func(domain.CustomerDataErased) NoData { return NoData{} }),
	}, append(valueTable(), reminderTable()...)...)
}

func clone[T any](p *T) *T {
	if p == nil {
		return nil
	}
	c := *p
	return &c
}

// UnmappedError is returned for a domain event type without a mapping: a
// programming error the tests catch, never silently an event dropped.
type UnmappedError struct{ DomainType string }

func (e *UnmappedError) Error() string {
	return fmt.Sprintf("integration: domain event %s has no integration mapping (add one to domain/integration/mapping.go)", e.DomainType)
}

// Map returns the integration event of a stored domain event.
func (m *Mapper) Map(src Source) (Event, error) {
	if src.Event == nil {
		return Event{}, fmt.Errorf("integration: no event")
	}
	domainType := src.Event.EventType()
	mp, ok := m.byDomain[domainType]
	if !ok {
		return Event{}, &UnmappedError{DomainType: domainType}
	}
	data, err := mp.data(src.Event)
	if err != nil {
		return Event{}, err
	}
	raw, err := json.Marshal(data)
	if err != nil {
		return Event{}, fmt.Errorf("integration: encode %s: %w", mp.publicType, err)
	}
	customer, revision := src.CustomerID, src.Revision
	if r, ok := valueOfReminder(src.Event); ok {
		// Not an event of the customer's stream: its customer and the
		// revision of that stream it was judged on.
		customer, revision = r.ReminderCustomer(), r.JudgedAtRevision()
	}
	return Event{
		ID:         src.EventID,
		Type:       mp.publicType,
		CustomerID: customer,
		Revision:   revision,
		Position:   src.Position,
		OccurredAt: src.Event.BusinessTime().UTC(),
		RecordedAt: src.RecordedAt.UTC(),
		Data:       raw,
	}, nil
}

// PublicType is the integration type of a domain event type.
func (m *Mapper) PublicType(domainType string) (string, bool) {
	mp, ok := m.byDomain[domainType]
	return mp.publicType, ok
}

// DomainTypes lists the domain event types the mapper maps, sorted.
func (m *Mapper) DomainTypes() []string { return slices.Sorted(maps.Keys(m.byDomain)) }

// Description documents one integration event type: its name, the domain
// event it comes from, the OpenAPI schema of its data and its data's JSON
// fields (which the OpenAPI test compares with the schema).
type Description struct {
	Type       string
	DomainType string
	Schema     string
	Fields     []string
}

// Describe lists every integration event type, sorted by type: the mapped
// domain events.
func (m *Mapper) Describe() []Description {
	var out []Description
	for _, mp := range m.byDomain {
		out = append(out, describe(mp.publicType, mp.domainType, mp.dataType))
	}
	slices.SortFunc(out, func(a, b Description) int { return strings.Compare(a.Type, b.Type) })
	return out
}

func describe(publicType, domainType string, t reflect.Type) Description {
	d := Description{Type: publicType, DomainType: domainType, Schema: SchemaName(publicType)}
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		d.Fields = append(d.Fields, name)
	}
	slices.Sort(d.Fields)
	return d
}

// SchemaName is the OpenAPI schema of an integration type's data:
// "complaint.filed.v1" → "ComplaintFiledV1Data".
func SchemaName(publicType string) string {
	var b strings.Builder
	for _, part := range strings.FieldsFunc(publicType, func(r rune) bool { return r == '.' || r == '_' }) {
		b.WriteString(strings.ToUpper(part[:1]) + part[1:])
	}
	b.WriteString("Data")
	return b.String()
}

// Types lists every integration event type, sorted: what the feed's and
// webhooks' type filters accept.
func (m *Mapper) Types() []string {
	var out []string
	for _, d := range m.Describe() {
		out = append(out, d.Type)
	}
	return out
}
