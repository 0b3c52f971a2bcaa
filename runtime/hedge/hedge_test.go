package hedge

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/lbclient/lbclient/runtime/internal/callinfo"
)

// The tests drive the hedging delay by hand (useFakeTimers) and let the
// backends tell the attempts apart by their order of arrival, so that every
// outcome is decided by the test, never by how fast the machine is.

func reply(a arrival, in *wrapperspb.StringValue) (*wrapperspb.StringValue, error) {
	return wrapperspb.String(fmt.Sprintf("%s from arrival %d", in.GetValue(), a.n)), nil
}

func TestHedgeWinsAndLoserIsCancelled(t *testing.T) {
	ft := useFakeTimers(t)
	var f *fleet
	f = startFleet(t, 1, func(ctx context.Context, a arrival, in *wrapperspb.StringValue) (*wrapperspb.StringValue, error) {
		if a.n == 1 {
			return f.blockUntilCanceled(ctx, a)
		}
		return reply(a, in)
	})
	hi := newInterceptor(t, Policy{MaxAttempts: 2, Delay: time.Second})
	cc := dial(t, f, hi)

	res := goEcho(t.Context(), cc, "hi")
	f.waitArrival(t)
	tm := ft.next(t)
	if tm.d != time.Second {
		t.Errorf("delay = %v, want the policy's 1s", tm.d)
	}
	tm.fire()

	got := recv(t, res, "call result")
	if got.err != nil || got.reply != "hi from arrival 2" {
		t.Fatalf("call = %q, %v; want the hedge's reply", got.reply, got.err)
	}
	if n := f.waitCanceled(t); n != 1 {
		t.Errorf("cancelled arrival = %d, want the first attempt (1)", n)
	}
	want := Counters{Calls: 1, Hedged: 1, ExtraAttempts: 1, HedgeWins: 1}
	if diff := cmp.Diff(want, counters(hi)); diff != "" {
		t.Errorf("counters (-want +got):\n%s", diff)
	}
}

func TestFastAnswerSendsNoHedge(t *testing.T) {
	ft := useFakeTimers(t)
	f := startFleet(t, 1, func(_ context.Context, a arrival, in *wrapperspb.StringValue) (*wrapperspb.StringValue, error) {
		return reply(a, in)
	})
	hi := newInterceptor(t, Policy{MaxAttempts: 3, Delay: time.Second})
	cc := dial(t, f, hi)

	for i := range 3 {
		got := echo(t.Context(), cc, "hi")
		if got.err != nil || got.reply != fmt.Sprintf("hi from arrival %d", i+1) {
			t.Fatalf("call %d = %q, %v", i, got.reply, got.err)
		}
		tm := ft.next(t)
		if !tm.stopped.Load() {
			t.Errorf("call %d: the hedge timer is still running after the call", i)
		}
		tm.fire() // a real timer may fire while being stopped: it must do nothing
	}
	if n := len(f.seen()); n != 3 {
		t.Errorf("backend saw %d requests, want 3", n)
	}
	want := Counters{Calls: 3}
	if diff := cmp.Diff(want, counters(hi)); diff != "" {
		t.Errorf("counters (-want +got):\n%s", diff)
	}
}

func TestFatalCodeEndsTheCall(t *testing.T) {
	ft := useFakeTimers(t)
	var f *fleet
	f = startFleet(t, 1, func(ctx context.Context, a arrival, _ *wrapperspb.StringValue) (*wrapperspb.StringValue, error) {
		if a.n == 1 {
			return f.blockUntilCanceled(ctx, a)
		}
		return nil, status.Error(codes.InvalidArgument, "bad request")
	})
	hi := newInterceptor(t, Policy{MaxAttempts: 3, Delay: time.Second, NonFatalCodes: []codes.Code{codes.Unavailable}})
	cc := dial(t, f, hi)

	res := goEcho(t.Context(), cc, "hi")
	f.waitArrival(t)
	ft.next(t).fire()
	f.waitArrival(t)
	third := ft.next(t) // armed when the second attempt started

	got := recv(t, res, "call result")
	if status.Code(got.err) != codes.InvalidArgument {
		t.Fatalf("call error = %v, want InvalidArgument", got.err)
	}
	if n := f.waitCanceled(t); n != 1 {
		t.Errorf("cancelled arrival = %d, want the first attempt (1)", n)
	}
	third.fire()
	if n := len(f.seen()); n != 2 {
		t.Errorf("backend saw %d requests, want 2: a fatal code ends the call", n)
	}
	want := Counters{Calls: 1, Hedged: 1, ExtraAttempts: 1}
	if diff := cmp.Diff(want, counters(hi)); diff != "" {
		t.Errorf("counters (-want +got):\n%s", diff)
	}
}

