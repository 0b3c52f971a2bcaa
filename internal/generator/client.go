package generator

import (
	"fmt"

	"github.com/dave/jennifer/jen"
)

// clientType declares the client struct.
func clientType(s *serviceModel, grpcPkg string) []jen.Code {
	full := string(s.svc.Desc.FullName())
	d := new(doc).
		para(fmt.Sprintf("%s is a client of the %s service that dials with the "+
			"load-balancing rules of its annotations (see %s). Its methods have "+
			"the signatures of the %s.%s interface that protoc-gen-go-grpc "+
			"generates, so it can stand in for the client that %s.New%s returns.",
			s.names.Client, full, s.names.Rules, grpcPkg, s.svc.GoName+"Client", grpcPkg, s.svc.GoName+"Client")).
		proto(s.svc.Comments.Leading).
		deprecated(serviceDeprecated(s.svc), full)
	return []jen.Code{
		d.code(),
		jen.Type().Id(s.names.Client).Struct(
			jen.Id("cc").Add(ident(grpcPackage, "ClientConnInterface")),
			jen.Comment("conn is the connection the client dialled and owns; nil when it"),
			jen.Comment("wraps a connection made elsewhere."),
			jen.Id("conn").Op("*").Add(ident(runtimePackage, "Conn")),
		),
		jen.Line(),
	}
}

// clientConstructors declares the constructor that dials and the one that
// wraps an existing connection.
func clientConstructors(s *serviceModel) []jen.Code {
	full := string(s.svc.Desc.FullName())
	dep := serviceDeprecated(s.svc)

	d := new(doc).para(fmt.Sprintf("%s dials target with the rules of %s, and opts, "+
		"which override them. The connection is the client's: %s closes it.", s.names.NewClient, s.names.Rules, s.names.Close))
	var body []jen.Code
	if t := s.rules.DefaultTarget; t != "" {
		d.para(fmt.Sprintf("When target is \"\", it dials %q, the default_target of the annotations.", t))
		body = append(body, jen.If(jen.Id("target").Op("==").Lit("")).Block(
			jen.Id("target").Op("=").Lit(t),
		))
	}
	d.deprecated(dep, full)
	body = append(body,
		jen.List(jen.Id("conn"), jen.Err()).Op(":=").Add(ident(runtimePackage, "Dial")).Call(
			jen.Id("target"), jen.Id(s.names.Rules).Call(), jen.Id("opts").Op("..."),
		),
		jen.If(jen.Err().Op("!=").Nil()).Block(jen.Return(jen.Nil(), jen.Err())),
		jen.Return(jen.Op("&").Id(s.names.Client).Values(jen.Dict{
			jen.Id("cc"):   jen.Id("conn"),
			jen.Id("conn"): jen.Id("conn"),
		}), jen.Nil()),
	)
	out := []jen.Code{
		d.code(),
		jen.Func().Id(s.names.NewClient).Params(
			jen.Id("target").String(),
			jen.Id("opts").Op("...").Add(ident(runtimePackage, "Option")),
		).Params(jen.Op("*").Id(s.names.Client), jen.Error()).Block(body...),
		jen.Line(),
	}

	d = new(doc).para(fmt.Sprintf("%s returns a client that calls through cc, such as a "+
		"connection shared by several clients or one made in a test. The rules of "+
		"%s apply only as far as cc was made with them. The client does "+
		"not own cc: its %s method leaves cc open.", s.names.NewClientFromConn, s.names.Rules, s.names.Close)).
		deprecated(dep, full)
	out = append(out,
		d.code(),
		jen.Func().Id(s.names.NewClientFromConn).Params(jen.Id("cc").Add(ident(grpcPackage, "ClientConnInterface"))).
			Op("*").Id(s.names.Client).Block(
			jen.Return(jen.Op("&").Id(s.names.Client).Values(jen.Dict{jen.Id("cc"): jen.Id("cc")})),
		),
		jen.Line(),
	)
	return out
}

// clientLifecycle declares the Conn and Close methods, under the names that
// nameLifecycle chose.
func clientLifecycle(s *serviceModel) []jen.Code {
	recv := jen.Id("c").Op("*").Id(s.names.Client)

	d := new(doc).para(fmt.Sprintf("%s returns the client's connection: the one %s dialled, "+
		"or the one given to %s when it is a *runtime.Conn; "+
		"otherwise nil.", s.names.Conn, s.names.NewClient, s.names.NewClientFromConn))
	if s.names.Conn != "Conn" {
		d.para("It is not named Conn because the service has a method of that name.")
	}
	out := []jen.Code{
		d.code(),
		jen.Func().Params(recv.Clone()).Id(s.names.Conn).Params().Op("*").Add(ident(runtimePackage, "Conn")).Block(
			jen.List(jen.Id("conn"), jen.Id("_")).Op(":=").Id("c").Dot("cc").Assert(jen.Op("*").Add(ident(runtimePackage, "Conn"))),
			jen.Return(jen.Id("conn")),
		),
		jen.Line(),
	}

	d = new(doc).para(fmt.Sprintf("%s closes the connection that %s dialled. A client "+
		"made by %s does not own its connection: %s does "+
		"nothing and returns nil, and the connection stays open for its owner to close.",
		s.names.Close, s.names.NewClient, s.names.NewClientFromConn, s.names.Close))
	if s.names.Close != "Close" {
		d.para("It is not named Close because the service has a method of that name.")
	}
	out = append(out,
		d.code(),
		jen.Func().Params(recv.Clone()).Id(s.names.Close).Params().Error().Block(
			jen.If(jen.Id("c").Dot("conn").Op("==").Nil()).Block(jen.Return(jen.Nil())),
			jen.Return(jen.Id("c").Dot("conn").Dot("Close").Call()),
		),
		jen.Line(),
	)
	return out
}
