package generator

import (
	"fmt"

	"github.com/dave/jennifer/jen"
)

// versionHandshake is the compile-time check that the runtime supports
// this generated code.
func versionHandshake() []jen.Code {
	d := new(doc).para("This is a compile-time assertion that this generated file and the lbclient " +
		"runtime it is compiled against are compatible. If the constant is not " +
		"defined, the runtime is older than the generator: update it.")
	return []jen.Code{d.code(), jen.Const().Id("_").Op("=").Add(ident(runtimePackage, "SupportPackageIsVersion1")), jen.Line()}
}

// serviceConstants declares the service's full name and its methods' full
// names.
func serviceConstants(s *serviceModel) []jen.Code {
	full := string(s.svc.Desc.FullName())
	d := new(doc).
		para(fmt.Sprintf("%s is the full name of the %s service.", s.names.ServiceName, full)).
		proto(s.svc.Comments.Leading).
		deprecated(serviceDeprecated(s.svc), full)
	out := []jen.Code{d.code(), jen.Const().Id(s.names.ServiceName).Op("=").Lit(full), jen.Line()}
	if len(s.methods) == 0 {
		return out
	}
	consts := make([]jen.Code, 0, len(s.methods))
	for _, m := range s.methods {
		md := new(doc).
			para(fmt.Sprintf("%s is the full name of the %s method.", m.names.FullMethodName, m.m.Desc.FullName())).
			proto(m.m.Comments.Leading).
			deprecated(methodDeprecated(m.m), string(m.m.Desc.FullName()))
		consts = append(consts, md.code(), jen.Id(m.names.FullMethodName).Op("=").Lit(fullMethod(m)))
	}
	d = new(doc).para(fmt.Sprintf("The full names of the methods of %s.", full))
	return append(out, d.code(), jen.Const().Defs(consts...), jen.Line())
}

// fullMethod returns the method's name as gRPC sends it: "/pkg.Service/Method".
func fullMethod(m *methodModel) string {
	return fmt.Sprintf("/%s/%s", m.m.Parent.Desc.FullName(), m.m.Desc.Name())
}
