package scan

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"
)

// errChainMoved means the chain changed under a batch (a block or receipt vanished, a log's
// block hash differs from the block's): the batch restarts at the cursor, which re-checks the
// parent hashes and finds the reorg if there is one.
var errChainMoved = errors.New("chain moved under the batch")

// stop wraps an error that retrying cannot fix.
type stop struct{ err error }

func (s stop) Error() string { return s.err.Error() }
func (s stop) Unwrap() error { return s.err }

// Backoff is a capped exponential retry schedule with jitter.
type Backoff struct {
	Min, Max time.Duration
}

func (b Backoff) next(d time.Duration) time.Duration {
	if d <= 0 {
		return b.Min
	}
	return min(2*d, b.Max)
}

// retry runs fn until it succeeds, returns a stop error, or ctx ends. Each attempt gets its own
// deadline. Failures are logged with the chain id: a block is never skipped, so a broken RPC
// shows up as a scanner that waits and says why.
func (s *Scanner) retry(ctx context.Context, op string, fn func(context.Context) error) error {
	var delay time.Duration
	for attempt := 1; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, s.cfg.CallTimeout)
		err := fn(actx)
		cancel()
		if err == nil {
			return nil
		}
		var st stop
		if errors.As(err, &st) {
			return st.err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		delay = s.cfg.Retry.next(delay)
		s.metrics.retry(ctx, s.chainID(), op)
		s.log.WarnContext(ctx, "retrying", "op", op, "attempt", attempt, "delay", delay, "err", err)
		if err := sleep(ctx, jitter(delay)); err != nil {
			return err
		}
	}
}

// jitter spreads retries over [d/2, d] so that many chains behind one RPC do not retry in step.
func jitter(d time.Duration) time.Duration {
	if d < 2 {
		return d
	}
	return d/2 + rand.N(d/2)
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
