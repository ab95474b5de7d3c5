package http

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rapport-crm/rapport/domain/eventstore"
	"github.com/rapport-crm/rapport/domain/integration"
)

// FeedQueries reads the change feed (readmodels/feed).
type FeedQueries interface {
	// After returns up to limit integration events after position, only
	// of types when not empty, in log order.
	After(ctx context.Context, after uint64, types []string, limit int) ([]integration.Event, error)
	// Head is the newest position in the feed.
	Head(ctx context.Context) (uint64, error)
	// Reads names the projectors the queries read (min_position).
	Reads() []string
}

func (s *Server) feedRoutes() []Route {
	if s.cfg.Feed == nil {
		return nil
	}
	return []Route{{Name: "getFeed", Method: http.MethodGet, Path: "/v1/feed", Roles: []Role{RoleWriter, RoleAnalyst}, handler: s.feed}}
}

// feedRequest is a parsed GET /v1/feed.
type feedRequest struct {
	after uint64
	types []string
	limit int
}

// parseFeedRequest reads after (or, for a stream, Last-Event-ID, which an
// EventSource sends when it reconnects and which wins), types and limit.
func parseFeedRequest(r *http.Request, known []string) (feedRequest, error) {
	q := r.URL.Query()
	var p fieldParser
	var fr feedRequest
	parsePosition := func(field, raw string) {
		if raw == "" {
			return
		}
		v, err := strconv.ParseUint(raw, 10, 63)
		if err != nil {
			p.fail(field, "must be a position from the feed (a whole number)")
			return
		}
		fr.after = v
	}
	parsePosition("after", q.Get("after"))
	parsePosition("Last-Event-ID", strings.TrimSpace(r.Header.Get("Last-Event-ID")))
	for _, raw := range q["types"] {
		for _, t := range strings.Split(raw, ",") {
			t = strings.TrimSpace(t)
			if t == "" {
				continue
			}
			if !slices.Contains(known, t) {
				p.fail("types", "unknown integration event type %q", t)
				continue
			}
			if !slices.Contains(fr.types, t) {
				fr.types = append(fr.types, t)
			}
		}
	}
	fr.limit = p.int("limit", q.Get("limit"), 1, 1000, 100)
	return fr, p.err()
}

// feed answers the change feed: a JSON page by default; with Accept:
// application/x-ndjson every event after the position up to the feed's
// head, one per line; with Accept: text/event-stream a live stream of
// Server-Sent Events whose id is the position, so that a reconnecting
// EventSource (Last-Event-ID) resumes with nothing lost or repeated.
func (s *Server) feed(w http.ResponseWriter, r *http.Request) error {
	fr, err := parseFeedRequest(r, integration.NewMapper().Types())
	if err != nil {
		return err
	}
	if err := s.awaitPosition(r, s.cfg.Feed.Reads()...); err != nil {
		return err
	}
	accept := r.Header.Get("Accept")
	switch {
	case strings.Contains(accept, "text/event-stream"):
		return s.feedEvents(w, r, fr)
	case wantsNDJSON(r):
		return s.feedNDJSON(w, r, fr)
	}
	items, err := s.cfg.Feed.After(r.Context(), fr.after, fr.types, fr.limit)
	if err != nil {
		return err
	}
	next := fr.after
	if len(items) > 0 {
		next = items[len(items)-1].Position
	}
	if items == nil {
		items = []integration.Event{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"items": items, "next_after": next, "has_more": len(items) == fr.limit})
	return nil
}

// feedNDJSON streams every matching event up to the head the feed had
// when the request came, in constant memory.
func (s *Server) feedNDJSON(w http.ResponseWriter, r *http.Request, fr feedRequest) error {
	ctx := r.Context()
	head, err := s.cfg.Feed.Head(ctx)
	if err != nil {
		return err
	}
	rc := http.NewResponseController(w)
	enc := json.NewEncoder(w)
	started := false
	for cursor := fr.after; cursor < head; {
		items, err := s.cfg.Feed.After(ctx, cursor, fr.types, 1000)
		if err != nil {
			if !started {
				return err
			}
			s.logger.ErrorContext(ctx, "http: feed stream failed", "after", cursor, "err", err)
			panic(http.ErrAbortHandler)
		}
		if !started {
			w.Header().Set("Content-Type", "application/x-ndjson")
			w.WriteHeader(http.StatusOK)
			started = true
		}
		for _, e := range items {
			if e.Position > head {
				cursor = head
				break
			}
			if err := enc.Encode(e); err != nil {
				return nil // the client went away
			}
			cursor = e.Position
		}
		if len(items) < 1000 {
			break
		}
		_ = rc.SetWriteDeadline(time.Now().Add(s.cfg.WriteTimeout))
		_ = rc.Flush()
	}
	if !started {
		w.Header().Set("Content-Type", "application/x-ndjson")
		w.WriteHeader(http.StatusOK)
	}
	return nil
}