func TestNonFatalCodeLetsOthersContinue(t *testing.T) {
	ft := useFakeTimers(t)
	release := make(chan struct{})
	f := startFleet(t, 1, func(ctx context.Context, a arrival, in *wrapperspb.StringValue) (*wrapperspb.StringValue, error) {
		if a.n == 1 {
			select {
			case <-release:
				return reply(a, in)
			case <-ctx.Done():
				return nil, status.FromContextError(ctx.Err()).Err()
			}
		}
		return nil, status.Error(codes.Unavailable, "overloaded")
	})
	hi := newInterceptor(t, Policy{MaxAttempts: 2, Delay: time.Second, NonFatalCodes: []codes.Code{codes.Unavailable}})
	cc := dial(t, f, hi)

	res := goEcho(t.Context(), cc, "hi")
	f.waitArrival(t)
	ft.next(t).fire()
	f.waitArrival(t)
	select {
	case got := <-res:
		t.Fatalf("call ended with %q, %v while its first attempt runs", got.reply, got.err)
	default:
	}
	close(release)

	got := recv(t, res, "call result")
	if got.err != nil || got.reply != "hi from arrival 1" {
		t.Fatalf("call = %q, %v; want the first attempt's reply", got.reply, got.err)
	}
	want := Counters{Calls: 1, Hedged: 1, ExtraAttempts: 1}
	if diff := cmp.Diff(want, counters(hi)); diff != "" {
		t.Errorf("counters (-want +got):\n%s", diff)
	}
}

func TestNonFatalCodeSendsNextAttemptAtOnce(t *testing.T) {
	ft := useFakeTimers(t)
	var f *fleet
	f = startFleet(t, 1, func(ctx context.Context, a arrival, in *wrapperspb.StringValue) (*wrapperspb.StringValue, error) {
		switch a.n {
		case 1:
			return f.blockUntilCanceled(ctx, a)
		case 2:
			return nil, status.Error(codes.Unavailable, "overloaded")
		}
		return reply(a, in)
	})
	hi := newInterceptor(t, Policy{MaxAttempts: 3, Delay: time.Second, NonFatalCodes: []codes.Code{codes.Unavailable}})
	cc := dial(t, f, hi)

	res := goEcho(t.Context(), cc, "hi")
	f.waitArrival(t)
	ft.next(t).fire()
	// The second attempt fails with UNAVAILABLE: the third goes at once,
	// without its timer firing.
	got := recv(t, res, "call result")
	if got.err != nil || got.reply != "hi from arrival 3" {
		t.Fatalf("call = %q, %v; want the third attempt's reply", got.reply, got.err)
	}
	if n := f.waitCanceled(t); n != 1 {
		t.Errorf("cancelled arrival = %d, want the first attempt (1)", n)
	}
	want := Counters{Calls: 1, Hedged: 1, ExtraAttempts: 2, HedgeWins: 1}
	if diff := cmp.Diff(want, counters(hi)); diff != "" {
		t.Errorf("counters (-want +got):\n%s", diff)
	}
}

func TestAllAttemptsFailNonFatal(t *testing.T) {
	useFakeTimers(t) // never fired: each failure sends the next attempt
	f := startFleet(t, 1, func(_ context.Context, a arrival, _ *wrapperspb.StringValue) (*wrapperspb.StringValue, error) {
		return nil, status.Errorf(codes.Unavailable, "overloaded at arrival %d", a.n)
	})
	hi := newInterceptor(t, Policy{MaxAttempts: 3, Delay: time.Second, NonFatalCodes: []codes.Code{codes.Unavailable, codes.ResourceExhausted}})
	cc := dial(t, f, hi)

	got := echo(t.Context(), cc, "hi")
	if s := status.Convert(got.err); s.Code() != codes.Unavailable || s.Message() != "overloaded at arrival 3" {
		t.Fatalf("call error = %v, want the last attempt's UNAVAILABLE", got.err)
	}
	if n := len(f.seen()); n != 3 {
		t.Errorf("backend saw %d requests, want 3", n)
	}
	want := Counters{Calls: 1, Hedged: 1, ExtraAttempts: 2}
	if diff := cmp.Diff(want, counters(hi)); diff != "" {
		t.Errorf("counters (-want +got):\n%s", diff)
	}
}

