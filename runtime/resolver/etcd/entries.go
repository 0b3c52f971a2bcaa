package etcdresolver

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"slices"
	"strconv"
	"strings"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"google.golang.org/grpc/experimental/balancer/weight"
	"google.golang.org/grpc/resolver"
)

// entry is the last good value of one key.
type entry struct {
	addr   string
	weight uint32 // 0 when the metadata gives none
	rev    int64  // the key's ModRevision when it was written
}

func (e entry) String() string {
	if e.weight == 0 {
		return e.addr
	}
	return fmt.Sprintf("%s, weight %d", e.addr, e.weight)
}

// parseValue reads a value that endpoints.Manager wrote: the JSON of an
// endpoints.Endpoint, {"Addr": "host:port", "Metadata": ...}. Metadata is
// the registering server's own; the resolver reads only an object's
// "weight", a whole number from 1 to 2^32-1, and carries no weight when
// there is none. The error says what is wrong with the value.
func parseValue(value []byte) (entry, error) {
	var v struct {
		Addr     string
		Metadata json.RawMessage
	}
	if err := json.Unmarshal(value, &v); err != nil {
		var syntax *json.SyntaxError
		if errors.As(err, &syntax) {
			return entry{}, fmt.Errorf("the value is not valid JSON: %v (at byte %d)", err, syntax.Offset)
		}
		return entry{}, fmt.Errorf(`the value is not an endpoint (the JSON of endpoints.Endpoint, {"Addr": "host:port", "Metadata": ...}): %v`, err)
	}
	if v.Addr == "" {
		return entry{}, errors.New("the value has no Addr")
	}
	host, port, err := net.SplitHostPort(v.Addr)
	if err != nil || host == "" || port == "" {
		return entry{}, fmt.Errorf("Addr %q: want host:port", v.Addr)
	}
	e := entry{addr: v.Addr}
	md := bytes.TrimSpace(v.Metadata)
	if len(md) == 0 || md[0] != '{' {
		return e, nil // no metadata, or metadata that has no weight
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(md, &fields); err != nil {
		return entry{}, fmt.Errorf("Metadata: %v", err)
	}
	w, ok := fields["weight"]
	if !ok {
		return e, nil
	}
	n, err := strconv.ParseUint(string(bytes.TrimSpace(w)), 10, 32)
	if err != nil || n == 0 {
		return entry{}, fmt.Errorf("Metadata weight %s: want a whole number from 1 to %d", w, uint32(math.MaxUint32))
	}
	e.weight = uint32(n)
	return e, nil
}

// endpointSet is what a resolver knows of its prefix: the last good value
// of each key, and what it has logged, so that each bad value and each
// disagreement is logged once, not again on every change or read.
type endpointSet struct {
	entries   map[string]entry  // by key
	bad       map[string]int64  // key → ModRevision of the bad value logged
	conflicts map[string]string // address → what was logged of its keys
	last      []entry           // the set last built, by address
	built     bool              // last has been built once
}

func newEndpointSet() *endpointSet {
	return &endpointSet{
		entries:   map[string]entry{},
		bad:       map[string]int64{},
		conflicts: map[string]string{},
	}
}

func (s *endpointSet) lastLen() int { return len(s.last) }

// put records the value of kv, or logs what is wrong with it and keeps the
// key's last good value.
func (s *endpointSet) put(kv *mvccpb.KeyValue) {
	key := string(kv.Key)
	e, err := parseValue(kv.Value)
	if err != nil {
		prev, ok := s.entries[key]
		s.logBad(key, kv.ModRevision, err, prev, ok)
		return
	}
	e.rev = kv.ModRevision
	s.entries[key] = e
	delete(s.bad, key)
}

// remove forgets a deleted key.
func (s *endpointSet) remove(key string) {
	delete(s.entries, key)
	delete(s.bad, key)
}

// replace makes kvs, a fresh read of the prefix, the set. A key whose new
// value is bad keeps its last good value, as it does on a watched change.
func (s *endpointSet) replace(kvs []*mvccpb.KeyValue) {
	entries := make(map[string]entry, len(kvs))
	seen := make(map[string]bool, len(kvs))
	for _, kv := range kvs {
		key := string(kv.Key)
		seen[key] = true
		e, err := parseValue(kv.Value)
		if err != nil {
			prev, ok := s.entries[key]
			if ok {
				entries[key] = prev
			}
			s.logBad(key, kv.ModRevision, err, prev, ok)
			continue
		}
		e.rev = kv.ModRevision
		entries[key] = e
		delete(s.bad, key)
	}
	for key := range s.bad {
		if !seen[key] {
			delete(s.bad, key)
		}
	}
	s.entries = entries
}

// logBad logs the bad value of key at revision rev, unless that very value
// was logged already (a read after a broken watch finds it again).
func (s *endpointSet) logBad(key string, rev int64, err error, prev entry, hasPrev bool) {
	if logged, ok := s.bad[key]; ok && logged == rev {
		return
	}
	s.bad[key] = rev
	if hasPrev {
		logger.Warningf("etcd resolver: ignoring key %q at revision %d: %v; its last good value (%v) stays in use", key, rev, err, prev)
		return
	}
	logger.Warningf("etcd resolver: ignoring key %q at revision %d: %v; the key adds no endpoint", key, rev, err)
}

// endpoints returns the set as grpc-go endpoints, one per distinct
// address, sorted by address, and whether it differs from the set it last
// returned. Keys that register the same address make one endpoint, with
// the value written last (the earliest key in order among those written by
// the same transaction); keys that disagree on the weight are logged.
func (s *endpointSet) endpoints() ([]resolver.Endpoint, bool) {
	byAddr := make(map[string][]string, len(s.entries))
	for key, e := range s.entries {
		byAddr[e.addr] = append(byAddr[e.addr], key)
	}
	set := make([]entry, 0, len(byAddr))
	for addr, keys := range byAddr {
		slices.SortFunc(keys, func(a, b string) int {
			return cmp.Or(
				cmp.Compare(s.entries[b].rev, s.entries[a].rev), // latest first
				strings.Compare(a, b))
		})
		chosen := s.entries[keys[0]]
		set = append(set, chosen)
		s.logConflict(addr, keys, chosen)
	}
	for addr := range s.conflicts {
		if _, ok := byAddr[addr]; !ok {
			delete(s.conflicts, addr)
		}
	}
	slices.SortFunc(set, func(a, b entry) int { return strings.Compare(a.addr, b.addr) })
	changed := !s.built || !slices.EqualFunc(set, s.last, func(a, b entry) bool {
		return a.addr == b.addr && a.weight == b.weight
	})
	s.last, s.built = set, true
	eps := make([]resolver.Endpoint, len(set))
	for i, e := range set {
		eps[i] = resolver.Endpoint{Addresses: []resolver.Address{{Addr: e.addr}}}
		if e.weight > 0 {
			eps[i] = weight.Set(eps[i], weight.EndpointInfo{Weight: e.weight})
		}
	}
	return eps, changed
}

// logConflict logs, once per change, keys (latest first) that register
// addr with different weights.
func (s *endpointSet) logConflict(addr string, keys []string, chosen entry) {
	msg := ""
	for _, k := range keys[1:] {
		if s.entries[k].weight != chosen.weight {
			parts := make([]string, len(keys))
			for i, k := range keys {
				parts[i] = fmt.Sprintf("%q (%v)", k, s.entries[k])
			}
			msg = fmt.Sprintf("etcd resolver: keys %s register %s with different weights; the latest, %q, is used", strings.Join(parts, ", "), addr, keys[0])
			break
		}
	}
	if msg == "" {
		delete(s.conflicts, addr)
		return
	}
	if s.conflicts[addr] != msg {
		s.conflicts[addr] = msg
		logger.Warning(msg)
	}
}
