package esdbtest_test

import (
	"math"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/EventStore/EventStore-Client-Go/v4/esdb"

	"github.com/rapport-crm/rapport/infra/esdb/esdbtest"
)

func TestReadStream(t *testing.T) {
	t.Parallel()
	srv := esdbtest.Start(t)
	c := newClient(t, srv)
	stream := streamName(t)
	before := time.Now()
	written := events(5, "Read")
	appendOK(t, c, stream, esdb.NoStream{}, written[:2]...)
	appendOK(t, c, stream, esdb.Revision(1), written[2:]...)

	read := func(dir esdb.Direction, from esdb.StreamPosition, count uint64) []*esdb.ResolvedEvent {
		t.Helper()
		evs, err := collect(c.ReadStream(ctxT(t), stream, esdb.ReadStreamOptions{Direction: dir, From: from}, count))
		if err != nil {
			t.Fatal(err)
		}
		return evs
	}
	revisions := func(evs []*esdb.ResolvedEvent) []uint64 {
		out := []uint64{}
		for _, e := range evs {
			out = append(out, e.Event.EventNumber)
		}
		return out
	}
	for name, tc := range map[string]struct {
		got  []*esdb.ResolvedEvent
		want []uint64
	}{
		"forwards from start":       {read(esdb.Forwards, esdb.Start{}, math.MaxUint64), []uint64{0, 1, 2, 3, 4}},
		"forwards from 2 inclusive": {read(esdb.Forwards, esdb.Revision(2), 2), []uint64{2, 3}},
		"forwards past the end":     {read(esdb.Forwards, esdb.Revision(9), 2), []uint64{}},
		"backwards from end":        {read(esdb.Backwards, esdb.End{}, 3), []uint64{4, 3, 2}},
		"backwards from 1":          {read(esdb.Backwards, esdb.Revision(1), 10), []uint64{1, 0}},
		"backwards from beyond":     {read(esdb.Backwards, esdb.Revision(99), 1), []uint64{4}},
		"backwards from start":      {read(esdb.Backwards, esdb.Start{}, 10), []uint64{0}},
	} {
		if got := revisions(tc.got); !equalUints(got, tc.want) {
			t.Errorf("%s: revisions %v, want %v", name, got, tc.want)
		}
	}

	evs := read(esdb.Forwards, esdb.Start{}, 10)
	if !equalIDs(resolvedIDs(evs), ids(written)) {
		t.Fatal("ids do not round-trip")
	}
	var lastPos uint64
	for _, re := range evs {
		e := re.Event
		if len(e.SystemMetadata) != 3 || e.SystemMetadata["type"] != "Read" || e.SystemMetadata["content-type"] != "application/json" {
			t.Fatalf("system metadata %v, want exactly type, content-type, created", e.SystemMetadata)
		}
		if _, err := strconv.ParseInt(e.SystemMetadata["created"], 10, 64); err != nil {
			t.Fatalf("created %q is not decimal ticks", e.SystemMetadata["created"])
		}
		if e.CreatedDate.Before(before.Add(-time.Microsecond)) || e.CreatedDate.After(time.Now()) {
			t.Fatalf("created %v is not the append time", e.CreatedDate)
		}
		if string(e.Data) != `{"n":1}` || string(e.UserMetadata) != `{"m":true}` {
			t.Fatalf("data %q / metadata %q do not round-trip", e.Data, e.UserMetadata)
		}
		if e.Position.Commit != e.Position.Prepare || e.Position.Commit <= lastPos || re.Commit == nil || *re.Commit != e.Position.Commit {
			t.Fatalf("position %+v (commit %v) after %d", e.Position, re.Commit, lastPos)
		}
		lastPos = e.Position.Commit
	}

	_, err := collect(c.ReadStream(ctxT(t), streamName(t), esdb.ReadStreamOptions{}, 10))
	if code(err) != esdb.ErrorCodeResourceNotFound {
		t.Fatalf("missing stream: err = %v, want ResourceNotFound", err)
	}
}

func equalUints(a, b []uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestReadAll(t *testing.T) {
	t.Parallel()
	srv := esdbtest.Start(t)
	c := newClient(t, srv)

	all, err := collect(c.ReadAll(ctxT(t), esdb.ReadAllOptions{}, math.MaxUint64))
	if err != nil {
		t.Fatal(err)
	}
	if len(all) == 0 {
		t.Fatal("a fresh server has no system events in $all")
	}
	for _, e := range all {
		if !strings.HasPrefix(e.Event.StreamID, "$") || !strings.HasPrefix(e.Event.EventType, "$") {
			t.Fatalf("unexpected seeded event %s/%s", e.Event.StreamID, e.Event.EventType)
		}
		if e.Event.StreamID == "$epoch-information" {
			t.Fatal("the default $all filter hides $epoch-information")
		}
	}

	stream := streamName(t)
	written := events(6, "All")
	for _, e := range written {
		appendOK(t, c, stream, esdb.Any{}, e)
	}
	all, err = collect(c.ReadAll(ctxT(t), esdb.ReadAllOptions{}, math.MaxUint64))
	if err != nil {
		t.Fatal(err)
	}
	mine := all[len(all)-6:]
	if !equalIDs(resolvedIDs(mine), ids(written)) {
		t.Fatal("$all does not end with the appended events in order")
	}
	for i := 1; i < len(all); i++ {
		prev, cur := all[i-1].Event.Position.Commit, all[i].Event.Position.Commit
		if cur <= prev+1 {
			t.Fatalf("positions %d then %d: want strictly increasing and sparse", prev, cur)
		}
	}

	p := mine[2].Event.Position
	fwd, err := collect(c.ReadAll(ctxT(t), esdb.ReadAllOptions{From: p}, 2))
	if err != nil || len(fwd) != 2 || fwd[0].Event.EventID != written[2].EventID {
		t.Fatalf("forwards from P must include P: %v %v", resolvedIDs(fwd), err)
	}
	back, err := collect(c.ReadAll(ctxT(t), esdb.ReadAllOptions{From: p, Direction: esdb.Backwards}, 2))
	if err != nil || len(back) != 2 || back[0].Event.EventID != written[1].EventID || back[1].Event.EventID != written[0].EventID {
		t.Fatalf("backwards from P must exclude P: %v %v", resolvedIDs(back), err)
	}
	end, err := collect(c.ReadAll(ctxT(t), esdb.ReadAllOptions{From: esdb.End{}, Direction: esdb.Backwards}, 1))
	if err != nil || len(end) != 1 || end[0].Event.EventID != written[5].EventID {
		t.Fatalf("backwards from End: %v %v", resolvedIDs(end), err)
	}
	none, err := collect(c.ReadAll(ctxT(t), esdb.ReadAllOptions{From: esdb.End{}}, 10))
	if err != nil || len(none) != 0 {
		t.Fatalf("forwards from End: %v %v", resolvedIDs(none), err)
	}
}
