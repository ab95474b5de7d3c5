package eventstoretest

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/rapport-crm/rapport/domain/eventstore"
)

// Reads of one stream and of the global log.

func testReadStreamForwards(t *testing.T, s eventstore.Store) {
	stream := uniquePrefix(t) + "s"
	written := newEvents("e", 10)
	mustAppend(t, s, stream, eventstore.NoStream, written...)
	ctx := testContext(t)
	cases := []struct {
		from       uint64
		limit      int
		wantFirst  uint64
		wantLength int
	}{
		{0, 3, 0, 3},
		{4, 3, 4, 3},
		{8, 5, 8, 2},
		{0, 100, 0, 10},
		{10, 5, 0, 0},
	}
	for _, c := range cases {
		got, err := s.ReadStream(ctx, stream, eventstore.ReadStreamOptions{Direction: eventstore.Forwards, From: c.from, Limit: c.limit})
		if err != nil {
			t.Fatalf("forwards from %d limit %d: %v", c.from, c.limit, err)
		}
		if len(got) != c.wantLength {
			t.Fatalf("forwards from %d limit %d: %d events, want %d", c.from, c.limit, len(got), c.wantLength)
		}
		for i, e := range got {
			if e.Revision != c.wantFirst+uint64(i) || e.ID != written[e.Revision].ID {
				t.Fatalf("forwards from %d: event %d is revision %d id %s", c.from, i, e.Revision, e.ID)
			}
		}
	}
}

func testReadStreamBackwards(t *testing.T, s eventstore.Store) {
	stream := uniquePrefix(t) + "s"
	written := newEvents("e", 10)
	mustAppend(t, s, stream, eventstore.NoStream, written...)
	ctx := testContext(t)
	cases := []struct {
		from       uint64
		limit      int
		wantFirst  uint64
		wantLength int
	}{
		{eventstore.LastRevision, 3, 9, 3},
		{eventstore.LastRevision, 100, 9, 10},
		{5, 2, 5, 2},
		{1, 5, 1, 2},
		{0, 5, 0, 1},
	}
	for _, c := range cases {
		got, err := s.ReadStream(ctx, stream, eventstore.ReadStreamOptions{Direction: eventstore.Backwards, From: c.from, Limit: c.limit})
		if err != nil {
			t.Fatalf("backwards from %d limit %d: %v", c.from, c.limit, err)
		}
		if len(got) != c.wantLength {
			t.Fatalf("backwards from %d limit %d: %d events, want %d", c.from, c.limit, len(got), c.wantLength)
		}
		for i, e := range got {
			if e.Revision != c.wantFirst-uint64(i) || e.ID != written[e.Revision].ID {
				t.Fatalf("backwards from %d: event %d is revision %d id %s", c.from, i, e.Revision, e.ID)
			}
		}
	}
}

func testReadStreamNotFound(t *testing.T, s eventstore.Store) {
	stream := uniquePrefix(t) + "never-written"
	for _, dir := range []eventstore.Direction{eventstore.Forwards, eventstore.Backwards} {
		_, err := s.ReadStream(testContext(t), stream, eventstore.ReadStreamOptions{Direction: dir, From: 0, Limit: 10})
		if !errors.Is(err, eventstore.ErrStreamNotFound) {
			t.Fatalf("direction %d: got %v, want ErrStreamNotFound", dir, err)
		}
	}
}

func testReadAllBothDirections(t *testing.T, s eventstore.Store) {
	prefix := uniquePrefix(t)
	var positions []eventstore.Position
	var written []uuid.UUID
	for i := range 6 {
		e := newEvent(fmt.Sprint(i))
		res := mustAppend(t, s, fmt.Sprintf("%s%d", prefix, i%2), eventstore.Any, e)
		positions = append(positions, res.Position)
		written = append(written, e.ID)
	}
	ctx := testContext(t)
	waitVisible(t, s, positions[5])
	// Forwards is exclusive of From.
	got, err := s.ReadAll(ctx, eventstore.ReadAllOptions{Direction: eventstore.Forwards, From: positions[1], Limit: 3})
	if err != nil {
		t.Fatal(err)
	}
	if !equalIDs(ids(got), written[2:5]) {
		t.Fatalf("forwards after event 1, limit 3: got %v, want %v", ids(got), written[2:5])
	}
	// Backwards is exclusive of From too.
	got, err = s.ReadAll(ctx, eventstore.ReadAllOptions{Direction: eventstore.Backwards, From: positions[4], Limit: 2})
	if err != nil {
		t.Fatal(err)
	}
	if !equalIDs(ids(got), []uuid.UUID{written[3], written[2]}) {
		t.Fatalf("backwards before event 4, limit 2: got %v, want %v", ids(got), []uuid.UUID{written[3], written[2]})
	}
	// Backwards from End starts at the head and comes down to ours (other
	// writers of a shared server may have written since).
	got, err = s.ReadAll(ctx, eventstore.ReadAllOptions{Direction: eventstore.Backwards, From: eventstore.End, Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	var ownBackwards []eventstore.RecordedEvent
	for i, e := range got {
		if i > 0 && e.Position >= got[i-1].Position {
			t.Fatalf("backwards from End: position %d after %d", e.Position, got[i-1].Position)
		}
		if strings.HasPrefix(e.Stream, prefix) {
			ownBackwards = append(ownBackwards, e)
		}
	}
	if len(ownBackwards) == 0 || ownBackwards[0].ID != written[5] {
		t.Fatalf("backwards from End: our newest event is %v, want the last event written %s", ids(ownBackwards), written[5])
	}
	// Forwards from Start reaches our events, in order, eventually.
	own := readOwnGlobalLog(t, s, eventstore.Start, prefix, 6)
	if !equalIDs(ids(own), written) {
		t.Fatalf("forwards from Start: our events %v, want %v", ids(own), written)
	}
	// Nothing of ours after the last one.
	got, err = s.ReadAll(ctx, eventstore.ReadAllOptions{Direction: eventstore.Forwards, From: positions[5], Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range got {
		if strings.HasPrefix(e.Stream, prefix) {
			t.Fatalf("forwards after the last event returned our event %s", e.ID)
		}
	}
	// Invalid limits are refused rather than read as "everything".
	if _, err := s.ReadAll(ctx, eventstore.ReadAllOptions{From: eventstore.Start, Limit: 0}); err == nil {
		t.Fatal("ReadAll with limit 0 succeeded")
	}
}

func testGlobalOrder(t *testing.T, s eventstore.Store) {
	prefix := uniquePrefix(t)
	var written []uuid.UUID
	var results []eventstore.AppendResult
	for i := range 12 {
		events := newEvents(fmt.Sprint(i), 1+i%3)
		res := mustAppend(t, s, fmt.Sprintf("%s%d", prefix, i%4), eventstore.Any, events...)
		if len(results) > 0 && res.Position <= results[len(results)-1].Position {
			t.Fatalf("append %d got position %d, not after %d", i, res.Position, results[len(results)-1].Position)
		}
		results = append(results, res)
		written = append(written, dataIDs(events)...)
	}
	waitVisible(t, s, results[len(results)-1].Position)
	start := positionBefore(t, s, results[0].Position) // append 0 wrote one event
	own := readOwnGlobalLog(t, s, start, prefix, len(written))
	if !equalIDs(ids(own), written) {
		t.Fatalf("global log order %v, want append order %v", ids(own), written)
	}
	last := 0
	for _, res := range results {
		for last < len(own) && own[last].Position != res.Position {
			last++
		}
		if last == len(own) {
			t.Fatalf("append result position %d is not an event position in the global log", res.Position)
		}
	}
}
