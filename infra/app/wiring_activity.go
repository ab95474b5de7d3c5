package app

import (
	"context"

	"github.com/google/uuid"

	rhttp "github.com/rapport-crm/rapport/infra/http"
	"github.com/rapport-crm/rapport/projections"
	"github.com/rapport-crm/rapport/readmodels/analytics"
	"github.com/rapport-crm/rapport/readmodels/complaints"
	"github.com/rapport-crm/rapport/readmodels/contacts"
	"github.com/rapport-crm/rapport/readmodels/lifecycle"
	"github.com/rapport-crm/rapport/readmodels/surveys"
)

// activityProjectors are the projectors of contacts, follow-ups,
// complaints, surveys and customer lifecycles. SLA targets are not baked
// into any of them (they are judged at query time), so settings do not
// change what they build.
func activityProjectors(ReadModelSettings) ([]projections.Projector, error) {
	return []projections.Projector{
		contacts.NewProjector(),
		complaints.NewProjector(),
		surveys.NewProjector(),
		lifecycle.NewProjector(),
	}, nil
}

// activityQueries wires their queries into the HTTP server.
func (m *Main) activityQueries() rhttp.ActivityQueries {
	return activity{
		contacts:   contacts.NewQueries(m.Pool),
		complaints: complaints.NewQueries(m.Pool, m.cfg.ReadModels.SLA),
		surveys:    surveys.NewQueries(m.Pool),
		lifecycle:  lifecycle.NewQueries(m.Pool),
	}
}

// analyticsQueries wires the analysts' figures into the HTTP server.
func (m *Main) analyticsQueries() rhttp.AnalyticsQueries {
	return analytics.NewQueries(m.Pool, m.cfg.ReadModels.SLA)
}

// activity implements rhttp.ActivityQueries over the read models.
type activity struct {
	contacts   *contacts.Queries
	complaints *complaints.Queries
	surveys    *surveys.Queries
	lifecycle  *lifecycle.Queries
}

func (a activity) CustomerKnown(ctx context.Context, id uuid.UUID) (bool, error) {
	return a.lifecycle.Known(ctx, id)
}

func (a activity) Contacts(ctx context.Context, id uuid.UUID, after *contacts.Key, limit int) ([]contacts.Contact, error) {
	return a.contacts.Contacts(ctx, id, after, limit)
}

func (a activity) Contact(ctx context.Context, id, contactID uuid.UUID) (contacts.Contact, error) {
	return a.contacts.Contact(ctx, id, contactID)
}

func (a activity) FollowUps(ctx context.Context, id uuid.UUID, after *contacts.Key, limit int) ([]contacts.FollowUp, error) {
	return a.contacts.FollowUps(ctx, id, after, limit)
}

func (a activity) FollowUp(ctx context.Context, id, followUpID uuid.UUID) (contacts.FollowUp, error) {
	return a.contacts.FollowUp(ctx, id, followUpID)
}

func (a activity) Complaints(ctx context.Context, id uuid.UUID, after *complaints.Key, limit int) ([]complaints.Complaint, error) {
	return a.complaints.Complaints(ctx, id, after, limit)
}

func (a activity) Complaint(ctx context.Context, id, complaintID uuid.UUID) (complaints.Complaint, error) {
	return a.complaints.Complaint(ctx, id, complaintID)
}

func (a activity) Surveys(ctx context.Context, id uuid.UUID, after *surveys.Key, limit int) ([]surveys.Survey, error) {
	return a.surveys.Surveys(ctx, id, after, limit)
}

func (a activity) Survey(ctx context.Context, id, surveyID uuid.UUID) (surveys.Survey, error) {
	return a.surveys.Survey(ctx, id, surveyID)
}
