package generator

import (
	"strings"
	"sync"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/pluginpb"

	lbclientv1 "github.com/lbclient/lbclient/gen/lbclient/v1"
)

// FuzzGenerate runs the plugin on one small .proto file, built from
// descriptors in the test, whose annotations and options come from the
// fuzzer: the (lbclient.v1.service) option and the (lbclient.v1.method)
// option of each of its five methods (one of each kind, idempotent or
// not) as serialized messages, the go_package option and the plugin
// parameter. The request's other files (descriptor.proto, lbclient.proto)
// are fixed, so that the fuzzer spends its time on what the generator
// reads rather than on protogen's parsing of large seeds. The property:
// generation never panics nor fails inside (internal errors, rendering),
// and what it writes is one .lbclient.go file inside the output directory.
//
//	go test ./internal/generator -run '^$' -fuzz '^FuzzGenerate$' -parallel 1 -fuzztime 5m
func FuzzGenerate(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s.service, s.methods[0], s.methods[1], s.methods[2], s.methods[3], s.methods[4], s.goPackage, s.params)
	}
	f.Fuzz(func(t *testing.T, svc, m0, m1, m2, m3, m4 []byte, goPackage, params string) {
		req, ok := fuzzRequest(svc, [][]byte{m0, m1, m2, m3, m4}, goPackage, params)
		if !ok {
			return
		}
		checkGenerated(t, req)
	})
}

// checkGenerated runs the plugin on req and fails the test if it panics,
// fails inside or writes anything but one .lbclient.go file within the
// output directory.
func checkGenerated(t *testing.T, req *pluginpb.CodeGeneratorRequest) {
	t.Helper()
	var resp *pluginpb.CodeGeneratorResponse
	func() {
		defer func() {
			if r := recover(); r != nil {
				t.Fatalf("panic: %v\nrequest: %v", r, fuzzSummary(req))
			}
		}()
		resp = runPlugin(req)
	}()
	if e := resp.GetError(); strings.Contains(e, "internal error") || strings.Contains(e, ": rendering ") {
		t.Fatalf("%s\nrequest: %v", e, fuzzSummary(req))
	}
	if resp.GetError() != "" {
		if len(resp.GetFile()) != 0 {
			t.Fatalf("files generated despite the error %q", resp.GetError())
		}
		return
	}
	if len(resp.GetFile()) != 1 {
		t.Fatalf("%d files generated, want 1\nrequest: %v", len(resp.GetFile()), fuzzSummary(req))
	}
	name := resp.GetFile()[0].GetName()
	if !strings.HasSuffix(name, generatedFileSuffix) || strings.HasPrefix(name, "/") || name == ".." || strings.HasPrefix(name, "../") || strings.Contains(name, "/../") {
		t.Fatalf("generated file %q is outside the output directory\nrequest: %v", name, fuzzSummary(req))
	}
}

// fuzzSummary describes the fuzzed parts of req for a failure message.
func fuzzSummary(req *pluginpb.CodeGeneratorRequest) string {
	f := req.GetProtoFile()[len(req.GetProtoFile())-1]
	var b strings.Builder
	b.WriteString("parameter=" + req.GetParameter() + " go_package=" + f.GetOptions().GetGoPackage())
	if o := f.GetService()[0].GetOptions(); o != nil {
		b.WriteString("\nservice: " + o.String())
	}
	for _, m := range f.GetService()[0].GetMethod() {
		if o := m.GetOptions(); o != nil {
			b.WriteString("\n" + m.GetName() + ": " + o.String())
		}
	}
	return b.String()
}

const fuzzFile = "fuzz/v1/fuzz.proto"

var (
	fuzzBaseOnce sync.Once
	fuzzBase     *pluginpb.CodeGeneratorRequest
)

