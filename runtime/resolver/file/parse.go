package file

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"google.golang.org/grpc/experimental/balancer/weight"
	"google.golang.org/grpc/resolver"

	"github.com/lbclient/lbclient/internal/targets"
)

// The fields of the file, and of each of its endpoints. Anything else is an
// error: a misspelt "wieght" would otherwise be dropped without a word.
var (
	fileFields     = []string{"endpoints"}
	endpointFields = []string{"address", "weight", "zone"}
)

// zoneKey is the key of an endpoint's zone in its attributes.
type zoneKey struct{}

// Zone returns the zone that the file gave endpoint, or "" when it gave
// none. lbclient's balancers do not use zones yet; the zone is carried so
// that a policy of your own (or a later one of lbclient's) can prefer the
// endpoints of the caller's zone.
func Zone(endpoint resolver.Endpoint) string {
	z, _ := endpoint.Attributes.Value(zoneKey{}).(string)
	return z
}

// Parse parses the contents of an endpoints file into a resolver state
// with one endpoint per entry, in the file's order. name is the file's
// path, used in errors.
//
// The contents must be one JSON object with one field, "endpoints", a
// non-empty list of objects with the fields "address" (host:port, required),
// "weight" (an integer from 1 to 4294967295, optional) and "zone" (a string,
// optional). An endpoint's weight is set with grpc-go's
// experimental/balancer/weight, its zone as an attribute that Zone reads;
// an endpoint without them has no attribute for them.
//
// Every error names the file. A JSON syntax error gives the line and
// column (name:line:column, the column in characters counted from 1);
// other errors give the endpoint's position in the list (from 1) and its
// address when it has one: an unknown field, a missing or malformed
// address, an address listed twice, a weight out of range, a value of the
// wrong type, an empty list or an empty file.
func Parse(name string, data []byte) (resolver.State, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return resolver.State{}, fmt.Errorf("file resolver: %s: the file is empty", name)
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(data, &top); err != nil {
		if se, ok := errors.AsType[*json.SyntaxError](err); ok {
			line, col := position(data, se)
			return resolver.State{}, fmt.Errorf("file resolver: %s:%d:%d: %v", name, line, col, se)
		}
		return resolver.State{}, fmt.Errorf(`file resolver: %s: the file holds %s, want an object {"endpoints": [...]}`, name, kind(data))
	}
	if err := onlyFields(top, fileFields); err != nil {
		return resolver.State{}, fmt.Errorf("file resolver: %s: %v", name, err)
	}
	raw, ok := top["endpoints"]
	if !ok {
		return resolver.State{}, fmt.Errorf(`file resolver: %s: no "endpoints" field`, name)
	}
	var list []json.RawMessage
	if k := kind(raw); k != "a list" {
		return resolver.State{}, fmt.Errorf(`file resolver: %s: "endpoints" is %s, want a list`, name, k)
	}
	if err := json.Unmarshal(raw, &list); err != nil {
		return resolver.State{}, fmt.Errorf(`file resolver: %s: "endpoints": %v`, name, err) // unreachable: the syntax was checked
	}
	if len(list) == 0 {
		return resolver.State{}, fmt.Errorf(`file resolver: %s: "endpoints" is empty`, name)
	}
	seen := make(map[string]int, len(list))
	eps := make([]resolver.Endpoint, 0, len(list))
	for i, raw := range list {
		ep, err := parseEndpoint(raw)
		if err != nil {
			return resolver.State{}, fmt.Errorf("file resolver: %s: endpoint %d%v", name, i+1, err)
		}
		addr := ep.Addresses[0].Addr
		if first, dup := seen[addr]; dup {
			return resolver.State{}, fmt.Errorf("file resolver: %s: endpoint %d: address %q is listed twice (also endpoint %d)", name, i+1, addr, first)
		}
		seen[addr] = i + 1
		eps = append(eps, ep)
	}
	return resolver.State{Endpoints: eps}, nil
}

