package testkit

import (
	"context"
	"sync"
	"testing"
	"time"
)

// Eventually polls cond until it holds, failing the test after timeout.
func Eventually(tb testing.TB, timeout time.Duration, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(15 * time.Millisecond)
	}
}

// InProcess is a service's run function running in the test process.
type InProcess struct {
	stop     func()
	finished chan struct{}
	err      error
}

// RunInProcess starts run with a cancellable context. Stop — also registered as a cleanup —
// cancels it and waits up to 15 s, reporting an error it returned or a failure to stop.
func RunInProcess(tb testing.TB, name string, run func(context.Context) error) *InProcess {
	ctx, cancel := context.WithCancel(context.Background())
	p := &InProcess{finished: make(chan struct{})}
	go func() {
		p.err = run(ctx)
		close(p.finished)
	}()
	var once sync.Once
	p.stop = func() {
		once.Do(func() {
			cancel()
			select {
			case <-p.finished:
				if p.err != nil {
					tb.Errorf("%s: %v", name, p.err)
				}
			case <-time.After(15 * time.Second):
				tb.Errorf("%s did not stop", name)
			}
		})
	}
	tb.Cleanup(p.stop)
	return p
}

// Stop cancels the run and waits for it to return.
func (p *InProcess) Stop() { p.stop() }

// Exited reports whether run has returned, and its error.
func (p *InProcess) Exited() (bool, error) {
	select {
	case <-p.finished:
		return true, p.err
	default:
		return false, nil
	}
}
