package etcdresolver_test

import (
	"context"
	"log"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/naming/endpoints"

	greeterv1 "github.com/lbclient/lbclient/gen/greeter/v1"
	"github.com/lbclient/lbclient/gen/greeter/v1/greeterv1lbclient"
	"github.com/lbclient/lbclient/runtime"
	etcdresolver "github.com/lbclient/lbclient/runtime/resolver/etcd"
)

// A client of the servers registered under "services/greeter".
func Example() {
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   []string{"localhost:2379"},
		DialTimeout: 5 * time.Second,
	})
	if err != nil {
		log.Fatal(err)
	}
	defer cli.Close()

	client, err := greeterv1lbclient.NewGreeterClient("etcd:///services/greeter",
		runtime.WithResolver(etcdresolver.NewBuilder(cli)),
	)
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()

	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	reply, err := client.SayHello(ctx, &greeterv1.HelloRequest{Name: "etcd"})
	if err != nil {
		log.Fatal(err)
	}
	log.Println(reply.GetMessage())
}

// A server registers its address under "services/greeter" with a weight,
// on a lease it keeps alive: if the server dies, the lease expires and its
// entry goes, and clients stop calling it.
func Example_register() {
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{"localhost:2379"}})
	if err != nil {
		log.Fatal(err)
	}
	defer cli.Close()
	ctx := context.Background()

	lease, err := cli.Grant(ctx, 10) // seconds
	if err != nil {
		log.Fatal(err)
	}
	alive, err := cli.KeepAlive(ctx, lease.ID)
	if err != nil {
		log.Fatal(err)
	}
	go func() {
		for range alive { // the client needs its answers read
		}
	}()

	em, err := endpoints.NewManager(cli, "services/greeter")
	if err != nil {
		log.Fatal(err)
	}
	addr := "10.0.0.7:8443" // where this server listens
	err = em.AddEndpoint(ctx, "services/greeter/"+addr, endpoints.Endpoint{
		Addr:     addr,
		Metadata: map[string]any{"weight": 3},
	}, clientv3.WithLease(lease.ID))
	if err != nil {
		log.Fatal(err)
	}

	// ... serve; on a graceful shutdown, deregister at once:
	cli.Revoke(ctx, lease.ID)
}
