package generator

import (
	"math/rand/v2"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/pluginpb"
)

// generateBytes runs the plugin on a serialized request, as main does, and
// reports a panic as a test failure.
func generateBytes(t *testing.T, in []byte) {
	t.Helper()
	defer func() {
		if r := recover(); r != nil {
			t.Fatalf("panic on request %q: %v", in, r)
		}
	}()
	req := new(pluginpb.CodeGeneratorRequest)
	if proto.Unmarshal(in, req) != nil {
		return
	}
	// Generate turns its own panics into errors; they are bugs all the same.
	if resp := runPlugin(req); strings.Contains(resp.GetError(), "internal error") {
		t.Fatalf("request %q: %s", in, resp.GetError())
	}
}

// seedRequests are valid requests of every case, serialized.
func seedRequests(t testing.TB) [][]byte {
	t.Helper()
	var seeds [][]byte
	for _, c := range loadCases(t) {
		b, err := proto.Marshal(caseRequest(t, c))
		if err != nil {
			t.Fatal(err)
		}
		seeds = append(seeds, b)
	}
	return seeds
}

// TestGenerateNeverPanics feeds the plugin requests with bytes flipped,
// cut, duplicated and replaced, plus garbage: bounded and deterministic.
func TestGenerateNeverPanics(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 2))
	seeds := seedRequests(t)
	generateBytes(t, nil)
	generateBytes(t, []byte("\xff\xff\xff"))
	const rounds = 200
	for i := range rounds {
		generateBytes(t, mutate(rng, seeds[i%len(seeds)]))
	}
}

// mutate changes a few bytes of b at random: flips, replacements, cuts and
// duplicated runs.
func mutate(rng *rand.Rand, b []byte) []byte {
	in := append([]byte(nil), b...)
	for range 1 + rng.IntN(4) {
		if len(in) == 0 {
			break
		}
		switch p := rng.IntN(len(in)); rng.IntN(4) {
		case 0:
			in[p] ^= byte(1 << rng.IntN(8))
		case 1:
			in[p] = byte(rng.IntN(256))
		case 2:
			in = in[:p]
		case 3:
			q := p + rng.IntN(min(64, len(in)-p))
			in = append(in[:q:q], append(append([]byte(nil), in[p:q]...), in[q:]...)...)
		}
	}
	return in
}

// TestGenerateNeverPanicsOnAnnotations keeps the descriptors valid and
// mutates only the serialized options of services and methods, so that the
// generator, not protogen, meets the odd values.
func TestGenerateNeverPanicsOnAnnotations(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(3, 4))
	var base *pluginpb.CodeGeneratorRequest
	for _, c := range loadCases(t) {
		if c.name == "proto3" {
			base = caseRequest(t, c)
		}
	}
	const rounds = 60
	for range rounds {
		req := proto.CloneOf(base)
		var targets []proto.Message
		for _, f := range req.GetProtoFile() {
			for _, s := range f.GetService() {
				if s.Options != nil {
					targets = append(targets, s.Options)
				}
				for _, m := range s.GetMethod() {
					if m.Options != nil {
						targets = append(targets, m.Options)
					}
				}
			}
		}
		for range 1 + rng.IntN(3) {
			opts := targets[rng.IntN(len(targets))]
			b, err := proto.Marshal(opts)
			if err != nil {
				t.Fatal(err)
			}
			fresh := opts.ProtoReflect().New().Interface()
			if proto.Unmarshal(mutate(rng, b), fresh) != nil {
				continue
			}
			switch o := opts.(type) {
			case *descriptorpb.ServiceOptions:
				proto.Reset(o)
				proto.Merge(o, fresh)
			case *descriptorpb.MethodOptions:
				proto.Reset(o)
				proto.Merge(o, fresh)
			}
		}
		b, err := proto.Marshal(req)
		if err != nil {
			t.Fatal(err)
		}
		generateBytes(t, b)
	}
}
