package static_test

import (
	"context"
	"net"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/peer"

	"github.com/lbclient/lbclient/runtime/resolver/static"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestParseTarget(t *testing.T) {
	for _, tc := range []struct {
		list    string
		want    []string
		wantErr string
	}{
		{list: "127.0.0.1:1", want: []string{"127.0.0.1:1"}},
		{list: "a:1,b:2, [::1]:3", want: []string{"a:1", "b:2", "[::1]:3"}},
		{list: "", wantErr: "static resolver: no addresses: write them as static:///host1:port,host2:port"},
		{list: "a:1,,b:2", wantErr: `static resolver: address 2 of "a:1,,b:2" is empty`},
		{list: "a", wantErr: `static resolver: address "a": want host:port`},
		{list: "a:", wantErr: `static resolver: address "a:": want host:port`},
		{list: ":80", wantErr: `static resolver: address ":80" has no host`},
		{list: "a:1,a:1", wantErr: `static resolver: address "a:1" is listed twice`},
	} {
		t.Run(tc.list, func(t *testing.T) {
			st, err := static.ParseTarget(tc.list)
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr {
					t.Fatalf("ParseTarget(%q) error = %v, want %q", tc.list, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseTarget(%q): %v", tc.list, err)
			}
			var got []string
			for _, e := range st.Endpoints {
				if len(e.Addresses) != 1 {
					t.Fatalf("endpoint %v has %d addresses, want 1", e, len(e.Addresses))
				}
				got = append(got, e.Addresses[0].Addr)
			}
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Errorf("addresses (-want +got):\n%s", d)
			}
		})
	}
}

// TestResolvesToEveryBackend dials a static target of three real servers
// with round_robin and checks that calls reach each of them.
func TestResolvesToEveryBackend(t *testing.T) {
	var addrs []string
	for range 3 {
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		s := grpc.NewServer()
		healthpb.RegisterHealthServer(s, health.NewServer())
		go s.Serve(lis)
		t.Cleanup(s.Stop)
		addrs = append(addrs, lis.Addr().String())
	}
	target := "static:///" + addrs[0] + "," + addrs[1] + "," + addrs[2]
	cc, err := grpc.NewClient(target,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultServiceConfig(`{"loadBalancingConfig":[{"round_robin":{}}]}`))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	// Until every backend has had a call: round_robin adds each backend
	// to its rotation once it is connected, so the first calls may all
	// go to the first one up. Bounded: 2000 calls.
	seen := map[string]int{}
	client := healthpb.NewHealthClient(cc)
	for range 2000 {
		if len(seen) == len(addrs) {
			break
		}
		var p peer.Peer
		if _, err := client.Check(context.Background(), &healthpb.HealthCheckRequest{}, grpc.Peer(&p), grpc.WaitForReady(true)); err != nil {
			t.Fatal(err)
		}
		seen[p.Addr.String()]++
	}
	for _, a := range addrs {
		if seen[a] == 0 {
			t.Errorf("no call reached %s; calls per backend: %v", a, seen)
		}
	}
}

func TestBadTargetFailsDial(t *testing.T) {
	cc, err := grpc.NewClient("static:///a:1,a", grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	_, err = healthpb.NewHealthClient(cc).Check(context.Background(), &healthpb.HealthCheckRequest{})
	if err == nil || !strings.Contains(err.Error(), `static resolver: address "a": want host:port`) {
		t.Fatalf("call on a bad static target: error %v, want one naming the bad address", err)
	}
}
