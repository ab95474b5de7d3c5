package webhooks_test

import (
	"github.com/rapport-crm/rapport/infra/app/apptest"
	"github.com/rapport-crm/rapport/readmodels/feed"
)

func feedQueries(m *apptest.Main) *feed.Queries { return feed.NewQueries(m.Pool) }
