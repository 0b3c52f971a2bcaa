// Package generator is the code generator behind protoc-gen-go-lbclient.
//
// Generation has two steps. validate.go turns the descriptors and their
// lbclient.v1 annotations into rules (the generator's mirror of
// runtime.ServiceRules), checking every rule and collecting every error of
// the request, in file, service and method order; when any is found the
// request fails with all of them joined and no file is written. Each error
// starts with file:line:column, from the descriptor's source info (the
// field inside the option when the compiler recorded it, as buf does, else
// the option statement, else the declaration). Only then
// are the rules rendered to Go with jennifer, one small function per
// emitted construct: constants.go (the version handshake and the name
// constants), rulesfunc.go (the rules literal), client.go (the client type,
// its constructors, Conn and Close), method.go (the rpc methods) and
// hashkey.go (hash-key extraction). names.go computes every generated
// identifier; imports.go declares every imported package.
//
// # Output
//
// For a .proto file with services, in Go package greeterv1 at import path
// X/greeter/v1, the plugin writes package greeterv1lbclient (the suffix is
// the package_suffix option, "lbclient" by default) into
// X/greeter/v1/greeterv1lbclient/<file>.lbclient.go. The file name derives
// from protogen's GeneratedFilenamePrefix, so paths=, module= and M options
// behave as for protoc-gen-go.
//
// # Rules
//
// A method's (lbclient.v1.method) annotation is merged over the service's
// defaults field by field: a field set on the method wins (wait_for_ready
// is optional, so an explicit false wins too), and retry and hedging are
// one choice, which a method that sets either makes anew. The defaults'
// timeout is for unary and client-streaming methods only: a
// server-streaming or bidi call lasts as long as its caller reads, so such
// a method has a timeout only when its own annotation sets one. Every
// annotated method gets its complete, merged entry in ServiceRules.Methods,
// and so does every server-streaming and bidi method when the defaults
// have a timeout (the defaults without it); the others take
// ServiceRules.Defaults at run time. Hedging is per method
// only: in the defaults it is an error, as it is for runtime.Dial. The
// defaults' hash_key applies to every method with one request message
// (unary and server-streaming) that has no hash_key of its own, and must
// resolve in each of their request messages; client- and bidi-streaming
// methods go without it, and for them a hash_key of their own is an error.
//
// # Names and collisions
//
// Names are resolved deterministically; this section is the reference for
// the README.
//
//   - Per service S (its Go name, from protogen) the package declares
//     SServiceName, SRules, SClient, NewSClient and NewSClientFromConn, and
//     per method M the constant SMFullMethodName. These names are claimed
//     in order across all the files of one generated Go package: first the
//     service-level names of every service, then the method constants, file
//     by file in the order of the request (protoc's topological order) and
//     service by service as declared. A name already taken falls back to
//     the underscored form protoc-gen-go-grpc uses (S_ServiceName,
//     S_Rules, S_Client, NewS_Client, NewS_ClientFromConn,
//     S_M_FullMethodName), and if that is taken too, to that form followed
//     by 2, 3, ... Example: service Foo with rpc BarX and service FooBar
//     with rpc X both want FooBarXFullMethodName; the one claimed second
//     becomes FooBar_X_FullMethodName (or Foo_BarX_FullMethodName).
//     A service with streaming methods also declares the unexported array
//     sStreamDescs (S with its first letter lowered) of their
//     grpc.StreamDescs, claimed with its service-level names; its fallback
//     is _S_StreamDescs.
//   - rpc methods keep protoc-gen-go-grpc's names, so the client stays a
//     drop-in for that plugin's client interface. The lifecycle methods
//     yield instead: when the service has an rpc named Conn, the accessor
//     is ClientConn; when it has one named Close, closing is CloseClient;
//     when those are taken too, a number is appended (ClientConn2, ...).
//     The doc comment of a renamed method says why it was renamed.
//   - Two rpcs of one service whose Go names are equal ("get_item" and
//     "GetItem") are a generation error: protoc-gen-go-grpc's interface
//     cannot hold them either.
//   - Go keywords and predeclared identifiers cannot clash: protogen's Go
//     names of services and methods are exported CamelCase ("select" is
//     Select), and generated code's locals are lower-case. An imported
//     message package whose name equals one of those locals (c, cc, conn,
//     cOpts, ctx, err, in, opts, out, rules, stream, target, x) is imported
//     as that name plus "pb"; other import name clashes get a number
//     (jennifer's rule).
//
// Generate all files of one Go package in one run, as protoc-gen-go
// requires; names are only unique among the files of a run.
package generator
