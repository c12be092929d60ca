// Package periodic is the one loop that does something every interval: expiry passes, leftover
// sweeps, lease checks, test block timers.
package periodic

import (
	"context"
	"time"
)

// Every calls f every interval, the first time one interval from now, until ctx ends or f
// returns false. A call in progress is not interrupted: f gets ctx and decides.
func Every(ctx context.Context, interval time.Duration, f func(context.Context) bool) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if !f(ctx) {
			return
		}
	}
}