// parseEndpoint parses one entry of the list. Its errors start with what
// follows "endpoint N" in a message: ": ..." or " (address): ...".
func parseEndpoint(raw json.RawMessage) (resolver.Endpoint, error) {
	var fields map[string]json.RawMessage
	if k := kind(raw); k != "an object" {
		return resolver.Endpoint{}, fmt.Errorf(` is %s, want an object {"address": "host:port"}`, k)
	}
	if err := json.Unmarshal(raw, &fields); err != nil {
		return resolver.Endpoint{}, fmt.Errorf(": %v", err) // unreachable: the syntax was checked
	}
	if err := onlyFields(fields, endpointFields); err != nil {
		return resolver.Endpoint{}, fmt.Errorf(": %v", err)
	}
	rawAddr, ok := fields["address"]
	if !ok || kind(rawAddr) == "null" {
		return resolver.Endpoint{}, errors.New(` has no "address"`)
	}
	addr, err := stringField(rawAddr)
	if err != nil {
		return resolver.Endpoint{}, fmt.Errorf(`: "address" is %s, want a string "host:port"`, kind(rawAddr))
	}
	if err := targets.CheckAddress(addr); err != nil {
		return resolver.Endpoint{}, fmt.Errorf(": %v", err)
	}
	ep := resolver.Endpoint{Addresses: []resolver.Address{{Addr: addr}}}
	if rawWeight, ok := fields["weight"]; ok && kind(rawWeight) != "null" {
		w, err := parseWeight(rawWeight)
		if err != nil {
			return resolver.Endpoint{}, fmt.Errorf(" (%s): %v", addr, err)
		}
		ep = weight.Set(ep, weight.EndpointInfo{Weight: w})
	}
	if rawZone, ok := fields["zone"]; ok && kind(rawZone) != "null" {
		zone, err := stringField(rawZone)
		if err != nil {
			return resolver.Endpoint{}, fmt.Errorf(` (%s): "zone" is %s, want a string`, addr, kind(rawZone))
		}
		if zone != "" {
			ep.Attributes = ep.Attributes.WithValue(zoneKey{}, zone)
		}
	}
	return ep, nil
}

// parseWeight parses a weight: a JSON integer from 1 to math.MaxUint32,
// the range of grpc-go's weight attribute. 0 is refused rather than taken
// for 1, as some policies do with an unset weight: written in a file, it
// more likely means "drain this endpoint", which is done by removing it.
func parseWeight(raw json.RawMessage) (uint32, error) {
	if k := kind(raw); k != "a number" {
		return 0, fmt.Errorf(`"weight" is %s, want an integer from 1 to %d`, k, uint32(math.MaxUint32))
	}
	s := string(bytes.TrimSpace(raw))
	w, err := strconv.ParseUint(s, 10, 32)
	if err != nil || w == 0 {
		return 0, fmt.Errorf("weight %s: want an integer from 1 to %d", s, uint32(math.MaxUint32))
	}
	return uint32(w), nil
}

// onlyFields returns an error naming the first field of m, in sorted order,
// that is not in known.
func onlyFields(m map[string]json.RawMessage, known []string) error {
	for _, k := range slices.Sorted(maps.Keys(m)) {
		if !slices.Contains(known, k) {
			return fmt.Errorf("unknown field %q (known: %s)", k, strings.Join(known, ", "))
		}
	}
	return nil
}

// stringField decodes a JSON string.
func stringField(raw json.RawMessage) (string, error) {
	var s string
	err := json.Unmarshal(raw, &s)
	return s, err
}

// kind names the type of a JSON value, for errors: "an object", "a list",
// "a string", "a number", "a boolean" or "null".
func kind(raw []byte) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return "nothing"
	}
	switch raw[0] {
	case '{':
		return "an object"
	case '[':
		return "a list"
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	default:
		return "a number"
	}
}

// position turns the offset of a json.SyntaxError (the number of bytes read
// when the error was found, so the offending byte is the one before it)
// into a line and a column counted from 1, the column in characters. An
// input that ends too soon points just past its last character.
func position(data []byte, se *json.SyntaxError) (line, col int) {
	off := int(se.Offset)
	if off > 0 && se.Error() != "unexpected end of JSON input" {
		off-- // the offending byte itself
	}
	off = min(max(off, 0), len(data))
	before := data[:off]
	line = 1 + bytes.Count(before, []byte("\n"))
	lineStart := bytes.LastIndexByte(before, '\n') + 1
	return line, 1 + utf8.RuneCount(before[lineStart:])
}
