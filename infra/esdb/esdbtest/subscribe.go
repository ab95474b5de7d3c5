package esdbtest

import (
	"regexp"
	"strings"

	api "github.com/EventStore/EventStore-Client-Go/v4/protos/streams"
	"github.com/google/uuid"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// defaultSearchWindow is the window used when the client asks for the
// "count" window instead of a maximum (the Go client's default max is 32 too).
const defaultSearchWindow = 32

// cursor is a subscription's place: everything at or before it has been
// delivered (or, for filtered $all, considered).
type cursor struct {
	stream string // "" for $all
	pos    uint64 // $all: last position considered; 0 before the first event
	rev    int64  // stream: last revision delivered; -1 before the first
}

func (c *cursor) fresh(r *record) bool {
	if c.stream == "" {
		return r.pos > c.pos
	}
	return r.stream == c.stream && int64(r.revision) > c.rev
}

// filter is a $all server-side filter. Matching follows the real server:
// prefixes are ordinal "starts with"; a regex is an unanchored search
// (Go's RE2 syntax, so no lookarounds or backreferences).
type filter struct {
	byType   bool
	prefixes []string
	re       *regexp.Regexp
	interval int // checkpoint every interval considered events
}

func (f *filter) match(r *record) bool {
	field := r.stream
	if f.byType {
		field = r.eventType
	}
	if f.re != nil {
		return f.re.MatchString(field)
	}
	for _, p := range f.prefixes {
		if strings.HasPrefix(field, p) {
			return true
		}
	}
	return false
}

func filterFromProto(fo *api.ReadReq_Options_FilterOptions) (*filter, error) {
	f := &filter{}
	var expr *api.ReadReq_Options_FilterOptions_Expression
	switch v := fo.GetFilter().(type) {
	case *api.ReadReq_Options_FilterOptions_EventType:
		f.byType, expr = true, v.EventType
	case *api.ReadReq_Options_FilterOptions_StreamIdentifier:
		expr = v.StreamIdentifier
	default:
		return nil, status.Error(codes.InvalidArgument, "filter without expression")
	}
	switch {
	case expr.GetRegex() != "" && len(expr.GetPrefix()) > 0:
		return nil, status.Error(codes.InvalidArgument, "filter with both a regex and prefixes")
	case expr.GetRegex() != "":
		re, err := regexp.Compile(expr.GetRegex())
		if err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "invalid filter regex: %v", err)
		}
		f.re = re
	case len(expr.GetPrefix()) > 0:
		f.prefixes = expr.GetPrefix()
	default:
		return nil, status.Error(codes.InvalidArgument, "filter without regex or prefixes")
	}
	window := defaultSearchWindow
	if m, ok := fo.GetWindow().(*api.ReadReq_Options_FilterOptions_Max); ok && m.Max > 0 {
		window = int(m.Max)
	}
	if fo.GetCheckpointIntervalMultiplier() == 0 {
		// The real server throws on a zero multiplier.
		return nil, status.Error(codes.Unknown, "Exception was thrown by handler.")
	}
	f.interval = window * int(fo.GetCheckpointIntervalMultiplier())
	return f, nil
}

// subscription is the state of one subscription RPC.
type subscription struct {
	srv        *streamsService
	stream     api.Streams_ReadServer
	structured bool
	cur        cursor
	filter     *filter // nil: no checkpoints
	considered int
}

