// Package etcdresolver is lbclient's resolver for "etcd:///<key prefix>"
// targets: it finds the servers registered in etcd the standard way, with
// etcd's own naming/endpoints Manager, and follows them as they come and
// go.
//
// A server registers itself under a key of the prefix, on a lease that it
// keeps alive, so that its entry goes when it does:
//
//	em, _ := endpoints.NewManager(cli, "services/greeter")
//	lease, _ := cli.Grant(ctx, 10)
//	em.AddEndpoint(ctx, "services/greeter/"+addr, endpoints.Endpoint{
//		Addr:     addr,
//		Metadata: map[string]any{"weight": 3},
//	}, clientv3.WithLease(lease.ID))
//	cli.KeepAlive(ctx, lease.ID)
//
// A client dials the prefix, through an etcd client of its own:
//
//	conn, err := runtime.Dial("etcd:///services/greeter", rules,
//		runtime.WithResolver(etcdresolver.NewBuilder(cli)),
//	)
//
// The resolver reads every key under "<prefix>/" (deeper keys included, as
// with etcd's own resolver) and then watches them from the revision it
// read, so an endpoint added or removed reaches the balancer as soon as
// etcd commits it, and an entry whose lease expires (a server that died)
// goes like one deleted. A lost connection or a restarted cluster loses no
// change: the etcd client resumes the watch where it was. When the watch
// cannot resume (etcd compacted the revisions it needed, the member lost
// its leader), the resolver reads the keys again, with backoff, and watches
// anew. The endpoints last read stay in use meanwhile.
//
// Each distinct Addr is one endpoint. A Metadata object with a "weight", a
// whole number from 1 to 2^32-1, becomes the endpoint's weight in grpc-go's
// experimental/balancer/weight, the attribute that policies weighing
// endpoints read (grpc-go's ring_hash among them; round_robin ignores it);
// an endpoint without one has no weight attribute, which such policies
// count as 1. Etcd's own resolver drops the metadata. Other metadata is the
// server's own and is left alone.
//
// A value that is not the JSON of an endpoints.Endpoint, has no host:port
// Addr, or has a weight that is not such a number is ignored: the key keeps
// its last good value, if it had one, and the problem is logged once per
// change through grpclog (component "lbclient_etcd_resolver"), naming the
// key and its revision.
//
// Every server deregistered is a state like any other: the channel gets an
// empty set, and calls wait for a server to register (wait-for-ready) or
// fail with UNAVAILABLE, rather than go on to servers that are gone.
//
// The package is a Go module of its own, so that etcd's dependencies reach
// only the programs that use it.
package etcdresolver
