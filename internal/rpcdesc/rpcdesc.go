// Package rpcdesc answers what lbclient's rules ask of a method's
// descriptor: how it streams, and whether it is marked idempotent. The
// generator asks it of the .proto it compiles, the runtime of the
// descriptors the binary registers, so both judge a hedging rule alike.
package rpcdesc

import (
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
)

// StreamKind describes how md streams: "unary", "client-streaming",
// "server-streaming" or "bidi-streaming".
func StreamKind(md protoreflect.MethodDescriptor) string {
	switch {
	case md.IsStreamingClient() && md.IsStreamingServer():
		return "bidi-streaming"
	case md.IsStreamingClient():
		return "client-streaming"
	case md.IsStreamingServer():
		return "server-streaming"
	}
	return "unary"
}

// IdempotencyLevel returns md's idempotency_level option.
func IdempotencyLevel(md protoreflect.MethodDescriptor) descriptorpb.MethodOptions_IdempotencyLevel {
	opts, _ := md.Options().(*descriptorpb.MethodOptions)
	return opts.GetIdempotencyLevel()
}

// Idempotent reports whether md is marked IDEMPOTENT or NO_SIDE_EFFECTS:
// a call of it may run more than once, as hedging needs.
func Idempotent(md protoreflect.MethodDescriptor) bool {
	switch IdempotencyLevel(md) {
	case descriptorpb.MethodOptions_IDEMPOTENT, descriptorpb.MethodOptions_NO_SIDE_EFFECTS:
		return true
	}
	return false
}
