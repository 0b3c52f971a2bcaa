package generator

import (
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/compiler/protogen"
	"google.golang.org/protobuf/reflect/protoreflect"
)

func TestNamerClaim(t *testing.T) {
	n := newNamer()
	n.reserve("Close", "CloseClient")
	got := []string{
		n.claim("Conn", "ClientConn"),
		n.claim("Conn", "ClientConn"),
		n.claim("Conn", "ClientConn"),
		n.claim("Close", "CloseClient"),
		n.claim("Close", "CloseClient"),
	}
	want := []string{"Conn", "ClientConn", "ClientConn2", "CloseClient2", "CloseClient3"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("claims (-want +got):\n%s", diff)
	}
}

// TestNameServicesSameServiceTwice covers two files of one Go package with
// a service of the same name (in different proto packages): the second
// takes the underscored names.
// fakeMethodDesc is a method descriptor that only knows whether it
// streams, which is all naming asks of one.
type fakeMethodDesc struct {
	protoreflect.MethodDescriptor
	streams bool
}

func (d fakeMethodDesc) IsStreamingClient() bool { return false }
func (d fakeMethodDesc) IsStreamingServer() bool { return d.streams }

func TestNameServicesSameServiceTwice(t *testing.T) {
	service := func(name string, methods ...string) *serviceModel {
		s := &serviceModel{svc: &protogen.Service{GoName: name}}
		for _, m := range methods {
			desc := fakeMethodDesc{streams: strings.HasPrefix(m, "Watch")}
			s.methods = append(s.methods, &methodModel{m: &protogen.Method{GoName: m, Desc: desc}})
		}
		return s
	}
	a, b := service("Greeter", "SayHello", "Watch"), service("Greeter", "SayHello", "Watch", "WatchMore")
	nameServices(newNamer(), []*fileModel{{services: []*serviceModel{a}}, {services: []*serviceModel{b}}})
	want := serviceNames{
		ServiceName: "Greeter_ServiceName", Rules: "Greeter_Rules", Client: "Greeter_Client",
		NewClient: "NewGreeter_Client", NewClientFromConn: "NewGreeter_ClientFromConn",
		Conn: "Conn", Close: "Close", StreamDescs: "_Greeter_StreamDescs",
	}
	if diff := cmp.Diff(want, b.names); diff != "" {
		t.Errorf("names of the second service (-want +got):\n%s", diff)
	}
	if a.names.Client != "GreeterClient" || a.names.StreamDescs != "greeterStreamDescs" || a.methods[0].names.FullMethodName != "GreeterSayHelloFullMethodName" {
		t.Errorf("first service lost its names: %+v", a.names)
	}
	if got := b.methods[0].names.FullMethodName; got != "Greeter_SayHello_FullMethodName" {
		t.Errorf("second method constant = %q", got)
	}
	var got []int
	for _, m := range b.methods {
		got = append(got, m.names.StreamIndex)
	}
	if want := []int{-1, 0, 1}; !slices.Equal(got, want) {
		t.Errorf("stream indices = %v, want %v", got, want)
	}
}

func TestImportName(t *testing.T) {
	for in, want := range map[string]string{"greeterv1": "greeterv1", "x": "xpb", "in": "inpb", "ctx": "ctxpb"} {
		if got := importName(in); got != want {
			t.Errorf("importName(%q) = %q, want %q", in, got, want)
		}
	}
}
