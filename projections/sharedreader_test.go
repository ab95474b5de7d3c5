package projections_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/rapport-crm/rapport/domain/eventstore"
	"github.com/rapport-crm/rapport/projections"
)

// fanAppend appends n one-event appends to streams fan-0 … fan-9.
func fanAppend(t *testing.T, e *env, n int) {
	t.Helper()
	ctx := context.Background()
	for i := range n {
		if _, err := e.store.Append(ctx, fmt.Sprintf("fan-%d", i%10), eventstore.Any,
			[]eventstore.EventData{{ID: uuid.New(), Type: "Fan", Data: []byte(`{}`)}}); err != nil {
			t.Fatal(err)
		}
	}
}

// tapLog is what one tap delivered.
type tapLog struct {
	mu       sync.Mutex
	ids      []uuid.UUID
	caughtUp int
	err      error
}

func (l *tapLog) snapshot() ([]uuid.UUID, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.ids), l.caughtUp
}

// readTap reads a tap until ctx ends; pause, when set, is called before
// each message and may sleep to play a slow consumer.
func readTap(ctx context.Context, t *testing.T, r *projections.SharedReader, from eventstore.Position, pause func(n int)) *tapLog {
	t.Helper()
	sub, err := r.SubscribeAll(ctx, eventstore.SubscribeOptions{From: from, StreamPrefixes: []string{"fan-"}})
	if err != nil {
		t.Fatal(err)
	}
	l := &tapLog{}
	go func() {
		defer sub.Close()
		last := from
		for n := 0; ; n++ {
			if pause != nil {
				pause(n)
			}
			m, err := sub.Next(ctx)
			if err != nil {
				l.mu.Lock()
				if ctx.Err() == nil {
					l.err = err
				}
				l.mu.Unlock()
				return
			}
			l.mu.Lock()
			switch m.Kind {
			case eventstore.EventAppeared:
				if m.Position <= last {
					l.err = fmt.Errorf("position %d delivered after %d", m.Position, last)
				}
				last = m.Position
				l.ids = append(l.ids, m.Event.ID)
			case eventstore.CaughtUp:
				l.caughtUp++
			}
			l.mu.Unlock()
		}
	}()
	return l
}

// logAfter is the fan- events of the log after from, in order, once at
// least n are visible (the horizon may hold the newest back a moment).
func logAfter(t *testing.T, e *env, from eventstore.Position, n int) []uuid.UUID {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ids := readLog(t, e, from)
		if len(ids) >= n || time.Now().After(deadline) {
			return ids
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func readLog(t *testing.T, e *env, from eventstore.Position) []uuid.UUID {
	t.Helper()
	events, err := e.store.ReadAll(context.Background(), eventstore.ReadAllOptions{Direction: eventstore.Forwards, From: from, Limit: 100_000})
	if err != nil {
		t.Fatal(err)
	}
	var ids []uuid.UUID
	for _, ev := range events {
		ids = append(ids, ev.ID)
	}
	return ids
}

// TestSharedReaderFansOutInOrder runs taps that start at different places
// and read at different speeds on one shared reader with a small window
// over the Postgres store, with an append that commits late among live
// ones: each tap must deliver exactly the log after its start, in order,
// with one caught-up notice; the slow tap must have been detached and the
// streams must have merged back into one.
func TestSharedReaderFansOutInOrder(t *testing.T) {
	e := newEnv(t)
	fanAppend(t, e, 300)
	logAfter(t, e, eventstore.Start, 300)
	events, err := e.store.ReadAll(context.Background(), eventstore.ReadAllOptions{Direction: eventstore.Forwards, From: eventstore.Start, Limit: 150})
	if err != nil {
		t.Fatal(err)
	}
	middle := events[149].Position

	r, err := projections.NewSharedReader(projections.SharedReaderConfig{Store: e.store, StreamPrefixes: []string{"fan-"}, Window: 50, Stall: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	defer r.Close()
	fast := readTap(ctx, t, r, eventstore.Start, nil)
	also := readTap(ctx, t, r, eventstore.Start, nil)
	// Holds the window full long enough to be detached.
	slow := readTap(ctx, t, r, eventstore.Start, func(n int) {
		if n == 10 {
			time.Sleep(time.Second)
		}
	})
	mid := readTap(ctx, t, r, middle, nil)

	// Live appends, one of them committing after later ones.
	time.Sleep(200 * time.Millisecond)
	tx, err := e.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var outcome string
	if err := tx.QueryRow(ctx, `SELECT outcome FROM eventstore.append($1, -2, $2, $3, $4::json[], $5::json[])`,
		"fan-late", []uuid.UUID{uuid.New()}, []string{"Late"}, []string{`{}`}, []*string{nil}).Scan(&outcome); err != nil || outcome != "ok" {
		t.Fatalf("append in an open transaction: %s %v", outcome, err)
	}
	fanAppend(t, e, 20)
	time.Sleep(300 * time.Millisecond)
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	fanAppend(t, e, 30)
	total := logAfter(t, e, eventstore.Start, 351)
	if len(total) != 351 {
		t.Fatalf("log holds %d events, want 351", len(total))
	}

	t.Logf("appended at %v", time.Now().Format("15:04:05.000"))
	want := map[*tapLog][]uuid.UUID{fast: total, also: total, slow: total, mid: logAfter(t, e, middle, 201)}
	names := map[*tapLog]string{fast: "fast", also: "also", slow: "slow", mid: "mid"}
	deadline := time.Now().Add(20 * time.Second)
	for l, w := range want {
		for {
			got, _ := l.snapshot()
			if len(got) >= len(w) || time.Now().After(deadline) {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	for l, w := range want {
		got, caughtUp := l.snapshot()
		l.mu.Lock()
		err := l.err
		l.mu.Unlock()
		if err != nil {
			t.Errorf("%s tap: %v", names[l], err)
		}
		if !slices.Equal(got, w) {
			t.Errorf("%s tap delivered %d events, want the %d of the log in order (first difference at %d)", names[l], len(got), len(w), firstDiff(got, w))
		}
		if caughtUp != 1 {
			t.Errorf("%s tap delivered %d caught-up notices, want 1", names[l], caughtUp)
		}
	}
	st := r.Stats()
	t.Logf("delivered at %v %+v", time.Now().Format("15:04:05.000"), st)
	if st.Detached < 1 {
		t.Errorf("stats %+v: the slow tap was never detached", st)
	}
	if st.Moves < 1 {
		t.Errorf("stats %+v: no tap ever joined an older stream", st)
	}
	for time.Now().Before(deadline) && r.Stats().Open != 1 {
		time.Sleep(20 * time.Millisecond)
	}
	if st := r.Stats(); st.Open != 1 {
		t.Errorf("stats %+v: the taps at the head did not merge into one stream", st)
	}
}

func firstDiff(a, b []uuid.UUID) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}