// subscribe serves a stream or $all subscription: confirmation, catch-up
// strictly after the start point, caught_up, then live events. The live
// queue is registered before the catch-up read and live records are
// deduplicated against the cursor, so nothing is lost or repeated at the
// hand-over. Send is never called with the store lock held.
func (s *streamsService) subscribe(o *api.ReadReq_Options, stream api.Streams_ReadServer) error {
	ctx := stream.Context()
	fault, faulty, err := s.faults.enter(ctx, MethodSubscribe)
	if err != nil {
		return err
	}
	if faulty {
		return fault.err()
	}
	sub := &subscription{srv: s, stream: stream, structured: o.GetUuidOption().GetStructured() != nil}
	fromEnd := false
	switch {
	case o.GetStream() != nil:
		so := o.GetStream()
		if o.GetFilter() != nil {
			return status.Error(codes.InvalidArgument, "a stream subscription cannot be filtered")
		}
		sub.cur = cursor{stream: string(so.GetStreamIdentifier().GetStreamName()), rev: -1}
		switch so.GetRevisionOption().(type) {
		case *api.ReadReq_Options_StreamOptions_End:
			fromEnd = true
		case *api.ReadReq_Options_StreamOptions_Revision:
			sub.cur.rev = int64(min(so.GetRevision(), 1<<62))
		}
	case o.GetAll() != nil:
		switch o.GetAll().GetAllOption().(type) {
		case *api.ReadReq_Options_AllOptions_End:
			fromEnd = true
		case *api.ReadReq_Options_AllOptions_Position:
			sub.cur.pos = o.GetAll().GetPosition().GetCommitPosition()
		}
		if fo := o.GetFilter(); fo != nil {
			if sub.filter, err = filterFromProto(fo); err != nil {
				return err
			}
		}
	default:
		return status.Error(codes.InvalidArgument, "subscription without stream option")
	}

	q := s.store.subscribe(&sub.cur, fromEnd)
	defer s.store.unsubscribe(q)
	confirm := &api.ReadResp{Content: &api.ReadResp_Confirmation{
		Confirmation: &api.ReadResp_SubscriptionConfirmation{SubscriptionId: uuid.NewString()},
	}}
	if err := stream.Send(confirm); err != nil {
		return err
	}
	return sub.run(q, !fromEnd)
}

// run alternates between catch-up (reading the log) and live (draining the
// queue) until the RPC ends or the subscription is dropped.
func (sub *subscription) run(q *liveQueue, checkpointAtCatchUp bool) error {
	ctx := sub.stream.Context()
	for {
		if err := sub.catchUp(q, checkpointAtCatchUp); err != nil {
			return err
		}
		checkpointAtCatchUp = true
		if err := sub.stream.Send(&api.ReadResp{Content: &api.ReadResp_CaughtUp_{CaughtUp: &api.ReadResp_CaughtUp{}}}); err != nil {
			return err
		}
		for fellBehind := false; !fellBehind; {
			select {
			case <-ctx.Done():
				return status.FromContextError(ctx.Err()).Err()
			case <-q.dropped:
				return status.Error(codes.Unavailable, "esdbtest: subscription dropped")
			case <-sub.srv.stopping:
				return status.Error(codes.Unavailable, "esdbtest: server shutting down")
			case <-q.signal:
			}
			records, overflow := q.take()
			if overflow {
				// Records were lost from the queue: the log still has them.
				fellBehind = true
				continue
			}
			for _, r := range records {
				if err := sub.consider(r); err != nil {
					return err
				}
			}
		}
	}
}

// catchUp sends everything after the cursor that is in the log now, then,
// for a filtered $all subscription, a checkpoint at the end of catch-up.
func (sub *subscription) catchUp(q *liveQueue, checkpoint bool) error {
	for {
		select {
		case <-q.dropped:
			return status.Error(codes.Unavailable, "esdbtest: subscription dropped")
		case <-sub.srv.stopping:
			return status.Error(codes.Unavailable, "esdbtest: server shutting down")
		default:
		}
		page, atEnd := sub.srv.store.after(&sub.cur, readPage)
		for _, r := range page {
			if err := sub.consider(r); err != nil {
				return err
			}
		}
		if atEnd {
			break
		}
	}
	if sub.filter != nil && checkpoint {
		sub.considered = 0
		return sub.checkpoint(sub.cur.pos)
	}
	return nil
}

// consider delivers r if it is new and passes the filters, and emits a
// checkpoint every interval considered events (matched or not), as the real
// server counts them.
func (sub *subscription) consider(r *record) error {
	if !sub.cur.fresh(r) {
		return nil
	}
	if sub.cur.stream != "" {
		sub.cur.rev = int64(r.revision)
		return sub.stream.Send(eventResponse(r, sub.structured))
	}
	sub.cur.pos = r.pos
	if hiddenFromAll(r) {
		return nil
	}
	if sub.filter == nil || sub.filter.match(r) {
		if err := sub.stream.Send(eventResponse(r, sub.structured)); err != nil {
			return err
		}
	}
	if sub.filter == nil {
		return nil
	}
	sub.considered++
	if sub.considered < sub.filter.interval {
		return nil
	}
	sub.considered = 0
	return sub.checkpoint(r.pos)
}

func (sub *subscription) checkpoint(pos uint64) error {
	return sub.stream.Send(&api.ReadResp{Content: &api.ReadResp_Checkpoint_{
		Checkpoint: &api.ReadResp_Checkpoint{CommitPosition: pos, PreparePosition: pos},
	}})
}
