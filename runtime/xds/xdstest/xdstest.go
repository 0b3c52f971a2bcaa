// Package xdstest runs an xDS management server on loopback, for tests and
// examples of lbclient's clients on xds:/// targets: go-control-plane's ADS
// server over its snapshot cache, serving the resources of a few services
// described in plain Go, for one node.
//
//	cp, err := xdstest.Start()
//	...
//	defer cp.Close()
//	err = cp.Set(ctx, xdstest.Service{
//		Name:       "greeter", // xds:///greeter
//		Localities: []xdstest.Locality{{Endpoints: []xdstest.Endpoint{{Addr: "127.0.0.1:8001"}}}},
//	})
//	opt, err := xds.WithBootstrap(cp.Bootstrap())
//	client, err := greeterv1lbclient.NewGreeterClient("xds:///greeter", opt, runtime.WithInsecure())
//
// Each Set replaces every resource with a new version, which the server
// pushes to the clients watching them.
package xdstest

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"

	clusterpb "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corepb "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointpb "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerpb "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routepb "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	routerpb "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmpb "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	discoverypb "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// NodeID is the node that Bootstrap names and Set serves.
const NodeID = "lbclient-xdstest"

// Service is what the control plane says about one xds:/// target: a
// listener named Name, whose one route sends every call to one cluster,
// whose endpoints come from EDS.
type Service struct {
	// Name is the target's name: xds:///<Name>.
	Name string
	// Policy is the cluster's load_balancing_policy (see
	// xds.LoadBalancingPolicy); nil leaves the cluster's lb_policy at
	// ROUND_ROBIN.
	Policy *clusterpb.LoadBalancingPolicy
	// Localities are the cluster's endpoints, by locality.
	Localities []Locality
	// MaxStreamDuration, when > 0, is the route's max_stream_duration: the
	// deadline grpc-go gives each call through it.
	MaxStreamDuration time.Duration
	// Retry, when not nil, is the route's retry policy.
	Retry *routepb.RetryPolicy
}

// Locality is one locality of a cluster's endpoints.
type Locality struct {
	// Zone names the locality (its region is "xdstest").
	Zone string
	// Weight is the locality's load_balancing_weight; 0 means 1 (grpc-go
	// ignores localities of weight 0).
	Weight uint32
	// Priority is the locality's EDS priority: 0 is used first.
	Priority uint32
	// Endpoints are the locality's endpoints.
	Endpoints []Endpoint
}

// Endpoint is one endpoint of a locality.
type Endpoint struct {
	// Addr is the endpoint's "host:port".
	Addr string
	// Weight is its load_balancing_weight; 0 leaves it unset (1).
	Weight uint32
}

// Rejection is a resource version that a client rejected (a NACK).
type Rejection struct {
	// TypeURL is the rejected resource type.
	TypeURL string
	// Message is the client's reason.
	Message string
}

// Server is a running management server.
type Server struct {
	addr   string
	cache  cache.SnapshotCache
	gs     *grpc.Server
	cancel context.CancelFunc
	served chan struct{}

	mu       sync.Mutex
	version  int
	rejected []Rejection
}

// Start serves a management server on 127.0.0.1, on a port of its own.
func Start() (*Server, error) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("xdstest: listen: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{
		addr:   lis.Addr().String(),
		cache:  cache.NewSnapshotCache(true, cache.IDHash{}, nil),
		gs:     grpc.NewServer(),
		cancel: cancel,
		served: make(chan struct{}),
	}
	xs := server.NewServer(ctx, s.cache, server.CallbackFuncs{StreamRequestFunc: s.onRequest})
	discoverypb.RegisterAggregatedDiscoveryServiceServer(s.gs, xs)
	go func() {
		defer close(s.served)
		s.gs.Serve(lis)
	}()
	return s, nil
}

// onRequest records the NACKs clients send.
func (s *Server) onRequest(_ int64, req *discoverypb.DiscoveryRequest) error {
	if d := req.GetErrorDetail(); d != nil {
		s.mu.Lock()
		s.rejected = append(s.rejected, Rejection{TypeURL: req.GetTypeUrl(), Message: d.GetMessage()})
		s.mu.Unlock()
	}
	return nil
}

// Addr returns the server's "host:port".
func (s *Server) Addr() string { return s.addr }

// Bootstrap returns the bootstrap JSON of a client of the server: its
// address, no credentials (plaintext on loopback), and NodeID.
func (s *Server) Bootstrap() []byte {
	return fmt.Appendf(nil, `{"xds_servers":[{"server_uri":%q,"channel_creds":[{"type":"insecure"}]}],"node":{"id":%q}}`, s.addr, NodeID)
}

// Rejected returns the NACKs received so far, oldest first.
func (s *Server) Rejected() []Rejection {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Rejection(nil), s.rejected...)
}

// Close stops the server; the clients' streams to it end.
func (s *Server) Close() {
	s.cancel()
	s.gs.Stop()
	<-s.served
}

