// Package xds lets lbclient's generated clients and runtime.Dial run on
// xds:/// targets, whose cluster, load-balancing policy and endpoints come
// from an xDS control plane (Istio, Traffic Director, a go-control-plane
// server). Import it once, in the program's main package:
//
//	import _ "github.com/lbclient/lbclient/runtime/xds"
//
// The import registers grpc-go's xDS resolver and balancers (it imports
// google.golang.org/grpc/xds); lbclient's own policies are registered by
// the runtime. It lives in a module of its own so that programs that do not
// use xDS do not build grpc-go's xDS client and its dependencies.
//
// The xDS client finds its control plane in the bootstrap file named by
// GRPC_XDS_BOOTSTRAP, or in the JSON of GRPC_XDS_BOOTSTRAP_CONFIG, read when
// the process starts; WithBootstrap gives one connection a bootstrap of its
// own instead.
//
// # Selecting lbclient's policies
//
// A cluster selects a policy by its load_balancing_policy field: a
// xds.type.v3.TypedStruct whose type_url is
// "type.googleapis.com/lbclient_peak_ewma" (PEAK_EWMA),
// "type.googleapis.com/lbclient_consistent_hash" (CONSISTENT_HASH) or
// "type.googleapis.com/lbclient_observe" (grpc-go's policies under
// lbclient's counters), and whose value holds the policy's JSON config: the
// fields documented on peakewma.LBConfig and consistenthash.LBConfig. The
// client validates the config with the policy's own parser, as for a
// service config, and rejects (NACKs) the cluster when it is invalid,
// keeping the policy it had. LoadBalancingPolicy builds the field, checked
// the same way, for control planes written in Go.
//
// # What the policy sees
//
// grpc-go's xDS balancers sit above the cluster's policy: the CDS balancer,
// outlier detection, cluster_impl (drops, circuit breaking, load reports),
// and priority, which runs one instance of the policy per EDS priority,
// using the first whose instance is READY and moving to the next when one
// reports TRANSIENT_FAILURE or has not connected within 10 s. Each
// instance gets the endpoints of all the localities of its priority, with
// grpc-go's weight attribute set to the endpoint's share of the priority:
// the locality's load_balancing_weight over the priority's total, times the
// endpoint's load_balancing_weight over its locality's total (a fixed-point
// fraction of 2^31). PEAK_EWMA draws endpoints in proportion to that weight
// and CONSISTENT_HASH gives them ring nodes in proportion, so locality and
// endpoint weights both shape the split. Because the weights are fractions
// of the whole, a change of one endpoint's weight changes every endpoint's;
// CONSISTENT_HASH divides them by their common divisor before it builds its
// ring (1:3 arrives as 2^29 and 3·2^29). Endpoints whose EDS health status
// is neither HEALTHY nor UNKNOWN are left out.
//
// A policy change (another name in the cluster's policy) builds the new
// policy and closes the old one: its connections are replaced, calls under
// way on them finish, and calls made meanwhile wait for the new one. An
// EDS change of endpoints or weights is an update of the running policy,
// which keeps its connections; localities that share none with a
// priority's old ones make a new priority, with a new instance of the
// policy.
//
// A cluster whose lb_policy is ROUND_ROBIN, or whose load_balancing_policy
// is envoy's wrr_locality, runs grpc-go's xds_wrr_locality instead: a
// weighted_target with one child per locality, picked in proportion to the
// locality weights, each running the endpoint-picking policy (round_robin,
// or lbclient's policy when wrr_locality's endpoint_picking_policy names it)
// over that locality's endpoints alone.
//
// # Rules on xds:/// targets
//
// The control plane picks the cluster and its policy; the rules' policy,
// retry policies, retry throttling and health checking are not used (the
// route's retry_policy governs retries). Timeouts, wait-for-ready, hedging
// and hash keys keep applying; the earlier of the rules' timeout and the
// route's max_stream_duration wins. Hedged attempts avoid the endpoints
// already tried under lbclient's policies and lbclient_observe; grpc-go's
// policies, when the cluster names them directly, do not know of the
// attempts. runtime.Dial logs, at Info level, which
// of the rules the control plane decides instead.
package xds