// fuzzBaseRequest is the request that fuzzRequest fills in: the imports,
// and the fuzzed file with a service of five methods and their messages:
// fields of every shape that a hash_key may name or must not.
func fuzzBaseRequest() *pluginpb.CodeGeneratorRequest {
	fuzzBaseOnce.Do(func() {
		s := proto.String
		field := func(name string, n int32, typ descriptorpb.FieldDescriptorProto_Type, label descriptorpb.FieldDescriptorProto_Label, typeName string) *descriptorpb.FieldDescriptorProto {
			f := &descriptorpb.FieldDescriptorProto{Name: s(name), Number: proto.Int32(n), Type: typ.Enum(), Label: label.Enum(), JsonName: s(name)}
			if typeName != "" {
				f.TypeName = s(typeName)
			}
			return f
		}
		const (
			opt  = descriptorpb.FieldDescriptorProto_LABEL_OPTIONAL
			rep  = descriptorpb.FieldDescriptorProto_LABEL_REPEATED
			str  = descriptorpb.FieldDescriptorProto_TYPE_STRING
			msg  = descriptorpb.FieldDescriptorProto_TYPE_MESSAGE
			i64  = descriptorpb.FieldDescriptorProto_TYPE_INT64
			u32  = descriptorpb.FieldDescriptorProto_TYPE_UINT32
			byts = descriptorpb.FieldDescriptorProto_TYPE_BYTES
			enum = descriptorpb.FieldDescriptorProto_TYPE_ENUM
			bl   = descriptorpb.FieldDescriptorProto_TYPE_BOOL
			dbl  = descriptorpb.FieldDescriptorProto_TYPE_DOUBLE
		)
		oneof := field("choice", 9, str, opt, "")
		oneof.OneofIndex = proto.Int32(0)
		file := &descriptorpb.FileDescriptorProto{
			Name:       s(fuzzFile),
			Package:    s("fuzz.v1"),
			Syntax:     s("proto3"),
			Dependency: []string{"lbclient/v1/lbclient.proto"},
			EnumType: []*descriptorpb.EnumDescriptorProto{{
				Name:  s("Kind"),
				Value: []*descriptorpb.EnumValueDescriptorProto{{Name: s("KIND_UNSPECIFIED"), Number: proto.Int32(0)}, {Name: s("KIND_A"), Number: proto.Int32(1)}},
			}},
			MessageType: []*descriptorpb.DescriptorProto{
				{
					Name: s("Request"),
					Field: []*descriptorpb.FieldDescriptorProto{
						field("id", 1, str, opt, ""),
						field("inner", 2, msg, opt, ".fuzz.v1.Inner"),
						field("inners", 3, msg, rep, ".fuzz.v1.Inner"),
						field("labels", 4, msg, rep, ".fuzz.v1.Request.LabelsEntry"),
						field("tags", 5, str, rep, ""),
						field("n", 6, i64, opt, ""),
						field("raw", 7, byts, opt, ""),
						field("kind", 8, enum, opt, ".fuzz.v1.Kind"),
						oneof,
						field("flag", 10, bl, opt, ""),
						field("ratio", 11, dbl, opt, ""),
						field("count", 12, u32, opt, ""),
					},
					OneofDecl: []*descriptorpb.OneofDescriptorProto{{Name: s("pick")}},
					NestedType: []*descriptorpb.DescriptorProto{{
						Name:    s("LabelsEntry"),
						Field:   []*descriptorpb.FieldDescriptorProto{field("key", 1, str, opt, ""), field("value", 2, str, opt, "")},
						Options: &descriptorpb.MessageOptions{MapEntry: proto.Bool(true)},
					}},
				},
				{
					Name:  s("Inner"),
					Field: []*descriptorpb.FieldDescriptorProto{field("key", 1, str, opt, ""), field("next", 2, msg, opt, ".fuzz.v1.Inner")},
				},
				{Name: s("Reply")},
			},
			Service: []*descriptorpb.ServiceDescriptorProto{{
				Name: s("Fuzzed"),
				Method: []*descriptorpb.MethodDescriptorProto{
					{Name: s("Get"), InputType: s(".fuzz.v1.Request"), OutputType: s(".fuzz.v1.Reply"),
						Options: &descriptorpb.MethodOptions{IdempotencyLevel: descriptorpb.MethodOptions_IDEMPOTENT.Enum()}},
					{Name: s("Put"), InputType: s(".fuzz.v1.Request"), OutputType: s(".fuzz.v1.Reply")},
					{Name: s("Watch"), InputType: s(".fuzz.v1.Request"), OutputType: s(".fuzz.v1.Reply"), ServerStreaming: proto.Bool(true),
						Options: &descriptorpb.MethodOptions{IdempotencyLevel: descriptorpb.MethodOptions_NO_SIDE_EFFECTS.Enum()}},
					{Name: s("Upload"), InputType: s(".fuzz.v1.Request"), OutputType: s(".fuzz.v1.Reply"), ClientStreaming: proto.Bool(true)},
					{Name: s("Chat"), InputType: s(".fuzz.v1.Request"), OutputType: s(".fuzz.v1.Reply"), ClientStreaming: proto.Bool(true), ServerStreaming: proto.Bool(true)},
				},
			}},
		}
		fuzzBase = &pluginpb.CodeGeneratorRequest{
			FileToGenerate: []string{fuzzFile},
			ProtoFile: []*descriptorpb.FileDescriptorProto{
				optionsOnlyDescriptorProto(),
				protodesc.ToFileDescriptorProto(lbclientv1.File_lbclient_v1_lbclient_proto),
				file,
			},
		}
	})
	return fuzzBase
}

