package esdbtest

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strconv"

	"github.com/EventStore/EventStore-Client-Go/v4/protos/shared"
	api "github.com/EventStore/EventStore-Client-Go/v4/protos/streams"
	"github.com/google/uuid"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// Append implements Streams.Append. Like the real server it reads the whole
// request stream before answering: replying early would make the client's
// next Send fail with io.EOF and hide the real status.
func (s *streamsService) Append(stream api.Streams_AppendServer) error {
	var options *api.AppendReq_Options
	var proposed []*api.AppendReq_ProposedMessage
	for {
		req, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		switch c := req.GetContent().(type) {
		case *api.AppendReq_Options_:
			options = c.Options
		case *api.AppendReq_ProposedMessage_:
			proposed = append(proposed, c.ProposedMessage)
		}
	}

	fault, faulty, err := s.faults.enter(stream.Context(), MethodAppend)
	if err != nil {
		return err
	}
	if faulty && !fault.AfterCommit {
		return fault.err()
	}
	if options == nil {
		return status.Error(codes.InvalidArgument, "append request without options")
	}
	name := string(options.GetStreamIdentifier().GetStreamName())
	if name == "" {
		// The real server throws on an empty stream id; gRPC makes it Unknown.
		return status.Error(codes.Unknown, "Exception was thrown by handler.")
	}
	exp, err := expectationFromProto(options)
	if err != nil {
		return err
	}
	events, err := s.toRecords(stream, proposed)
	if err != nil {
		return err
	}

	out := s.store.append(name, exp, events)
	if faulty {
		return fault.err()
	}
	return stream.SendAndClose(appendResponse(out, options))
}

// toRecords validates the proposed events the way the real server does:
// required metadata first, then the size limit over the whole append.
func (s *streamsService) toRecords(stream api.Streams_AppendServer, proposed []*api.AppendReq_ProposedMessage) ([]*record, error) {
	events := make([]*record, 0, len(proposed))
	size := 0
	for _, p := range proposed {
		eventType, okType := p.GetMetadata()["type"]
		contentType, okContent := p.GetMetadata()["content-type"]
		if !okType || !okContent {
			missing := "type"
			if okType {
				missing = "content-type"
			}
			stream.SetTrailer(metadata.Pairs("exception", "missing-required-metadata-property", "required-metadata-properties", "type,content-type"))
			return nil, status.Errorf(codes.InvalidArgument, "Required Metadata Property '%s' is missing", missing)
		}
		if eventType == "" {
			return nil, status.Error(codes.Unknown, "Exception was thrown by handler.")
		}
		id, err := uuidFromProto(p.GetId())
		if err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "invalid event id: %v", err)
		}
		size += len(p.GetData()) + len(p.GetCustomMetadata()) + 2*len(eventType)
		if size > s.maxAppendSize {
			stream.SetTrailer(metadata.Pairs("exception", "maximum-append-size-exceeded", "maximum-append-size", strconv.Itoa(s.maxAppendSize)))
			return nil, status.Errorf(codes.InvalidArgument, "Maximum Append Size of %d Exceeded.", s.maxAppendSize)
		}
		events = append(events, &record{
			id:          id,
			eventType:   eventType,
			contentType: contentType,
			data:        p.GetData(),
			metadata:    p.GetCustomMetadata(),
		})
	}
	return events, nil
}

func expectationFromProto(o *api.AppendReq_Options) (expectation, error) {
	switch e := o.GetExpectedStreamRevision().(type) {
	case *api.AppendReq_Options_Any:
		return expectation{kind: expectAny}, nil
	case *api.AppendReq_Options_NoStream:
		return expectation{kind: expectNoStream}, nil
	case *api.AppendReq_Options_StreamExists:
		return expectation{kind: expectStreamExists}, nil
	case *api.AppendReq_Options_Revision:
		return expectation{kind: expectRevision, revision: e.Revision}, nil
	}
	return expectation{}, status.Error(codes.InvalidArgument, "append request without an expected stream revision")
}

