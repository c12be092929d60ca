package natsbus_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ctrip-pay/pipeline/shared/fault"
	"github.com/ctrip-pay/pipeline/shared/natsbus"
	"github.com/ctrip-pay/pipeline/shared/testkit"
)

// backlogConsumer starts an embedded NATS with stream S holding n messages "0".."n-1" and a
// durable explicit-ack consumer on it. The context ends with the test (30 s at most).
func backlogConsumer(t *testing.T, n int) (context.Context, jetstream.JetStream, jetstream.Consumer, *slog.Logger) {
	t.Helper()
	return backlogConsumerWithin(t, n, 30*time.Second)
}

// backlogConsumerWithin is backlogConsumer with a context of at most timeout.
func backlogConsumerWithin(t *testing.T, n int, timeout time.Duration) (context.Context, jetstream.JetStream, jetstream.Consumer, *slog.Logger) {
	t.Helper()
	srv := testkit.MustNATS(t)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	t.Cleanup(cancel)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	nc, js, err := natsbus.Connect(ctx, srv.URL(), "test", log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "S", Subjects: []string{"s.>"}}); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if _, err := js.Publish(ctx, "s.x", []byte(strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
	cons, err := js.CreateConsumer(ctx, "S", jetstream.ConsumerConfig{Durable: "c", AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		t.Fatal(err)
	}
	return ctx, js, cons, log
}

// A backlog is handed to the batch handler in batches of at most maxBatch, every message exactly
// once; a message arriving alone is handled at once, without waiting for a batch to fill.
func TestBatchLoopBatchesABacklogAndHandlesSingleMessagesAtOnce(t *testing.T) {
	const backlog, maxBatch = 1000, 64
	ctx, js, cons, log := backlogConsumer(t, backlog)
	var (
		mu      sync.Mutex
		seen    = map[string]int{}
		largest int
		batches int
		got     = make(chan struct{}, backlog+1)
	)
	loop, err := natsbus.StartBatchLoop(ctx, cons, 2, maxBatch, func(_ context.Context, items []natsbus.BatchItem) []error {
		mu.Lock()
		batches++
		largest = max(largest, len(items))
		for _, it := range items {
			seen[string(it.Msg.Data())]++
		}
		mu.Unlock()
		for range items {
			got <- struct{}{}
		}
		return make([]error, len(items))
	}, natsbus.Runtime{Name: "test", Log: log})
	if err != nil {
		t.Fatal(err)
	}
	defer loop.Stop(5 * time.Second)
	for range backlog {
		select {
		case <-got:
		case <-ctx.Done():
			t.Fatal("backlog not handled")
		}
	}
	mu.Lock()
	if len(seen) != backlog {
		t.Errorf("handled %d distinct messages, want %d", len(seen), backlog)
	}
	for k, c := range seen {
		if c != 1 {
			t.Errorf("message %s handled %d times", k, c)
		}
	}
	if largest > maxBatch || largest < 2 {
		t.Errorf("largest batch %d, want between 2 and %d for a backlog", largest, maxBatch)
	}
	t.Logf("backlog of %d handled in %d batches, largest %d", backlog, batches, largest)
	mu.Unlock()

	// Alone: handled promptly, in a batch of one.
	start := time.Now()
	if _, err := js.Publish(ctx, "s.x", []byte("alone")); err != nil {
		t.Fatal(err)
	}
	select {
	case <-got:
	case <-ctx.Done():
		t.Fatal("single message not handled")
	}
	mu.Lock()
	defer mu.Unlock()
	if seen["alone"] != 1 {
		t.Errorf("single message handled %d times", seen["alone"])
	}
	t.Logf("single message handled %v after publishing", time.Since(start))
}

// The fetch loop never takes more messages than room allows, takes more as room frees, and
// gets every message; Stop ends it promptly even while a fetch is open.
func TestFetchLoopTakesOnlyWhatThereIsRoomFor(t *testing.T) {
	const total, capacity = 200, 16
	ctx, _, cons, log := backlogConsumer(t, total)
	var (
		mu      sync.Mutex
		held    int
		most    int
		seen    = map[string]bool{}
		freed   = make(chan struct{}, 1)
		allSeen = make(chan struct{})
	)
	room := func(ctx context.Context) int {
		for {
			mu.Lock()
			free := capacity - held
			mu.Unlock()
			if free > 0 {
				return free
			}
			select {
			case <-freed:
			case <-ctx.Done():
				return 0
			}
		}
	}
	loop := natsbus.StartFetchLoop(ctx, cons, room, func(_ context.Context, m jetstream.Msg) {
		mu.Lock()
		held++
		most = max(most, held)
		seen[string(m.Data())] = true
		if len(seen) == total {
			close(allSeen)
		}
		mu.Unlock()
		go func() { // handled elsewhere, a little later
			time.Sleep(2 * time.Millisecond)
			if err := m.Ack(); err != nil {
				t.Error(err)
			}
			mu.Lock()
			held--
			mu.Unlock()
			select {
			case freed <- struct{}{}:
			default:
			}
		}()
	}, log)
	select {
	case <-allSeen:
	case <-ctx.Done():
		t.Fatalf("only %d of %d messages handled", len(seen), total)
	}
	mu.Lock()
	if most > capacity {
		t.Errorf("%d messages held at once, room allowed %d", most, capacity)
	}
	mu.Unlock()
	// Nothing left to fetch: the loop sits in an open fetch; Stop must not wait for it to expire.
	time.Sleep(100 * time.Millisecond)
	start := time.Now()
	loop.Stop(10 * time.Second)
	if took := time.Since(start); took > time.Second {
		t.Errorf("Stop took %v with a fetch open", took)
	}
}

// Messages of one lane are handled one at a time, in stream order; every message once.
func TestLaneLoopKeepsEachLaneInOrder(t *testing.T) {
	const lanes, perLane = 5, 60
	ctx, js, cons, log := backlogConsumer(t, 0)
	for i := range perLane {
		for l := range lanes {
			if _, err := js.Publish(ctx, "s.lane"+strconv.Itoa(l), []byte(strconv.Itoa(i))); err != nil {
				t.Fatal(err)
			}
		}
	}
	var (
		mu     sync.Mutex
		next   = map[string]int{}  // the position each lane expects next
		inside = map[string]bool{} // a handler of that lane is running
		total  int
		done   = make(chan struct{})
	)
	loop, err := natsbus.StartLaneLoop(ctx, cons, 2, func(m jetstream.Msg) string { return m.Subject() }, func(_ context.Context, m jetstream.Msg) error {
		lane := m.Subject()
		mu.Lock()
		if inside[lane] {
			t.Errorf("two messages of %s handled at once", lane)
		}
		inside[lane] = true
		if got := string(m.Data()); got != strconv.Itoa(next[lane]) {
			t.Errorf("%s: got message %s, want %d", lane, got, next[lane])
		}
		next[lane]++
		mu.Unlock()
		time.Sleep(100 * time.Microsecond) // give an overtaking message the chance to show
		mu.Lock()
		inside[lane] = false
		total++
		if total == lanes*perLane {
			close(done)
		}
		mu.Unlock()
		return nil
	}, natsbus.Runtime{Name: "test", Log: log})
	if err != nil {
		t.Fatal(err)
	}
	defer loop.Stop(5 * time.Second)
	select {
	case <-done:
	case <-ctx.Done():
	}
	mu.Lock()
	defer mu.Unlock()
	if total != lanes*perLane {
		t.Fatalf("handled %d of %d messages", total, lanes*perLane)
	}
	for l := range lanes {
		if n := next["s.lane"+strconv.Itoa(l)]; n != perLane {
			t.Errorf("lane %d: %d messages handled, want %d", l, n, perLane)
		}
	}
}

// A consumer's AckWait is sized to the loop's heartbeat, not to the longest job: a handler that
// runs for several ack waits, and the message queued behind it in the same lane, are not
// redelivered; a message whose handler fails is, once the handler has returned.
func TestLoopHeartbeatsMessagesUntilSettled(t *testing.T) {
	ctx, js, _, log := backlogConsumer(t, 3)
	const ackWait = 2 * time.Second
	cons, err := js.CreateConsumer(ctx, "S", jetstream.ConsumerConfig{Durable: "hb", AckPolicy: jetstream.AckExplicitPolicy, AckWait: ackWait})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	calls := map[string]int{}
	handled := make(chan string, 10)
	loop, err := natsbus.StartLaneLoop(ctx, cons, 1, func(jetstream.Msg) string { return "one lane" }, func(ctx context.Context, msg jetstream.Msg) error {
		body := string(msg.Data())
		mu.Lock()
		calls[body]++
		n := calls[body]
		mu.Unlock()
		handled <- body
		switch {
		case body == "0":
			time.Sleep(5 * ackWait / 2) // longer than the ack wait; "1" waits behind it meanwhile
		case body == "2" && n == 1:
			return fault.TransientAfter(10*time.Millisecond, errors.New("try again"))
		}
		return nil
	}, natsbus.Runtime{Name: "test", Log: log})
	if err != nil {
		t.Fatal(err)
	}
	defer loop.Stop(5 * time.Second)
	var order []string
	for len(order) < 4 {
		select {
		case b := <-handled:
			order = append(order, b)
		case <-ctx.Done():
			t.Fatalf("handled %v before the deadline", order)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if calls["0"] != 1 || calls["1"] != 1 || calls["2"] != 2 {
		t.Fatalf("calls %v (order %v): want 0 and 1 handled once, 2 redelivered once", calls, order)
	}
	// The acks are asynchronous: wait for the server to have them all.
	var info *jetstream.ConsumerInfo
	testkit.Eventually(t, 10*time.Second, "every message acked", func() bool {
		info, err = cons.Info(ctx)
		return err == nil && info.NumAckPending == 0
	})
	if info.Delivered.Consumer != 4 {
		t.Fatalf("%d deliveries of 3 messages, want one redelivery (the unsettled one)", info.Delivered.Consumer)
	}
}
