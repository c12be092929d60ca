package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ctrip-pay/pipeline/services/webhook-sender/internal/webhook"
	"github.com/ctrip-pay/pipeline/shared/event"
	"github.com/ctrip-pay/pipeline/shared/testkit"
)

// dlqScript runs scripts/dlq.sh against the harness's NATS server and returns its stdout.
func (h *harness) dlqScript(args ...string) string {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", append([]string{filepath.Join("..", "..", "scripts", "dlq.sh")}, args...)...)
	cmd.Env = append(os.Environ(), "NATS_URL="+h.nats.URL())
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		h.t.Fatalf("dlq.sh %s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String()
}

// deadLettered runs a sender whose merchant always answers 500 and waits until one event's
// delivery is dead-lettered and its copy published; it returns the copy's DLQ sequence.
func deadLettered(t *testing.T) (*harness, *receiver, string, event.Envelope, uint64) {
	t.Helper()
	h := newHarness(t, 50*time.Millisecond, 100*time.Millisecond)
	rc := newReceiver(t, status(http.StatusInternalServerError))
	epID, _ := h.endpoint("m_1", rc.srv.URL)
	h.start()
	env := h.publish("payments.confirmed", "m_1")
	testkit.Eventually(t, 15*time.Second, "dead letter", func() bool {
		return h.count(`SELECT count(*) FROM webhook_dead_letters WHERE published_at IS NOT NULL`) == 1
	})
	var dlqSeq uint64
	if err := h.db.Get(&dlqSeq, `SELECT dlq_seq FROM webhook_dead_letters WHERE published_at IS NOT NULL`); err != nil {
		t.Fatal(err)
	}
	return h, rc, epID, env, dlqSeq
}

func TestDLQScriptReplay(t *testing.T) {
	for _, tool := range []string{"nats", "jq"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("scripts/dlq.sh needs %s on PATH: %v", tool, err)
		}
	}
	h, rc, epID, env, dlqSeq := deadLettered(t)
	first := rc.got()[0]

	// list: one line for the dead letter, starting with its DLQ sequence.
	out := h.dlqScript("list")
	t.Logf("dlq.sh list:\n%s", out)
	var line string
	for sc := bufio.NewScanner(strings.NewReader(out)); sc.Scan(); {
		if strings.Contains(sc.Text(), env.ID) {
			if line != "" {
				t.Fatalf("event %s listed twice:\n%s", env.ID, out)
			}
			line = sc.Text()
		}
	}
	if line == "" {
		t.Fatalf("list does not name event %s:\n%s", env.ID, out)
	}
	fields := strings.Fields(line)
	if len(fields) < 6 || fields[0] != strconv.FormatUint(dlqSeq, 10) || !strings.Contains(line, epID) ||
		!strings.Contains(line, "max_deliveries") || !strings.Contains(line, "HTTP 500") {
		t.Fatalf("list line %q, want DLQ seq %d, endpoint %s, reason max_deliveries, last error HTTP 500", line, dlqSeq, epID)
	}
	if out := h.dlqScript("list", epID); !strings.Contains(out, env.ID) {
		t.Fatalf("list %s does not name event %s:\n%s", epID, env.ID, out)
	}
	if out := h.dlqScript("list", "ep_nobody"); strings.Contains(out, env.ID) {
		t.Fatalf("list ep_nobody shows another endpoint's dead letter:\n%s", out)
	}

	// replay after the merchant fixed its endpoint: the same webhook-id and the same bytes.
	rc.setRespond(status(http.StatusOK))
	before := len(rc.got())
	webhooks, err := h.js.Stream(context.Background(), "WEBHOOKS")
	if err != nil {
		t.Fatal(err)
	}
	replay := func(n int) uint64 {
		t.Helper()
		out := h.dlqScript("replay", strconv.FormatUint(dlqSeq, 10))
		t.Logf("dlq.sh replay %d: %s", dlqSeq, strings.TrimSpace(out))
		if !strings.Contains(out, "WEBHOOKS #") {
			t.Fatalf("replay did not print the WEBHOOKS ack: %s", out)
		}
		testkit.Eventually(t, 10*time.Second, "replayed delivery", func() bool { return len(rc.got()) >= before+n })
		msg, err := webhooks.GetLastMsgForSubject(context.Background(), "webhooks.deliver."+epID)
		if err != nil {
			t.Fatal(err)
		}
		if id := msg.Header.Get("Nats-Msg-Id"); !strings.HasPrefix(id, env.ID+"."+epID+".replay-") {
			t.Fatalf("replayed Nats-Msg-Id %q, want %s.%s.replay-<nanos>", id, env.ID, epID)
		}
		if got, want := msg.Header.Get("Ctrip-Replay-Of"), "dlq:"+strconv.FormatUint(dlqSeq, 10); got != want {
			t.Fatalf("Ctrip-Replay-Of = %q, want %q", got, want)
		}
		if got := msg.Header.Get("Ctrip-Event-Type"); got != env.Type {
			t.Fatalf("Ctrip-Event-Type = %q, want %q", got, env.Type)
		}
		return msg.Sequence
	}
	seq1 := replay(1)
	// Longer than the schedule.
	testkit.Never(t, 300*time.Millisecond, "another request after one replay", func() bool { return len(rc.got()) != before+1 })
	reqs := rc.got()
	last := reqs[before]
	if got := last.header.Get("webhook-id"); got != env.ID {
		t.Fatalf("replay delivered webhook-id %q, want the original event id %q", got, env.ID)
	}
	if !bytes.Equal(last.body, first.body) {
		t.Fatalf("replayed body differs from the first attempt:\n%s\nvs\n%s", last.body, first.body)
	}

	// A second replay is a new WEBHOOKS message, not swallowed by the duplicate window.
	seq2 := replay(2)
	if seq2 <= seq1 {
		t.Fatalf("second replay stored at WEBHOOKS #%d, first at #%d", seq2, seq1)
	}
	if again := rc.got()[before+1]; again.header.Get("webhook-id") != env.ID || !bytes.Equal(again.body, first.body) {
		t.Fatalf("second replay delivered webhook-id %q body %s", again.header.Get("webhook-id"), again.body)
	}
	if n := h.count(`SELECT count(*) FROM webhook_dead_letters`); n != 1 {
		t.Fatalf("%d dead letters after successful replays, want 1", n)
	}
}

