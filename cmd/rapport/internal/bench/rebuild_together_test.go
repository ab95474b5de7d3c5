package bench

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"testing"

	"github.com/rapport-crm/rapport/infra/app/apptest"
)

// TestRebuildTogether: --rebuild-together rebuilds every projector at once
// and reports the log's events with their rate and the projector-events
// with theirs.
func TestRebuildTogether(t *testing.T) {
	m := apptest.MustOpen(t)
	for i := range 5 {
		if resp := m.Post(t, "/v1/customers", map[string]any{"name": fmt.Sprint("together ", i), "phone": fmt.Sprintf("+1 555 010%d", i)}); resp.Status != http.StatusCreated {
			t.Fatalf("register: %d", resp.Status)
		}
	}
	m.WaitForReadModels(t)
	ctx := context.Background()
	statuses, err := m.Engine.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	r := &runner{cfg: Config{Engine: m.Engine, Pool: m.Pool, RebuildTogether: true, Progress: io.Discard}}
	res, err := r.rebuild(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Together || len(res.Projectors) != len(statuses) {
		t.Fatalf("rebuilt %d of %d projectors together (%+v)", len(res.Projectors), len(statuses), res)
	}
	if res.LogEvents < 5 || res.Events < res.LogEvents || res.LogEventsPerSecond <= 0 || res.EventsPerSecond < res.LogEventsPerSecond {
		t.Fatalf("figures: %+v", res)
	}
	for _, p := range res.Projectors {
		if p.Generation < 2 {
			t.Errorf("%s serves generation %d after the rebuild", p.Name, p.Generation)
		}
	}
}
