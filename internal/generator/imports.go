package generator

import (
	"path"

	"github.com/dave/jennifer/jen"
	"google.golang.org/protobuf/compiler/protogen"
)

// The packages that generated code imports, declared once.
const (
	contextPackage = protogen.GoImportPath("context")
	strconvPackage = protogen.GoImportPath("strconv")
	timePackage    = protogen.GoImportPath("time")
	grpcPackage    = protogen.GoImportPath("google.golang.org/grpc")
	codesPackage   = protogen.GoImportPath("google.golang.org/grpc/codes")
	runtimePackage = protogen.GoImportPath("github.com/lbclient/lbclient/runtime")
)

// qual returns the qualified identifier for id: jennifer imports its package.
func qual(id protogen.GoIdent) *jen.Statement {
	return jen.Qual(string(id.GoImportPath), id.GoName)
}

// ident returns name in package pkg as a qualified identifier.
func ident(pkg protogen.GoImportPath, name string) *jen.Statement {
	return jen.Qual(string(pkg), name)
}

// localNames are the identifiers that generated functions declare as
// parameters and variables. An imported package whose name is one of them
// is imported under another name, so that the local never shadows it.
var localNames = map[string]bool{
	"c": true, "cc": true, "conn": true, "cOpts": true, "ctx": true,
	"err": true, "in": true, "opts": true, "out": true, "rules": true,
	"stream": true, "target": true, "x": true,
}

// importName is the name under which generated code imports the Go package
// pkgName: the package's own name, unless a local would shadow it.
func importName(pkgName string) string {
	if localNames[pkgName] {
		return pkgName + "pb"
	}
	return pkgName
}

// importPackage tells jf the name to import the Go package at importPath
// under: its own name, written as an alias when the path does not end in
// it (".../greeter/v1" for greeterv1), or another name when a local of
// generated code would shadow it.
func importPackage(jf *jen.File, importPath protogen.GoImportPath, pkgName string) {
	name := importName(pkgName)
	if name == path.Base(string(importPath)) {
		jf.ImportName(string(importPath), name)
	} else {
		jf.ImportAlias(string(importPath), name)
	}
}
