package generator

import (
	"fmt"

	"github.com/dave/jennifer/jen"
)

// clientSignature returns the parameters and results of a client method,
// exactly as protoc-gen-go-grpc v1.6 writes them, so that the client
// satisfies that plugin's client interface.
func clientSignature(m *methodModel) (params, results []jen.Code) {
	in, out := qual(m.m.Input.GoIdent), qual(m.m.Output.GoIdent)
	params = []jen.Code{jen.Id("ctx").Add(ident(contextPackage, "Context"))}
	if !m.m.Desc.IsStreamingClient() {
		params = append(params, jen.Id("in").Op("*").Add(in.Clone()))
	}
	params = append(params, jen.Id("opts").Op("...").Add(ident(grpcPackage, "CallOption")))

	var result jen.Code
	switch {
	case m.m.Desc.IsStreamingClient() && m.m.Desc.IsStreamingServer():
		result = ident(grpcPackage, "BidiStreamingClient").Types(in, out)
	case m.m.Desc.IsStreamingClient():
		result = ident(grpcPackage, "ClientStreamingClient").Types(in, out)
	case m.m.Desc.IsStreamingServer():
		result = ident(grpcPackage, "ServerStreamingClient").Types(out)
	default:
		result = jen.Op("*").Add(out)
	}
	return params, []jen.Code{result, jen.Error()}
}

// clientMethod declares the client method that calls m.
func clientMethod(s *serviceModel, m *methodModel) []jen.Code {
	full := string(m.m.Desc.FullName())
	d := new(doc)
	if m.m.Comments.Leading != "" {
		d.proto(m.m.Comments.Leading)
	} else {
		d.para(fmt.Sprintf("%s calls %s.", m.m.GoName, full))
	}
	if m.hashKey != nil {
		d.para(fmt.Sprintf("Under the ConsistentHash policy, calls are routed by the request's "+
			"%s (hash_key %q).", m.hashKeyPath, m.hashKeyPath))
	}
	d.deprecated(methodDeprecated(m.m), full)

	var body []jen.Code
	if m.hashKey != nil {
		body = append(body, jen.Id("ctx").Op("=").Add(ident(runtimePackage, "WithHashKey")).Call(jen.Id("ctx"), hashKeyString(m.hashKey)))
	}
	body = append(body, jen.Id("cOpts").Op(":=").Append(
		jen.Index().Add(ident(grpcPackage, "CallOption")).Values(ident(grpcPackage, "StaticMethod").Call()),
		jen.Id("opts").Op("..."),
	))
	if isStreaming(m.m) {
		body = append(body, streamBody(s, m)...)
	} else {
		body = append(body, unaryBody(m)...)
	}

	params, results := clientSignature(m)
	return []jen.Code{
		d.code(),
		jen.Func().Params(jen.Id("c").Op("*").Id(s.names.Client)).Id(m.m.GoName).Params(params...).Params(results...).Block(body...),
		jen.Line(),
	}
}

func unaryBody(m *methodModel) []jen.Code {
	return []jen.Code{
		jen.Id("out").Op(":=").New(qual(m.m.Output.GoIdent)),
		jen.If(
			jen.Err().Op(":=").Id("c").Dot("cc").Dot("Invoke").Call(
				jen.Id("ctx"), jen.Id(m.names.FullMethodName), jen.Id("in"), jen.Id("out"), jen.Id("cOpts").Op("..."),
			),
			jen.Err().Op("!=").Nil(),
		).Block(jen.Return(jen.Nil(), jen.Err())),
		jen.Return(jen.Id("out"), jen.Nil()),
	}
}

// streamBody opens the stream with the method's grpc.StreamDesc, one of its
// service's streamDescs, so that generated code needs nothing from
// protoc-gen-go-grpc's output and a stream allocates no description.
func streamBody(s *serviceModel, m *methodModel) []jen.Code {
	body := []jen.Code{
		jen.List(jen.Id("stream"), jen.Err()).Op(":=").Id("c").Dot("cc").Dot("NewStream").Call(
			jen.Id("ctx"),
			jen.Op("&").Id(s.names.StreamDescs).Index(jen.Lit(m.names.StreamIndex)),
			jen.Id(m.names.FullMethodName),
			jen.Id("cOpts").Op("..."),
		),
		jen.If(jen.Err().Op("!=").Nil()).Block(jen.Return(jen.Nil(), jen.Err())),
		jen.Id("x").Op(":=").Op("&").Add(ident(grpcPackage, "GenericClientStream")).
			Types(qual(m.m.Input.GoIdent), qual(m.m.Output.GoIdent)).
			Values(jen.Dict{jen.Id("ClientStream"): jen.Id("stream")}),
	}
	if !m.m.Desc.IsStreamingClient() {
		body = append(body,
			jen.If(jen.Err().Op(":=").Id("x").Dot("ClientStream").Dot("SendMsg").Call(jen.Id("in")), jen.Err().Op("!=").Nil()).
				Block(jen.Return(jen.Nil(), jen.Err())),
			jen.If(jen.Err().Op(":=").Id("x").Dot("ClientStream").Dot("CloseSend").Call(), jen.Err().Op("!=").Nil()).
				Block(jen.Return(jen.Nil(), jen.Err())),
		)
	}
	return append(body, jen.Return(jen.Id("x"), jen.Nil()))
}

// streamDescs declares the service's array of grpc.StreamDescs, one per
// streaming method in .proto order, as protoc-gen-go-grpc's ServiceDesc
// holds them; nothing for a service without streaming methods.
func streamDescs(s *serviceModel) []jen.Code {
	if s.names.StreamDescs == "" {
		return nil
	}
	var descs []jen.Code
	for _, m := range s.methods {
		if m.names.StreamIndex < 0 {
			continue
		}
		desc := []jen.Code{field("StreamName", jen.Lit(string(m.m.Desc.Name())))}
		if m.m.Desc.IsStreamingServer() {
			desc = append(desc, field("ServerStreams", jen.True()))
		}
		if m.m.Desc.IsStreamingClient() {
			desc = append(desc, field("ClientStreams", jen.True()))
		}
		descs = append(descs, jen.Values(desc...))
	}
	return []jen.Code{
		jen.Commentf("%s describes %s's streaming methods for NewStream.", s.names.StreamDescs, s.svc.GoName),
		jen.Var().Id(s.names.StreamDescs).Op("=").Index(jen.Op("...")).Add(ident(grpcPackage, "StreamDesc")).
			Custom(jen.Options{Open: "{", Close: "}", Separator: ",", Multi: true}, descs...),
		jen.Line(),
	}
}
