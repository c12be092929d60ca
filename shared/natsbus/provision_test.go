package natsbus_test

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ctrip-pay/pipeline/shared/natsbus"
	"github.com/ctrip-pay/pipeline/shared/testkit"
	"github.com/ctrip-pay/pipeline/streams"
)

// writeCounter counts the JetStream API requests that write a stream or consumer
// configuration, as another client on the server sees them.
type writeCounter struct {
	n      atomic.Int64
	marker chan struct{}
}

func apiWrites(t *testing.T, url string) *writeCounter {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	w := &writeCounter{marker: make(chan struct{}, 16)}
	// One subscription for the writes and the marker: nats.go runs each subscription's callbacks
	// on its own goroutine, so with two the marker's could run before the last write was counted.
	writes := []string{"$JS.API.STREAM.CREATE.", "$JS.API.STREAM.UPDATE.", "$JS.API.CONSUMER.CREATE.", "$JS.API.CONSUMER.DURABLE.CREATE."}
	if _, err := nc.Subscribe(">", func(m *nats.Msg) {
		if m.Subject == "test.marker" {
			w.marker <- struct{}{}
			return
		}
		for _, p := range writes {
			if strings.HasPrefix(m.Subject, p) {
				w.n.Add(1)
				return
			}
		}
	}); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return w
}

// seen returns the count once every request the provisioning connection sent before now has
// reached the counter: a marker published after them on the same connection arrives after them.
func (w *writeCounter) seen(t *testing.T, provisioner *nats.Conn) int64 {
	t.Helper()
	if err := provisioner.Publish("test.marker", nil); err != nil {
		t.Fatal(err)
	}
	select {
	case <-w.marker:
	case <-time.After(10 * time.Second):
		t.Fatal("marker not delivered")
	}
	return w.n.Load()
}

func connect(t *testing.T, url string) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	nc, js, err := natsbus.Connect(ctx, url, "test", slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc, js
}

// The project's own definitions, as the services apply them.
func definitions(t *testing.T) ([]jetstream.StreamConfig, []natsbus.Consumer) {
	t.Helper()
	ss, err := streams.Streams(streams.DLQ, streams.Payments, streams.Chain, streams.Webhooks)
	if err != nil {
		t.Fatal(err)
	}
	var cs []natsbus.Consumer
	for _, c := range [][2]string{
		{streams.DLQ, "dlq-processor"}, {streams.Webhooks, "webhook-sender"}, {streams.Payments, "webhook-fanout"},
		{streams.Payments, "confirmer"}, {streams.Chain, "confirmer"}, {streams.Payments, "sweeper"},
	} {
		cc, err := streams.Consumer(c[0], c[1])
		if err != nil {
			t.Fatal(err)
		}
		cs = append(cs, natsbus.Consumer{Stream: c[0], Config: cc})
	}
	return ss, cs
}

// An ordinary start — the definitions already applied — reads and writes nothing; this is what
// keeps several services starting at once from racing stream updates against consumer creates.
func TestProvisionOfUnchangedDefinitionsWritesNothing(t *testing.T) {
	n := testkit.MustNATS(t)
	nc, js := connect(t, n.URL())
	writes := apiWrites(t, n.URL())
	ctx := context.Background()
	ss, cs := definitions(t)

	changes, err := natsbus.Provision(ctx, js, ss, cs)
	if err != nil {
		t.Fatal(err)
	}
	if len(changes) != len(ss)+len(cs) {
		t.Fatalf("first provisioning made %v, want every stream and consumer created", changes)
	}
	for _, c := range changes {
		if c.Action != "created" {
			t.Fatalf("first provisioning: %v", c)
		}
	}
	first := writes.seen(t, nc)
	if first != int64(len(changes)) {
		t.Fatalf("%d configuration writes seen for %d creates", first, len(changes))
	}
	for range 2 {
		changes, err := natsbus.Provision(ctx, js, ss, cs)
		if err != nil {
			t.Fatal(err)
		}
		if len(changes) != 0 {
			t.Fatalf("re-provisioning the same definitions made %v", changes)
		}
	}
	if got := writes.seen(t, nc); got != first {
		t.Fatalf("re-provisioning sent %d configuration writes, want none", got-first)
	}
}

