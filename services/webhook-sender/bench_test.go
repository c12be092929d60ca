package main

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ctrip-pay/pipeline/shared/event"
	"github.com/ctrip-pay/pipeline/shared/natsbus"
	"github.com/ctrip-pay/pipeline/shared/testkit"
)

// BenchmarkWebhookThroughput pushes BENCH_EVENTS (default 20000) payment events through the
// running sender (fan-out → WEBHOOKS → signed POST → attempt row → ack) into a local receiver,
// and in the same run measures the raw rate at which that receiver takes plain POSTs of the
// same body from a Go client at the same concurrency. Run it with scripts/bench-webhooks.sh.
func BenchmarkWebhookThroughput(b *testing.B) {
	events := testkit.EnvInt("BENCH_EVENTS", 20000)
	concurrency := testkit.EnvInt("BENCH_CONCURRENCY", 64)
	for range b.N {
		r := runThroughput(b, events, concurrency)
		b.ReportMetric(r.deliveriesPerSec, "deliveries/s")
		b.ReportMetric(r.rawPerSec, "raw_posts/s")
		b.ReportMetric(r.deliveriesPerSec/r.rawPerSec, "ratio")
		b.ReportMetric(float64(r.p50.Microseconds())/1000, "p50_ms")
		b.ReportMetric(float64(r.p99.Microseconds())/1000, "p99_ms")
		fmt.Printf("events=%d concurrency=%d publish rate=%s stage=%s\n", events, concurrency,
			cmp.Or(os.Getenv("BENCH_RATE"), "burst"), cmp.Or(os.Getenv("BENCH_STAGE"), "fan-out+delivery"))
		fmt.Printf("raw HTTP POSTs/s (plain Go client, same receiver, mean of before and after): %.0f\n", r.rawPerSec)
		fmt.Printf("sender deliveries/s (publish of first event → receipt of last): %.0f\n", r.deliveriesPerSec)
		fmt.Printf("ratio deliveries/raw: %.2f\n", r.deliveriesPerSec/r.rawPerSec)
		fmt.Printf("publish→receipt latency: p50 %v  p99 %v  max %v\n", r.p50, r.p99, r.max)
		fmt.Printf("publishing alone took %v (%.0f events/s)\n", r.publishTook, float64(events)/r.publishTook.Seconds())
	}
}

type throughput struct {
	rawPerSec, deliveriesPerSec float64
	p50, p99, max, publishTook  time.Duration
}

// benchReceiver is the merchant: it reads the body, notes when each webhook-id first arrived and
// answers 200.
type benchReceiver struct {
	srv      *httptest.Server
	mu       sync.Mutex
	received map[string]time.Time
	count    atomic.Int64
}