// optionsOnlyDescriptorProto is descriptor.proto cut down to the messages
// that lbclient.proto's extensions need: ServiceOptions and MethodOptions,
// and the messages their fields use. protogen builds every message of
// every file of a request, and the whole of descriptor.proto would take
// half of each fuzzed run; the options themselves are descriptorpb's Go
// types either way.
func optionsOnlyDescriptorProto() *descriptorpb.FileDescriptorProto {
	full := protodesc.ToFileDescriptorProto(descriptorpb.File_google_protobuf_descriptor_proto)
	keep := map[string]bool{"ServiceOptions": true, "MethodOptions": true, "FeatureSet": true, "UninterpretedOption": true}
	var msgs []*descriptorpb.DescriptorProto
	for _, m := range full.MessageType {
		if keep[m.GetName()] {
			msgs = append(msgs, m)
		}
	}
	full.MessageType = msgs
	full.EnumType = nil
	full.SourceCodeInfo = nil
	return full
}

// fuzzRequest returns the base request with the fuzzed annotations and
// options; false when an annotation is not a valid serialized message.
func fuzzRequest(svc []byte, methods [][]byte, goPackage, params string) (*pluginpb.CodeGeneratorRequest, bool) {
	base := fuzzBaseRequest()
	// The imports are shared by every run: protogen does not change them.
	req := &pluginpb.CodeGeneratorRequest{
		FileToGenerate: base.FileToGenerate,
		ProtoFile:      append(base.ProtoFile[:len(base.ProtoFile)-1:len(base.ProtoFile)-1], proto.CloneOf(base.ProtoFile[len(base.ProtoFile)-1])),
	}
	file := req.ProtoFile[len(req.ProtoFile)-1]
	file.Options = &descriptorpb.FileOptions{GoPackage: proto.String(goPackage)}
	if params != "" {
		req.Parameter = proto.String(params)
	}
	sd := file.Service[0]
	if len(svc) > 0 {
		r := new(lbclientv1.ServiceRules)
		if proto.Unmarshal(svc, r) != nil {
			return nil, false
		}
		sd.Options = new(descriptorpb.ServiceOptions)
		proto.SetExtension(sd.Options, lbclientv1.E_Service, r)
	}
	for i, b := range methods {
		if len(b) == 0 {
			continue
		}
		r := new(lbclientv1.MethodRules)
		if proto.Unmarshal(b, r) != nil {
			return nil, false
		}
		md := sd.Method[i]
		if md.Options == nil {
			md.Options = new(descriptorpb.MethodOptions)
		}
		proto.SetExtension(md.Options, lbclientv1.E_Method, r)
	}
	return req, true
}

// fuzzSeed is one input of FuzzGenerate.
type fuzzSeed struct {
	service   []byte
	methods   [5][]byte
	goPackage string
	params    string
}