// A changed definition updates only what it owns: a setting the operator made on a field the
// definition leaves unset survives, and only the differing fields are reported.
func TestProvisionUpdatesOwnedFieldsAndKeepsTheOperators(t *testing.T) {
	n := testkit.MustNATS(t)
	_, js := connect(t, n.URL())
	ctx := context.Background()
	streamDef := jetstream.StreamConfig{Name: "S", Subjects: []string{"s.>"}, Storage: jetstream.FileStorage, Duplicates: time.Minute}
	cons := func(backoff ...time.Duration) []natsbus.Consumer {
		return []natsbus.Consumer{{Stream: "S", Config: jetstream.ConsumerConfig{
			Durable: "c", AckPolicy: jetstream.AckExplicitPolicy, BackOff: backoff, AckWait: backoff[0],
			MaxDeliver: len(backoff) + 1, FilterSubjects: []string{"s.a"},
		}}}
	}
	if _, err := natsbus.Provision(ctx, js, []jetstream.StreamConfig{streamDef}, cons(time.Second, 2*time.Second)); err != nil {
		t.Fatal(err)
	}
	// The operator caps the stream's size and describes it: fields the definition leaves unset.
	operator := streamDef
	operator.MaxBytes = 1 << 20
	operator.Description = "capped by the operator"
	if _, err := js.UpdateStream(ctx, operator); err != nil {
		t.Fatal(err)
	}

	streamDef.Duplicates = 2 * time.Minute
	changes, err := natsbus.Provision(ctx, js, []jetstream.StreamConfig{streamDef}, cons(time.Second, 2*time.Second, 3*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	got := make([]string, len(changes))
	for i, c := range changes {
		got[i] = c.String()
	}
	want := []string{"stream S updated (duplicate_window)", "consumer S/c updated (backoff, max_deliver)"}
	if strings.Join(got, "; ") != strings.Join(want, "; ") {
		t.Fatalf("changes %q, want %q", got, want)
	}
	st, err := js.Stream(ctx, "S")
	if err != nil {
		t.Fatal(err)
	}
	if cfg := st.CachedInfo().Config; cfg.MaxBytes != 1<<20 || cfg.Description != "capped by the operator" || cfg.Duplicates != 2*time.Minute {
		t.Fatalf("stream after update: max_bytes %d, description %q, duplicates %v", cfg.MaxBytes, cfg.Description, cfg.Duplicates)
	}
	c, err := js.Consumer(ctx, "S", "c")
	if err != nil {
		t.Fatal(err)
	}
	if cfg := c.CachedInfo().Config; len(cfg.BackOff) != 3 || cfg.MaxDeliver != 4 {
		t.Fatalf("consumer not updated: backoff %v max deliver %d", cfg.BackOff, cfg.MaxDeliver)
	}
}

// Every service of a deployment provisions at the same moment on a fresh server: all succeed,
// every stream and consumer is created, and nothing is updated (equal creates are idempotent on
// the server, so more than one of them may report the create).
func TestConcurrentProvisioningCreatesEachOnce(t *testing.T) {
	n := testkit.MustNATS(t)
	ss, cs := definitions(t)
	const services = 5
	var (
		wg  sync.WaitGroup
		mu  sync.Mutex
		all []natsbus.Change
	)
	jss := make([]jetstream.JetStream, services)
	for i := range jss {
		_, jss[i] = connect(t, n.URL())
	}
	errs := make(chan error, services)
	for _, js := range jss {
		wg.Go(func() {
			changes, err := natsbus.Provision(context.Background(), js, ss, cs)
			errs <- err
			mu.Lock()
			all = append(all, changes...)
			mu.Unlock()
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	created := map[string]int{}
	for _, c := range all {
		if c.Action != "created" {
			t.Errorf("concurrent provisioning of equal definitions made %v", c)
		}
		created[c.Name]++
	}
	if len(created) != len(ss)+len(cs) {
		t.Fatalf("created %v, want each of %d streams and consumers", created, len(ss)+len(cs))
	}
}

// On a three-node cluster, STREAMS_REPLICAS=3 (Sizing{Replicas: 3}) puts every stream and
// consumer at R3; a later start with it unset (Sizing{}) leaves them at R3 — replicas are then
// not the definitions' — and one with 3 again writes nothing.
func TestSizingOwnsReplicasOnlyWhenSet(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-node nats-server cluster")
	}
	cluster := testkit.MustNATSCluster(t, 3)
	_, js := connect(t, cluster.URL())
	ctx := context.Background()
	provision := natsbus.Provisioner([]string{streams.Payments}, []natsbus.Durable{{Stream: streams.Payments, Name: "sweeper"}}, nil)
	replicas := func() (stream, consumer int) {
		t.Helper()
		st, err := js.Stream(ctx, streams.Payments)
		if err != nil {
			t.Fatal(err)
		}
		c, err := js.Consumer(ctx, streams.Payments, "sweeper")
		if err != nil {
			t.Fatal(err)
		}
		return st.CachedInfo().Config.Replicas, c.CachedInfo().Config.Replicas
	}

	if _, err := provision(ctx, js, natsbus.Sizing{}); err != nil {
		t.Fatal(err)
	}
	if s, _ := replicas(); s != 1 {
		t.Fatalf("unsized stream created at R%d, want the server's default R1", s)
	}
	changes, err := provision(ctx, js, natsbus.Sizing{Replicas: 3})
	if err != nil {
		t.Fatal(err)
	}
	if s, c := replicas(); s != 3 || c != 3 {
		t.Fatalf("after STREAMS_REPLICAS=3: stream R%d, consumer R%d (changes %v)", s, c, changes)
	}
	for _, size := range []natsbus.Sizing{{}, {Replicas: 3}} {
		changes, err := provision(ctx, js, size)
		if err != nil {
			t.Fatal(err)
		}
		if len(changes) != 0 {
			t.Fatalf("provisioning with %+v on R3 made %v, want nothing", size, changes)
		}
		if s, c := replicas(); s != 3 || c != 3 {
			t.Fatalf("provisioning with %+v: stream R%d, consumer R%d, want R3 kept", size, s, c)
		}
	}
}

// A service that starts while its NATS cluster has no quorum (two of three nodes restarting)
// waits for it instead of exiting: provisioning retries what the cluster cannot answer yet and
// succeeds once the nodes are back.
func TestProvisionWaitsForTheClusterToAnswer(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-node nats-server cluster")
	}
	cluster := testkit.MustNATSCluster(t, 3)
	_, js := connect(t, cluster.Nodes[0].URL())
	for _, n := range cluster.Nodes[1:] {
		n.Kill()
	}
	provision := natsbus.Provisioner([]string{streams.Payments}, []natsbus.Durable{{Stream: streams.Payments, Name: "sweeper"}}, nil)
	type outcome struct {
		changes []natsbus.Change
		err     error
		at      time.Time
	}
	done := make(chan outcome, 1)
	go func() {
		changes, err := provision(context.Background(), js, natsbus.Sizing{Replicas: 3})
		done <- outcome{changes, err, time.Now()}
	}()
	testkit.Never(t, 3*time.Second, "provisioning returned while the cluster had no quorum", func() bool { return len(done) > 0 })
	back := time.Now()
	for _, n := range cluster.Nodes[1:] {
		if err := n.NATSProcess.Restart(); err != nil {
			t.Fatal(err)
		}
	}
	var o outcome
	select {
	case o = <-done:
	case <-time.After(90 * time.Second):
		t.Fatal("provisioning did not finish after the nodes came back")
	}
	if o.err != nil {
		t.Fatalf("provisioning failed: %v", o.err)
	}
	if len(o.changes) != 2 || o.at.Before(back) {
		t.Fatalf("changes %v at %v (nodes back at %v), want the stream and the consumer created after", o.changes, o.at, back)
	}
	t.Logf("provisioned %v after the cluster came back", o.at.Sub(back).Round(time.Millisecond))
}
