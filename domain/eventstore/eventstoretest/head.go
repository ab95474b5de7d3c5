package eventstoretest

import (
	"fmt"
	"testing"

	"github.com/google/uuid"

	"github.com/rapport-crm/rapport/domain/eventstore"
)

// The head of the global log and the event count: what projections measure
// their lag with.

// testHeadPositionFollowsAppends checks that the head is the newest event
// readers see. Other writers of a shared server may append at any time, so
// the head read backwards from End is bracketed by two HeadPosition calls
// rather than compared for equality.
func testHeadPositionFollowsAppends(t *testing.T, s eventstore.Store) {
	prefix := uniquePrefix(t)
	ctx := testContext(t)
	var last eventstore.AppendResult
	for i := range 3 {
		last = mustAppend(t, s, fmt.Sprintf("%s%d", prefix, i), eventstore.Any, newEvents(fmt.Sprint(i), 2)...)
		waitVisible(t, s, last.Position)
		before, err := s.HeadPosition(ctx)
		if err != nil {
			t.Fatalf("head position: %v", err)
		}
		if before < last.Position {
			t.Fatalf("after append %d is visible at %d, head is %d", i, last.Position, before)
		}
		top := positionBefore(t, s, eventstore.End)
		after, err := s.HeadPosition(ctx)
		if err != nil {
			t.Fatalf("head position: %v", err)
		}
		if top < before || top > after {
			t.Fatalf("the newest event ReadAll returns is at %d, outside the heads %d … %d read around it", top, before, after)
		}
		if after < before {
			t.Fatalf("head went back from %d to %d", before, after)
		}
	}
}

// testSubscriptionFromHeadDeliversOnlyLaterEvents checks what a caught-up
// projection relies on: a checkpoint at the head has nothing left to
// project, and what comes next is exactly what is appended afterwards.
func testSubscriptionFromHeadDeliversOnlyLaterEvents(t *testing.T, s eventstore.Store) {
	prefix := uniquePrefix(t)
	ctx := testContext(t)
	early := mustAppend(t, s, prefix+"s", eventstore.NoStream, newEvents("early", 3)...)
	waitVisible(t, s, early.Position)
	head, err := s.HeadPosition(ctx)
	if err != nil {
		t.Fatalf("head position: %v", err)
	}
	late := newEvents("late", 4)
	mustAppend(t, s, prefix+"s", eventstore.Exact(early.Revision), late[:2]...)
	mustAppend(t, s, prefix+"t", eventstore.NoStream, late[2:]...)
	sub := Collect(t, s, eventstore.SubscribeOptions{From: head, StreamPrefixes: []string{prefix}})
	msgs := sub.WaitFor("the later events", func(msgs []eventstore.Message) bool { return len(EventsOf(msgs, prefix)) >= len(late) })
	checkMessages(t, msgs, head)
	if got := ids(EventsOf(msgs, prefix)); !equalIDs(got, dataIDs(late)) {
		t.Fatalf("subscribed from the head %d: got %v, want only the later events %v", head, got, dataIDs(late))
	}
}

// testCountAfter checks the lag count of stores that implement
// eventstore.Counter: exact for the test's own prefixes, strictly after the
// position, with prefixes matched literally.
func testCountAfter(t *testing.T, s eventstore.Store) {
	counter, ok := s.(eventstore.Counter)
	if !ok {
		t.Skipf("%T does not implement eventstore.Counter (optional)", s)
	}
	prefix := uniquePrefix(t)
	ctx := testContext(t)
	count := func(after eventstore.Position, prefixes ...string) int64 {
		t.Helper()
		n, err := counter.CountAfter(ctx, after, prefixes)
		if err != nil {
			t.Fatalf("count after %d with prefixes %q: %v", after, prefixes, err)
		}
		return n
	}
	start := positionBefore(t, s, eventstore.End)
	// Streams whose names hold the characters that SQL LIKE and globs
	// treat as patterns, beside streams those patterns would match.
	streams := []struct {
		name string
		n    int
	}{
		{prefix + "a-1", 3},
		{prefix + "a-2", 2},
		{prefix + "b_1", 1},
		{prefix + "bx1", 4},
		{prefix + "c%1", 2},
		{prefix + "cyy1", 5},
		{prefix + `d\1`, 1},
	}
	var results []eventstore.AppendResult
	total := 0
	for _, st := range streams {
		results = append(results, mustAppend(t, s, st.name, eventstore.NoStream, newEvents(st.name, st.n)...))
		total += st.n
	}
	lastPos := results[len(results)-1].Position
	waitVisible(t, s, lastPos)

	cases := []struct {
		prefixes []string
		want     int64
	}{
		{[]string{prefix}, int64(total)},
		{[]string{prefix + "a-"}, 5},
		{[]string{prefix + "a-1"}, 3},
		{[]string{prefix + "a-", prefix + "cyy"}, 10},
		{[]string{prefix + "a-", prefix + "a-1"}, 5}, // overlapping prefixes count an event once
		{[]string{prefix + "b_"}, 1},
		{[]string{prefix + "c%"}, 2},
		{[]string{prefix + `d\`}, 1},
		{[]string{prefix + "none"}, 0},
	}
	for _, c := range cases {
		if got := count(start, c.prefixes...); got != c.want {
			t.Errorf("count after the start with prefixes %q = %d, want %d", c.prefixes, got, c.want)
		}
	}
	// Strictly after: the events at and before the position are not counted.
	if got, want := count(results[1].Position, prefix), int64(total-5); got != want {
		t.Errorf("count after the second append = %d, want %d", got, want)
	}
	if got := count(lastPos, prefix); got != 0 {
		t.Errorf("count after the last event = %d, want 0", got)
	}
	// No prefix counts every stream: at least ours (a shared server has
	// others).
	if got := count(start); got < int64(total) {
		t.Errorf("count after the start of every stream = %d, want at least %d", got, total)
	}
	// The count agrees with what a reader of the global log sees.
	if got, want := count(start, prefix), int64(len(readOwnGlobalLog(t, s, start, prefix, total))); got != want {
		t.Errorf("count = %d but the global log holds %d of our events", got, want)
	}
	// A later append raises the count after the head by its size.
	head, err := s.HeadPosition(ctx)
	if err != nil {
		t.Fatalf("head position: %v", err)
	}
	more := mustAppend(t, s, prefix+"a-1", eventstore.Exact(2), newEvent("more"), eventstore.EventData{ID: uuid.New(), Type: "More", Data: []byte(`{}`)})
	waitVisible(t, s, more.Position)
	if got := count(head, prefix); got != 2 {
		t.Errorf("count after the head %d once 2 more events are in = %d, want 2", head, got)
	}
}
