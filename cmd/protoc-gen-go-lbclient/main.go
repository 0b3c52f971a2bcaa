// protoc-gen-go-lbclient is a plugin for the protocol buffer compiler that
// generates load-balancing gRPC clients in Go. From each service and the
// lbclient.v1 annotations it writes a typed client whose constructor dials
// with a resolver, a load-balancing policy, timeouts, retries and hedging
// already configured; its methods match protoc-gen-go-grpc's client
// interface. Install it with
//
//	go install github.com/lbclient/lbclient/cmd/protoc-gen-go-lbclient@latest
//
// and run it next to protoc-gen-go and protoc-gen-go-grpc, with the lbclient
// module's proto directory, which holds lbclient/v1/lbclient.proto, on the
// import path:
//
//	protoc -I proto -I "$(go list -m -f '{{.Dir}}' github.com/lbclient/lbclient)/proto" \
//	    --go_out=gen --go-grpc_out=gen --go-lbclient_out=gen \
//	    --go-lbclient_opt=paths=source_relative greeter/v1/greeter.proto
//
// With buf, which reads no file outside its working directory, copy
// lbclient.proto into the tree (proto/lbclient/v1/lbclient.proto) and leave
// it out of generation with an input's exclude_paths, as the README's quick
// start does; in buf.gen.yaml (the templates directory of the lbclient
// repository holds ready ones for `buf generate --template`):
//
//	version: v2
//	inputs:
//	  - directory: proto
//	    exclude_paths: [proto/lbclient]
//	plugins:
//	  - local: protoc-gen-go
//	    out: gen
//	    opt: paths=source_relative
//	  - local: protoc-gen-go-grpc
//	    out: gen
//	    opt: paths=source_relative
//	  - local: protoc-gen-go-lbclient
//	    out: gen
//	    opt: paths=source_relative
//
// For a file with Go package greeterv1 at import path example.com/gen/greeter/v1
// it writes package greeterv1lbclient at example.com/gen/greeter/v1/greeterv1lbclient,
// one <file>.lbclient.go per .proto file that has services.
//
// Options:
//
//	package_suffix=lbclient  suffix of the generated package's name and directory
//	paths=import|source_relative, module=PREFIX, M<file>=<import path>
//	                         the options of every protogen plugin, as protoc-gen-go
//
// Flags:
//
//	--version  print the version and exit
//	--help     print this usage and exit
package main

import (
	"flag"
	"fmt"
	"os"

	"google.golang.org/protobuf/compiler/protogen"

	"github.com/lbclient/lbclient/internal/generator"
)

const usage = `protoc-gen-go-lbclient generates load-balancing gRPC clients; protoc and buf run it.

  protoc --go_out=gen --go-grpc_out=gen --go-lbclient_out=gen path/to/file.proto
  buf generate --template templates/installed.yaml

Options (--go-lbclient_opt or buf's opt):
  package_suffix=lbclient   suffix of the generated package (default "lbclient")
  paths=, module=, M...     as for protoc-gen-go

Flags:
  --version   print the version and exit
  --help      print this usage and exit
`

func main() {
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "--version", "-version":
			fmt.Println("protoc-gen-go-lbclient", generator.Version)
			return
		case "--help", "-help", "-h":
			fmt.Print(usage)
			return
		default:
			fmt.Fprint(os.Stderr, usage)
			os.Exit(2)
		}
	}

	var flags flag.FlagSet
	suffix := flags.String("package_suffix", generator.DefaultPackageSuffix, "suffix of the generated package's name and directory")
	protogen.Options{ParamFunc: flags.Set}.Run(func(gen *protogen.Plugin) error {
		return generator.Generate(gen, generator.Options{PackageSuffix: *suffix})
	})
}
