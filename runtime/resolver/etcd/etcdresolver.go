package etcdresolver

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/grpclog"
	"google.golang.org/grpc/resolver"
)

// Scheme is the target scheme of the resolvers that NewBuilder builds.
const Scheme = "etcd"

// logger is made at package initialisation: grpclog.Component writes a
// map of its own without a lock.
var logger = grpclog.Component("lbclient_etcd_resolver")

// retryBackoff spaces the attempts to read the prefix again after a Get
// failed or a watch ended, with gRPC's connection-backoff formula. The cap
// is short next to grpc's own two minutes: the endpoint set is kept all the
// while, so the cost of a retry is one Get, and after an etcd outage a
// client should see the changes it missed within seconds.
var retryBackoff = backoff.Config{
	BaseDelay:  100 * time.Millisecond,
	Multiplier: 1.6,
	Jitter:     0.2,
	MaxDelay:   5 * time.Second,
}

// getTimeout bounds one Get of the prefix. The etcd client waits for a
// connection before it sends a request (its calls are wait-for-ready), so
// without a bound a Get to an unreachable cluster would wait silently.
const getTimeout = 5 * time.Second

// NewBuilder returns a builder of resolvers for "etcd:///<prefix>" targets
// that read and watch, through cli, the endpoints registered under the key
// prefix with etcd's naming/endpoints Manager. Pass it to runtime.Dial with
// runtime.WithResolver (or to grpc.NewClient with grpc.WithResolvers); it is
// not registered globally, because it is bound to cli.
//
// cli stays the caller's: the resolvers never close it, and must be closed
// (with the connections that use them) before it is.
func NewBuilder(cli *clientv3.Client) resolver.Builder {
	return builder{cli: cli}
}

type builder struct {
	cli *clientv3.Client
}

// Scheme returns "etcd".
func (builder) Scheme() string { return Scheme }

// Build starts a resolver for target: one goroutine that reads the prefix
// and watches it, handing every change to cc. Build itself does no I/O.
func (b builder) Build(target resolver.Target, cc resolver.ClientConn, _ resolver.BuildOptions) (resolver.Resolver, error) {
	if b.cli == nil {
		return nil, errors.New("etcd resolver: NewBuilder was given a nil *clientv3.Client")
	}
	prefix, err := parseTarget(target)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &etcdResolver{
		cli:    b.cli,
		cc:     cc,
		prefix: prefix,
		ctx:    ctx,
		cancel: cancel,
		set:    newEndpointSet(),
	}
	r.wg.Add(1)
	go r.run()
	return r, nil
}

// parseTarget returns the key prefix that target's path names, with the
// "/" that separates it from the keys under it: "etcd:///services/greeter"
// reads the keys that start with "services/greeter/", as endpoints.Manager
// writes them for the target "services/greeter".
func parseTarget(target resolver.Target) (string, error) {
	u := target.URL
	if u.Host != "" {
		return "", fmt.Errorf("etcd resolver: target %q names the authority %q: the cluster is the one of the client given to NewBuilder; write etcd:///<key prefix>", u.String(), u.Host)
	}
	name := strings.TrimSuffix(target.Endpoint(), "/")
	if name == "" {
		return "", fmt.Errorf("etcd resolver: target %q has no key prefix: write etcd:///<key prefix>, the target the servers register under with endpoints.NewManager", u.String())
	}
	return name + "/", nil
}

// etcdResolver follows one prefix. All its state but the context belongs
// to the goroutine run.
type etcdResolver struct {
	cli    *clientv3.Client
	cc     resolver.ClientConn
	prefix string // with its trailing "/"

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	set      *endpointSet
	sent     bool   // a state has been handed to cc
	lastErr  string // the last read error logged, so each is logged once
	failures int    // reads in a row that failed or whose watch soon broke
}

// ResolveNow does nothing. grpc-go calls it when a connection fails, to
// ask for fresh addresses; the watch already delivers every change as etcd
// commits it, and when the watch breaks the resolver reads the prefix again
// by itself, so a read prompted by ResolveNow could only find what the
// watch has delivered or is about to.
func (*etcdResolver) ResolveNow(resolver.ResolveNowOptions) {}

// Close stops the resolver's goroutine and its watch, and returns once
// they have ended.
func (r *etcdResolver) Close() {
	r.cancel()
	r.wg.Wait()
}

