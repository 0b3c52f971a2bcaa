package callinfo

import (
	"context"
	"sync"
	"testing"
	"time"
)

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
