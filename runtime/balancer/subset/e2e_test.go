package subset_test

import (
	"context"
	"maps"
	"slices"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"

	"github.com/lbclient/lbclient/runtime/balancer/internal/lbtest"
	"github.com/lbclient/lbclient/runtime/balancer/subset"
)

// TestE2EClientFromResolver: with clientCount 0 in the config, the client's
// place comes from the resolver (SetClient), and calls reach exactly the
// aperture's backends.
func TestE2EClientFromResolver(t *testing.T) {
	bs := lbtest.StartBackends(t, &lbtest.Backend{}, &lbtest.Backend{}, &lbtest.Backend{}, &lbtest.Backend{}, &lbtest.Backend{}, &lbtest.Backend{})
	r := manual.NewBuilderWithScheme("subsettest")
	r.InitialState(subset.SetClient(resolver.State{Endpoints: lbtest.Endpoints(lbtest.Addrs(bs))}, 1, 3))
	cc, err := grpc.NewClient("subsettest:///x", grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithResolvers(r),
		grpc.WithDefaultServiceConfig(`{"loadBalancingConfig":[{"lbclient_deterministic_subset":{"subsetSize":2,"clientCount":0,"childPolicy":[{"round_robin":{}}]}}]}`))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	got := map[string]int{}
	// Until both of the aperture's backends answered (round_robin picks the
	// READY ones only, and the second may connect later), and 60 calls.
	for n := 0; n < 60 || (len(got) < 2 && n < 2000); n++ {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		var p peer.Peer
		if err := lbtest.Call(ctx, cc, grpc.Peer(&p), grpc.WaitForReady(true)); err != nil {
			t.Fatal(err)
		}
		cancel()
		got[p.Addr.String()]++
	}
	sorted := slices.Sorted(slices.Values(lbtest.Addrs(bs)))
	want := []string{sorted[2], sorted[3]} // client 1 of 3: the middle third
	if keys := slices.Sorted(maps.Keys(got)); !slices.Equal(keys, want) {
		t.Errorf("calls reached %v, want the aperture %v", got, want)
	}
}