// run reads the prefix and watches it from the revision of the read, over
// and over: a watch ends when etcd compacted past the revision it needs,
// when the member loses its leader, or when the client gives up on the
// stream. Between attempts it backs off; the last set handed to cc stays
// in use throughout.
func (r *etcdResolver) run() {
	defer r.wg.Done()
	for {
		if rev, ok := r.read(); ok {
			r.watch(rev)
		}
		if r.ctx.Err() != nil {
			return
		}
		if r.cli.Ctx().Err() != nil {
			logger.Warningf("etcd resolver: %q: the etcd client was closed; the %d endpoints last read stay in use", r.prefix, r.set.lastLen())
			<-r.ctx.Done()
			return
		}
		t := time.NewTimer(delay(r.failures))
		r.failures++
		select {
		case <-r.ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// read gets every key under the prefix, replaces the set with what it
// finds and hands the set to cc. It returns the revision of the read, from
// which the watch starts, and whether the read succeeded. The Get is
// linearizable (etcd's default): a member that has lost its leader cannot
// answer it with a set that the cluster has moved on from.
func (r *etcdResolver) read() (int64, bool) {
	ctx, cancel := context.WithTimeout(r.ctx, getTimeout)
	resp, err := r.cli.Get(ctx, r.prefix, clientv3.WithPrefix())
	cancel()
	if err != nil {
		if r.ctx.Err() != nil {
			return 0, false
		}
		err = fmt.Errorf("etcd resolver: reading the keys under %q: %w", r.prefix, err)
		if msg := err.Error(); msg != r.lastErr {
			r.lastErr = msg
			if r.sent {
				logger.Warningf("%v; the %d endpoints last read stay in use, retrying", err, r.set.lastLen())
			} else {
				logger.Warningf("%v; retrying", err)
			}
		}
		if !r.sent {
			// Nothing read yet: fail the calls that do not wait for
			// ready with this error rather than leave them waiting for a
			// first state. Once a state is in use, an error would only
			// reach the balancer, and the set stays as it is.
			r.cc.ReportError(err)
		}
		return 0, false
	}
	if r.lastErr != "" {
		logger.Infof("etcd resolver: %q read again at revision %d", r.prefix, resp.Header.Revision)
		r.lastErr = ""
	}
	r.set.replace(resp.Kvs)
	r.push()
	return resp.Header.Revision, true
}

// watch applies the changes under the prefix after revision rev until the
// watch ends or the resolver closes. A watch that delivered changes, or
// lasted longer than the longest backoff, resets the backoff: it was not
// part of a run of failures.
//
// The watch requires a leader: a member cut off from the rest of its
// cluster would otherwise keep it open and silent while the cluster goes on
// changing; with the requirement etcd ends it, and the resolver reads the
// keys again once a member with a leader can answer. A connection lost or
// a member restarted is not an end: the etcd client resumes the watch from
// the last revision it delivered, and no change is missed.
func (r *etcdResolver) watch(rev int64) {
	ctx, cancel := context.WithCancel(clientv3.WithRequireLeader(r.ctx))
	defer cancel()
	start := time.Now()
	delivered := false
	defer func() {
		if delivered || time.Since(start) > retryBackoff.MaxDelay {
			r.failures = 0
		}
	}()
	wch := r.cli.Watch(ctx, r.prefix, clientv3.WithPrefix(), clientv3.WithRev(rev+1))
	for wresp := range wch {
		if err := wresp.Err(); err != nil {
			switch {
			case wresp.CompactRevision != 0:
				logger.Infof("etcd resolver: %q: etcd has compacted the revisions the watch needed (the oldest it keeps is %d); reading the keys again", r.prefix, wresp.CompactRevision)
			default:
				logger.Warningf("etcd resolver: %q: the watch ended: %v; reading the keys again", r.prefix, err)
			}
			cancel()
			for range wch { // closed once the etcd client has let go of it
			}
			return
		}
		if wresp.IsProgressNotify() {
			continue
		}
		delivered = true
		for _, ev := range wresp.Events {
			switch ev.Type {
			case clientv3.EventTypePut:
				r.set.put(ev.Kv)
			case clientv3.EventTypeDelete:
				r.set.remove(string(ev.Kv.Key))
			}
		}
		r.push()
	}
	if r.ctx.Err() == nil && r.cli.Ctx().Err() == nil {
		logger.Warningf("etcd resolver: %q: the watch ended; reading the keys again", r.prefix)
	}
}

// push hands the set to cc if it differs from the one last handed over.
//
// An empty set is handed over too: every server deregistered is a real
// state, in which the channel has no endpoint to call and calls wait for
// one (wait-for-ready) or fail with UNAVAILABLE. grpc-go's policies answer
// an empty set with balancer.ErrBadResolverState, asking a polling resolver
// to resolve again; this one needs no prompt, since the watch delivers the
// next registration as it happens.
func (r *etcdResolver) push() {
	eps, changed := r.set.endpoints()
	if !changed && r.sent {
		return
	}
	if len(eps) == 0 {
		logger.Warningf("etcd resolver: no endpoints under %q: calls wait for one to register, or fail with UNAVAILABLE", r.prefix)
	}
	err := r.cc.UpdateState(resolver.State{Endpoints: eps})
	r.sent = true
	if err != nil && len(eps) > 0 {
		logger.Warningf("etcd resolver: %q: the channel rejected the %d endpoints read: %v", r.prefix, len(eps), err)
	}
}

// delay is how long to wait before the next read after failures reads in
// a row failed: gRPC's connection backoff (BaseDelay × Multiplier^failures,
// capped at MaxDelay, ± Jitter), with retryBackoff's parameters.
func delay(failures int) time.Duration {
	d := float64(retryBackoff.BaseDelay)
	for i := 0; i < failures && d < float64(retryBackoff.MaxDelay); i++ {
		d *= retryBackoff.Multiplier
	}
	d = min(d, float64(retryBackoff.MaxDelay))
	d *= 1 + retryBackoff.Jitter*(2*rand.Float64()-1)
	return time.Duration(d)
}
