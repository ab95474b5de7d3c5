package reminders_test

import (
	"encoding/json"
	"strings"

	"github.com/rapport-crm/rapport/infra/app/apptest"
	"github.com/rapport-crm/rapport/readmodels/feed"
)

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }

func containsAny(s string, subs ...string) bool {
	for _, x := range subs {
		if strings.Contains(s, x) {
			return true
		}
	}
	return false
}

func feedQueries(m *apptest.Main) *feed.Queries { return feed.NewQueries(m.Pool) }