func TestBudgetBoundsExtraAttempts(t *testing.T) {
	useFakeTimers(t)
	f := startFleet(t, 1, func(context.Context, arrival, *wrapperspb.StringValue) (*wrapperspb.StringValue, error) {
		return nil, status.Error(codes.Unavailable, "overloaded")
	})
	// Each failure asks for the next attempt at once, so every call wants
	// one extra attempt. The bucket starts with 1 token and each call earns
	// a quarter: calls 1 and 5 may hedge, the 6 others are denied.
	hi := newInterceptor(t, Policy{MaxAttempts: 2, Delay: time.Second, NonFatalCodes: []codes.Code{codes.Unavailable}},
		WithBudget(0.25, 1))
	cc := dial(t, f, hi)

	for i := range 8 {
		if got := echo(t.Context(), cc, "hi"); status.Code(got.err) != codes.Unavailable {
			t.Fatalf("call %d error = %v, want UNAVAILABLE", i, got.err)
		}
	}
	if n := len(f.seen()); n != 10 {
		t.Errorf("backend saw %d requests, want 10: 8 calls and 2 hedges", n)
	}
	want := Counters{Calls: 8, Hedged: 2, ExtraAttempts: 2, BudgetDenied: 6}
	if diff := cmp.Diff(want, counters(hi)); diff != "" {
		t.Errorf("counters (-want +got):\n%s", diff)
	}
}

func TestBudgetSpentCallsStillSucceed(t *testing.T) {
	ft := useFakeTimers(t)
	release := make(chan struct{})
	var f *fleet
	f = startFleet(t, 1, func(ctx context.Context, a arrival, in *wrapperspb.StringValue) (*wrapperspb.StringValue, error) {
		switch a.n {
		case 1:
			return f.blockUntilCanceled(ctx, a)
		case 2:
			return reply(a, in)
		}
		<-release
		return reply(a, in)
	})
	hi := newInterceptor(t, Policy{MaxAttempts: 2, Delay: time.Second}, WithBudget(0, 1))
	cc := dial(t, f, hi)

	// The first call spends the only token on its hedge.
	res := goEcho(t.Context(), cc, "hi")
	f.waitArrival(t)
	ft.next(t).fire()
	if got := recv(t, res, "call result"); got.err != nil || got.reply != "hi from arrival 2" {
		t.Fatalf("first call = %q, %v; want the hedge's reply", got.reply, got.err)
	}
	// The second is denied its hedge and waits for its first attempt.
	res = goEcho(t.Context(), cc, "hi")
	f.waitArrival(t)
	ft.next(t).fire()
	if got := counters(hi).BudgetDenied; got != 1 {
		t.Errorf("budget-denied hedges = %d, want 1", got)
	}
	close(release)
	if got := recv(t, res, "call result"); got.err != nil || got.reply != "hi from arrival 3" {
		t.Fatalf("second call = %q, %v; want its first attempt's reply", got.reply, got.err)
	}
	if n := len(f.seen()); n != 3 {
		t.Errorf("backend saw %d requests, want 3", n)
	}
	want := Counters{Calls: 2, Hedged: 1, ExtraAttempts: 1, HedgeWins: 1, BudgetDenied: 1}
	if diff := cmp.Diff(want, counters(hi)); diff != "" {
		t.Errorf("counters (-want +got):\n%s", diff)
	}
}

