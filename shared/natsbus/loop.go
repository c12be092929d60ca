package natsbus

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Loop pulls from a durable consumer and runs handle on up to workers messages at once. Stop
// drains it: no new messages are taken, and it waits for the handlers in flight. Bound reports
// whether its pulls reach the consumer.
type Loop struct {
	drain func() // stop taking messages, let the ones fetched be handled
	stop  func() // stop at once
	wg    sync.WaitGroup
	bind  binding
}

// newLoop is a loop on cons, bound until a pull says otherwise: cons was just looked up.
func newLoop(cons jetstream.Consumer) *Loop {
	l := &Loop{}
	if info := cons.CachedInfo(); info != nil {
		l.bind.stream, l.bind.consumer = info.Stream, info.Name
	}
	return l
}

// Bound reports whether the loop is bound to its consumer: it is pulling (not stopped) and its
// last pull reached the consumer — a message or, on an idle consumer, the server's heartbeats
// for the open pull. A pull that fails (consumer deleted, stream deleted, no responders: the
// consumer is not there; no heartbeats: the pull was lost) makes it unbound, with an error naming
// the stream and durable and that pull's error, until a pull succeeds again. A ready check
// (service.Deps.AddReadiness): it reads what the loop last saw and does no I/O, so ctx is unused.
// While NATS is disconnected no pull fails; the connection's own check reports that.
func (l *Loop) Bound(context.Context) error { return l.bind.check() }

// binding is what Bound reports.
type binding struct {
	stream, consumer string

	mu    sync.Mutex
	err   error     // the last pull's failure; nil once a pull has reached the consumer
	since time.Time // when the pulls began to fail
	ended bool      // the loop no longer pulls
}

// reached records a pull that reached the consumer.
func (b *binding) reached() {
	b.mu.Lock()
	b.err = nil
	b.mu.Unlock()
}

// failed records a failed pull.
func (b *binding) failed(err error) {
	b.mu.Lock()
	if b.err == nil {
		b.since = time.Now()
	}
	b.err = err
	b.mu.Unlock()
}

// end records that the loop has stopped pulling, err saying why when it was not Stop.
func (b *binding) end(err error) {
	b.mu.Lock()
	b.ended = true
	if err != nil {
		b.err = err
	}
	b.mu.Unlock()
}

func (b *binding) check() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case b.ended && b.err != nil:
		return fmt.Errorf("consumer %s/%s: the loop has stopped pulling: %w", b.stream, b.consumer, b.err)
	case b.ended:
		return fmt.Errorf("consumer %s/%s: the loop has stopped", b.stream, b.consumer)
	case b.err != nil:
		return fmt.Errorf("not bound to consumer %s/%s for %v: last pull: %w", b.stream, b.consumer, time.Since(b.since).Round(time.Second), b.err)
	}
	return nil
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

// Pull options of StartLoop's, StartBatchLoop's and StartLaneLoop's iterator. A short expiry
// bounds how long a pull lost in a NATS restart stalls the loop. The server heartbeats an idle
// open pull every pullHeartbeat, and the iterator reports two missed ones (ErrNoHeartbeat, then
// pulls again); each Next waits at most pullProbe, longer than that, so a wait that ends with
// neither a message nor ErrNoHeartbeat has heard the server answer for the consumer.
const (
	pullExpiry    = 5 * time.Second
	pullHeartbeat = 2 * time.Second
	pullProbe     = 3 * pullHeartbeat
)