func runThroughput(b *testing.B, events, concurrency int) throughput {
	h := newHarness(b, time.Second, 5*time.Second)
	h.useBenchNATS()
	rc := &benchReceiver{received: make(map[string]time.Time, events)}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		if id := r.Header.Get("webhook-id"); id != "" {
			now := time.Now()
			rc.mu.Lock()
			if _, ok := rc.received[id]; !ok {
				rc.received[id] = now
			}
			rc.mu.Unlock()
		}
		rc.count.Add(1)
		w.WriteHeader(http.StatusOK)
	}))
	b.Cleanup(rc.srv.Close)
	epID, _ := h.endpoint("m_bench", rc.srv.URL)
	deliveryOnly := os.Getenv("BENCH_STAGE") == "deliver"

	envs := make([]event.Envelope, events)
	bodies := make([][]byte, events)
	for i := range envs {
		env, err := newTestEnvelope("m_bench")
		if err != nil {
			b.Fatal(err)
		}
		envs[i], bodies[i] = env, mustJSON(b, env)
	}

	// 1. Raw: the same receiver, plain POSTs of the same body, same concurrency. Measured again
	// after the sender's run, so drift of the shared machine during the run shows.
	raw := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: concurrency, MaxConnsPerHost: concurrency}}
	var (
		rawCPU time.Duration
		rawMem allocs
	)
	rawRate := func() float64 {
		before := rc.count.Load()
		cpu, mem := processCPU(), memStats()
		took := inParallel(b, concurrency, events, func(i int) error { return post(raw, rc.srv.URL, bodies[i]) })
		rawCPU += processCPU() - cpu
		rawMem = rawMem.plus(memStats().minus(mem))
		if got := rc.count.Load() - before; got != int64(events) {
			b.Fatalf("receiver counted %d raw POSTs, want %d", got, events)
		}
		return float64(events) / took.Seconds()
	}
	rawBefore := rawRate()

	// 2. Through the sender, publishing while it runs.
	// One merchant endpoint takes everything, so its per-endpoint limit is the global one.
	h.cfg.Concurrency, h.cfg.EndpointConcurrency = concurrency, concurrency
	h.cfg.FanoutConcurrency = testkit.EnvInt("BENCH_FANOUT", 4)
	h.start()
	// Measure from when both stages are pulling, not while the sender is still starting.
	testkit.Eventually(b, 10*time.Second, "sender pulling", func() bool {
		for _, c := range [][2]string{{"PAYMENTS", "webhook-fanout"}, {"WEBHOOKS", "webhook-sender"}} {
			info, err := testkit.ConsumerInfo(b.Context(), h.js, c[0], c[1])
			if err != nil || info.NumWaiting == 0 {
				return false
			}
		}
		return true
	})
	// Warm-up: 20 events through the whole path one at a time, not measured. A fresh sender's
	// first requests open Postgres and HTTP connections (first queries on a new Postgres
	// connection took 10-50 ms here); without this, those showed in the paced run's p99.
	const warmUp = 20
	for range warmUp {
		env, err := newTestEnvelope("m_bench")
		if err != nil {
			b.Fatal(err)
		}
		m := nats.NewMsg("payments.confirmed")
		m.Data = mustJSON(b, env)
		m.Header.Set(event.HeaderMsgID, env.ID)
		m.Header.Set(event.HeaderEventType, env.Type)
		if _, err := h.js.PublishMsg(b.Context(), m); err != nil {
			b.Fatal(err)
		}
		testkit.Eventually(b, 10*time.Second, "warm-up delivery", func() bool {
			rc.mu.Lock()
			defer rc.mu.Unlock()
			_, ok := rc.received[env.ID]
			delete(rc.received, env.ID)
			return ok
		})
	}
	published := make([]time.Time, events)
	js, err := jetstream.New(h.nc, jetstream.WithPublishAsyncMaxPending(4096))
	if err != nil {
		b.Fatal(err)
	}
	// BENCH_RATE paces publishing (events/s) to measure latency below saturation; unset, all
	// events are published at once and the figure is throughput under a burst.
	var pace time.Duration
	if rate := testkit.EnvInt("BENCH_RATE", 0); rate > 0 {
		pace = time.Second / time.Duration(rate)
	}
	// BENCH_CPUPROFILE writes a CPU profile of this stage alone (the whole process: sender,
	// embedded NATS server, receiver).
	stopProfile := func() {}
	if f := os.Getenv("BENCH_CPUPROFILE"); f != "" {
		out, err := os.Create(f)
		if err != nil {
			b.Fatal(err)
		}
		if err := pprof.StartCPUProfile(out); err != nil {
			b.Fatal(err)
		}
		stopProfile = sync.OnceFunc(func() { pprof.StopCPUProfile(); out.Close() })
		defer stopProfile()
	}
	cpuStart, memStart := processCPU(), memStats()
	start := time.Now()
	for i, env := range envs {
		if pace > 0 {
			if wait := time.Until(start.Add(time.Duration(i) * pace)); wait > 0 {
				time.Sleep(wait)
			}
		}
		m := nats.NewMsg("payments.confirmed")
		m.Data = bodies[i]
		m.Header.Set(event.HeaderMsgID, env.ID)
		if deliveryOnly {
			// What the fan-out would publish: measures the delivery stage alone.
			m.Subject = "webhooks.deliver." + epID
			m.Header.Set(event.HeaderMsgID, env.ID+"."+epID)
		}
		m.Header.Set(event.HeaderEventType, env.Type)
		published[i] = time.Now()
		if _, err := js.PublishMsgAsync(m, jetstream.WithStallWait(time.Minute)); err != nil {
			b.Fatal(err)
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(2 * time.Minute):
		b.Fatal("publishing did not complete")
	}
	publishTook := time.Since(start)
	if f := os.Getenv("BENCH_GOROUTINES"); f != "" {
		time.AfterFunc(2*time.Second, func() {
			out, _ := os.Create(f)
			pprof.Lookup("goroutine").WriteTo(out, 1)
			out.Close()
		})
	}
	fanoutDone := make(chan time.Duration, 1)
	go func() {
		ws, err := h.js.Stream(b.Context(), "WEBHOOKS")
		if err != nil {
			return
		}
		for {
			info, err := ws.Info(b.Context())
			if err == nil && info.State.Msgs >= uint64(events+warmUp) {
				fanoutDone <- time.Since(start)
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()
	deadline := time.Now().Add(10 * time.Minute)
	for {
		rc.mu.Lock()
		n := len(rc.received)
		rc.mu.Unlock()
		if n == events {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("only %d of %d events delivered", n, events)
		}
		time.Sleep(5 * time.Millisecond)
	}
	pipelineCPU, pipelineMem := processCPU()-cpuStart, memStats().minus(memStart)
	stopProfile()
	// BENCH_MEMPROFILE: the process's allocations so far (sampled; the raw POSTs before are in it
	// too, under inParallel), for go tool pprof -sample_index=alloc_objects.
	if f := os.Getenv("BENCH_MEMPROFILE"); f != "" {
		if out, err := os.Create(f); err == nil {
			_ = pprof.Lookup("allocs").WriteTo(out, 0)
			out.Close()
		}
	}
	var last time.Time
	lat := make([]time.Duration, events)
	rc.mu.Lock()
	for i, env := range envs {
		at := rc.received[env.ID]
		lat[i] = at.Sub(published[i])
		if at.After(last) {
			last = at
		}
	}
	rc.mu.Unlock()
	slices.Sort(lat)
	select {
	case d := <-fanoutDone:
		fmt.Printf("fan-out of all events onto WEBHOOKS took %v (%.0f events/s)\n", d, float64(events)/d.Seconds())
	default:
	}
	// Every delivery was also recorded.
	testkit.Eventually(b, time.Minute, "attempt rows", func() bool {
		return h.count(`SELECT count(*) FROM webhook_attempts WHERE delivered`) >= events
	})
	var redelivered, rows int
	_ = h.db.Get(&rows, `SELECT count(*) FROM webhook_attempts`)
	_ = h.db.Get(&redelivered, `SELECT count(*) FROM webhook_attempts WHERE attempt > 1`)
	fmt.Printf("attempt rows %d, of which redeliveries %d; receiver saw %d requests (warm-up excluded)\n",
		rows-warmUp, redelivered, rc.count.Load()-int64(events)-warmUp)
	rawAfter := rawRate()
	fmt.Printf("raw HTTP POSTs/s before the sender's run %.0f, after %.0f\n", rawBefore, rawAfter)
	fmt.Printf("CPU of this process (client, receiver and, unless BENCH_NATS_URL, nats-server): %.1f µs per raw POST, %.1f µs per event through the sender (%.2f raw POSTs)\n",
		us(rawCPU)/float64(2*events), us(pipelineCPU)/float64(events), us(pipelineCPU)/us(rawCPU)*2)
	fmt.Printf("heap allocations of this process: %.0f (%.0f B) per raw POST, %.0f (%.0f B) per event through the sender\n",
		float64(rawMem.n)/float64(2*events), float64(rawMem.bytes)/float64(2*events),
		float64(pipelineMem.n)/float64(events), float64(pipelineMem.bytes)/float64(events))

	// 3. JetStream alone on the same server, after the sender's run (deleting its scratch stream
	// must not disturb the latencies above): synchronous publishes and consume+ack of the same
	// bodies at the same concurrency. Each event costs the pipeline two of each (PAYMENTS, then
	// WEBHOOKS).
	pubRate, consRate := jetStreamRates(b, h, bodies, concurrency)
	fmt.Printf("JetStream alone: %.0f sync publishes/s, %.0f deliveries+acks/s → %.0f events/s for 2 of each per event\n",
		pubRate, consRate, 1/(2/pubRate+2/consRate))
	return throughput{
		rawPerSec:        (rawBefore + rawAfter) / 2,
		deliveriesPerSec: float64(events) / last.Sub(start).Seconds(),
		p50:              lat[len(lat)/2],
		p99:              lat[len(lat)*99/100],
		max:              lat[len(lat)-1],
		publishTook:      publishTook,
	}
}

// useBenchNATS points the harness at the nats-server in BENCH_NATS_URL (a fresh one per run)
// instead of the embedded one, so that it can run on cores of its own
// (scripts/bench-webhooks-split.sh). Without the variable it does nothing.
func (h *harness) useBenchNATS() {
	url := os.Getenv("BENCH_NATS_URL")
	if url == "" {
		return
	}
	h.nc, h.js = testkit.MustJetStream(h.t, url)
	h.cfg.NATSURL = url
}

// allocs counts heap allocations: how many, how many bytes.
type allocs struct{ n, bytes uint64 }

func memStats() allocs {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return allocs{m.Mallocs, m.TotalAlloc}
}

func (a allocs) minus(b allocs) allocs { return allocs{a.n - b.n, a.bytes - b.bytes} }
func (a allocs) plus(b allocs) allocs  { return allocs{a.n + b.n, a.bytes + b.bytes} }

// inParallel calls do(i) for every i in [0, n) from workers goroutines and returns how long it
// took; an error fails the benchmark.
func inParallel(b *testing.B, workers, n int, do func(i int) error) time.Duration {
	var next atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range workers {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				if err := do(i); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	return time.Since(start)
}

// post sends one plain POST and reads the answer, as the raw client does.
func post(c *http.Client, url string, body []byte) error {
	resp, err := c.Post(url, "application/json", bytes.NewReader(body))
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.Body.Close()
}

// jetStreamRates measures, on a scratch stream of the harness's server, how fast bodies are
// published synchronously and then consumed and acked, each with `concurrency` goroutines.
func jetStreamRates(b *testing.B, h *harness, bodies [][]byte, concurrency int) (pubPerSec, consPerSec float64) {
	ctx := b.Context()
	if _, err := h.js.CreateStream(ctx, jetstream.StreamConfig{Name: "BENCH", Subjects: []string{"bench.>"},
		Storage: jetstream.FileStorage, Duplicates: 10 * time.Minute}); err != nil {
		b.Fatal(err)
	}
	defer h.js.DeleteStream(context.Background(), "BENCH")
	took := inParallel(b, concurrency, len(bodies), func(i int) error {
		m := nats.NewMsg("bench.x")
		m.Data = bodies[i]
		m.Header.Set(event.HeaderMsgID, strconv.Itoa(i))
		_, err := h.js.PublishMsg(ctx, m)
		return err
	})
	pubPerSec = float64(len(bodies)) / took.Seconds()
	cons, err := h.js.CreateConsumer(ctx, "BENCH", jetstream.ConsumerConfig{Durable: "bench", AckPolicy: jetstream.AckExplicitPolicy, MaxAckPending: 100000})
	if err != nil {
		b.Fatal(err)
	}
	var acked atomic.Int64
	done := make(chan struct{})
	start := time.Now()
	// The runtime acks each message once its handler returns nil.
	loop, err := natsbus.StartLoop(ctx, cons, concurrency, 2*concurrency, func(context.Context, jetstream.Msg) error {
		if acked.Add(1) == int64(len(bodies)) {
			close(done)
		}
		return nil
	}, natsbus.Runtime{Name: "bench", Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(2 * time.Minute):
		b.Fatal("consuming the scratch stream timed out")
	}
	consPerSec = float64(len(bodies)) / time.Since(start).Seconds()
	loop.Stop(5 * time.Second)
	return pubPerSec, consPerSec
}
