package peakewma

import (
	"encoding/json"
	"testing"
	"time"

	"google.golang.org/grpc/balancer"
	"google.golang.org/grpc/codes"

	"github.com/lbclient/lbclient/runtime/balancer/internal/lbcore"
)

func TestParseConfig(t *testing.T) {
	mask := func(cs ...codes.Code) (m uint32) {
		for _, c := range cs {
			m |= 1 << c
		}
		return m
	}
	tests := []struct {
		name    string
		js      string
		want    lbcore.Params
		statsID string
		wantErr string
	}{
		{name: "defaults", js: `{}`, want: lbcore.Params{Tau: 10e9, DefaultRTT: 30e6, FailurePenalty: 1e9, ProbeInterval: 250e6, FailureMask: mask(codes.Unavailable)}},
		{
			name:    "all fields",
			js:      `{"decayWindow":"2s","defaultRtt":"5ms","failurePenalty":"250ms","probeInterval":"500ms","failureCodes":["UNAVAILABLE","DEADLINE_EXCEEDED"],"statsId":"lbstats-7"}`,
			want:    lbcore.Params{Tau: 2e9, DefaultRTT: 5e6, FailurePenalty: 250e6, ProbeInterval: 500e6, FailureMask: mask(codes.Unavailable, codes.DeadlineExceeded)},
			statsID: "lbstats-7",
		},
		{name: "protobuf JSON duration", js: `{"decayWindow":"1.5s"}`, want: lbcore.Params{Tau: 1.5e9, DefaultRTT: 30e6, FailurePenalty: 1e9, ProbeInterval: 250e6, FailureMask: mask(codes.Unavailable)}},
		{name: "empty failureCodes turns failures off", js: `{"failureCodes":[]}`, want: lbcore.Params{Tau: 10e9, DefaultRTT: 30e6, FailurePenalty: 1e9, ProbeInterval: 250e6}},
		{name: "bounds inclusive", js: `{"decayWindow":"1ms","defaultRtt":"1m","failurePenalty":"1h","probeInterval":"10ms"}`, want: lbcore.Params{Tau: 1e6, DefaultRTT: 60e9, FailurePenalty: 3600e9, ProbeInterval: 10e6, FailureMask: mask(codes.Unavailable)}},
		{name: "probeInterval upper bound", js: `{"probeInterval":"1h"}`, want: lbcore.Params{Tau: 10e9, DefaultRTT: 30e6, FailurePenalty: 1e9, ProbeInterval: 3600e9, FailureMask: mask(codes.Unavailable)}},
		{name: "unknown fields ignored", js: `{"choiceCount":3}`, want: lbcore.Params{Tau: 10e9, DefaultRTT: 30e6, FailurePenalty: 1e9, ProbeInterval: 250e6, FailureMask: mask(codes.Unavailable)}},
		{name: "decayWindow too small", js: `{"decayWindow":"999us"}`, wantErr: "lbclient_peak_ewma: decayWindow: 999µs out of range [1ms, 1h0m0s]"},
		{name: "decayWindow too large", js: `{"decayWindow":"2h"}`, wantErr: "lbclient_peak_ewma: decayWindow: 2h0m0s out of range [1ms, 1h0m0s]"},
		{name: "negative defaultRtt", js: `{"defaultRtt":"-1ms"}`, wantErr: "lbclient_peak_ewma: defaultRtt: -1ms out of range [1ns, 1m0s]"},
		{name: "failurePenalty too large", js: `{"failurePenalty":"61m"}`, wantErr: "lbclient_peak_ewma: failurePenalty: 1h1m0s out of range [1ns, 1h0m0s]"},
		{name: "probeInterval too small", js: `{"probeInterval":"9ms"}`, wantErr: "lbclient_peak_ewma: probeInterval: 9ms out of range [10ms, 1h0m0s]"},
		{name: "probeInterval too large", js: `{"probeInterval":"61m"}`, wantErr: "lbclient_peak_ewma: probeInterval: 1h1m0s out of range [10ms, 1h0m0s]"},
		{name: "negative probeInterval", js: `{"probeInterval":"-1s"}`, wantErr: "lbclient_peak_ewma: probeInterval: -1s out of range [10ms, 1h0m0s]"},
		{name: "duration as number", js: `{"defaultRtt":30}`, wantErr: `lbclient_peak_ewma: duration must be a string such as "250ms", got 30`},
		{name: "bad duration", js: `{"defaultRtt":"30 ms"}`, wantErr: `lbclient_peak_ewma: time: unknown unit " ms" in duration "30 ms"`},
		{name: "unknown code", js: `{"failureCodes":["Unavailable"]}`, wantErr: `lbclient_peak_ewma: failureCodes: "Unavailable" is not a canonical status code name such as "UNAVAILABLE"`},
		{name: "OK is no failure", js: `{"failureCodes":["OK"]}`, wantErr: `lbclient_peak_ewma: failureCodes: "OK" cannot be a failure`},
		{name: "not an object", js: `[]`, wantErr: "lbclient_peak_ewma: json: cannot unmarshal array into Go value of type peakewma.LBConfig"},
	}
	parser := balancer.Get(Name).(balancer.ConfigParser)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parser.ParseConfig(json.RawMessage(tc.js))
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr {
					t.Fatalf("ParseConfig(%s) error = %v, want %q", tc.js, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseConfig(%s): %v", tc.js, err)
			}
			cfg := got.(*LBConfig)
			if *cfg.LatencyParams() != tc.want {
				t.Errorf("params = %+v, want %+v", *cfg.LatencyParams(), tc.want)
			}
			if cfg.StatsSinkID() != tc.statsID {
				t.Errorf("statsId = %q, want %q", cfg.StatsSinkID(), tc.statsID)
			}
		})
	}
	if d := defaultConfig().LatencyParams(); time.Duration(d.Tau) != lbcore.DefaultDecayWindow {
		t.Errorf("default config's tau = %v", d.Tau)
	}
}
