package testkit

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ctrip-pay/pipeline/shared/config"
)

// InProcess is a service's run function running in the test process.
type InProcess struct {
	tb       testing.TB
	name     string
	stop     func()
	finished chan struct{}
	err      error
}

// RunInProcess starts run with a cancellable context. Stop — also registered as a cleanup —
// cancels it and waits up to 15 s, reporting an error it returned or a failure to stop.
func RunInProcess(tb testing.TB, name string, run func(context.Context) error) *InProcess {
	ctx, cancel := context.WithCancel(context.Background())
	p := &InProcess{tb: tb, name: name, finished: make(chan struct{})}
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

// StartInProcess is how a harness starts its service: it validates cfg, as main does after
// loading it, and runs run(ctx, cfg) with RunInProcess.
func StartInProcess[C config.Validator](tb testing.TB, name string, cfg C, run func(context.Context, C) error) *InProcess {
	tb.Helper()
	if err := cfg.Validate(); err != nil {
		tb.Fatal(err)
	}
	return RunInProcess(tb, name, func(ctx context.Context) error { return run(ctx, cfg) })
}

// Ready is what a harness waits for once its service runs; What names it in a failure.
type Ready struct {
	What  string
	Holds func() bool
}

// StartReady is StartInProcess, then WaitReady for ready (at most 15 s).
func StartReady[C config.Validator](tb testing.TB, name string, cfg C, run func(context.Context, C) error, ready Ready) *InProcess {
	tb.Helper()
	p := StartInProcess(tb, name, cfg, run)
	p.WaitReady(15*time.Second, ready.What, ready.Holds)
	return p
}

// ConsumersExist holds once every consumer, named "STREAM/durable", exists: what a consuming
// service provisions before it takes messages.
func ConsumersExist(js jetstream.JetStream, consumers ...string) Ready {
	return Ready{What: "consumers " + strings.Join(consumers, ", "), Holds: func() bool {
		for _, c := range consumers {
			stream, durable, _ := strings.Cut(c, "/")
			if _, err := js.Consumer(context.Background(), stream, durable); err != nil {
				return false
			}
		}
		return true
	}}
}

// StreamExists holds once the stream exists.
func StreamExists(js jetstream.JetStream, stream string) Ready {
	return Ready{What: "stream " + stream, Holds: func() bool {
		_, err := js.Stream(context.Background(), stream)
		return err == nil
	}}
}

// WaitReady polls ready until it holds, failing the test after timeout or as soon as the run
// has returned: a service that cannot start says why instead of timing out.
func (p *InProcess) WaitReady(timeout time.Duration, what string, ready func() bool) {
	p.tb.Helper()
	Eventually(p.tb, timeout, what, func() bool {
		if exited, err := p.Exited(); exited {
			p.tb.Fatalf("%s exited at start: %v", p.name, err)
		}
		return ready()
	})
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
