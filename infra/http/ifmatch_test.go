package http_test

import (
	"net/http"
	"testing"

	"github.com/rapport-crm/rapport/infra/app/apptest"
)

// TestIfMatchListsStarAndWeakTags: RFC 9110 §13.1.1. If-Match uses the
// strong comparison: * matches any current customer, a list matches if
// any entry does, a weak tag never matches.
func TestIfMatchListsStarAndWeakTags(t *testing.T) {
	t.Parallel()
	m := apptest.MustOpen(t)
	id := register(t, m, "ifmatch@example.com") // revision 0
	path := "/v1/customers/" + id + "/contacts"
	contact := func(summary string) map[string]any {
		return map[string]any{"channel": "chat", "direction": "inbound", "summary": summary, "by": "bot"}
	}
	with := func(match, summary string) *apptest.Response {
		return m.Do(t, apptest.Request{Method: http.MethodPost, Path: path, Key: m.Keys["writer"], Body: contact(summary), Header: map[string]string{"If-Match": match}})
	}
	requireProblem(t, with(`W/"0"`, "weak"), http.StatusPreconditionFailed, "revision_mismatch", "")
	requireStatus(t, with(`*`, "star"), http.StatusCreated)        // now at 1
	requireStatus(t, with(`"7", "1"`, "list"), http.StatusCreated) // now at 2
	requireProblem(t, with(`"0", W/"2"`, "list without a strong match"), http.StatusPreconditionFailed, "revision_mismatch", "")
	requireProblem(t, with(`"3",`, "list, trailing comma"), http.StatusPreconditionFailed, "revision_mismatch", "")
	requireProblem(t, m.Do(t, apptest.Request{Method: http.MethodPost, Path: "/v1/customers/00000000-0000-4000-8000-000000000001/contacts", Key: m.Keys["writer"], Body: contact("x"), Header: map[string]string{"If-Match": "*"}}), http.StatusNotFound, "customer_not_found", "")
}
