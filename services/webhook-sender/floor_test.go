package main

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ctrip-pay/pipeline/shared/event"
)

// BenchmarkJetStreamFloor measures, in CPU time of this process (embedded nats-server, client
// and receiver alike), what one event costs the pipeline at the least: a JetStream publish with
// a Nats-Msg-Id and a fetch+ack, each twice (PAYMENTS, then WEBHOOKS), next to one raw POST of
// the same body. cost(POST) / (cost(POST) + 2 publishes + 2 fetch+acks) is the highest ratio
// BenchmarkWebhookThroughput could show on this machine if the sender did nothing else: no
// signing, no attempt row, no decoding, no fan-out logic. With BENCH_NATS_URL (a nats-server
// elsewhere, scripts/bench-webhooks-split.sh) it is the same ceiling for a sender whose NATS
// server runs on other cores: only the client's side of each operation is counted.
func BenchmarkJetStreamFloor(b *testing.B) {
	const n = 20000
	h := newHarness(b)
	h.useBenchNATS() // then the figures leave out the server's own CPU
	ctx := b.Context()
	env, err := newTestEnvelope("m_floor")
	if err != nil {
		b.Fatal(err)
	}
	body := mustJSON(b, env)
	if _, err := h.js.CreateStream(ctx, jetstream.StreamConfig{Name: "FLOOR", Subjects: []string{"floor.>"},
		Storage: jetstream.FileStorage, Duplicates: 10 * time.Minute}); err != nil {
		b.Fatal(err)
	}
	for range b.N {
		js, err := jetstream.New(h.nc, jetstream.WithPublishAsyncMaxPending(4096))
		if err != nil {
			b.Fatal(err)
		}
		pub := cpuPerOp(n, func() {
			for i := range n {
				m := nats.NewMsg("floor.x")
				m.Data = body
				m.Header.Set(event.HeaderMsgID, strconv.Itoa(i)+"."+env.ID)
				if _, err := js.PublishMsgAsync(m, jetstream.WithStallWait(time.Minute)); err != nil {
					b.Fatal(err)
				}
			}
			<-js.PublishAsyncComplete()
		})
		cons, err := h.js.CreateConsumer(ctx, "FLOOR", jetstream.ConsumerConfig{AckPolicy: jetstream.AckExplicitPolicy, MaxAckPending: -1})
		if err != nil {
			b.Fatal(err)
		}
		fetch := cpuPerOp(n, func() {
			for got := 0; got < n; {
				batch, err := cons.Fetch(min(500, n-got), jetstream.FetchMaxWait(5*time.Second))
				if err != nil {
					b.Fatal(err)
				}
				for m := range batch.Messages() {
					if err := m.Ack(); err != nil {
						b.Fatal(err)
					}
					got++
				}
			}
			h.nc.Flush()
		})
		_ = h.js.DeleteConsumer(ctx, "FLOOR", cons.CachedInfo().Name)
		if s, err := h.js.Stream(ctx, "FLOOR"); err == nil {
			_ = s.Purge(ctx)
		}

		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.Copy(io.Discard, r.Body)
			w.WriteHeader(http.StatusOK)
		}))
		client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64, MaxConnsPerHost: 64}}
		postCPU := cpuPerOp(n, func() {
			inParallel(b, 64, n, func(int) error { return post(client, srv.URL, body) })
		})
		srv.Close()
		ceiling := postCPU / (postCPU + 2*pub + 2*fetch)
		b.ReportMetric(pub, "µs_cpu/publish")
		b.ReportMetric(fetch, "µs_cpu/fetch+ack")
		b.ReportMetric(postCPU, "µs_cpu/POST")
		b.ReportMetric(ceiling, "ceiling_ratio")
		fmt.Printf("CPU per operation (this process: nats-server, client, receiver): async publish %.1f µs, fetch+ack %.1f µs, raw POST %.1f µs\n", pub, fetch, postCPU)
		fmt.Printf("highest ratio with nothing but 2 publishes + 2 fetch+acks per event: %.2f\n", ceiling)
	}
}

// cpuPerOp runs f and returns this process's CPU time (user + system) per op, in µs.
func cpuPerOp(ops int, f func()) float64 {
	start := processCPU()
	f()
	return us(processCPU()-start) / float64(ops)
}

// processCPU is this process's CPU time so far (user + system).
func processCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func us(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 }