func TestDeadlineBoundsAllAttempts(t *testing.T) {
	ft := useFakeTimers(t)
	var f *fleet
	f = startFleet(t, 1, func(ctx context.Context, a arrival, _ *wrapperspb.StringValue) (*wrapperspb.StringValue, error) {
		return f.blockUntilCanceled(ctx, a)
	})
	hi := newInterceptor(t, Policy{MaxAttempts: 3, Delay: time.Second})
	cc := dial(t, f, hi)

	// Every attempt hangs until the deadline. Whether the hedge starts
	// before the deadline or not, the call must end with it, and no
	// attempt may start after it.
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	res := goEcho(ctx, cc, "hi")
	ft.next(t).fire()
	got := recv(t, res, "call result")
	if status.Code(got.err) != codes.DeadlineExceeded {
		t.Fatalf("call error = %v, want DeadlineExceeded", got.err)
	}
	for len(ft.timers) > 0 {
		(<-ft.timers).fire() // after the deadline: none may start an attempt
	}
	c := counters(hi)
	if c.ExtraAttempts > 1 {
		t.Errorf("extra attempts = %d, want at most the one fired before the deadline", c.ExtraAttempts)
	}
	for _, a := range f.seen() {
		if !a.hasDeadline {
			t.Errorf("arrival %d carried no deadline", a.n)
		}
	}
}

// TestTimeoutBoundsAllAttempts: the policy's Timeout is one deadline for
// the whole call, carried by every attempt, the caller's context having
// none.
func TestTimeoutBoundsAllAttempts(t *testing.T) {
	ft := useFakeTimers(t)
	var f *fleet
	f = startFleet(t, 1, func(ctx context.Context, a arrival, _ *wrapperspb.StringValue) (*wrapperspb.StringValue, error) {
		return f.blockUntilCanceled(ctx, a)
	})
	hi := newInterceptor(t, Policy{MaxAttempts: 2, Delay: time.Second, Timeout: 50 * time.Millisecond})
	cc := dial(t, f, hi)

	res := goEcho(t.Context(), cc, "hi") // no deadline of the caller's
	f.waitArrival(t)
	ft.next(t).fire()
	got := recv(t, res, "call result")
	if status.Code(got.err) != codes.DeadlineExceeded {
		t.Fatalf("call error = %v, want DeadlineExceeded from the policy's timeout", got.err)
	}
	seen := f.seen()
	if len(seen) == 0 {
		t.Fatal("no attempt reached the server")
	}
	for _, a := range seen {
		if !a.hasDeadline {
			t.Errorf("arrival %d carried no deadline", a.n)
		}
	}
}

func TestNoHedgeStartsAfterContextIsDone(t *testing.T) {
	ft := useFakeTimers(t)
	f := startFleet(t, 1, func(_ context.Context, a arrival, in *wrapperspb.StringValue) (*wrapperspb.StringValue, error) {
		return reply(a, in)
	})
	// An interceptor after hedging holds the first attempt, deaf to its
	// context, until the caller's context is done and the timer has fired.
	hold := make(chan struct{})
	holdFirst := func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		<-hold
		return invoker(ctx, method, req, reply, cc, opts...)
	}
	hi := newInterceptor(t, Policy{MaxAttempts: 2, Delay: time.Second})
	cc := dial(t, f, hi, holdFirst)

	ctx, cancel := context.WithTimeout(t.Context(), time.Millisecond)
	defer cancel()
	res := goEcho(ctx, cc, "hi")
	tm := ft.next(t)
	<-ctx.Done()
	tm.fire()
	close(hold)

	if got := recv(t, res, "call result"); status.Code(got.err) != codes.DeadlineExceeded {
		t.Fatalf("call error = %v, want DeadlineExceeded", got.err)
	}
	if c := counters(hi); c.ExtraAttempts != 0 {
		t.Errorf("extra attempts = %d, want 0 after the deadline", c.ExtraAttempts)
	}
}

func TestCallerCancelCancelsEveryAttempt(t *testing.T) {
	ft := useFakeTimers(t)
	var f *fleet
	f = startFleet(t, 1, func(ctx context.Context, a arrival, _ *wrapperspb.StringValue) (*wrapperspb.StringValue, error) {
		return f.blockUntilCanceled(ctx, a)
	})
	hi := newInterceptor(t, Policy{MaxAttempts: 2, Delay: time.Second})
	cc := dial(t, f, hi)

	ctx, cancel := context.WithCancel(t.Context())
	res := goEcho(ctx, cc, "hi")
	f.waitArrival(t)
	ft.next(t).fire()
	f.waitArrival(t)
	cancel()

	if got := recv(t, res, "call result"); status.Code(got.err) != codes.Canceled {
		t.Fatalf("call error = %v, want Canceled", got.err)
	}
	seen := map[int]bool{f.waitCanceled(t): true, f.waitCanceled(t): true}
	if !seen[1] || !seen[2] {
		t.Errorf("cancelled arrivals = %v, want both attempts", seen)
	}
}