// A dead letter carries only its own metadata: read back by direct get (as `nats stream get` and
// GetLastMsgForSubject do) and by a consumer, its subject, stream and sequence are the copy's,
// with one value each. A replay built from what the nats CLI shows — its subject mapped back
// (dlq.webhooks.X → webhooks.deliver.X), its body and headers — is delivered.
func TestDeadLetterCarriesOnlyItsOwnMetadata(t *testing.T) {
	if _, err := exec.LookPath("nats"); err != nil {
		t.Skipf("needs the nats CLI on PATH: %v", err)
	}
	h, rc, epID, env, dlqSeq := deadLettered(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	copySubject := "dlq.webhooks." + epID
	own := func(how string, subject string, hdr nats.Header, seq uint64) {
		t.Helper()
		if subject != copySubject || seq != dlqSeq {
			t.Errorf("%s: subject %q seq %d, want %q #%d", how, subject, seq, copySubject, dlqSeq)
		}
		for k, want := range map[string]string{"Nats-Stream": "DLQ", "Nats-Subject": copySubject, "Nats-Sequence": strconv.FormatUint(dlqSeq, 10)} {
			if got := hdr.Values(k); got != nil && (len(got) != 1 || got[0] != want) {
				t.Errorf("%s: %s = %q, want only %q", how, k, got, want)
			}
		}
		if got := hdr.Values("Nats-Time-Stamp"); len(got) > 1 {
			t.Errorf("%s: Nats-Time-Stamp = %q, want one value", how, got)
		}
		if got := hdr.Get(webhook.HeaderDlqOriginSubject); got != "webhooks.deliver."+epID {
			t.Errorf("%s: %s = %q", how, webhook.HeaderDlqOriginSubject, got)
		}
	}
	dlq, err := h.js.Stream(ctx, "DLQ")
	if err != nil {
		t.Fatal(err)
	}
	if !dlq.CachedInfo().Config.AllowDirect {
		t.Fatal("DLQ must allow direct get for this test to read it as the CLI does")
	}
	byGet, err := dlq.GetMsg(ctx, dlqSeq)
	if err != nil {
		t.Fatal(err)
	}
	own("direct get by sequence", byGet.Subject, byGet.Header, byGet.Sequence)
	byLast, err := dlq.GetLastMsgForSubject(ctx, copySubject)
	if err != nil {
		t.Fatal(err)
	}
	own("direct get of the subject's last", byLast.Subject, byLast.Header, byLast.Sequence)
	oc, err := dlq.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{copySubject}})
	if err != nil {
		t.Fatal(err)
	}
	m, err := oc.Next(jetstream.FetchMaxWait(5 * time.Second))
	if err != nil {
		t.Fatal(err)
	}
	meta, err := m.Metadata()
	if err != nil {
		t.Fatal(err)
	}
	own("consumer", m.Subject(), m.Headers(), meta.Sequence.Stream)
	for _, k := range []string{"Nats-Stream", "Nats-Subject", "Nats-Sequence", "Nats-Time-Stamp"} {
		if v := m.Headers().Values(k); v != nil {
			t.Errorf("consumer: the copy stores %s = %q", k, v)
		}
	}
	if t.Failed() {
		t.FailNow()
	}

	// The operator's replay with the CLI alone: what `nats stream get` shows, sent back.
	out, err := exec.CommandContext(ctx, "nats", "--server="+h.nats.URL(), "stream", "get", "DLQ", strconv.FormatUint(dlqSeq, 10), "--json").Output()
	if err != nil {
		t.Fatalf("nats stream get: %v", err)
	}
	var shown struct {
		Subject string `json:"subject"`
		Hdrs    []byte `json:"hdrs"`
		Data    []byte `json:"data"`
	}
	if err := json.Unmarshal(out, &shown); err != nil {
		t.Fatalf("nats stream get --json: %v\n%s", err, out)
	}
	target, ok := strings.CutPrefix(shown.Subject, "dlq.webhooks.")
	if !ok {
		t.Fatalf("nats stream get shows subject %q", shown.Subject)
	}
	args := []string{"--server=" + h.nats.URL(), "request", "--raw", "--no-templates", "--force-stdin", "webhooks.deliver." + target,
		"-H", "Nats-Msg-Id:" + env.ID + "." + target + ".cli-replay"}
	lines := strings.Split(string(shown.Hdrs), "\r\n")
	for _, line := range lines[1:] {
		k, v, ok := strings.Cut(line, ":")
		if !ok || strings.HasPrefix(strings.ToLower(k), "nats-") {
			continue
		}
		args = append(args, "-H", strings.TrimSpace(k)+":"+strings.TrimSpace(v))
	}
	rc.setRespond(status(http.StatusOK))
	before := len(rc.got())
	pub := exec.CommandContext(ctx, "nats", args...)
	pub.Stdin = bytes.NewReader(shown.Data)
	if out, err := pub.CombinedOutput(); err != nil || !strings.Contains(string(out), `"stream":"WEBHOOKS"`) {
		t.Fatalf("nats request %v: %v\n%s", args, err, out)
	}
	testkit.Eventually(t, 10*time.Second, "the CLI replay delivered", func() bool {
		for _, r := range rc.got()[before:] {
			if r.header.Get("webhook-id") == env.ID {
				return true
			}
		}
		return false
	})
}
