package http

import (
	"errors"
	"net/http"
	"net/url"
	"slices"
	"testing"
	"unicode/utf8"

	"github.com/rapport-crm/rapport/domain"
	"github.com/rapport-crm/rapport/readmodels/readmodel"
	"github.com/rapport-crm/rapport/readmodels/work"
)

// FuzzWorkParams: whatever the query string, the work queues' common
// parameters either parse into a filter the queries can use (text within
// bounds and free of refused control characters, a known tier, a limit in
// range, a cursor of the queue's own kind) or give a 422 naming only the
// parameters they take; never a panic.
func FuzzWorkParams(f *testing.F) {
	for _, seed := range []string{
		"", "segment=retail&tier=A&region=EU&owner=bob", "tier=D", "limit=0", "limit=501", "limit=x",
		"cursor=junk", "segment=%00", "owner=a%C2%85b", "segment=%FF", "region=++", "tier=a&tier=B",
		"cursor=" + work.FollowUpsCursor.Encode(readmodel.Key{}),
	} {
		f.Add(uint8(0), seed)
	}
	kinds := []readmodel.CursorKind{work.ComplaintsCursor, work.FollowUpsCursor, work.ContactDueCursor, work.AtRiskCursor}
	named := []string{"segment", "tier", "region", "owner", "limit", "cursor"}
	f.Fuzz(func(t *testing.T, pick uint8, query string) {
		q, _ := url.ParseQuery(query)
		kind := kinds[int(pick)%len(kinds)]
		p := parseWorkParams(q, kind)
		if err := p.p.err(); err != nil {
			var problem *Problem
			if !errors.As(err, &problem) || problem.Status != http.StatusUnprocessableEntity || len(problem.Errors) == 0 {
				t.Fatalf("%q: %v is not a 422 naming the parameter", query, err)
			}
			for _, e := range problem.Errors {
				if !slices.Contains(named, e.Field) {
					t.Fatalf("%q: names %q", query, e.Field)
				}
			}
			return
		}
		for _, v := range []string{p.filter.Segment, p.filter.Region, p.filter.Owner} {
			if !utf8.ValidString(v) || domain.HasRefusedControl(v) {
				t.Fatalf("%q: accepted %q", query, v)
			}
		}
		if p.filter.Tier != "" && !domain.ValidTier(p.filter.Tier) {
			t.Fatalf("%q: accepted tier %q", query, p.filter.Tier)
		}
		if p.limit < 1 || p.limit > work.MaxLimit {
			t.Fatalf("%q: limit %d", query, p.limit)
		}
		if p.cursor != "" && !kind.Valid(p.cursor) {
			t.Fatalf("%q: accepted cursor %q of another kind", query, p.cursor)
		}
	})
}
