package esdbtest

import (
	"context"
	"net"
	"strconv"
	"time"

	"github.com/EventStore/EventStore-Client-Go/v4/protos/gossip"
	"github.com/EventStore/EventStore-Client-Go/v4/protos/serverfeatures"
	"github.com/EventStore/EventStore-Client-Go/v4/protos/shared"
	"github.com/google/uuid"
)

// ServerVersion is the version the server reports. It must be dot-separated
// integers: the client permanently closes itself on anything else.
const ServerVersion = "24.10.0"

// featuresService answers the client's discovery call. It is its own type
// because the generated interfaces of the services clash on method names
// (Streams.Read vs Gossip.Read).
type featuresService struct {
	serverfeatures.UnimplementedServerFeaturesServer
	faults *faults
}

// GetSupportedMethods lists the methods this server implements, lowercased
// as the real server does.
func (f *featuresService) GetSupportedMethods(ctx context.Context, _ *shared.Empty) (*serverfeatures.SupportedMethods, error) {
	fault, faulty, err := f.faults.enter(ctx, MethodServerFeatures)
	if err != nil {
		return nil, err
	}
	if faulty {
		return nil, fault.err()
	}
	methods := []*serverfeatures.SupportedMethod{
		{ServiceName: "event_store.client.streams.streams", MethodName: "read"},
		{ServiceName: "event_store.client.streams.streams", MethodName: "append"},
		{ServiceName: "event_store.client.server_features.serverfeatures", MethodName: "getsupportedmethods"},
		{ServiceName: "event_store.client.gossip.gossip", MethodName: "read"},
	}
	return &serverfeatures.SupportedMethods{Methods: methods, EventStoreServerVersion: ServerVersion}, nil
}

// gossipService makes the server usable with esdb+discover:// and gossip
// seeds: it reports itself as the only member, alive and leader.
type gossipService struct {
	gossip.UnimplementedGossipServer
	faults     *faults
	addr       string
	instanceID uuid.UUID
}

func (g *gossipService) Read(ctx context.Context, _ *shared.Empty) (*gossip.ClusterInfo, error) {
	fault, faulty, err := g.faults.enter(ctx, MethodGossip)
	if err != nil {
		return nil, err
	}
	if faulty {
		return nil, fault.err()
	}
	host, portText, err := net.SplitHostPort(g.addr)
	if err != nil {
		return nil, err
	}
	port, err := strconv.Atoi(portText)
	if err != nil {
		return nil, err
	}
	member := &gossip.MemberInfo{
		InstanceId: uuidToProto(g.instanceID, true),
		TimeStamp:  time.Now().UnixNano() / 100,
		State:      gossip.MemberInfo_Leader,
		IsAlive:    true,
		HttpEndPoint: &gossip.EndPoint{
			Address: host,
			Port:    uint32(port),
		},
	}
	return &gossip.ClusterInfo{Members: []*gossip.MemberInfo{member}}, nil
}
