package app

import (
	"net/http"
	"time"

	"github.com/rapport-crm/rapport/infra/console"
	rhttp "github.com/rapport-crm/rapport/infra/http"
)

// ConsoleSettings configure the web console's sessions (zero values: the
// console's defaults, 30 minutes idle and 8 hours in all).
type ConsoleSettings struct {
	// SecureCookies marks the session cookies Secure: set it when TLS ends
	// at a proxy in front of the service (requests over TLS get them
	// anyway).
	SecureCookies   bool
	SessionIdle     time.Duration
	SessionLifetime time.Duration
	// Sections and Panels are the pages and parts other features add
	// (goals, value and loyalty, webhooks): see console.Config.
	Sections []console.Section
	Panels   []console.Panel
}

// consoleHandler builds the console over the same query objects the API
// gets, made by the same constructors with the same settings, so a page
// and the API answer a query alike.
func (m *Main) consoleHandler(api rhttp.Config) (http.Handler, error) {
	s := m.cfg.Console
	return console.New(console.Config{
		Sessions:        console.NewSessionStore(m.Pool),
		Keys:            api.Keys,
		Analytics:       api.Analytics,
		Work:            api.Work,
		Customers:       api.Customers,
		Contacts:        api.Contacts,
		Complaints:      api.Complaints,
		Surveys:         api.Surveys,
		History:         api.History,
		Auditor:         api.Auditor,
		Projections:     api.Projections,
		Goals:           api.Goals,
		Value:           api.Value,
		Webhooks:        api.Webhooks,
		SecureCookies:   s.SecureCookies,
		SessionIdle:     s.SessionIdle,
		SessionLifetime: s.SessionLifetime,
		Sections:        s.Sections,
		Panels:          s.Panels,
		Logger:          m.cfg.Logger,
	})
}
