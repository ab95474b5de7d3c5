package esdbtest_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"github.com/EventStore/EventStore-Client-Go/v4/protos/shared"
	api "github.com/EventStore/EventStore-Client-Go/v4/protos/streams"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/rapport-crm/rapport/infra/esdb/esdbtest"
)

func TestDiscovery(t *testing.T) {
	t.Parallel()
	srv := esdbtest.Start(t)
	c := newClient(t, srv)
	appendOK(t, c, streamName(t), esdb.Any{}, event("Discovered"))
	v, err := c.GetServerVersion()
	if err != nil || v.Major != 24 || v.Minor != 10 || v.Patch != 0 {
		t.Fatalf("server version = %+v, %v; want 24.10.0", v, err)
	}

	// Cluster mode goes through Gossip.Read first.
	gossiping := newClientFor(t, "esdb+discover://"+srv.Addr()+"?tls=false")
	appendOK(t, gossiping, streamName(t), esdb.Any{}, event("Discovered"))
	if srv.Calls(esdbtest.MethodGossip) == 0 {
		t.Fatal("esdb+discover did not call Gossip.Read")
	}
}

func TestAppendExpectedRevisions(t *testing.T) {
	t.Parallel()
	srv := esdbtest.Start(t)
	c := newClient(t, srv)

	type step struct {
		exp     esdb.ExpectedRevision
		n       int
		wantRev uint64 // last revision after a success
		wantErr string // substring of the wrong-expected-version message
	}
	cases := map[string][]step{
		"any on new and existing": {{exp: esdb.Any{}, n: 2, wantRev: 1}, {exp: esdb.Any{}, n: 1, wantRev: 2}},
		"no stream":               {{exp: esdb.NoStream{}, n: 3, wantRev: 2}, {exp: esdb.NoStream{}, n: 1, wantErr: "expecting 'no_stream' but got '2'"}},
		"stream exists":           {{exp: esdb.StreamExists{}, n: 1, wantErr: "expecting 'stream_exists' but got 'no_stream'"}, {exp: esdb.Any{}, n: 1, wantRev: 0}, {exp: esdb.StreamExists{}, n: 1, wantRev: 1}},
		"exact":                   {{exp: esdb.Revision(0), n: 1, wantErr: "expecting '0' but got 'no_stream'"}, {exp: esdb.NoStream{}, n: 1, wantRev: 0}, {exp: esdb.Revision(0), n: 2, wantRev: 2}, {exp: esdb.Revision(5), n: 1, wantErr: "expecting '5' but got '2'"}, {exp: esdb.Revision(1), n: 1, wantErr: "expecting '1' but got '2'"}},
	}
	for name, steps := range cases {
		stream := streamName(t)
		var lastPos uint64
		for i, s := range steps {
			res, err := c.AppendToStream(ctxT(t), stream, esdb.AppendToStreamOptions{ExpectedRevision: s.exp}, events(s.n, "Stepped")...)
			if s.wantErr != "" {
				if code(err) != esdb.ErrorCodeWrongExpectedVersion || !strings.Contains(err.Error(), s.wantErr) {
					t.Fatalf("%s step %d: err = %v, want wrong expected version %q", name, i, err, s.wantErr)
				}
				continue
			}
			if err != nil {
				t.Fatalf("%s step %d: %v", name, i, err)
			}
			if res.NextExpectedVersion != s.wantRev || res.CommitPosition != res.PreparePosition || res.CommitPosition <= lastPos {
				t.Fatalf("%s step %d: result %+v, want revision %d and a new position with commit == prepare", name, i, res, s.wantRev)
			}
			lastPos = res.CommitPosition
		}
	}
}

