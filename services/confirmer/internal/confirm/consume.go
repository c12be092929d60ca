package confirm

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// progressEvery is how often a long-running handler tells the server it is still working, so
// AckWait does not expire and the message is not handed to a second worker meanwhile.
const progressEvery = 10 * time.Second

// WithProgress wraps a handler for the pull loops (natsbus.StartLoop, StartLaneLoop): while it
// runs, the message's ack timer is restarted every progressEvery.
func WithProgress(handle func(context.Context, jetstream.Msg), log *slog.Logger) func(context.Context, jetstream.Msg) {
	return func(ctx context.Context, msg jetstream.Msg) {
		done := make(chan struct{})
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := time.NewTicker(progressEvery)
			defer t.Stop()
			for {
				select {
				case <-done:
					return
				case <-t.C:
					if err := msg.InProgress(); err != nil {
						log.Warn("in-progress ack failed", "subject", msg.Subject(), "err", err)
					}
				}
			}
		}()
		handle(ctx, msg)
		close(done)
		wg.Wait()
	}
}
