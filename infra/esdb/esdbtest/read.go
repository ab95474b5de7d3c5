package esdbtest

import (
	"math"
	"strconv"

	"github.com/EventStore/EventStore-Client-Go/v4/protos/shared"
	api "github.com/EventStore/EventStore-Client-Go/v4/protos/streams"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// readPage bounds how many records are copied out of the store per lock
// acquisition, so a huge read never holds the lock while it sends.
const readPage = 256

// Read implements Streams.Read, which carries both count reads and
// subscriptions.
func (s *streamsService) Read(req *api.ReadReq, stream api.Streams_ReadServer) error {
	o := req.GetOptions()
	if o == nil || o.GetUuidOption() == nil {
		return status.Error(codes.InvalidArgument, "read request without options or uuid_option")
	}
	if _, ok := o.GetCountOption().(*api.ReadReq_Options_Subscription); ok {
		return s.subscribe(o, stream)
	}
	fault, faulty, err := s.faults.enter(stream.Context(), MethodRead)
	if err != nil {
		return err
	}
	if faulty {
		return fault.err()
	}
	count := o.GetCount()
	if count == 0 {
		// The real server's Ensure.Positive throws; gRPC turns it into Unknown.
		return status.Error(codes.Unknown, "Exception was thrown by handler.")
	}
	structured := o.GetUuidOption().GetStructured() != nil
	forwards := o.GetReadDirection() == api.ReadReq_Options_Forwards
	if o.GetStream() != nil {
		return s.readStream(o.GetStream(), forwards, count, structured, stream)
	}
	if o.GetAll() != nil {
		return s.readAll(o.GetAll(), forwards, count, structured, stream)
	}
	return status.Error(codes.InvalidArgument, "read request without stream option")
}

func (s *streamsService) readStream(so *api.ReadReq_Options_StreamOptions, forwards bool, count uint64, structured bool, stream api.Streams_ReadServer) error {
	name := string(so.GetStreamIdentifier().GetStreamName())
	var from uint64
	switch so.GetRevisionOption().(type) {
	case *api.ReadReq_Options_StreamOptions_Start:
		from = 0
	case *api.ReadReq_Options_StreamOptions_End:
		if forwards {
			// End maps to -1, which the real server rejects for forward reads.
			return status.Error(codes.Unknown, "Exception was thrown by handler.")
		}
		from = math.MaxUint64
	case *api.ReadReq_Options_StreamOptions_Revision:
		from = so.GetRevision()
		if from > math.MaxInt64 {
			return status.Error(codes.Unknown, "Exception was thrown by handler.")
		}
	}
	for count > 0 {
		page, exists := s.store.streamFrom(name, from, forwards, int(min(count, readPage)))
		if !exists {
			return stream.Send(&api.ReadResp{Content: &api.ReadResp_StreamNotFound_{
				StreamNotFound: &api.ReadResp_StreamNotFound{StreamIdentifier: &shared.StreamIdentifier{StreamName: []byte(name)}},
			}})
		}
		for _, r := range page {
			if err := stream.Send(eventResponse(r, structured)); err != nil {
				return err
			}
		}
		count -= uint64(len(page))
		if len(page) < readPage {
			return nil
		}
		last := page[len(page)-1].revision
		if forwards {
			from = last + 1
		} else if last == 0 {
			return nil
		} else {
			from = last - 1
		}
	}
	return nil
}

// readAll reads $all. Forwards from P includes the event at P; backwards
// from P excludes it (the real server compares record post-positions).
func (s *streamsService) readAll(ao *api.ReadReq_Options_AllOptions, forwards bool, count uint64, structured bool, stream api.Streams_ReadServer) error {
	var from uint64
	switch ao.GetAllOption().(type) {
	case *api.ReadReq_Options_AllOptions_Start:
		from = 0
	case *api.ReadReq_Options_AllOptions_End:
		from = math.MaxUint64
	case *api.ReadReq_Options_AllOptions_Position:
		p := ao.GetPosition()
		if p.GetCommitPosition() < p.GetPreparePosition() {
			return status.Error(codes.Unknown, "Exception was thrown by handler.")
		}
		from = p.GetCommitPosition()
	}
	for count > 0 {
		page := s.store.allFrom(from, forwards, int(min(count, readPage)))
		for _, r := range page {
			if err := stream.Send(eventResponse(r, structured)); err != nil {
				return err
			}
		}
		count -= uint64(len(page))
		if len(page) < readPage {
			return nil
		}
		last := page[len(page)-1].pos
		if forwards {
			from = last + 1
		} else {
			from = last
		}
	}
	return nil
}

// eventResponse builds a ReadResp event. The metadata map holds exactly the
// three keys the real server sends; "created" is mandatory, since the Go
// client log.Fatalf's when it cannot parse it.
func eventResponse(r *record, structured bool) *api.ReadResp {
	return &api.ReadResp{Content: &api.ReadResp_Event{Event: &api.ReadResp_ReadEvent{
		Event: &api.ReadResp_ReadEvent_RecordedEvent{
			Id:               uuidToProto(r.id, structured),
			StreamIdentifier: &shared.StreamIdentifier{StreamName: []byte(r.stream)},
			StreamRevision:   r.revision,
			PreparePosition:  r.pos,
			CommitPosition:   r.pos,
			Metadata: map[string]string{
				"type":         r.eventType,
				"content-type": r.contentType,
				"created":      strconv.FormatInt(r.created, 10),
			},
			CustomMetadata: r.metadata,
			Data:           r.data,
		},
		Position: &api.ReadResp_ReadEvent_CommitPosition{CommitPosition: r.pos},
	}}}
}
