package natsbus

import (
	"context"
	"errors"
	"hash/fnv"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Loop pulls from a durable consumer and runs handle on up to workers messages at once. Stop
// drains it: no new messages are taken, and it waits for the handlers in flight.
type Loop struct {
	drain func() // stop taking messages, let the ones fetched be handled
	stop  func() // stop at once
	wg    sync.WaitGroup
}

// StartLoop starts pulling, keeping up to buffer messages fetched ahead, and runs h on up to
// workers of them at once inside rt's middleware, which settles each by h's error. From a
// message's arrival until it is settled the loop heartbeats it every AckWait/3.
func StartLoop(ctx context.Context, cons jetstream.Consumer, workers, buffer int, h Handler, rt Runtime) (*Loop, error) {
	l, msgs, err := startPull(cons, buffer, 0, rt.Log)
	if err != nil {
		return nil, err
	}
	l.spawn(workers, func() {
		for msg := range msgs {
			rt.handle(ctx, msg, h)
			release(msg)
		}
	})
	return l, nil
}

// spawn runs n copies of work, waited for by Stop.
func (l *Loop) spawn(n int, work func()) {
	for range n {
		l.wg.Go(work)
	}
}

// StartBatchLoop is StartLoop for handlers that work on several messages at once (publishing
// them asynchronously, writing them in one statement): each worker takes the next message and
// whatever else has already arrived, up to maxBatch, and passes them to handle together. Under
// light load a batch is one message and nothing waits for a batch to fill. Each message is
// settled by the error h returns for it.
func StartBatchLoop(ctx context.Context, cons jetstream.Consumer, workers, maxBatch int, h BatchHandler, rt Runtime) (*Loop, error) {
	maxBatch = max(maxBatch, 1)
	l, msgs, err := startPull(cons, 2*maxBatch*max(workers, 1), maxBatch*max(workers, 1), rt.Log)
	if err != nil {
		return nil, err
	}
	l.spawn(workers, func() {
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
			rt.handleBatch(ctx, batch, h)
			for _, msg := range batch {
				release(msg)
			}
		}
	})
	return l, nil
}

// StartLaneLoop is StartLoop for messages that must not overtake each other: lane names each
// message's lane (the heads and reorgs of one chain, say), messages of one lane are handled one
// at a time in stream order, and lanes (hashed onto workers) run in parallel. Each message is
// settled by h's error, as in StartLoop.
func StartLaneLoop(ctx context.Context, cons jetstream.Consumer, workers int, lane func(jetstream.Msg) string, h Handler, rt Runtime) (*Loop, error) {
	workers = max(workers, 1)
	l, msgs, err := startPull(cons, 4*workers, 0, rt.Log)
	if err != nil {
		return nil, err
	}
	// A small buffer per worker keeps a busy lane from holding up the others' messages; small,
	// because a queued message's AckWait runs while it waits.
	queues := make([]chan jetstream.Msg, workers)
	for i := range queues {
		queues[i] = make(chan jetstream.Msg, 4)
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for msg := range queues[i] {
				rt.handle(ctx, msg, h)
				release(msg)
			}
		}()
	}
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		defer func() {
			for _, q := range queues {
				close(q)
			}
		}()
		for msg := range msgs {
			h := fnv.New32a()
			h.Write([]byte(lane(msg)))
			queues[h.Sum32()%uint32(workers)] <- msg
		}
	}()
	return l, nil
}

// startPull starts the goroutine that moves messages from the consumer to the returned
// channel (queue deep), fetching up to buffer messages ahead. Every message it hands on is
// heartbeated until its handler settles it (heldMsg).
func startPull(cons jetstream.Consumer, buffer, queue int, log *slog.Logger) (*Loop, <-chan jetstream.Msg, error) {
	every := heartbeatEvery(cons)
	// A short pull expiry bounds how long a pull lost in a NATS restart stalls the loop.
	iter, err := cons.Messages(jetstream.PullMaxMessages(max(buffer, 1)), jetstream.PullExpiry(5*time.Second))
	if err != nil {
		return nil, nil, err
	}
	l := &Loop{drain: iter.Drain, stop: iter.Stop}
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
			msgs <- hold(msg, every)
		}
	}()
	return l, msgs, nil
}

// release stops the heartbeat of a message whose handler has returned: one that left it
// unsettled on purpose (to let its ack wait run out) gets it redelivered as before.
func release(msg jetstream.Msg) {
	if h, ok := msg.(*heldMsg); ok {
		h.stop()
	}
}

// Stop stops pulling and waits for in-flight handlers. If the drain cannot finish within
// timeout (NATS unreachable: the iterator never sees the drain complete), the iterator is
// stopped outright; unacked messages are redelivered to the next instance.
func (l *Loop) Stop(timeout time.Duration) {
	l.drain()
	done := make(chan struct{})
	go func() { l.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(timeout):
		l.stop()
		<-done
	}
}

// fetchWait bounds one fetch. While it is open and idle the server sends a heartbeat every
// fetchHeartbeat; a fetch that misses them (its pull request was lost in a NATS restart) ends
// early and is replaced.
const (
	fetchWait      = 5 * time.Second
	fetchHeartbeat = time.Second
)

// StartFetchLoop pulls only as many messages as the handler side has room for: room blocks until
// there is room and says for how many, and that many are fetched. handle is called for each
// message as it arrives and must return quickly (it hands the message on and settles it
// itself). Unlike StartLoop, no message waits in a client-side buffer, where nothing could
// extend its ack wait: a handler that starts heartbeats at once covers a message from its
// arrival to its ack. Stop ends the open fetch at once; a message the server had sent but the
// loop had not yet handed on is redelivered after its ack wait.
func StartFetchLoop(ctx context.Context, cons jetstream.Consumer, room func(context.Context) int, handle func(context.Context, jetstream.Msg), log *slog.Logger) *Loop {
	fetchCtx, cancel := context.WithCancel(ctx)
	stopped := make(chan struct{})
	var once sync.Once
	l := &Loop{}
	l.drain = func() { once.Do(func() { close(stopped); cancel() }) }
	l.stop = l.drain
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		// After a failed fetch (NATS restarting) wait before the next, longer each time.
		pause := func(failures int) { sleep(fetchCtx, min(100*time.Millisecond<<min(failures, 5), 2*time.Second)) }
		failures := 0
		for {
			select {
			case <-stopped:
				return
			default:
			}
			n := room(fetchCtx)
			if fetchCtx.Err() != nil {
				return
			}
			if n < 1 {
				continue
			}
			// The context's deadline is the pull request's expiry; cancelling it (Stop) ends the
			// fetch at once.
			one, cancelOne := context.WithTimeout(fetchCtx, fetchWait)
			batch, err := cons.Fetch(n, jetstream.FetchContext(one), jetstream.FetchHeartbeat(fetchHeartbeat))
			if err != nil {
				cancelOne()
				if fetchCtx.Err() == nil {
					log.Warn("fetch failed", "err", err, "failures", failures+1)
					pause(failures)
					failures++
				}
				continue
			}
			for msg := range batch.Messages() {
				handle(ctx, msg)
			}
			err = batch.Error()
			cancelOne()
			if err != nil && fetchCtx.Err() == nil && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, nats.ErrTimeout) {
				log.Warn("fetch ended with an error", "err", err, "failures", failures+1)
				pause(failures)
				failures++
				continue
			}
			failures = 0
		}
	}()
	return l
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
