package runtime

// Version is the version of the lbclient runtime.
const Version = "0.1.0"

// SupportPackageIsVersion1 is referenced by code that protoc-gen-go-lbclient
// generates, so that generated code and a runtime too old for it fail to
// build together, with this name in the error, instead of misbehaving.
// A runtime that drops support for an old generated API removes its
// constant; a generator that needs more from the runtime references a newer
// one.
const SupportPackageIsVersion1 = true