// sseHeartbeat is how often an idle event stream sends a comment, so that
// proxies keep it open and a dead client is noticed.
const sseHeartbeat = 15 * time.Second

// ssePoll bounds how long an idle stream waits before it looks again when
// no commit of this process woke it (the projector may run elsewhere).
const ssePoll = time.Second

// feedEvents streams the feed as Server-Sent Events until the client goes
// away or the server shuts down. Each event is written whole, with its
// position as id, before the next is read; a client that reconnects with
// the last id it received gets exactly what follows it.
func (s *Server) feedEvents(w http.ResponseWriter, r *http.Request, fr feedRequest) error {
	ctx, cancel := s.streams.context(r.Context())
	defer cancel()
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	extend := func() { _ = rc.SetWriteDeadline(time.Now().Add(s.cfg.WriteTimeout)) }
	extend()
	// retry: tells the EventSource to reconnect after a second.
	if _, err := fmt.Fprint(w, "retry: 1000\n\n"); err != nil {
		return nil
	}
	_ = rc.Flush()
	cursor := fr.after
	lastWrite := time.Now()
	for ctx.Err() == nil {
		items, err := s.cfg.Feed.After(ctx, cursor, fr.types, 500)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			s.logger.ErrorContext(ctx, "http: feed event stream failed", "after", cursor, "err", err)
			panic(http.ErrAbortHandler) // the client reconnects from its last id
		}
		for _, e := range items {
			data, err := json.Marshal(e)
			if err != nil {
				return err
			}
			if _, err := fmt.Fprintf(w, "id: %d\nevent: %s\ndata: %s\n\n", e.Position, e.Type, data); err != nil {
				return nil
			}
			cursor = e.Position
		}
		if len(items) > 0 {
			extend()
			if err := rc.Flush(); err != nil {
				return nil
			}
			lastWrite = time.Now()
			if len(items) == 500 {
				continue
			}
		}
		if time.Since(lastWrite) >= sseHeartbeat {
			extend()
			if _, err := fmt.Fprint(w, ": keep-alive\n\n"); err != nil {
				return nil
			}
			if err := rc.Flush(); err != nil {
				return nil
			}
			lastWrite = time.Now()
		}
		s.waitForFeed(ctx, cursor)
	}
	return nil
}

// waitForFeed returns when the feed's projector has passed after (a
// commit in this process wakes it at once), after ssePoll, or when ctx
// ends. It sleeps a little at least, so that a stream filtered to rare
// types does not spin while the checkpoint moves past other events.
func (s *Server) waitForFeed(ctx context.Context, after uint64) {
	start := time.Now()
	if s.cfg.Projections != nil {
		wctx, cancel := context.WithTimeout(ctx, ssePoll)
		_ = s.cfg.Projections.WaitForPosition(wctx, eventstore.Position(after+1), s.cfg.Feed.Reads()...)
		cancel()
	}
	if rest := 20*time.Millisecond - time.Since(start); rest > 0 {
		select {
		case <-ctx.Done():
		case <-time.After(rest):
		}
	}
	if s.cfg.Projections == nil {
		select {
		case <-ctx.Done():
		case <-time.After(ssePoll / 4):
		}
	}
}

// streamCloser ends the server's long-lived streams when it shuts down:
// http.Server.Shutdown waits for handlers, and a stream never ends by
// itself.
type streamCloser struct {
	once sync.Once
	done chan struct{}
}

func newStreamCloser() *streamCloser { return &streamCloser{done: make(chan struct{})} }

func (c *streamCloser) close() { c.once.Do(func() { close(c.done) }) }

// context returns a context that ends with parent or at shutdown.
func (c *streamCloser) context(parent context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(parent)
	go func() {
		select {
		case <-c.done:
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}
