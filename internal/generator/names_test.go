package generator

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/compiler/protogen"
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
func TestNameServicesSameServiceTwice(t *testing.T) {
	service := func(name string, methods ...string) *serviceModel {
		s := &serviceModel{svc: &protogen.Service{GoName: name}}
		for _, m := range methods {
			s.methods = append(s.methods, &methodModel{m: &protogen.Method{GoName: m}})
		}
		return s
	}
	a, b := service("Greeter", "SayHello"), service("Greeter", "SayHello")
	nameServices(newNamer(), []*fileModel{{services: []*serviceModel{a}}, {services: []*serviceModel{b}}})
	want := serviceNames{
		ServiceName: "Greeter_ServiceName", Rules: "Greeter_Rules", Client: "Greeter_Client",
		NewClient: "NewGreeter_Client", NewClientFromConn: "NewGreeter_ClientFromConn",
		Conn: "Conn", Close: "Close",
	}
	if diff := cmp.Diff(want, b.names); diff != "" {
		t.Errorf("names of the second service (-want +got):\n%s", diff)
	}
	if a.names.Client != "GreeterClient" || a.methods[0].names.FullMethodName != "GreeterSayHelloFullMethodName" {
		t.Errorf("first service lost its names: %+v", a.names)
	}
	if got := b.methods[0].names.FullMethodName; got != "Greeter_SayHello_FullMethodName" {
		t.Errorf("second method constant = %q", got)
	}
}

func TestImportName(t *testing.T) {
	for in, want := range map[string]string{"greeterv1": "greeterv1", "x": "xpb", "in": "inpb", "ctx": "ctxpb"} {
		if got := importName(in); got != want {
			t.Errorf("importName(%q) = %q, want %q", in, got, want)
		}
	}
}
