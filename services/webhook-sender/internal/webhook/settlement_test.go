package webhook

import (
	"testing"
	"time"

	"github.com/ctrip-pay/pipeline/shared/natsbus"
)

// The delivery stage's decision after a failed attempt, on the default schedule (5s, 5m, 30m,
// 2h, 5h, 10h, 10h; 8 deliveries): terminate, redeliver on the BackOff (Later), or NakWithDelay
// by the Retry-After and continuation arithmetic (x + BackOff[n-1] - BackOff[0] = the wait).
func TestSettlementAfterAFailedAttempt(t *testing.T) {
	s := time.Second
	d := &Deliverer{schedule: []time.Duration{5 * s, 5 * time.Minute, 30 * time.Minute, 2 * time.Hour, 5 * time.Hour, 10 * time.Hour, 10 * time.Hour}, maxDeliver: 8}
	cases := []struct {
		name         string
		out          outcome
		n, attemptNo int
		want         natsbus.Settlement
		label        string
	}{
		{"endpoint gone", outcome{terminate: "endpoint_gone: HTTP 410 Gone, endpoint disabled"}, 1, 1,
			natsbus.Settlement{Action: natsbus.Term, Reason: "endpoint_gone: HTTP 410 Gone, endpoint disabled"}, "terminated"},
		{"permanent failure on the last attempt is still its own reason", outcome{terminate: "poison: bad json"}, 8, 8,
			natsbus.Settlement{Action: natsbus.Term, Reason: "poison: bad json"}, "terminated"},
		{"last attempt failed", outcome{err: "HTTP 500"}, 8, 8,
			natsbus.Settlement{Action: natsbus.Term, Reason: "max_deliveries: HTTP 500"}, "exhausted"},
		{"a continuation's last attempt", outcome{err: "timeout"}, 3, 8,
			natsbus.Settlement{Action: natsbus.Term, Reason: "max_deliveries: timeout"}, "exhausted"},
		{"first failure waits the first step", outcome{err: "HTTP 500"}, 1, 1,
			natsbus.Settlement{Action: natsbus.Later}, "retry"},
		{"third failure waits the third step", outcome{err: "HTTP 502"}, 3, 3,
			natsbus.Settlement{Action: natsbus.Later}, "retry"},
		{"Retry-After shorter than the step is ignored", outcome{err: "HTTP 429", retryAfter: 10 * s}, 2, 2,
			natsbus.Settlement{Action: natsbus.Later}, "retry"},
		// Delivery 1 waits 5s on the server's schedule; Retry-After 120s: x = 120 - 5 + 5 = 120.
		{"Retry-After longer than the step", outcome{err: "HTTP 503", retryAfter: 120 * s}, 1, 1,
			natsbus.Settlement{Action: natsbus.Redeliver, Delay: 120 * s}, "retry"},
		// Delivery 2 waits 5m; Retry-After 1h: x = 60m - 5m + 5s.
		{"Retry-After beyond a later step", outcome{err: "HTTP 429", retryAfter: time.Hour}, 2, 2,
			natsbus.Settlement{Action: natsbus.Redeliver, Delay: 55*time.Minute + 5*s}, "retry"},
		// A continuation at its delivery 1 is the merchant's attempt 3: 30m, not 5s: x = 30m - 5s + 5s.
		{"continuation follows the merchant's schedule", outcome{err: "HTTP 500"}, 1, 3,
			natsbus.Settlement{Action: natsbus.Redeliver, Delay: 30 * time.Minute}, "retry"},
		{"continuation with a longer Retry-After", outcome{err: "HTTP 503", retryAfter: 3 * time.Hour}, 2, 4,
			natsbus.Settlement{Action: natsbus.Redeliver, Delay: 3*time.Hour - 5*time.Minute + 5*s}, "retry"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, label := d.settlement(tc.out, tc.n, tc.attemptNo)
			if got != tc.want || label != tc.label {
				t.Fatalf("settlement %+v (%s), want %+v (%s)", got, label, tc.want, tc.label)
			}
		})
	}
}