// startPull starts the goroutine that moves messages from the consumer to the returned
// channel (queue deep), fetching up to buffer messages ahead. Every message it hands on is
// heartbeated until its handler settles it (heldMsg). The iterator outlives lost pulls and
// reconnects by itself but not the consumer's deletion (409 Consumer Deleted ends it): then
// the goroutine starts another on the same consumer, which pulls again until the consumer is
// back (re-created by provisioning or an operator).
func startPull(cons jetstream.Consumer, buffer, queue int, log *slog.Logger) (*Loop, <-chan jetstream.Msg, error) {
	every := heartbeatEvery(cons)
	opts := []jetstream.PullMessagesOpt{jetstream.PullMaxMessages(max(buffer, 1)),
		jetstream.PullExpiry(pullExpiry), jetstream.PullHeartbeat(pullHeartbeat)}
	iter, err := cons.Messages(opts...)
	if err != nil {
		return nil, nil, err
	}
	l := newLoop(cons)
	cur := &iterator{iter: iter, closed: make(chan struct{})}
	l.drain, l.stop = cur.drain, cur.stopNow
	msgs := make(chan jetstream.Msg, queue)
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		defer close(msgs)
		failures := 0
		for {
			msg, err := iter.Next(jetstream.NextMaxWait(pullProbe))
			switch {
			case err == nil:
				l.bind.reached()
				failures = 0
				msgs <- hold(msg, every)
				continue
			case errors.Is(err, nats.ErrTimeout):
				// Idle, and the open pull's heartbeats arrived.
				l.bind.reached()
				failures = 0
				continue
			case errors.Is(err, jetstream.ErrMsgIteratorClosed) && cur.closing():
				l.bind.end(nil)
				return
			case connectionClosed(err):
				log.Error("pull ended: nats connection closed", "stream", l.bind.stream, "consumer", l.bind.consumer)
				l.bind.end(err)
				return
			}
			l.bind.failed(err)
			log.Warn("pull failed", "stream", l.bind.stream, "consumer", l.bind.consumer, "err", err)
			if !errors.Is(err, jetstream.ErrMsgIteratorClosed) && !errors.Is(err, jetstream.ErrConsumerDeleted) && !errors.Is(err, jetstream.ErrBadRequest) {
				continue // no heartbeat: the iterator pulls again by itself
			}
			// The iterator has ended: start another, after a pause that grows while they fail.
			iter.Stop()
			for {
				sleepUnless(cur.closed, min(100*time.Millisecond<<min(failures, 5), 2*time.Second))
				failures++
				next, err := cons.Messages(opts...)
				if err == nil {
					if !cur.replace(next) {
						l.bind.end(nil)
						return
					}
					iter = next
					break
				}
				if cur.closing() {
					l.bind.end(nil)
					return
				}
				if connectionClosed(err) {
					l.bind.end(err)
					return
				}
				l.bind.failed(err)
				log.Warn("pull failed", "stream", l.bind.stream, "consumer", l.bind.consumer, "err", err)
			}
		}
	}()
	return l, msgs, nil
}

// connectionClosed reports whether err says the NATS connection is closed: no pull can follow.
func connectionClosed(err error) bool {
	return errors.Is(err, jetstream.ErrConnectionClosed) || errors.Is(err, nats.ErrConnectionClosed)
}

// iterator is the loop's current message iterator, replaced when one ends, and what Stop drains
// or stops.
type iterator struct {
	mu     sync.Mutex
	iter   jetstream.MessagesContext
	closed chan struct{} // closed by drain or stopNow
	once   sync.Once
}

func (it *iterator) drain() {
	it.once.Do(func() { close(it.closed) })
	it.mu.Lock()
	defer it.mu.Unlock()
	it.iter.Drain()
}

func (it *iterator) stopNow() {
	it.once.Do(func() { close(it.closed) })
	it.mu.Lock()
	defer it.mu.Unlock()
	it.iter.Stop()
}

func (it *iterator) closing() bool {
	select {
	case <-it.closed:
		return true
	default:
		return false
	}
}

// replace makes next the current iterator, or stops it and reports false once the loop is
// stopping.
func (it *iterator) replace(next jetstream.MessagesContext) bool {
	it.mu.Lock()
	defer it.mu.Unlock()
	if it.closing() {
		next.Stop()
		return false
	}
	it.iter = next
	return true
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
	l := newLoop(cons)
	l.drain = func() { once.Do(func() { close(stopped); cancel() }) }
	l.stop = l.drain
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		defer l.bind.end(nil)
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
					l.bind.failed(err)
					log.Warn("fetch failed", "stream", l.bind.stream, "consumer", l.bind.consumer, "err", err, "failures", failures+1)
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
			if fetchCtx.Err() != nil {
				continue // stopped
			}
			if err != nil && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, nats.ErrTimeout) {
				// Consumer or stream deleted, no responders (no consumer), no heartbeats.
				l.bind.failed(err)
				log.Warn("fetch ended with an error", "stream", l.bind.stream, "consumer", l.bind.consumer, "err", err, "failures", failures+1)
				pause(failures)
				failures++
				continue
			}
			// Messages, or an expiry after the server's heartbeats: the consumer answered.
			l.bind.reached()
			failures = 0
		}
	}()
	return l
}

func sleep(ctx context.Context, d time.Duration) { sleepUnless(ctx.Done(), d) }

// sleepUnless waits d, or until done is closed.
func sleepUnless(done <-chan struct{}, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-done:
	}
}
