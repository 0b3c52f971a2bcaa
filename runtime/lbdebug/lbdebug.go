// Package lbdebug serves a live debug page of every lbclient connection in
// the process: per connection its target, policy and state, per endpoint
// its state, weight, calls in flight, picks and share of the picks,
// failures, latency, the estimate the picker ranks it by, whether it is
// ejected, its ejections and probes, and the connection's hedging
// counters. It shows what runtime.Conn's Endpoints and Stats report, for
// every Conn that Dial returned and that is not closed yet.
//
// Mount it like net/http/pprof, on a listener of its own that only
// operators reach (it names the backends and their addresses):
//
//	mux := http.NewServeMux()
//	mux.Handle("/debug/lbclient/", lbdebug.Handler())
//	go http.ListenAndServe("127.0.0.1:8080", mux)
//
// The page is HTML that reloads itself (every 2 seconds; ?refresh=N sets
// N seconds, 0 turns it off) and draws each endpoint's share of the picks
// and its latency as bars. It needs nothing but itself: no script, no
// style sheet, font or image from elsewhere, so it works offline.
// ?format=json returns the same data as JSON, a Page.
package lbdebug

import (
	"cmp"
	"encoding/json"
	"fmt"
	"html/template"
	"net/http"
	"strconv"
	"time"

	"github.com/lbclient/lbclient/runtime"
	"github.com/lbclient/lbclient/runtime/internal/lbstats"
)

// Page is the debug page's data: its JSON form with ?format=json.
type Page struct {
	// Time is when the page was made.
	Time time.Time `json:"time"`
	// Conns are the live connections, in the order they were dialled.
	Conns []Conn `json:"conns"`
}

// Conn is one connection.
type Conn struct {
	// ID identifies the connection within the process.
	ID string `json:"id"`
	// Target is the target it was dialled with.
	Target string `json:"target"`
	// Policy is its load-balancing policy (PEAK_EWMA, ROUND_ROBIN, …).
	Policy string `json:"policy"`
	// State is its connectivity state.
	State string `json:"state"`
	// Picks is the sum of its endpoints' picks.
	Picks uint64 `json:"picks"`
	// Endpoints are its endpoints, sorted by address.
	Endpoints []Endpoint `json:"endpoints"`
	// Hedging holds the hedging counters; nil when no method hedges.
	Hedging *Hedging `json:"hedging,omitempty"`
}

// Endpoint is one endpoint of a connection: runtime.EndpointStats, with
// durations in microseconds and the endpoint's share of the picks.
type Endpoint struct {
	Addr     string `json:"addr"`
	State    string `json:"state"`
	Weight   uint32 `json:"weight"`
	InFlight int64  `json:"inFlight"`
	Picks    uint64 `json:"picks"`
	// Share is Picks over the connection's picks, from 0 to 1.
	Share    float64 `json:"share"`
	Failures uint64  `json:"failures"`
	// LatencyUs is the moving average of the latency of the calls the
	// endpoint answered; 0 before the first.
	LatencyUs int64 `json:"latencyUs"`
	// EstimateUs is the latency estimate the picker ranks the endpoint
	// by, under lbclient's policies; 0 under grpc-go's.
	EstimateUs int64  `json:"estimateUs"`
	Ejected    bool   `json:"ejected"`
	Ejections  uint64 `json:"ejections"`
	Probes     uint64 `json:"probes"`
}

// Hedging is a connection's hedging counters (hedge.Counters) in total.
type Hedging struct {
	Calls         uint64 `json:"calls"`
	Hedged        uint64 `json:"hedged"`
	ExtraAttempts uint64 `json:"extraAttempts"`
	Wins          uint64 `json:"wins"`
	BudgetDenied  uint64 `json:"budgetDenied"`
}

// defaultRefresh is how often the HTML page reloads itself, in seconds.
const defaultRefresh = 2

// Handler returns the handler of the debug page.
func Handler() http.Handler { return http.HandlerFunc(serve) }

