package callinfo

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type otherKey struct{}

func TestHashKey(t *testing.T) {
	base := context.WithValue(context.Background(), otherKey{}, "other")
	if _, ok := HashKey(base); ok {
		t.Fatal("HashKey found a key in a context without one")
	}
	ctx := WithHashKey(base, "alice")
	if k, ok := HashKey(ctx); !ok || k != "alice" {
		t.Fatalf("HashKey = %q, %v; want alice, true", k, ok)
	}
	// Other values and the key survive wrapping, both ways round.
	if v := ctx.Value(otherKey{}); v != "other" {
		t.Errorf("value under the key's context = %v, want other", v)
	}
	inner, cancel := context.WithTimeout(ctx, time.Hour)
	defer cancel()
	if k, ok := HashKey(inner); !ok || k != "alice" {
		t.Errorf("HashKey under WithTimeout = %q, %v; want alice, true", k, ok)
	}
	if k, _ := HashKey(WithHashKey(inner, "bob")); k != "bob" {
		t.Errorf("the innermost key should win, got %q", k)
	}
	// Cancellation flows through.
	parent, cancelParent := context.WithCancel(context.Background())
	child, cancelChild := context.WithCancel(WithHashKey(parent, "k"))
	defer cancelChild()
	cancelParent()
	select {
	case <-child.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("cancelling the parent did not reach a context under WithHashKey")
	}
}

func TestWithHashKeyAllocatesOnce(t *testing.T) {
	ctx := context.Background()
	allocs := testing.AllocsPerRun(1000, func() {
		k, _ := HashKey(WithHashKey(ctx, "account-42"))
		if k != "account-42" {
			t.Fatal("lost the key")
		}
	})
	if allocs > 1 {
		t.Errorf("WithHashKey + HashKey: %v allocations, want 1", allocs)
	}
}

func TestAttempts(t *testing.T) {
	var a Attempts
	if AttemptsFrom(context.Background()) != nil {
		t.Fatal("AttemptsFrom found attempts in an empty context")
	}
	ctx := WithAttempts(context.Background(), &a)
	if AttemptsFrom(ctx) != &a {
		t.Fatal("AttemptsFrom did not return the attempts put in")
	}
	var wg sync.WaitGroup
	for _, addr := range []string{"a:1", "b:1", "c:1"} {
		wg.Go(func() { a.Add(addr) })
	}
	wg.Wait()
	for _, addr := range []string{"a:1", "b:1", "c:1"} {
		if !a.Tried(addr) {
			t.Errorf("Tried(%q) = false after Add", addr)
		}
	}
	if a.Tried("d:1") || len(a.Addrs()) != 3 {
		t.Errorf("Addrs() = %v, want the three added", a.Addrs())
	}
}

// TestInfoCarriesEveryFact: each With keeps the facts already on the
// context, so one lookup finds them all, whatever the order and whatever
// other contexts come between.
func TestInfoCarriesEveryFact(t *testing.T) {
	a := new(Attempts)
	ctx := WithStream(context.Background())
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ctx = WithAttempts(context.WithValue(ctx, otherKey{}, 1), a)
	ctx = WithHashKey(ctx, "k")
	got := From(ctx)
	if !got.Stream || got.Attempts != a || got.HashKey != "k" || !got.HasKey {
		t.Errorf("From = %+v, want the stream, the attempts and the key", got)
	}
	if From(context.Background()) != (Info{}) {
		t.Error("From of a bare context is not the zero Info")
	}
	if AttemptsFrom(ctx) != a {
		t.Error("AttemptsFrom lost the attempts")
	}
}

// TestAttemptsOrder: Add numbers the attempts in pick order; an attempt
// is overtaken when a later one answered first, not when an earlier one
// did; only the first answer counts; Reset starts over.
func TestAttemptsOrder(t *testing.T) {
	var a Attempts
	for i, addr := range []string{"a", "b", "c"} {
		if k := a.Add(addr); k != i {
			t.Fatalf("Add(%q) = %d, want %d", addr, k, i)
		}
	}
	if a.Overtaken(0) {
		t.Fatal("overtaken before any answer")
	}
	a.Answered(1)
	a.Answered(2) // a later answer does not replace the first
	if !a.Overtaken(0) || a.Overtaken(1) || a.Overtaken(2) {
		t.Errorf("after attempt 1 answered: overtaken = %v %v %v, want true false false", a.Overtaken(0), a.Overtaken(1), a.Overtaken(2))
	}
	a.Reset()
	if a.Tried("a") || len(a.Addrs()) != 0 || a.Overtaken(0) {
		t.Error("Reset kept attempts")
	}
	for i := range MaxAttempts + 3 { // beyond what it records
		if k := a.Add(fmt.Sprintf("e%d", i)); k != i {
			t.Fatalf("Add #%d = %d", i, k)
		}
	}
	if !a.Tried("e0") || a.Tried(fmt.Sprintf("e%d", MaxAttempts)) || len(a.Addrs()) != MaxAttempts {
		t.Errorf("Addrs() = %v, want the first %d", a.Addrs(), MaxAttempts)
	}
}

// TestAttemptsAllocFree: recording a hedged call's attempts allocates
// nothing, so that a hedged attempt's pick does not either.
func TestAttemptsAllocFree(t *testing.T) {
	var a Attempts
	allocs := testing.AllocsPerRun(1000, func() {
		a.Reset()
		for _, addr := range []string{"a:1", "b:1", "c:1"} {
			if !a.Tried(addr) {
				a.Answered(a.Add(addr))
			}
		}
	})
	if allocs != 0 {
		t.Errorf("Add/Tried/Answered of 3 attempts: %v allocations, want 0", allocs)
	}
}
