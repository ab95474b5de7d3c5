package projections_test

import (
	"context"
	"testing"
	"time"

	"github.com/rapport-crm/rapport/projections"
	"github.com/rapport-crm/rapport/readmodels/customers"
)

func TestEngineProjectsCustomers(t *testing.T) {
	e := newEnv(t)
	_, last := e.load(t, 1, 400)
	eng := e.newEngine(t, e.engineConfig(t))
	run(t, eng)
	waitFor(t, eng, last, 30*time.Second)
	q := customers.NewQueries(e.pool)
	compareModel(t, e, q)

	// Live: more events after catching up.
	_, _ = e.load(t, 2, 100)
	_, last = e.load(t, 3, 50)
	waitFor(t, eng, last, 10*time.Second)
	compareModel(t, e, q)

	rep, err := eng.Verify(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() || rep.Projectors[0].Streams == 0 {
		t.Fatalf("verify: %+v", rep)
	}
	sts, err := eng.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	st := sts[0]
	if st.Name != customers.Name || st.Generation != 1 || st.Checkpoint < last || st.State != projections.StateRunning || st.LagEvents != 0 || st.Local != "active" {
		t.Fatalf("status %+v", st)
	}
}