func TestAppendIdempotency(t *testing.T) {
	t.Parallel()
	srv := esdbtest.Start(t)
	c := newClient(t, srv)
	stream := streamName(t)

	first := events(3, "Created")
	res := appendOK(t, c, stream, esdb.NoStream{}, first...)
	more := events(2, "Updated")
	res2 := appendOK(t, c, stream, esdb.Revision(2), more...)

	for name, retry := range map[string]struct {
		exp esdb.ExpectedRevision
		evs []esdb.EventData
		res *esdb.WriteResult
	}{
		"no stream":       {esdb.NoStream{}, first, res},
		"exact":           {esdb.Revision(2), more, res2},
		"any":             {esdb.Any{}, more, res2},
		"stream exists":   {esdb.StreamExists{}, first, res},
		"prefix of first": {esdb.NoStream{}, first[:2], nil},
	} {
		got := appendOK(t, c, stream, retry.exp, retry.evs...)
		want := retry.res
		if want == nil { // a prefix of an append: the original position of its last event
			all, _ := collect(c.ReadStream(ctxT(t), stream, esdb.ReadStreamOptions{}, 10))
			want = &esdb.WriteResult{NextExpectedVersion: 1, CommitPosition: all[1].Event.Position.Commit, PreparePosition: all[1].Event.Position.Commit}
		}
		if *got != *want {
			t.Errorf("%s retry = %+v, want the original %+v", name, got, want)
		}
	}

	partial := append([]esdb.EventData{first[0]}, event("New"))
	for name, exp := range map[string]esdb.ExpectedRevision{"no stream": esdb.NoStream{}, "any": esdb.Any{}} {
		_, err := c.AppendToStream(ctxT(t), stream, esdb.AppendToStreamOptions{ExpectedRevision: exp}, partial...)
		if code(err) != esdb.ErrorCodeWrongExpectedVersion || !strings.Contains(err.Error(), "but got '4'") {
			t.Errorf("%s partial overlap: err = %v, want wrong expected version at 4", name, err)
		}
	}
	all, err := collect(c.ReadStream(ctxT(t), stream, esdb.ReadStreamOptions{}, 100))
	if err != nil || len(all) != 5 {
		t.Fatalf("stream has %d events (%v), want 5: retries must not write", len(all), err)
	}
}

func TestAppendLimitsAndValidation(t *testing.T) {
	t.Parallel()
	srv := esdbtest.Start(t)
	c := newClient(t, srv)
	stream := streamName(t)

	// Exactly the limit passes: data + metadata + 2 × type.
	exact := esdb.EventData{EventID: event("").EventID, EventType: "Big", ContentType: esdb.ContentTypeBinary}
	exact.Data = bytes.Repeat([]byte("x"), esdbtest.DefaultMaxAppendSize-2*len("Big")-10)
	exact.Metadata = bytes.Repeat([]byte("m"), 10)
	appendOK(t, c, stream, esdb.NoStream{}, exact)

	// One byte more, spread over two events, fails with InvalidArgument.
	half := bytes.Repeat([]byte("y"), esdbtest.DefaultMaxAppendSize/2)
	tooBig := []esdb.EventData{{EventID: event("").EventID, EventType: "A", Data: half}, {EventID: event("").EventID, EventType: "B", Data: half}}
	_, err := c.AppendToStream(ctxT(t), stream, esdb.AppendToStreamOptions{}, tooBig...)
	var e *esdb.Error
	if !errors.As(err, &e) || status.Code(e.Err()) != codes.InvalidArgument {
		t.Fatalf("append over the limit: err = %v, want InvalidArgument", err)
	}

	// Trailers and missing metadata need a raw gRPC call.
	streams := api.NewStreamsClient(rawConn(t, srv))
	send := func(metadataMap map[string]string, data []byte) (metadata.MD, error) {
		var trailer metadata.MD
		call, err := streams.Append(context.Background(), grpc.Trailer(&trailer))
		if err != nil {
			return nil, err
		}
		_ = call.Send(&api.AppendReq{Content: &api.AppendReq_Options_{Options: &api.AppendReq_Options{
			StreamIdentifier:       &shared.StreamIdentifier{StreamName: []byte(stream)},
			ExpectedStreamRevision: &api.AppendReq_Options_Any{Any: &shared.Empty{}},
		}}})
		_ = call.Send(&api.AppendReq{Content: &api.AppendReq_ProposedMessage_{ProposedMessage: &api.AppendReq_ProposedMessage{
			Id:       &shared.UUID{Value: &shared.UUID_String_{String_: event("").EventID.String()}},
			Metadata: metadataMap,
			Data:     data,
		}}})
		_, err = call.CloseAndRecv()
		return trailer, err
	}
	trailer, err := send(map[string]string{"type": "T"}, nil)
	if status.Code(err) != codes.InvalidArgument || trailer.Get("exception")[0] != "missing-required-metadata-property" {
		t.Fatalf("missing content-type: %v %v", err, trailer)
	}
	trailer, err = send(map[string]string{"type": "T", "content-type": "application/json"}, bytes.Repeat([]byte("z"), esdbtest.DefaultMaxAppendSize))
	if status.Code(err) != codes.InvalidArgument || trailer.Get("exception")[0] != "maximum-append-size-exceeded" || trailer.Get("maximum-append-size")[0] != "1048576" {
		t.Fatalf("too large: %v %v", err, trailer)
	}

	all, err := collect(c.ReadStream(ctxT(t), stream, esdb.ReadStreamOptions{}, 100))
	if err != nil || len(all) != 1 {
		t.Fatalf("stream has %d events (%v); rejected appends must not write", len(all), err)
	}
}
