package generator

import (
	"errors"
	"fmt"
	"go/token"
	"path"
	"path/filepath"
	"runtime/debug"
	"strings"

	"github.com/dave/jennifer/jen"
	"golang.org/x/mod/module"
	"google.golang.org/protobuf/compiler/protogen"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/pluginpb"
)

// Version is the version of protoc-gen-go-lbclient. It is the version of the
// lbclient runtime it generates code for (runtime.Version); a test keeps
// the two equal.
const Version = "0.1.0"

// DefaultPackageSuffix is the default of the package_suffix option.
const DefaultPackageSuffix = "lbclient"

// generatedFileSuffix ends the name of every generated file.
const generatedFileSuffix = ".lbclient.go"

// Options are the plugin's own options, given as protoc parameters
// (--go-lbclient_opt=package_suffix=lb) or buf's opt.
type Options struct {
	// PackageSuffix is appended to the Go package name of a .proto file to
	// name the package of its clients, which sits in a directory of that
	// name below the file's Go package.
	PackageSuffix string
}

// Generate writes a .lbclient.go file for every file to generate that has
// services. It first turns the annotations into rules, checking all of
// them, and reports every error at once; only valid rules become code. It
// never panics: an internal failure is returned as an error, which the
// plugin reports in its CodeGeneratorResponse.
func Generate(gen *protogen.Plugin, opts Options) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("protoc-gen-go-lbclient: internal error: %v\n%s", r, debug.Stack())
		}
	}()
	gen.SupportedFeatures = uint64(pluginpb.CodeGeneratorResponse_FEATURE_PROTO3_OPTIONAL) |
		uint64(pluginpb.CodeGeneratorResponse_FEATURE_SUPPORTS_EDITIONS)
	gen.SupportedEditionsMinimum = descriptorpb.Edition_EDITION_PROTO2
	gen.SupportedEditionsMaximum = descriptorpb.Edition_EDITION_2024

	if !validSuffix(opts.PackageSuffix) {
		return fmt.Errorf("invalid package_suffix %q: want letters, digits and underscores", opts.PackageSuffix)
	}
	files, err := build(gen, opts)
	if err != nil {
		return err
	}
	for _, f := range files {
		if err := render(gen, f); err != nil {
			return err
		}
	}
	return nil
}

// build is the first step: descriptors → rules, and names. It returns all
// errors of the request joined, in file, service and method order.
func build(gen *protogen.Plugin, opts Options) ([]*fileModel, error) {
	var errs []error
	var files []*fileModel
	for _, f := range gen.Files {
		if !f.Generate || len(f.Services) == 0 {
			continue
		}
		if err := checkImportPath(f); err != nil {
			errs = append(errs, err)
			continue
		}
		fm := newFileModel(f, opts.PackageSuffix)
		for _, s := range f.Services {
			fm.services = append(fm.services, buildService(f, s, &errs))
		}
		files = append(files, fm)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}

	// The files of one generated package share its names.
	var order []protogen.GoImportPath
	byPackage := make(map[protogen.GoImportPath][]*fileModel)
	for _, f := range files {
		if _, ok := byPackage[f.importPath]; !ok {
			order = append(order, f.importPath)
		}
		byPackage[f.importPath] = append(byPackage[f.importPath], f)
	}
	for _, p := range order {
		nameServices(newNamer(), byPackage[p])
	}
	return files, nil
}

