// Package esdbtest is an in-process EventStoreDB server for tests. It speaks
// EventStoreDB's gRPC protocol closely enough for the official Go client
// (EventStore-Client-Go v4) to use it unchanged, so the esdb adapter is
// tested through the real client over real gRPC on machines where no
// EventStoreDB can run.
//
// The behaviour follows the shared design note esdb-wire-protocol.md: expected
// revisions and idempotent retries as IndexWriter.CheckCommit decides them,
// sparse $all positions with commit == prepare, exclusive subscription
// starts, checkpoints for filtered $all subscriptions, caught_up, the 1 MiB
// append limit, and the keepalive policy the client needs. Delete, Tombstone,
// BatchAppend, stream metadata ($maxAge, $tb, ACLs), links and projections
// are not implemented.
//
// Only tests import this package.
package esdbtest

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/EventStore/EventStore-Client-Go/v4/protos/gossip"
	"github.com/EventStore/EventStore-Client-Go/v4/protos/serverfeatures"
	api "github.com/EventStore/EventStore-Client-Go/v4/protos/streams"
	"github.com/google/uuid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"
)

// DefaultMaxAppendSize is EventStoreDB's default limit on the size of one
// append (ClusterVNodeOptions.MaxAppendSize).
const DefaultMaxAppendSize = 1 << 20

type options struct {
	addr          string
	systemEvents  bool
	maxAppendSize int
	liveBuffer    int
	statsEvery    time.Duration
}

// Option configures a Server.
type Option func(*options)

// WithAddr listens on addr instead of a free port on 127.0.0.1.
func WithAddr(addr string) Option { return func(o *options) { o.addr = addr } }

// WithoutSystemEvents starts with an empty log. By default a few system
// events are seeded, as a fresh real node has them, so that code assuming
// "$all holds only my events" fails here as it would in production.
func WithoutSystemEvents() Option { return func(o *options) { o.systemEvents = false } }

// WithMaxAppendSize changes the append size limit.
func WithMaxAppendSize(n int) Option { return func(o *options) { o.maxAppendSize = n } }

// WithLiveBuffer bounds how many records a live subscription may have
// pending before it falls back to catch-up (as a real server does when a
// subscriber is slow).
func WithLiveBuffer(n int) Option { return func(o *options) { o.liveBuffer = n } }

// WithStatsEvery appends a $statsCollected system event every d, as a real
// node does every 30 s, so that $all keeps growing with events a consumer
// must skip.
func WithStatsEvery(d time.Duration) Option { return func(o *options) { o.statsEvery = d } }

// Server is a running test server. Its data survives Restart.
type Server struct {
	opts       options
	store      *store
	faults     *faults
	addr       string // fixed at the first listen so Restart reuses the port
	instanceID uuid.UUID

	mu       sync.Mutex
	grpc     *grpc.Server
	streams  *streamsService
	served   chan struct{}
	stopped  bool
	stopStat chan struct{}
	bg       sync.WaitGroup
}

// streamsService implements the Streams service of one gRPC server instance.
type streamsService struct {
	api.UnimplementedStreamsServer
	store         *store
	faults        *faults
	maxAppendSize int
	stopping      chan struct{} // closed when this instance stops
}

// New starts a server that is accepting connections when it returns: the
// client permanently closes itself if its first discovery fails. It suits
// benchmarks and other code without a testing.TB; call Stop when done.
func New(opts ...Option) (*Server, error) {
	o := options{
		addr:          "127.0.0.1:0",
		systemEvents:  true,
		maxAppendSize: DefaultMaxAppendSize,
		liveBuffer:    10_000,
	}
	for _, opt := range opts {
		opt(&o)
	}
	s := &Server{
		opts:       o,
		store:      newStore(o.liveBuffer, time.Now),
		faults:     newFaults(),
		instanceID: uuid.New(),
		stopStat:   make(chan struct{}),
	}
	if o.systemEvents {
		s.seedSystemEvents()
	}
	lis, err := net.Listen("tcp", o.addr)
	if err != nil {
		return nil, fmt.Errorf("esdbtest: listen: %w", err)
	}
	s.addr = lis.Addr().String()
	s.serve(lis)
	if o.statsEvery > 0 {
		s.bg.Add(1)
		go s.collectStats(o.statsEvery)
	}
	return s, nil
}

// Start starts a server for the duration of a test.
func Start(tb testing.TB, opts ...Option) *Server {
	tb.Helper()
	s, err := New(opts...)
	if err != nil {
		tb.Fatalf("esdbtest: %v", err)
	}
	tb.Cleanup(s.Stop)
	return s
}

