package hedge

import (
	"math"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
)

func TestValidate(t *testing.T) {
	ok := Policy{MaxAttempts: 3, Delay: 10 * time.Millisecond}
	for _, tc := range []struct {
		name string
		p    Policy
		want string // "" for valid
	}{
		{"fixed delay", ok, ""},
		{"percentile", Policy{MaxAttempts: 5, DelayPercentile: 99.9, NonFatalCodes: []codes.Code{codes.Unavailable}}, ""},
		{"two attempts", Policy{MaxAttempts: 2, Delay: time.Nanosecond}, ""},
		{"one attempt", Policy{MaxAttempts: 1, Delay: time.Second}, "hedge: MaxAttempts is 1, want 2 to 5"},
		{"six attempts", Policy{MaxAttempts: 6, Delay: time.Second}, "hedge: MaxAttempts is 6, want 2 to 5"},
		{"zero value", Policy{}, "hedge: MaxAttempts is 0, want 2 to 5"},
		{"negative delay", Policy{MaxAttempts: 2, Delay: -time.Second}, "hedge: Delay is -1s, want more than 0"},
		{"no delay", Policy{MaxAttempts: 2}, "hedge: neither Delay nor DelayPercentile is set, want one of them"},
		{"both delays", Policy{MaxAttempts: 2, Delay: time.Second, DelayPercentile: 95}, "hedge: Delay is 1s and DelayPercentile is 95, want only one of them"},
		{"percentile 100", Policy{MaxAttempts: 2, DelayPercentile: 100}, "hedge: DelayPercentile is 100, want more than 0 and less than 100"},
		{"negative percentile", Policy{MaxAttempts: 2, DelayPercentile: -5}, "hedge: DelayPercentile is -5, want more than 0 and less than 100"},
		{"NaN percentile", Policy{MaxAttempts: 2, DelayPercentile: math.NaN()}, "hedge: DelayPercentile is NaN, want more than 0 and less than 100"},
		{"OK is not a failure", Policy{MaxAttempts: 2, Delay: time.Second, NonFatalCodes: []codes.Code{codes.Unavailable, codes.OK}}, "hedge: NonFatalCodes[1] is OK, want a failure code (Canceled to Unauthenticated)"},
		{"negative timeout", Policy{MaxAttempts: 2, Delay: time.Second, Timeout: -time.Second}, "hedge: Timeout is -1s, want 0 (none) or more"},
		{"unknown code", Policy{MaxAttempts: 2, Delay: time.Second, NonFatalCodes: []codes.Code{17}}, "hedge: NonFatalCodes[0] is Code(17), want a failure code (Canceled to Unauthenticated)"},
	} {
		err := tc.p.Validate()
		got := ""
		if err != nil {
			got = err.Error()
		}
		if got != tc.want {
			t.Errorf("%s: Validate() = %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestNewErrors(t *testing.T) {
	good := Policy{MaxAttempts: 2, Delay: time.Second}
	for _, tc := range []struct {
		name    string
		methods map[string]Policy
		opts    []Option
		want    string
	}{
		{"bad policy", map[string]Policy{"/a.B/C": good, "/a.B/D": {MaxAttempts: 9, Delay: time.Second}},
			nil, `hedge: method "/a.B/D": MaxAttempts is 9, want 2 to 5`},
		{"no slash", map[string]Policy{"a.B/C": good}, nil,
			`hedge: method "a.B/C" is not a full method name, want "/package.Service/Method"`},
		{"no method", map[string]Policy{"/a.B/": good}, nil,
			`hedge: method "/a.B/" is not a full method name, want "/package.Service/Method"`},
		{"too many parts", map[string]Policy{"/a.B/C/D": good}, nil,
			`hedge: method "/a.B/C/D" is not a full method name, want "/package.Service/Method"`},
		{"negative ratio", nil, []Option{WithBudget(-1, 10)}, "hedge: WithBudget ratio is -1, want 0 to 1000"},
		{"zero burst", nil, []Option{WithBudget(0.1, 0)}, "hedge: WithBudget burst is 0, want 1 to 1000"},
		{"bounds reversed", nil, []Option{WithDelayBounds(time.Second, time.Millisecond)}, "hedge: WithDelayBounds is 1s to 1ms, want 0 < min ≤ max"},
		{"zero min", nil, []Option{WithDelayBounds(0, time.Millisecond)}, "hedge: WithDelayBounds is 0s to 1ms, want 0 < min ≤ max"},
		{"zero fallback", nil, []Option{WithFallbackDelay(0)}, "hedge: WithFallbackDelay is 0s, want more than 0"},
		{"nil recorder", nil, []Option{WithMetricsRecorder(nil)}, "hedge: WithMetricsRecorder: nil recorder"},
	} {
		_, err := New(tc.methods, tc.opts...)
		if err == nil || err.Error() != tc.want {
			t.Errorf("%s: New() error = %v, want %q", tc.name, err, tc.want)
		}
	}
	if _, err := New(nil); err != nil {
		t.Errorf("New(nil) = %v, want no error", err)
	}
}
