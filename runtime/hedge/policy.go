package hedge

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
)

// Policy is the hedging policy of one method. Exactly one of Delay and
// DelayPercentile is set.
type Policy struct {
	// MaxAttempts counts every attempt, the first included: 2 to 5.
	MaxAttempts int
	// Delay is the fixed wait before each further attempt; > 0.
	Delay time.Duration
	// DelayPercentile makes the wait adaptive: this percentile (more than 0
	// and less than 100, such as 95) of the method's recent latency, kept
	// within the bounds of WithDelayBounds.
	DelayPercentile float64
	// Timeout, when > 0, bounds the whole call, every attempt together,
	// unless the caller's context ends sooner. (A timeout in grpc's
	// service config would give each attempt a deadline of its own.)
	Timeout time.Duration
	// NonFatalCodes are the status codes that do not end the call: the
	// other attempts go on, and the next one is sent at once. Any other
	// status, OK included, ends the call. OK itself cannot be listed.
	NonFatalCodes []codes.Code
}

// maxCode is the largest canonical status code, Unauthenticated.
const maxCode = codes.Unauthenticated

// Validate reports the first problem with p, naming the field and value.
func (p Policy) Validate() error {
	if p.MaxAttempts < 2 || p.MaxAttempts > maxAttempts {
		return fmt.Errorf("hedge: MaxAttempts is %d, want 2 to %d", p.MaxAttempts, maxAttempts)
	}
	switch {
	case p.Delay < 0:
		return fmt.Errorf("hedge: Delay is %v, want more than 0", p.Delay)
	case math.IsNaN(p.DelayPercentile) || p.DelayPercentile < 0 || p.DelayPercentile >= 100:
		return fmt.Errorf("hedge: DelayPercentile is %v, want more than 0 and less than 100", p.DelayPercentile)
	case p.Delay > 0 && p.DelayPercentile > 0:
		return fmt.Errorf("hedge: Delay is %v and DelayPercentile is %v, want only one of them", p.Delay, p.DelayPercentile)
	case p.Delay == 0 && p.DelayPercentile == 0:
		return errors.New("hedge: neither Delay nor DelayPercentile is set, want one of them")
	}
	if p.Timeout < 0 {
		return fmt.Errorf("hedge: Timeout is %v, want 0 (none) or more", p.Timeout)
	}
	for i, c := range p.NonFatalCodes {
		if c == codes.OK || c > maxCode {
			return fmt.Errorf("hedge: NonFatalCodes[%d] is %v, want a failure code (Canceled to Unauthenticated)", i, c)
		}
	}
	return nil
}

// validateMethod checks that name is a full method name, "/pkg.Svc/Method".
func validateMethod(name string) error {
	svc, m, ok := strings.Cut(strings.TrimPrefix(name, "/"), "/")
	if !strings.HasPrefix(name, "/") || !ok || svc == "" || m == "" || strings.Contains(m, "/") {
		return fmt.Errorf("hedge: method %q is not a full method name, want \"/package.Service/Method\"", name)
	}
	return nil
}
