package generator

import (
	"strconv"
	"strings"

	"google.golang.org/protobuf/compiler/protogen"
)

// All generated identifiers are computed here, so that the naming rules live
// in one spot (see the package documentation for the rules).

// serviceNames are the identifiers generated for one service.
type serviceNames struct {
	ServiceName       string // const: the service's full name
	Rules             string // func returning *runtime.ServiceRules
	Client            string // the client type
	NewClient         string // constructor that dials
	NewClientFromConn string // constructor that wraps a connection
	Conn              string // lifecycle method returning *runtime.Conn
	Close             string // lifecycle method closing the connection
	StreamDescs       string // unexported var: the streaming methods' grpc.StreamDescs; "" without any
}

// methodNames are the identifiers generated for one method.
type methodNames struct {
	FullMethodName string // const: "/pkg.Service/Method"
	// StreamIndex is a streaming method's index in its service's
	// StreamDescs; -1 for a unary method.
	StreamIndex int
}

// namer hands out identifiers of one scope, each once.
type namer struct {
	taken map[string]bool
}

func newNamer() *namer { return &namer{taken: make(map[string]bool)} }

// reserve marks names as taken without handing them out.
func (n *namer) reserve(names ...string) {
	for _, name := range names {
		n.taken[name] = true
	}
}

// claim returns the first free candidate, or else the last candidate with
// the smallest number from 2 up that makes it free, and marks it taken.
func (n *namer) claim(candidates ...string) string {
	for _, c := range candidates {
		if !n.taken[c] {
			n.taken[c] = true
			return c
		}
	}
	last := candidates[len(candidates)-1]
	for i := 2; ; i++ {
		if c := last + strconv.Itoa(i); !n.taken[c] {
			n.taken[c] = true
			return c
		}
	}
}

// nameServices computes the names of every service and method of the files
// of one generated Go package. pkg is the package-level scope, shared by the
// files. Service-level names are claimed first, for all services in file
// order, then the method constants, so that a service's own names never
// yield to another service's method constants.
func nameServices(pkg *namer, files []*fileModel) {
	for _, f := range files {
		for _, s := range f.services {
			gn := s.svc.GoName
			s.names.ServiceName = pkg.claim(gn+"ServiceName", gn+"_ServiceName")
			s.names.Rules = pkg.claim(gn+"Rules", gn+"_Rules")
			s.names.Client = pkg.claim(gn+"Client", gn+"_Client")
			s.names.NewClient = pkg.claim("New"+s.names.Client, "New_"+s.names.Client)
			s.names.NewClientFromConn = pkg.claim("New"+s.names.Client+"FromConn", "New_"+s.names.Client+"_FromConn")
			nameLifecycle(s)
		}
	}
	for _, f := range files {
		for _, s := range f.services {
			gn := s.svc.GoName
			streams := 0
			for _, m := range s.methods {
				m.names.FullMethodName = pkg.claim(gn+m.m.GoName+"FullMethodName", gn+"_"+m.m.GoName+"_FullMethodName")
				m.names.StreamIndex = -1
				if isStreaming(m.m) {
					m.names.StreamIndex = streams
					streams++
				}
			}
			if streams > 0 {
				lower := strings.ToLower(gn[:1]) + gn[1:]
				s.names.StreamDescs = pkg.claim(lower+"StreamDescs", "_"+gn+"_StreamDescs")
			}
		}
	}
}

// nameLifecycle names the client's Conn and Close methods. The rpc methods
// keep their Go names, which protoc-gen-go-grpc's interface fixes; a
// lifecycle method whose name an rpc already has is renamed: Conn becomes
// ClientConn, Close becomes CloseClient, then a number is appended.
func nameLifecycle(s *serviceModel) {
	methods := newNamer()
	for _, m := range s.methods {
		methods.reserve(m.m.GoName)
	}
	// The client struct's fields share the method namespace.
	methods.reserve("cc", "conn")
	s.names.Conn = methods.claim("Conn", "ClientConn")
	s.names.Close = methods.claim("Close", "CloseClient")
}

// goNameClashes returns, for each Go method name that several rpcs of s
// share, those rpcs. protoc-gen-go-grpc's interface cannot hold them either.
func goNameClashes(s *protogen.Service) [][]*protogen.Method {
	byName := make(map[string][]*protogen.Method)
	var order []string
	for _, m := range s.Methods {
		if _, ok := byName[m.GoName]; !ok {
			order = append(order, m.GoName)
		}
		byName[m.GoName] = append(byName[m.GoName], m)
	}
	var out [][]*protogen.Method
	for _, name := range order {
		if len(byName[name]) > 1 {
			out = append(out, byName[name])
		}
	}
	return out
}
