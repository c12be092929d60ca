package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/ctrip-pay/pipeline/shared/event"
	"github.com/ctrip-pay/pipeline/shared/testkit"
)

func (h *harness) senderProcess(t *testing.T, bin, logName string, extraEnv ...string) *exec.Cmd {
	t.Helper()
	logf, err := os.Create(filepath.Join(t.TempDir(), logName))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(),
		"NATS_URL="+h.cfg.NATSURL, "DATABASE_URL="+h.cfg.DatabaseURL, "LOG_LEVEL=info", "OPS_ADDR=127.0.0.1:0",
		"WEBHOOK_BACKOFF="+h.cfg.Backoff.String(), "WEBHOOK_TIMEOUT=2s", "WEBHOOK_CONCURRENCY=16",
		"WEBHOOK_ALLOW_HTTP=true", "WEBHOOK_ALLOW_PRIVATE_NETWORKS=true")
	cmd.Env = append(cmd.Env, extraEnv...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			lines := strings.Split(string(b), "\n")
			t.Logf("%s (last lines):\n%s", logName, strings.Join(lines[max(0, len(lines)-30):], "\n"))
		}
	})
	return cmd
}

// publishRetrying publishes through NATS restarts: the client reconnects, the publish is
// retried with the same Nats-Msg-Id and deduplicated if the first try did land.
func (h *harness) publishRetrying(t *testing.T, env event.Envelope, body []byte) {
	t.Helper()
	var err error
	if !testkit.Poll(30*time.Second, func() bool {
		m := nats.NewMsg("payments.confirmed")
		m.Data = body
		m.Header.Set(event.HeaderMsgID, env.ID)
		m.Header.Set(event.HeaderEventType, env.Type)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_, err = h.js.PublishMsg(ctx, m)
		return err == nil
	}) {
		t.Fatalf("publish %s: %v", env.ID, err)
	}
}

func TestEveryEventDeliveredThroughSenderKillAndNATSRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and kills a real process")
	}
	start := time.Now()
	bin := testkit.MustBuild(t, "webhook-sender")
	t.Logf("built in %v", time.Since(start))
	h := newProcessHarness(t, 200*time.Millisecond, 400*time.Millisecond, time.Second)
	var mu sync.Mutex
	seen := map[string]int{}
	rc := newReceiver(t, func(n int, r *http.Request) (int, http.Header) {
		id := r.Header.Get("webhook-id")
		mu.Lock()
		seen[id]++
		first := seen[id] == 1
		mu.Unlock()
		time.Sleep(3 * time.Millisecond) // a merchant doing some work
		if first && n%5 == 0 {
			return http.StatusInternalServerError, nil // some first attempts fail and are retried
		}
		return http.StatusOK, nil
	})
	h.endpoint("m_1", rc.srv.URL)

	const total = 300
	events := make([]event.Envelope, total)
	bodies := make([][]byte, total)
	for i := range events {
		env, err := event.New("payment.confirmed", event.Payment{PaymentID: fmt.Sprintf("pay_%03d", i), MerchantID: "m_1",
			Status: "confirmed", AmountBaseUnits: "1", AmountReceivedBaseUnits: "1"})
		if err != nil {
			t.Fatal(err)
		}
		events[i] = env
		bodies[i] = mustJSON(t, env)
	}

	first := h.senderProcess(t, bin, "sender-1.log")
	for i := range total / 2 {
		h.publishRetrying(t, events[i], bodies[i])
	}
	testkit.Eventually(t, 30*time.Second, "some deliveries before the kill", func() bool { return len(rc.got()) >= 30 })
	if err := first.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = first.Wait()
	delivered := len(rc.got())
	t.Logf("%v: sender killed after %d requests", time.Since(start), delivered)

	h.nats.Restart()
	for i := total / 2; i < total*3/4; i++ {
		h.publishRetrying(t, events[i], bodies[i])
	}
	h.senderProcess(t, bin, "sender-2.log")
	testkit.Eventually(t, 30*time.Second, "progress after restart", func() bool { return len(rc.got()) > delivered+20 })
	t.Logf("%v: second sender running, %d requests", time.Since(start), len(rc.got()))
	h.nats.Restart() // again, under the running sender
	for i := total * 3 / 4; i < total; i++ {
		h.publishRetrying(t, events[i], bodies[i])
	}

	missing := func() []string {
		mu.Lock()
		defer mu.Unlock()
		var out []string
		for _, e := range events {
			if seen[e.ID] == 0 {
				out = append(out, e.ID)
			}
		}
		return out
	}
	if !testkit.Poll(90*time.Second, func() bool { return len(missing()) == 0 }) {
		t.Fatalf("%d of %d events never delivered, e.g. %v", len(missing()), total, missing()[:min(3, len(missing()))])
	}
	t.Logf("%v: all delivered", time.Since(start))
	mu.Lock()
	dups := 0
	for _, n := range seen {
		if n > 1 {
			dups++
		}
	}
	mu.Unlock()
	t.Logf("all %d events delivered; %d requests in all, %d events seen more than once (retries and redeliveries)", total, len(rc.got()), dups)
	if n := h.count(`SELECT count(*) FROM webhook_dead_letters`); n != 0 {
		t.Fatalf("%d dead letters", n)
	}
}