func serve(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	page := snapshot()
	w.Header().Set("Cache-Control", "no-store")
	switch f := q.Get("format"); f {
	case "json":
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.Encode(page)
		return
	case "", "html":
	default:
		http.Error(w, fmt.Sprintf("lbdebug: unknown format %q: want json or html", f), http.StatusBadRequest)
		return
	}
	refresh := defaultRefresh
	if s := q.Get("refresh"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 || n > 3600 {
			http.Error(w, fmt.Sprintf("lbdebug: refresh %q: want whole seconds from 0 (off) to 3600", s), http.StatusBadRequest)
			return
		}
		refresh = n
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if err := pageTemplate.Execute(w, htmlPage{Page: page, Refresh: refresh}); err != nil {
		// The header is sent; all that is left is to say so in the page.
		fmt.Fprintf(w, "<p>lbdebug: %s</p>", template.HTMLEscapeString(err.Error()))
	}
}

// snapshot reads every live Conn.
func snapshot() Page {
	p := Page{Time: time.Now(), Conns: []Conn{}}
	for _, s := range lbstats.Live() {
		c, ok := s.Owner().(*runtime.Conn)
		if !ok {
			continue
		}
		p.Conns = append(p.Conns, connInfo(s.ID(), c))
	}
	return p
}

func connInfo(id string, c *runtime.Conn) Conn {
	out := Conn{
		ID:        id,
		Target:    c.Target(),
		Policy:    c.Policy().String(),
		State:     c.State().String(),
		Endpoints: []Endpoint{},
	}
	eps := c.Endpoints()
	for _, e := range eps {
		out.Picks += e.Picks
	}
	for _, e := range eps {
		ep := Endpoint{
			Addr:       e.Addr,
			State:      e.State.String(),
			Weight:     e.Weight,
			InFlight:   e.InFlight,
			Picks:      e.Picks,
			Failures:   e.Failures,
			LatencyUs:  e.Latency.Microseconds(),
			EstimateUs: e.Estimate.Microseconds(),
			Ejected:    e.Ejected,
			Ejections:  e.Ejections,
			Probes:     e.Probes,
		}
		if out.Picks > 0 {
			ep.Share = float64(e.Picks) / float64(out.Picks)
		}
		out.Endpoints = append(out.Endpoints, ep)
	}
	if h := c.Stats().Hedging; h.Calls > 0 || len(h.Methods) > 0 {
		out.Hedging = &Hedging{
			Calls:         h.Calls,
			Hedged:        h.Hedged,
			ExtraAttempts: h.ExtraAttempts,
			Wins:          h.HedgeWins,
			BudgetDenied:  h.BudgetDenied,
		}
	}
	return out
}

// htmlPage is what the template renders.
type htmlPage struct {
	Page
	Refresh int
}

// latencyOf is the latency an endpoint's bar draws: the picker's estimate
// under lbclient's policies, the moving average under grpc-go's.
func latencyOf(e Endpoint) int64 { return cmp.Or(e.EstimateUs, e.LatencyUs) }

var funcs = template.FuncMap{
	// pct formats a share as a percentage.
	"pct": func(f float64) string { return strconv.FormatFloat(100*f, 'f', 1, 64) + "%" },
	// width is a bar's CSS width for a share.
	"width": func(f float64) template.CSS {
		return template.CSS(strconv.FormatFloat(min(max(100*f, 0), 100), 'f', 2, 64) + "%")
	},
	// latencyWidth is the width of e's latency bar, against the
	// slowest endpoint of its connection.
	"latencyWidth": func(e Endpoint, c Conn) template.CSS {
		var top int64
		for _, x := range c.Endpoints {
			top = max(top, latencyOf(x))
		}
		if top == 0 {
			return "0%"
		}
		return template.CSS(strconv.FormatFloat(100*float64(latencyOf(e))/float64(top), 'f', 2, 64) + "%")
	},
	"latency": func(e Endpoint) int64 { return latencyOf(e) },
	// us formats microseconds for people.
	"us": func(us int64) string {
		if us == 0 {
			return "–"
		}
		return (time.Duration(us) * time.Microsecond).Round(time.Microsecond * 10).String()
	},
}

var pageTemplate = template.Must(template.New("page").Funcs(funcs).Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
{{if .Refresh}}<meta http-equiv="refresh" content="{{.Refresh}}">{{end}}
<title>lbclient: {{len .Conns}} connection{{if ne (len .Conns) 1}}s{{end}}</title>
<style>
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.3em; margin: 0 0 .2em; }
h2 { font-size: 1.1em; margin: 1.6em 0 .3em; }
.meta, .hedging { color: #555; margin: .2em 0; }
table { border-collapse: collapse; margin-top: .4em; }
th, td { padding: .25em .7em; text-align: right; border-bottom: 1px solid #e4e4e4; white-space: nowrap; }
th { font-weight: 600; background: #f4f4f4; }
td.addr, th.addr { text-align: left; font-family: ui-monospace, monospace; }
td.state.READY { color: #17762f; }
td.state { color: #9a6700; }
tr.ejected td { background: #fdecec; }
tr.ejected td.ejected { color: #b3261e; font-weight: 600; }
.bar { position: relative; width: 10em; height: 1.1em; background: #eee; border-radius: 2px; display: inline-block; vertical-align: middle; }
.bar span { position: absolute; left: 0; top: 0; bottom: 0; border-radius: 2px; }
.share .bar span { background: #3a7bd5; }
.lat .bar span { background: #e0883a; }
.bartext { display: inline-block; min-width: 4.5em; text-align: right; margin-right: .4em; }
.empty { color: #777; }
</style>
</head>
<body>
<h1>lbclient connections</h1>
<p class="meta">{{len .Conns}} live connection{{if ne (len .Conns) 1}}s{{end}} at {{.Time.Format "15:04:05.000"}}{{if .Refresh}}; reloads every {{.Refresh}} s{{end}} · <a href="?format=json">JSON</a></p>
{{if not .Conns}}<p class="empty" id="no-conns">No live connection: none was dialled with runtime.Dial, or all are closed.</p>{{end}}
{{range $c := .Conns}}
<section class="conn" id="{{$c.ID}}" data-target="{{$c.Target}}">
<h2>{{$c.Target}}</h2>
<p class="meta"><span class="policy">{{$c.Policy}}</span> · <span class="connstate">{{$c.State}}</span> · <span class="total">{{$c.Picks}}</span> picks · {{len $c.Endpoints}} endpoint{{if ne (len $c.Endpoints) 1}}s{{end}}</p>
{{with $c.Hedging}}<p class="hedging">hedging: <span class="calls">{{.Calls}}</span> calls, <span class="hedged">{{.Hedged}}</span> hedged, <span class="extra">{{.ExtraAttempts}}</span> extra attempts, <span class="wins">{{.Wins}}</span> won by a hedge, <span class="denied">{{.BudgetDenied}}</span> denied by the budget</p>{{end}}
{{if $c.Endpoints}}
<table>
<tr><th class="addr">endpoint</th><th>state</th><th>weight</th><th>in flight</th><th>picks</th><th>share of picks</th><th>failures</th><th>latency (estimate)</th><th>ejected</th><th>ejections</th><th>probes</th></tr>
{{range $e := $c.Endpoints}}
<tr class="endpoint{{if $e.Ejected}} ejected{{end}}" data-addr="{{$e.Addr}}">
<td class="addr">{{$e.Addr}}</td>
<td class="state {{$e.State}}">{{$e.State}}</td>
<td class="weight">{{if $e.Weight}}{{$e.Weight}}{{else}}–{{end}}</td>
<td class="inflight">{{$e.InFlight}}</td>
<td class="picks">{{$e.Picks}}</td>
<td class="share"><span class="bartext">{{pct $e.Share}}</span><span class="bar"><span style="width: {{width $e.Share}}"></span></span></td>
<td class="failures">{{$e.Failures}}</td>
<td class="lat"><span class="bartext">{{us (latency $e)}}</span><span class="bar"><span style="width: {{latencyWidth $e $c}}"></span></span></td>
<td class="ejected">{{if $e.Ejected}}ejected{{else}}no{{end}}</td>
<td class="ejections">{{$e.Ejections}}</td>
<td class="probes">{{$e.Probes}}</td>
</tr>
{{end}}
</table>
{{else}}<p class="empty">No endpoint yet: the balancer has not heard from the resolver.</p>{{end}}
</section>
{{end}}
</body>
</html>
`))