// countingCreds are per-RPC credentials that number the requests they sign.
type countingCreds struct{ n atomic.Int64 }

func (c *countingCreds) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": fmt.Sprintf("token-%d", c.n.Add(1))}, nil
}

func (c *countingCreds) RequireTransportSecurity() bool { return false }

func TestMetadataAndCredentialsReachEveryAttempt(t *testing.T) {
	ft := useFakeTimers(t)
	var f *fleet
	f = startFleet(t, 1, func(ctx context.Context, a arrival, in *wrapperspb.StringValue) (*wrapperspb.StringValue, error) {
		if a.n == 1 {
			return f.blockUntilCanceled(ctx, a)
		}
		return reply(a, in)
	})
	hi := newInterceptor(t, Policy{MaxAttempts: 2, Delay: time.Second})
	cc := dial(t, f, hi)
	creds := &countingCreds{}

	ctx, cancel := context.WithTimeout(t.Context(), time.Hour)
	defer cancel()
	ctx = metadata.AppendToOutgoingContext(ctx, "tenant", "blue")
	res := goEcho(ctx, cc, "hi", grpc.PerRPCCredentials(creds))
	f.waitArrival(t)
	ft.next(t).fire()
	if got := recv(t, res, "call result"); got.err != nil {
		t.Fatal(got.err)
	}
	var tokens []string
	for _, a := range f.seen() {
		if got := a.md.Get("tenant"); len(got) != 1 || got[0] != "blue" {
			t.Errorf("arrival %d: tenant = %q, want [blue]", a.n, got)
		}
		if !a.hasDeadline {
			t.Errorf("arrival %d carried no deadline", a.n)
		}
		tokens = append(tokens, strings.Join(a.md.Get("authorization"), ","))
	}
	if diff := cmp.Diff([]string{"token-1", "token-2"}, tokens); diff != "" {
		t.Errorf("per-RPC credentials did not run once per attempt (-want +got):\n%s", diff)
	}
}

func TestAttemptsShareOneSet(t *testing.T) {
	ft := useFakeTimers(t)
	var f *fleet
	f = startFleet(t, 1, func(ctx context.Context, a arrival, in *wrapperspb.StringValue) (*wrapperspb.StringValue, error) {
		if a.n == 1 {
			return f.blockUntilCanceled(ctx, a)
		}
		return reply(a, in)
	})
	var mu sync.Mutex
	var sets []*callinfo.Attempts
	record := func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		mu.Lock()
		sets = append(sets, callinfo.AttemptsFrom(ctx))
		mu.Unlock()
		return invoker(ctx, method, req, reply, cc, opts...)
	}
	hi := newInterceptor(t, Policy{MaxAttempts: 2, Delay: time.Second})
	cc := dial(t, f, hi, record)

	res := goEcho(t.Context(), cc, "hi")
	f.waitArrival(t)
	ft.next(t).fire()
	if got := recv(t, res, "call result"); got.err != nil {
		t.Fatal(got.err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(sets) != 2 || sets[0] == nil || sets[0] != sets[1] {
		t.Errorf("attempts carried sets %p, want one shared non-nil set", sets)
	}
}

func TestPickerSendsEachAttemptElsewhere(t *testing.T) {
	ft := useFakeTimers(t)
	fleetSize.Store(3)
	t.Cleanup(func() { fleetSize.Store(0) })
	var f *fleet
	f = startFleet(t, 3, func(ctx context.Context, a arrival, in *wrapperspb.StringValue) (*wrapperspb.StringValue, error) {
		if a.n < 3 {
			return f.blockUntilCanceled(ctx, a)
		}
		return reply(a, in)
	})
	var set atomic.Pointer[callinfo.Attempts]
	record := func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		set.Store(callinfo.AttemptsFrom(ctx))
		return invoker(ctx, method, req, reply, cc, opts...)
	}
	hi := newInterceptor(t, Policy{MaxAttempts: 3, Delay: time.Second})
	cc := dial(t, f, hi, record)

	res := goEcho(t.Context(), cc, "hi")
	f.waitArrival(t)
	ft.next(t).fire()
	f.waitArrival(t)
	ft.next(t).fire()
	if got := recv(t, res, "call result"); got.err != nil || got.reply != "hi from arrival 3" {
		t.Fatalf("call = %q, %v; want the third attempt's reply", got.reply, got.err)
	}
	perBackend := make([]int, 3)
	for _, a := range f.seen() {
		perBackend[a.backend]++
	}
	if diff := cmp.Diff([]int{1, 1, 1}, perBackend); diff != "" {
		t.Errorf("requests per backend (-want +got):\n%s", diff)
	}
	if addrs := set.Load().Addrs(); len(addrs) != 3 || addrs[0] == addrs[1] || addrs[1] == addrs[2] || addrs[0] == addrs[2] {
		t.Errorf("Attempts = %q, want 3 distinct endpoints", addrs)
	}
}

