package natsbus

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

// StartLoop starts pulling, keeping up to buffer messages fetched ahead. handle must settle
// every message itself.
func StartLoop(ctx context.Context, cons jetstream.Consumer, workers, buffer int, handle func(context.Context, jetstream.Msg), log *slog.Logger) (*Loop, error) {
	// A short pull expiry bounds how long a pull lost in a NATS restart stalls the loop.
	iter, err := cons.Messages(jetstream.PullMaxMessages(max(buffer, 1)), jetstream.PullExpiry(5*time.Second))
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
	for range workers {
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

// Stop stops pulling and waits for in-flight handlers. If the drain cannot finish within
// timeout (NATS unreachable: the iterator never sees the drain complete), the iterator is
// stopped outright; unacked messages are redelivered to the next instance.
func (l *Loop) Stop(timeout time.Duration) {
	l.iter.Drain()
	done := make(chan struct{})
	go func() { l.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(timeout):
		l.iter.Stop()
		<-done
	}
}
