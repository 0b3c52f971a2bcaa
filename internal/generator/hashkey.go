package generator

import (
	"fmt"
	"strings"

	"github.com/dave/jennifer/jen"
	"google.golang.org/protobuf/compiler/protogen"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// resolveHashKey follows the dotted path p of field names from msg. It
// returns the fields along the path, or a problem (lowercase, for an error
// message) when the path does not name a singular scalar field reached
// through singular message fields.
func resolveHashKey(msg *protogen.Message, p string) ([]*protogen.Field, string) {
	segs := strings.Split(p, ".")
	fields := make([]*protogen.Field, 0, len(segs))
	for i, seg := range segs {
		f := fieldByName(msg, seg)
		if f == nil {
			return nil, fmt.Sprintf("%s has no field %q", msg.Desc.FullName(), seg)
		}
		last := i == len(segs)-1
		switch {
		case f.Desc.IsMap():
			return nil, fmt.Sprintf("field %q of %s is a map", seg, msg.Desc.FullName())
		case f.Desc.IsList():
			return nil, fmt.Sprintf("field %q of %s is repeated", seg, msg.Desc.FullName())
		case last && f.Message != nil:
			return nil, fmt.Sprintf("field %q of %s is a message: name a scalar field inside it", seg, msg.Desc.FullName())
		case !last && f.Message == nil:
			return nil, fmt.Sprintf("field %q of %s is not a message", seg, msg.Desc.FullName())
		}
		fields = append(fields, f)
		msg = f.Message
	}
	return fields, ""
}

func fieldByName(msg *protogen.Message, name string) *protogen.Field {
	for _, f := range msg.Fields {
		if string(f.Desc.Name()) == name {
			return f
		}
	}
	return nil
}

// hashKeyGetter returns the chain of getters that reads the fields from the
// request in: in.GetAccount().GetId(). Getters are nil-safe, so an unset
// message on the way yields the zero value.
func hashKeyGetter(fields []*protogen.Field) *jen.Statement {
	s := jen.Id("in")
	for _, f := range fields {
		s = s.Dot("Get" + f.GoName).Call()
	}
	return s
}

// hashKeyString returns the expression that converts the value of the last
// field to the string key, without reflection: strconv for numbers and
// bools, string() for bytes, enums by number.
func hashKeyString(fields []*protogen.Field) *jen.Statement {
	v := hashKeyGetter(fields)
	switch fields[len(fields)-1].Desc.Kind() {
	case protoreflect.StringKind:
		return v
	case protoreflect.BytesKind:
		return jen.String().Call(v)
	case protoreflect.BoolKind:
		return ident(strconvPackage, "FormatBool").Call(v)
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		return ident(strconvPackage, "FormatInt").Call(v, jen.Lit(10))
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind, protoreflect.EnumKind:
		return ident(strconvPackage, "FormatInt").Call(jen.Int64().Call(v), jen.Lit(10))
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		return ident(strconvPackage, "FormatUint").Call(v, jen.Lit(10))
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		return ident(strconvPackage, "FormatUint").Call(jen.Uint64().Call(v), jen.Lit(10))
	case protoreflect.FloatKind:
		return ident(strconvPackage, "FormatFloat").Call(jen.Float64().Call(v), jen.LitRune('g'), jen.Lit(-1), jen.Lit(32))
	case protoreflect.DoubleKind:
		return ident(strconvPackage, "FormatFloat").Call(v, jen.LitRune('g'), jen.Lit(-1), jen.Lit(64))
	}
	// resolveHashKey admits only the scalar kinds above.
	return v
}