func TestCallOptionsDescribeTheWinner(t *testing.T) {
	ft := useFakeTimers(t)
	var f *fleet
	f = startFleet(t, 1, func(ctx context.Context, a arrival, in *wrapperspb.StringValue) (*wrapperspb.StringValue, error) {
		n := fmt.Sprint(a.n)
		grpc.SetHeader(ctx, metadata.Pairs("arrival", n))
		grpc.SetTrailer(ctx, metadata.Pairs("arrival-trailer", n))
		if a.n == 1 {
			grpc.SendHeader(ctx, nil)
			return f.blockUntilCanceled(ctx, a)
		}
		return reply(a, in)
	})
	hi := newInterceptor(t, Policy{MaxAttempts: 2, Delay: time.Second})
	cc := dial(t, f, hi)

	var header, trailer metadata.MD
	var p peer.Peer
	var finished []error
	res := goEcho(t.Context(), cc, "hi", grpc.Header(&header), grpc.Trailer(&trailer), grpc.Peer(&p),
		grpc.OnFinish(func(err error) { finished = append(finished, err) }))
	f.waitArrival(t)
	ft.next(t).fire()
	if got := recv(t, res, "call result"); got.err != nil {
		t.Fatal(got.err)
	}
	if got := header.Get("arrival"); len(got) != 1 || got[0] != "2" {
		t.Errorf("header arrival = %q, want the winner's [2]", got)
	}
	if got := trailer.Get("arrival-trailer"); len(got) != 1 || got[0] != "2" {
		t.Errorf("trailer arrival-trailer = %q, want the winner's [2]", got)
	}
	if p.Addr == nil || p.Addr.String() != f.backends[0].addr {
		t.Errorf("peer = %v, want %s", p.Addr, f.backends[0].addr)
	}
	if len(finished) != 1 || finished[0] != nil {
		t.Errorf("OnFinish ran with %v, want once with nil", finished)
	}
}

func TestUnhedgedMethodsPassThrough(t *testing.T) {
	f := startFleet(t, 1, func(_ context.Context, a arrival, in *wrapperspb.StringValue) (*wrapperspb.StringValue, error) {
		return reply(a, in)
	})
	hi, err := New(map[string]Policy{"/hedgetest.Echo/Other": {MaxAttempts: 2, Delay: time.Nanosecond}})
	if err != nil {
		t.Fatal(err)
	}
	cc := dial(t, f, hi)
	var sets []*callinfo.Attempts
	record := func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		sets = append(sets, callinfo.AttemptsFrom(ctx))
		return invoker(ctx, method, req, reply, cc, opts...)
	}
	cc2 := dial(t, f, hi, record)
	for _, c := range []*grpc.ClientConn{cc, cc2} {
		if got := echo(t.Context(), c, "hi"); got.err != nil {
			t.Fatal(got.err)
		}
	}
	if len(sets) != 1 || sets[0] != nil {
		t.Errorf("pass-through call carried Attempts %v", sets)
	}
	if s := hi.Stats(); s.Calls != 0 {
		t.Errorf("Stats().Calls = %d, want 0 for an unhedged method", s.Calls)
	}
}