// fuzzSeeds are the annotations of the testdata cases, valid and not,
// serialized (tens of bytes each), and a few go_package and parameter
// variants.
func fuzzSeeds(t testing.TB) []fuzzSeed {
	marshal := func(m proto.Message) []byte {
		b, err := proto.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	hedge := &lbclientv1.HedgingPolicy{MaxAttempts: 2, Delay: "p95", NonFatalCodes: []string{"UNAVAILABLE"}}
	retry := &lbclientv1.RetryPolicy{MaxAttempts: 3, InitialBackoff: "10ms", MaxBackoff: "1s", BackoffMultiplier: 2, RetryableCodes: []string{"UNAVAILABLE", "ABORTED"}}
	seeds := []fuzzSeed{
		{goPackage: "example.com/fuzz/v1;fuzzv1"},
		{
			service: marshal(&lbclientv1.ServiceRules{
				DefaultTarget: "static:///10.0.0.1:443,10.0.0.2:443", Policy: lbclientv1.Policy_CONSISTENT_HASH,
				HealthCheckService: "fuzz.v1.Fuzzed",
				Defaults:           &lbclientv1.MethodRules{Timeout: "2s", WaitForReady: proto.Bool(true), Retry: retry, HashKey: "inner.key"},
				RetryThrottling:    &lbclientv1.RetryThrottling{MaxTokens: 10, TokenRatio: 0.5},
			}),
			methods: [5][]byte{
				marshal(&lbclientv1.MethodRules{Timeout: "250ms", Hedging: hedge, HashKey: "id"}),
				marshal(&lbclientv1.MethodRules{WaitForReady: proto.Bool(false), HashKey: "n"}),
				marshal(&lbclientv1.MethodRules{Timeout: "1h", HashKey: "kind"}),
				marshal(&lbclientv1.MethodRules{Retry: retry}),
				marshal(&lbclientv1.MethodRules{Timeout: "30s"}),
			},
			goPackage: "example.com/fuzz/v1;fuzzv1",
			params:    "paths=source_relative,package_suffix=lb",
		},
		{
			// Every mistake at once.
			service: marshal(&lbclientv1.ServiceRules{
				DefaultTarget: "static:///nohostport", Policy: 42,
				Defaults:        &lbclientv1.MethodRules{Timeout: "soon", Hedging: hedge},
				RetryThrottling: &lbclientv1.RetryThrottling{MaxTokens: 5000, TokenRatio: -1},
			}),
			methods: [5][]byte{
				marshal(&lbclientv1.MethodRules{Hedging: &lbclientv1.HedgingPolicy{MaxAttempts: 9, Delay: "p100"}, HashKey: "inners.key"}),
				marshal(&lbclientv1.MethodRules{Hedging: hedge, HashKey: "labels"}),
				marshal(&lbclientv1.MethodRules{Hedging: hedge, HashKey: "inner"}),
				marshal(&lbclientv1.MethodRules{Retry: &lbclientv1.RetryPolicy{MaxAttempts: 1, InitialBackoff: "2s", MaxBackoff: "1s", RetryableCodes: []string{"OK", "NOPE"}}, HashKey: "id"}),
				marshal(&lbclientv1.MethodRules{Retry: retry, Hedging: hedge, HashKey: "..x"}),
			},
			goPackage: "../../evil;evil",
			params:    "module=example.com",
		},
		{goPackage: "example.com/fuzz/v1;fuzzv1", params: "Mfuzz/v1/fuzz.proto=example.com/other;other,package_suffix=x-y"},
	}
	return seeds
}

// TestFuzzSeeds checks that FuzzGenerate's harness builds requests the
// generator reads in full: the valid seeds generate a file, and the seed
// of mistakes fails with an error for each.
func TestFuzzSeeds(t *testing.T) {
	seeds := fuzzSeeds(t)
	for i, s := range seeds[:2] {
		req, ok := fuzzRequest(s.service, s.methods[:], s.goPackage, s.params)
		if !ok {
			t.Fatalf("seed %d: annotations do not parse", i)
		}
		resp := runPlugin(req)
		if resp.GetError() != "" || len(resp.GetFile()) != 1 {
			t.Fatalf("seed %d: error %q, %d files; want one file", i, resp.GetError(), len(resp.GetFile()))
		}
	}
	s := seeds[2]
	req, _ := fuzzRequest(s.service, s.methods[:], s.goPackage, s.params)
	// The import path error stops the file before its annotations are read.
	if e := runPlugin(req).GetError(); !strings.Contains(e, `which is malformed (invalid path element "..")`) {
		t.Errorf("seed of mistakes: error %q, want the import path refused", e)
	}
	req, _ = fuzzRequest(s.service, s.methods[:], "example.com/fuzz/v1;fuzzv1", "")
	if e := runPlugin(req).GetError(); strings.Count(e, "\n") < 15 {
		t.Errorf("seed of mistakes with a valid go_package: %d errors, want every mistake reported:\n%s", strings.Count(e, "\n")+1, e)
	}
}
