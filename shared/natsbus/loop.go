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
	l, msgs, err := startPull(cons, buffer, 0, log)
	if err != nil {
		return nil, err
	}
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

// StartBatchLoop is StartLoop for handlers that work on several messages at once (publishing
// them asynchronously, writing them in one statement): each worker takes the next message and
// whatever else has already arrived, up to maxBatch, and passes them to handle together. Under
// light load a batch is one message and nothing waits for a batch to fill. handle must settle
// every message itself.
func StartBatchLoop(ctx context.Context, cons jetstream.Consumer, workers, maxBatch int, handle func(context.Context, []jetstream.Msg), log *slog.Logger) (*Loop, error) {
	maxBatch = max(maxBatch, 1)
	l, msgs, err := startPull(cons, 2*maxBatch*max(workers, 1), maxBatch*max(workers, 1), log)
	if err != nil {
		return nil, err
	}
	for range workers {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			batch := make([]jetstream.Msg, 0, maxBatch)
			for first := range msgs {
				batch = append(batch[:0], first)
			fill:
				for len(batch) < maxBatch {
					select {
					case msg, ok := <-msgs:
						if !ok {
							break fill
						}
						batch = append(batch, msg)
					default:
						break fill
					}
				}
				handle(ctx, batch)
			}
		}()
	}
	return l, nil
}

// startPull starts the goroutine that moves messages from the consumer to the returned
// channel (queue deep), fetching up to buffer messages ahead.
func startPull(cons jetstream.Consumer, buffer, queue int, log *slog.Logger) (*Loop, <-chan jetstream.Msg, error) {
	// A short pull expiry bounds how long a pull lost in a NATS restart stalls the loop.
	iter, err := cons.Messages(jetstream.PullMaxMessages(max(buffer, 1)), jetstream.PullExpiry(5*time.Second))
	if err != nil {
		return nil, nil, err
	}
	l := &Loop{iter: iter}
	msgs := make(chan jetstream.Msg, queue)
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
	return l, msgs, nil
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