// TestRealTimers runs one hedged call on the real clock: whichever attempt
// reaches the backend first hangs, so the call can only end by a hedge.
func TestRealTimers(t *testing.T) {
	var f *fleet
	f = startFleet(t, 1, func(ctx context.Context, a arrival, in *wrapperspb.StringValue) (*wrapperspb.StringValue, error) {
		if a.n == 1 {
			return f.blockUntilCanceled(ctx, a)
		}
		return reply(a, in)
	})
	hi := newInterceptor(t, Policy{MaxAttempts: 2, Delay: time.Millisecond})
	cc := dial(t, f, hi)
	ctx, cancel := context.WithTimeout(t.Context(), waitLimit)
	defer cancel()
	if got := echo(ctx, cc, "hi"); got.err != nil || got.reply != "hi from arrival 2" {
		t.Fatalf("call = %q, %v", got.reply, got.err)
	}
	f.waitCanceled(t)
	if c := counters(hi); c.Hedged != 1 || c.ExtraAttempts != 1 {
		t.Errorf("counters = %+v, want one hedge", c)
	}
}

func TestAdaptiveDelay(t *testing.T) {
	hi := newInterceptor(t, Policy{MaxAttempts: 2, DelayPercentile: 90},
		WithDelayBounds(2*time.Millisecond, 50*time.Millisecond), WithFallbackDelay(time.Second))
	m := hi.methods[echoMethod]
	if got := m.hedgeDelay(); got != 50*time.Millisecond {
		t.Errorf("delay without samples = %v, want the fallback clamped to 50ms", got)
	}
	for i := range minSamples {
		m.est.Record(time.Duration(i+1) * 100 * time.Microsecond) // 0.1ms to 10ms
	}
	if got := m.hedgeDelay(); got < 8500*time.Microsecond || got > 9500*time.Microsecond {
		t.Errorf("delay = %v, want about the 90th percentile, 9ms", got)
	}
	for range windowSize * 2 {
		m.est.Record(time.Microsecond)
	}
	if got := m.hedgeDelay(); got != 2*time.Millisecond {
		t.Errorf("delay = %v, want the 2ms floor", got)
	}
	if got := hi.Stats().Methods[echoMethod].Delay; got != 2*time.Millisecond {
		t.Errorf("Stats delay = %v, want 2ms", got)
	}
}

// TestAdaptiveDelayLearnsFromFirstAttempts checks what feeds the estimator:
// first attempts that succeed, and first attempts cut short by a hedge.
func TestAdaptiveDelayLearnsFromFirstAttempts(t *testing.T) {
	ft := useFakeTimers(t)
	var f *fleet
	f = startFleet(t, 1, func(ctx context.Context, a arrival, in *wrapperspb.StringValue) (*wrapperspb.StringValue, error) {
		switch {
		case a.n == 1:
			return f.blockUntilCanceled(ctx, a)
		case a.n == 3:
			return nil, status.Error(codes.Internal, "broken")
		}
		return reply(a, in)
	})
	hi := newInterceptor(t, Policy{MaxAttempts: 2, DelayPercentile: 95})
	cc := dial(t, f, hi)
	m := hi.methods[echoMethod]

	res := goEcho(t.Context(), cc, "hi") // first attempt lost to a hedge
	f.waitArrival(t)
	ft.next(t).fire()
	recv(t, res, "call result")
	echo(t.Context(), cc, "hi") // first attempt failed: not a latency
	echo(t.Context(), cc, "hi") // succeeded
	m.est.mu.Lock()
	n := m.est.curN
	m.est.mu.Unlock()
	if n != 2 {
		t.Errorf("estimator has %d samples, want 2", n)
	}
}

func TestPassThroughDoesNotAllocate(t *testing.T) {
	hi := newInterceptor(t, Policy{MaxAttempts: 2, Delay: time.Hour})
	intercept := hi.UnaryClientInterceptor()
	ctx := t.Context()
	req, out := wrapperspb.String("hi"), new(wrapperspb.StringValue)
	invoker := func(context.Context, string, any, any, *grpc.ClientConn, ...grpc.CallOption) error { return nil }
	opts := []grpc.CallOption{grpc.WaitForReady(true)}
	allocs := testing.AllocsPerRun(100, func() {
		intercept(ctx, "/hedgetest.Echo/Unhedged", req, out, nil, invoker, opts...)
	})
	if allocs != 0 {
		t.Errorf("pass-through call allocates %v times, want 0", allocs)
	}
}

