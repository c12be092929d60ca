package sweep

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Loop pulls from a durable consumer and runs handle on up to workers messages at once. Stop
// drains it: no new messages are taken, and it waits for the handlers in flight.
type Loop struct {
	iter jetstream.MessagesContext
	wg   sync.WaitGroup
}

// StartLoop starts pulling. handle must settle every message itself.
func StartLoop(ctx context.Context, cons jetstream.Consumer, workers int, handle func(context.Context, jetstream.Msg), log *slog.Logger) (*Loop, error) {
	// A short pull expiry bounds how long a pull lost in a NATS restart stalls the loop; taking
	// no more than workers messages ahead keeps unstarted ones from ageing in the buffer.
	iter, err := cons.Messages(jetstream.PullMaxMessages(max(workers, 1)), jetstream.PullExpiry(5*time.Second))
	if err != nil {
		return nil, err
	}
	l := &Loop{iter: iter}
	msgs := make(chan jetstream.Msg)
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		defer close(msgs)
		for {
			msg, err := iter.Next()
			if err != nil {
				if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
					return
				}
				log.Warn("pull failed", "err", err)
				continue
			}
			msgs <- msg
		}
	}()
	for range max(workers, 1) {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for msg := range msgs {
				handle(ctx, msg)
			}
		}()
	}
	return l, nil
}

// Stop stops pulling and waits for in-flight handlers.
func (l *Loop) Stop() {
	l.iter.Drain()
	l.wg.Wait()
}