// Addr is the server's host:port.
func (s *Server) Addr() string { return s.addr }

// ConnectionString is a plaintext single-node connection string for the
// server. Discovery is made quick (50 ms between attempts) but given enough
// attempts (about 2 s) for a raw client to ride out a short Restart: a client
// whose discovery fails closes itself for good.
func (s *Server) ConnectionString() string {
	return fmt.Sprintf("esdb://%s?tls=false&discoveryInterval=50&maxDiscoverAttempts=40&gossipTimeout=2", s.addr)
}

// serve starts a gRPC server instance on lis.
func (s *Server) serve(lis net.Listener) {
	svc := &streamsService{
		store:         s.store,
		faults:        s.faults,
		maxAppendSize: s.opts.maxAppendSize,
		stopping:      make(chan struct{}),
	}
	gs := grpc.NewServer(
		// The client pings every 10 s even without calls; grpc-go's default
		// policy answers that with GOAWAY too_many_pings after ~30 s, which
		// kills idle subscriptions. This is the policy a real node tolerates.
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 5 * time.Second, PermitWithoutStream: true}),
		grpc.MaxRecvMsgSize(17<<20),
		grpc.WaitForHandlers(true),
	)
	api.RegisterStreamsServer(gs, svc)
	serverfeatures.RegisterServerFeaturesServer(gs, &featuresService{faults: s.faults})
	gossip.RegisterGossipServer(gs, &gossipService{faults: s.faults, addr: s.addr, instanceID: s.instanceID})
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = gs.Serve(lis)
	}()
	s.grpc, s.streams, s.served = gs, svc, served
}

// halt stops the gRPC server without waiting for clients: subscriptions and
// calls in flight end with Unavailable on the client side. The caller holds
// s.mu.
func (s *Server) halt() {
	if s.grpc == nil {
		return
	}
	close(s.streams.stopping)
	s.grpc.Stop()
	<-s.served
	s.grpc = nil
}

// Stop shuts the server down. It never waits for clients, so it does not
// hang on live subscriptions. It is safe to call more than once.
func (s *Server) Stop() {
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		return
	}
	s.stopped = true
	s.halt()
	close(s.stopStat)
	s.mu.Unlock()
	s.bg.Wait()
}

// Restart stops the gRPC server and its listener, keeping the data, and
// starts again on the same port.
func (s *Server) Restart() error { return s.RestartAfter(0) }

// RestartAfter is Restart with the server down for downtime in between.
func (s *Server) RestartAfter(downtime time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return errors.New("esdbtest: restart of a stopped server")
	}
	s.halt()
	time.Sleep(downtime)
	// The port is free as soon as the listener is closed, but retry briefly
	// rather than fail a test on a slow OS.
	deadline := time.Now().Add(2 * time.Second)
	for {
		lis, err := net.Listen("tcp", s.addr)
		if err == nil {
			s.serve(lis)
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("esdbtest: restart: %w", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// appendSystem writes an event of the server itself, as a node does for
// stats, users and projections.
func (s *Server) appendSystem(stream, eventType, data string) {
	s.store.mu.Lock()
	defer s.store.mu.Unlock()
	s.store.write(stream, []*record{{
		id:          uuid.New(),
		eventType:   eventType,
		contentType: "application/json",
		data:        []byte(data),
	}})
}

// seedSystemEvents writes what a fresh node has in $all: the epoch record
// (hidden by the default $all filter) and a few visible system events in
// $-prefixed streams with $-prefixed types.
func (s *Server) seedSystemEvents() {
	s.appendSystem("$epoch-information", "$epoch-information", `{"epochNumber":0}`)
	s.appendSystem("$$$stats-127.0.0.1:2113", "$metadata", `{"$maxAge":86400}`)
	s.appendSystem("$users", "$UserCreated", `"admin"`)
	s.appendSystem("$user-admin", "$User", `{"loginName":"admin","fullName":"Event Store Administrator","groups":["$admins"]}`)
	s.appendSystem("$projections-$all", "$ProjectionsInitialized", `{}`)
}

func (s *Server) collectStats(every time.Duration) {
	defer s.bg.Done()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-s.stopStat:
			return
		case now := <-t.C:
			s.appendSystem("$stats-127.0.0.1:2113", "$statsCollected", fmt.Sprintf(`{"timestamp":%q}`, now.UTC().Format(time.RFC3339Nano)))
		}
	}
}