// TestConcurrentCalls runs many calls at once on the real clock, a quarter
// of them slow on their first attempt, and checks what must hold however
// the timers fall: every call succeeds, and the budget bounds the hedges.
func TestConcurrentCalls(t *testing.T) {
	fleetSize.Store(3)
	t.Cleanup(func() { fleetSize.Store(0) })
	f := startFleet(t, 3, func(ctx context.Context, a arrival, in *wrapperspb.StringValue) (*wrapperspb.StringValue, error) {
		if a.n%4 == 0 {
			select {
			case <-ctx.Done():
				return nil, status.FromContextError(ctx.Err()).Err()
			case <-time.After(20 * time.Millisecond):
			}
		}
		return reply(a, in)
	})
	f.quiet.Store(true)
	const calls = 200
	hi := newInterceptor(t, Policy{MaxAttempts: 3, Delay: time.Millisecond, NonFatalCodes: []codes.Code{codes.Unavailable}})
	cc := dial(t, f, hi)
	ctx, cancel := context.WithTimeout(t.Context(), waitLimit)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, calls)
	for i := range calls {
		wg.Go(func() {
			if got := echo(ctx, cc, fmt.Sprint(i)); got.err != nil {
				errs <- got.err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("call failed: %v", err)
	}
	c := hi.Stats().Counters
	if c.Calls != calls {
		t.Errorf("Calls = %d, want %d", c.Calls, calls)
	}
	if limit := uint64(DefaultBudgetBurst + DefaultBudgetRatio*calls); c.ExtraAttempts > limit {
		t.Errorf("ExtraAttempts = %d, want at most burst + ratio×calls = %d", c.ExtraAttempts, limit)
	}
	if c.HedgeWins > c.Hedged || c.Hedged > c.ExtraAttempts {
		t.Errorf("counters %+v: want HedgeWins ≤ Hedged ≤ ExtraAttempts", c)
	}
	t.Logf("%+v", c)
}

func TestNonProtoReplyPassesThrough(t *testing.T) {
	hi := newInterceptor(t, Policy{MaxAttempts: 2, Delay: time.Nanosecond})
	calls := 0
	invoker := func(context.Context, string, any, any, *grpc.ClientConn, ...grpc.CallOption) error {
		calls++
		return nil
	}
	var notProto struct{ V string }
	if err := hi.UnaryClientInterceptor()(t.Context(), echoMethod, nil, &notProto, nil, invoker); err != nil {
		t.Fatal(err)
	}
	if calls != 1 || hi.Stats().Calls != 0 {
		t.Errorf("invoker ran %d times, Calls = %d; want 1 and 0", calls, hi.Stats().Calls)
	}
}

// TestAttemptsDoNotShareSpareCapacity: an interceptor down the chain that
// appends to its options must not make the attempts write to one array
// (the race detector reports it if they do).
func TestAttemptsDoNotShareSpareCapacity(t *testing.T) {
	ft := useFakeTimers(t)
	var f *fleet
	f = startFleet(t, 1, func(ctx context.Context, a arrival, in *wrapperspb.StringValue) (*wrapperspb.StringValue, error) {
		if a.n == 1 {
			return f.blockUntilCanceled(ctx, a)
		}
		return reply(a, in)
	})
	// Each attempt appends its own mark, and checks after its call that the
	// mark is still there: the first attempt's call lasts until the hedge
	// has appended its own.
	var marks, overwritten atomic.Int64
	appendOpt := func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		mark := 1<<20 + int(marks.Add(1))
		opts = append(opts, grpc.MaxCallRecvMsgSize(mark))
		err := invoker(ctx, method, req, reply, cc, opts...)
		if opts[len(opts)-1].(grpc.MaxRecvMsgSizeCallOption).MaxRecvMsgSize != mark {
			overwritten.Add(1)
		}
		return err
	}
	hi := newInterceptor(t, Policy{MaxAttempts: 2, Delay: time.Second})
	cc := dial(t, f, hi, appendOpt)

	opts := make([]grpc.CallOption, 1, 8)
	opts[0] = grpc.WaitForReady(false)
	res := goEcho(t.Context(), cc, "hi", opts...)
	f.waitArrival(t)
	ft.next(t).fire()
	if got := recv(t, res, "call result"); got.err != nil {
		t.Fatal(got.err)
	}
	if n := overwritten.Load(); n != 0 {
		t.Errorf("%d attempts found their options overwritten by another", n)
	}
}