// Set makes services the server's whole configuration, as a new version,
// and returns once the server holds it; clients that watch the resources
// get them pushed.
func (s *Server) Set(ctx context.Context, services ...Service) error {
	res := map[resource.Type][]types.Resource{}
	for _, svc := range services {
		if svc.Name == "" {
			return fmt.Errorf("xdstest: Set: a service has no Name")
		}
		lis, err := listener(svc)
		if err != nil {
			return err
		}
		cl, cla, err := cluster(svc)
		if err != nil {
			return err
		}
		res[resource.ListenerType] = append(res[resource.ListenerType], lis)
		res[resource.ClusterType] = append(res[resource.ClusterType], cl)
		res[resource.EndpointType] = append(res[resource.EndpointType], cla)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.version++
	snap, err := cache.NewSnapshot(strconv.Itoa(s.version), res)
	if err != nil {
		return fmt.Errorf("xdstest: Set: %w", err)
	}
	if err := snap.Consistent(); err != nil {
		return fmt.Errorf("xdstest: Set: %w", err)
	}
	if err := s.cache.SetSnapshot(ctx, NodeID, snap); err != nil {
		return fmt.Errorf("xdstest: Set: %w", err)
	}
	return nil
}

func clusterName(svc Service) string   { return svc.Name + "-cluster" }
func endpointsName(svc Service) string { return svc.Name + "-endpoints" }

// listener is svc's API listener, with its route configuration inline.
func listener(svc Service) (*listenerpb.Listener, error) {
	action := &routepb.RouteAction{
		ClusterSpecifier: &routepb.RouteAction_Cluster{Cluster: clusterName(svc)},
		RetryPolicy:      svc.Retry,
	}
	if svc.MaxStreamDuration > 0 {
		action.MaxStreamDuration = &routepb.RouteAction_MaxStreamDuration{MaxStreamDuration: durationpb.New(svc.MaxStreamDuration)}
	}
	router, err := anypb.New(&routerpb.Router{})
	if err != nil {
		return nil, fmt.Errorf("xdstest: %s: router filter: %w", svc.Name, err)
	}
	hcm, err := anypb.New(&hcmpb.HttpConnectionManager{
		RouteSpecifier: &hcmpb.HttpConnectionManager_RouteConfig{RouteConfig: &routepb.RouteConfiguration{
			Name: svc.Name + "-route",
			VirtualHosts: []*routepb.VirtualHost{{
				Name:    svc.Name,
				Domains: []string{"*"},
				Routes: []*routepb.Route{{
					Match:  &routepb.RouteMatch{PathSpecifier: &routepb.RouteMatch_Prefix{Prefix: "/"}},
					Action: &routepb.Route_Route{Route: action},
				}},
			}},
		}},
		HttpFilters: []*hcmpb.HttpFilter{{
			Name:       "router",
			ConfigType: &hcmpb.HttpFilter_TypedConfig{TypedConfig: router},
		}},
	})
	if err != nil {
		return nil, fmt.Errorf("xdstest: %s: http connection manager: %w", svc.Name, err)
	}
	return &listenerpb.Listener{
		Name:        svc.Name,
		ApiListener: &listenerpb.ApiListener{ApiListener: hcm},
	}, nil
}

// cluster is svc's EDS cluster and its endpoints.
func cluster(svc Service) (*clusterpb.Cluster, *endpointpb.ClusterLoadAssignment, error) {
	cl := &clusterpb.Cluster{
		Name:                 clusterName(svc),
		ClusterDiscoveryType: &clusterpb.Cluster_Type{Type: clusterpb.Cluster_EDS},
		EdsClusterConfig: &clusterpb.Cluster_EdsClusterConfig{
			EdsConfig:   &corepb.ConfigSource{ConfigSourceSpecifier: &corepb.ConfigSource_Ads{Ads: &corepb.AggregatedConfigSource{}}},
			ServiceName: endpointsName(svc),
		},
		LbPolicy:            clusterpb.Cluster_ROUND_ROBIN,
		LoadBalancingPolicy: svc.Policy,
	}
	cla := &endpointpb.ClusterLoadAssignment{ClusterName: endpointsName(svc)}
	for i, loc := range svc.Localities {
		w := loc.Weight
		if w == 0 {
			w = 1
		}
		lle := &endpointpb.LocalityLbEndpoints{
			Locality:            &corepb.Locality{Region: "xdstest", Zone: loc.Zone},
			LoadBalancingWeight: wrapperspb.UInt32(w),
			Priority:            loc.Priority,
		}
		for _, ep := range loc.Endpoints {
			host, port, err := net.SplitHostPort(ep.Addr)
			if err != nil {
				return nil, nil, fmt.Errorf("xdstest: %s: locality %d: endpoint %q: %v", svc.Name, i, ep.Addr, err)
			}
			p, err := strconv.ParseUint(port, 10, 16)
			if err != nil {
				return nil, nil, fmt.Errorf("xdstest: %s: locality %d: endpoint %q: port: %v", svc.Name, i, ep.Addr, err)
			}
			lbe := &endpointpb.LbEndpoint{
				HostIdentifier: &endpointpb.LbEndpoint_Endpoint{Endpoint: &endpointpb.Endpoint{
					Address: &corepb.Address{Address: &corepb.Address_SocketAddress{SocketAddress: &corepb.SocketAddress{
						Address:       host,
						PortSpecifier: &corepb.SocketAddress_PortValue{PortValue: uint32(p)},
					}}},
				}},
			}
			if ep.Weight > 0 {
				lbe.LoadBalancingWeight = wrapperspb.UInt32(ep.Weight)
			}
			lle.LbEndpoints = append(lle.LbEndpoints, lbe)
		}
		cla.Endpoints = append(cla.Endpoints, lle)
	}
	return cl, cla, nil
}
