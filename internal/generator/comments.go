package generator

import (
	"strings"

	"github.com/dave/jennifer/jen"
	"google.golang.org/protobuf/compiler/protogen"
	"google.golang.org/protobuf/types/descriptorpb"
)

// doc builds a doc comment paragraph by paragraph.
type doc struct {
	lines []string
}

// commentWidth is the width that generated paragraphs wrap at, "// " aside.
const commentWidth = 77

// para adds a paragraph of text, wrapped at commentWidth.
func (d *doc) para(text string) *doc {
	d.sep()
	line := ""
	for _, word := range strings.Fields(text) {
		if line != "" && len(line)+1+len(word) > commentWidth {
			d.lines = append(d.lines, "// "+line)
			line = ""
		}
		if line != "" {
			line += " "
		}
		line += word
	}
	d.lines = append(d.lines, "// "+line)
	return d
}

// proto adds the leading comments of a .proto element as a paragraph.
func (d *doc) proto(c protogen.Comments) *doc {
	text := strings.TrimRight(string(c), "\n")
	if strings.TrimSpace(text) == "" {
		return d
	}
	d.sep()
	for line := range strings.SplitSeq(text, "\n") {
		d.lines = append(d.lines, strings.TrimRight("//"+line, " \t"))
	}
	return d
}

// deprecated adds the "Deprecated:" paragraph when deprecated is true.
func (d *doc) deprecated(deprecated bool, what string) *doc {
	if deprecated {
		d.para("Deprecated: " + what + " is marked deprecated in its .proto file.")
	}
	return d
}

func (d *doc) sep() {
	if len(d.lines) > 0 {
		d.lines = append(d.lines, "//")
	}
}

// code returns the comment, rendered as written.
func (d *doc) code() jen.Code {
	if len(d.lines) == 0 {
		return jen.Null()
	}
	return jen.Comment(strings.Join(d.lines, "\n"))
}

func serviceDeprecated(s *protogen.Service) bool {
	opts, _ := s.Desc.Options().(*descriptorpb.ServiceOptions)
	return opts.GetDeprecated()
}

func methodDeprecated(m *protogen.Method) bool {
	opts, _ := m.Desc.Options().(*descriptorpb.MethodOptions)
	return opts.GetDeprecated()
}

func fileDeprecated(f *protogen.File) bool {
	return f.Proto.GetOptions().GetDeprecated()
}