import (
	"encoding/json"
	"errors"
	"fmt"

	xdstypepb "github.com/cncf/xds/go/xds/type/v3"
	clusterpb "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corepb "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/grpc/balancer"
	grpcxds "google.golang.org/grpc/xds"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/lbclient/lbclient/runtime"
)

// TypeURLPrefix is what a TypedStruct's type_url holds before the name of
// the policy it selects.
const TypeURLPrefix = "type.googleapis.com/"

// LoadBalancingPolicy returns a cluster's load_balancing_policy that
// selects the registered policy name (peakewma.Name, consistenthash.Name,
// observe.Name, or any other) with config, its JSON config ("" for none),
// as a TypedStruct. The config is checked with the policy's own parser
// first, as the client will check it, so a config the client would reject
// is an error here, naming the policy and the field.
func LoadBalancingPolicy(name, config string) (*clusterpb.LoadBalancingPolicy, error) {
	b := balancer.Get(name)
	if b == nil {
		return nil, fmt.Errorf("lbclient/xds: LoadBalancingPolicy: no policy %q is registered", name)
	}
	if config == "" {
		config = "{}"
	}
	if p, ok := b.(balancer.ConfigParser); ok {
		if _, err := p.ParseConfig(json.RawMessage(config)); err != nil {
			return nil, fmt.Errorf("lbclient/xds: LoadBalancingPolicy: %w", err)
		}
	}
	s := new(structpb.Struct)
	if err := protojson.Unmarshal([]byte(config), s); err != nil {
		return nil, fmt.Errorf("lbclient/xds: LoadBalancingPolicy: config of %s is not a JSON object: %v", name, err)
	}
	ts, err := anypb.New(&xdstypepb.TypedStruct{TypeUrl: TypeURLPrefix + name, Value: s})
	if err != nil {
		return nil, fmt.Errorf("lbclient/xds: LoadBalancingPolicy: %v", err)
	}
	return &clusterpb.LoadBalancingPolicy{
		Policies: []*clusterpb.LoadBalancingPolicy_Policy{{
			TypedExtensionConfig: &corepb.TypedExtensionConfig{Name: name, TypedConfig: ts},
		}},
	}, nil
}

// WithBootstrap returns a Dial option that resolves the connection's
// xds:/// target with an xDS client of its own, configured by bootstrap
// (the JSON that GRPC_XDS_BOOTSTRAP_CONFIG would hold), rather than with
// the process's. It is for tests and for programs that start their control
// plane themselves: nothing is set process-wide, so connections with
// different bootstraps can coexist.
//
// It builds on grpc-go's xds.NewXDSResolverWithConfigForTesting, which
// grpc-go marks experimental: the client it creates is not reported by
// grpc-go's CSDS service.
func WithBootstrap(bootstrap []byte) (runtime.Option, error) {
	var bs struct {
		XDSServers []struct {
			ServerURI string `json:"server_uri"`
		} `json:"xds_servers"`
	}
	if err := json.Unmarshal(bootstrap, &bs); err != nil {
		return nil, fmt.Errorf("lbclient/xds: WithBootstrap: bootstrap is not JSON: %v", err)
	}
	if len(bs.XDSServers) == 0 || bs.XDSServers[0].ServerURI == "" {
		return nil, errors.New(`lbclient/xds: WithBootstrap: bootstrap names no control plane: "xds_servers" needs an entry with a "server_uri"`)
	}
	b, err := grpcxds.NewXDSResolverWithConfigForTesting(bootstrap)
	if err != nil {
		return nil, fmt.Errorf("lbclient/xds: WithBootstrap: %v", err)
	}
	return runtime.WithResolver(b), nil
}