// checkImportPath refuses a Go import path or package name that Go would
// not accept, from the file's go_package option or an M option: an import
// path that is rooted or has "." or ".." elements (protoc-gen-go's
// paths=import, the default, builds the output file's name from it, so
// "../x" would make protoc write outside the output directory), or any
// other malformed one (module.CheckImportPath, the go command's own
// rules), and a package name that is no Go identifier.
func checkImportPath(f *protogen.File) error {
	ip, name := string(f.GoImportPath), string(f.GoPackageName)
	goPackage := f.Proto.GetOptions().GetGoPackage()
	from := fmt.Sprintf("go_package %q", goPackage)
	if gp, _, _ := strings.Cut(goPackage, ";"); gp != ip {
		from = fmt.Sprintf("the option M%s=%s", f.Desc.Path(), ip)
	}
	why := ""
	if path.IsAbs(ip) {
		why = "rooted"
	} else if err := module.CheckImportPath(ip); err != nil {
		why = strings.TrimPrefix(err.Error(), fmt.Sprintf("malformed import path %q: ", ip))
	}
	if why != "" {
		return fmt.Errorf("%s: %s gives the Go import path %q, which is malformed (%s): generated files could land outside the output directory, and Go could not import them; "+
			"give the package's full import path, such as %q", f.Desc.Path(), from, ip, why, "example.com/project/gen/greeter/v1;greeterv1")
	}
	if !token.IsIdentifier(name) {
		return fmt.Errorf("%s: %s gives the Go package name %q, which is not a Go identifier", f.Desc.Path(), from, name)
	}
	return nil
}

// newFileModel places the generated file of f: package <name><suffix> in
// the directory of that name below f's Go package, as protoc-gen-connect-go
// places its subpackages. Working from GeneratedFilenamePrefix keeps the
// paths=, module= and M options, which protogen applies.
func newFileModel(f *protogen.File, suffix string) *fileModel {
	pkgName := string(f.GoPackageName) + suffix
	prefix := filepath.ToSlash(f.GeneratedFilenamePrefix)
	return &fileModel{
		file:       f,
		importPath: protogen.GoImportPath(path.Join(string(f.GoImportPath), pkgName)),
		pkgName:    pkgName,
		filename:   path.Join(path.Dir(prefix), pkgName, path.Base(prefix)) + generatedFileSuffix,
	}
}

// render is the second step: rules → code, rendered by jennifer straight
// into the plugin's generated file.
func render(gen *protogen.Plugin, fm *fileModel) error {
	jf := jen.NewFilePathName(string(fm.importPath), fm.pkgName)
	for _, f := range gen.Files {
		importPackage(jf, f.GoImportPath, string(f.GoPackageName))
	}
	jf.ImportName(string(runtimePackage), "runtime")
	jf.ImportName(string(grpcPackage), "grpc")
	jf.ImportName(string(codesPackage), "codes")
	header(jf, gen, fm.file)

	decls := versionHandshake()
	for _, s := range fm.services {
		decls = append(decls, serviceConstants(s)...)
		decls = append(decls, rulesFunc(s)...)
		decls = append(decls, clientType(s, string(fm.file.GoPackageName))...)
		decls = append(decls, clientConstructors(s)...)
		for _, m := range s.methods {
			decls = append(decls, clientMethod(s, m)...)
		}
		decls = append(decls, clientLifecycle(s)...)
		decls = append(decls, streamDescs(s)...)
	}
	// Each Add makes its own item of the file, rendered on its own lines.
	for _, d := range decls {
		jf.Add(d)
	}

	g := gen.NewGeneratedFile(fm.filename, fm.importPath)
	if err := jf.Render(g); err != nil {
		return fmt.Errorf("%s: rendering %s: %w", fm.file.Desc.Path(), fm.filename, err)
	}
	return nil
}

// header writes the "Code generated" comment, the versions and the source,
// as protoc-gen-go-grpc does.
func header(jf *jen.File, gen *protogen.Plugin, f *protogen.File) {
	source := "// source: " + f.Desc.Path()
	if fileDeprecated(f) {
		source = "// " + f.Desc.Path() + " is a deprecated file."
	}
	jf.HeaderComment(strings.Join([]string{
		"// Code generated by protoc-gen-go-lbclient. DO NOT EDIT.",
		"// versions:",
		"// - protoc-gen-go-lbclient v" + Version,
		"// - protoc                 " + compilerVersion(gen),
		source,
	}, "\n"))
}

func compilerVersion(gen *protogen.Plugin) string {
	v := gen.Request.GetCompilerVersion()
	if v == nil {
		return "(unknown)"
	}
	s := fmt.Sprintf("v%d.%d.%d", v.GetMajor(), v.GetMinor(), v.GetPatch())
	if v.GetSuffix() != "" {
		s += "-" + v.GetSuffix()
	}
	return s
}

// validSuffix reports whether s can end a Go package name.
func validSuffix(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if !(r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}
