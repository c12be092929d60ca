package confirm

import (
	"context"
	"errors"
	"hash/fnv"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Loop pulls from a durable consumer and hands messages to lanes: messages of one lane run one
// at a time in stream order, lanes run in parallel. Stop drains it: no new messages are taken,
// and it waits for the handlers in flight.
type Loop struct {
	iter jetstream.MessagesContext
	wg   sync.WaitGroup
}

// LaneFunc picks the lane of a message; messages that must not overtake each other (heads and
// reorgs of one chain) share a lane.
type LaneFunc func(msg jetstream.Msg) string

// progressEvery is how often a long-running handler tells the server it is still working, so
// AckWait does not expire and the message is not handed to a second worker meanwhile.
const progressEvery = 10 * time.Second

// StartLoop starts pulling. With lane nil every message goes to a shared queue served by lanes
// workers (no ordering). handle settles every message itself.
func StartLoop(ctx context.Context, cons jetstream.Consumer, lanes int, lane LaneFunc, handle func(context.Context, jetstream.Msg), log *slog.Logger) (*Loop, error) {
	lanes = max(lanes, 1)
	// A short pull expiry bounds how long a pull lost in a NATS restart stalls the loop.
	iter, err := cons.Messages(jetstream.PullMaxMessages(4*lanes), jetstream.PullExpiry(5*time.Second))
	if err != nil {
		return nil, err
	}
	l := &Loop{iter: iter}
	queues := make([]chan jetstream.Msg, lanes)
	// A small buffer per lane keeps a busy chain from holding up the others' messages; small,
	// because a queued message's AckWait runs while it waits.
	for i := range queues {
		queues[i] = make(chan jetstream.Msg, 4)
	}
	pick := func(msg jetstream.Msg) chan jetstream.Msg {
		if lane == nil || lanes == 1 {
			return queues[0]
		}
		h := fnv.New32a()
		h.Write([]byte(lane(msg)))
		return queues[int(h.Sum32()%uint32(lanes))]
	}
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		defer func() {
			for _, q := range queues {
				close(q)
			}
		}()
		for {
			msg, err := iter.Next()
			if err != nil {
				if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
					return
				}
				log.Warn("pull failed", "err", err)
				continue
			}
			pick(msg) <- msg
		}
	}()
	for i := range lanes {
		q := queues[0]
		if lane != nil {
			q = queues[i]
		}
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for msg := range q {
				handleWithProgress(ctx, msg, handle, log)
			}
		}()
	}
	return l, nil
}

func handleWithProgress(ctx context.Context, msg jetstream.Msg, handle func(context.Context, jetstream.Msg), log *slog.Logger) {
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

// Stop stops pulling and waits for in-flight handlers.
func (l *Loop) Stop() {
	l.iter.Drain()
	l.wg.Wait()
}
