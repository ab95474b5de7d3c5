package app

import "github.com/rapport-crm/rapport/infra/postgres"

// embeddedEvents says whether events live in the service's own PostgreSQL
// (the embedded store): then the writes a command makes before its append
// (the email reservation, a new data key) need not wait for their WAL
// flush, because the append's flush makes them durable first.
func (m *Main) embeddedEvents() bool { return m.cfg.EventStore == "postgres" }

// emailIndex is the email registry of the command side.
func (m *Main) emailIndex() *postgres.EmailRegistry {
	emails := postgres.NewEmailIndex(m.Pool, m.Keyring.IndexSecret())
	if m.embeddedEvents() {
		emails = emails.FlushedByAppends()
	}
	return emails
}