// appendResponse shapes the outcome as the real server does. A wrong
// expected version is a successful RPC whose body says so, with both the
// current fields (which the Go client reads) and the legacy 20.6 ones.
func appendResponse(out outcome, o *api.AppendReq_Options) *api.AppendResp {
	if out.kind != outcomeWrongVersion {
		success := &api.AppendResp_Success{
			PositionOption: &api.AppendResp_Success_Position{
				Position: &api.AppendResp_Position{CommitPosition: out.position, PreparePosition: out.position},
			},
		}
		if out.revision < 0 {
			success.CurrentRevisionOption = &api.AppendResp_Success_NoStream{NoStream: &shared.Empty{}}
		} else {
			success.CurrentRevisionOption = &api.AppendResp_Success_CurrentRevision{CurrentRevision: uint64(out.revision)}
		}
		return &api.AppendResp{Result: &api.AppendResp_Success_{Success: success}}
	}

	wev := &api.AppendResp_WrongExpectedVersion{}
	if out.current < 0 {
		wev.CurrentRevisionOption = &api.AppendResp_WrongExpectedVersion_CurrentNoStream{CurrentNoStream: &shared.Empty{}}
		wev.CurrentRevisionOption_20_6_0 = &api.AppendResp_WrongExpectedVersion_NoStream_20_6_0{NoStream_20_6_0: &shared.Empty{}}
	} else {
		wev.CurrentRevisionOption = &api.AppendResp_WrongExpectedVersion_CurrentRevision{CurrentRevision: uint64(out.current)}
		wev.CurrentRevisionOption_20_6_0 = &api.AppendResp_WrongExpectedVersion_CurrentRevision_20_6_0{CurrentRevision_20_6_0: uint64(out.current)}
	}
	switch e := o.GetExpectedStreamRevision().(type) {
	case *api.AppendReq_Options_Any:
		wev.ExpectedRevisionOption = &api.AppendResp_WrongExpectedVersion_ExpectedAny{ExpectedAny: &shared.Empty{}}
		wev.ExpectedRevisionOption_20_6_0 = &api.AppendResp_WrongExpectedVersion_Any_20_6_0{Any_20_6_0: &shared.Empty{}}
	case *api.AppendReq_Options_NoStream:
		wev.ExpectedRevisionOption = &api.AppendResp_WrongExpectedVersion_ExpectedNoStream{ExpectedNoStream: &shared.Empty{}}
	case *api.AppendReq_Options_StreamExists:
		wev.ExpectedRevisionOption = &api.AppendResp_WrongExpectedVersion_ExpectedStreamExists{ExpectedStreamExists: &shared.Empty{}}
		wev.ExpectedRevisionOption_20_6_0 = &api.AppendResp_WrongExpectedVersion_StreamExists_20_6_0{StreamExists_20_6_0: &shared.Empty{}}
	case *api.AppendReq_Options_Revision:
		wev.ExpectedRevisionOption = &api.AppendResp_WrongExpectedVersion_ExpectedRevision{ExpectedRevision: e.Revision}
		wev.ExpectedRevisionOption_20_6_0 = &api.AppendResp_WrongExpectedVersion_ExpectedRevision_20_6_0{ExpectedRevision_20_6_0: e.Revision}
	}
	return &api.AppendResp{Result: &api.AppendResp_WrongExpectedVersion_{WrongExpectedVersion: wev}}
}

// uuidFromProto accepts both encodings the protocol allows; the Go client
// always sends the structured one (big-endian halves).
func uuidFromProto(u *shared.UUID) (uuid.UUID, error) {
	switch v := u.GetValue().(type) {
	case *shared.UUID_Structured_:
		var id uuid.UUID
		binary.BigEndian.PutUint64(id[:8], uint64(v.Structured.GetMostSignificantBits()))
		binary.BigEndian.PutUint64(id[8:], uint64(v.Structured.GetLeastSignificantBits()))
		return id, nil
	case *shared.UUID_String_:
		return uuid.Parse(v.String_)
	}
	return uuid.Nil, fmt.Errorf("missing id")
}

func uuidToProto(id uuid.UUID, structured bool) *shared.UUID {
	if !structured {
		return &shared.UUID{Value: &shared.UUID_String_{String_: id.String()}}
	}
	return &shared.UUID{Value: &shared.UUID_Structured_{Structured: &shared.UUID_Structured{
		MostSignificantBits:  int64(binary.BigEndian.Uint64(id[:8])),
		LeastSignificantBits: int64(binary.BigEndian.Uint64(id[8:])),
	}}}
}
