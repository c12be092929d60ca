package main

import (
	"bufio"
	"bytes"
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
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

func TestDLQScriptReplay(t *testing.T) {
	for _, tool := range []string{"nats", "jq"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("scripts/dlq.sh needs %s on PATH: %v", tool, err)
		}
	}
	h := newHarness(t, 50*time.Millisecond, 100*time.Millisecond)
	rc := newReceiver(t, status(http.StatusInternalServerError))
	epID, _ := h.endpoint("m_1", rc.srv.URL)
	h.start()
	env := h.publish("payments.confirmed", "m_1")

	h.eventually(15*time.Second, "dead letter", func() bool {
		return h.count(`SELECT count(*) FROM webhook_dead_letters WHERE published_at IS NOT NULL`) == 1
	})
	first := rc.got()[0]
	var dlqSeq uint64
	if err := h.db.Get(&dlqSeq, `SELECT dlq_seq FROM webhook_dead_letters WHERE published_at IS NOT NULL`); err != nil {
		t.Fatal(err)
	}

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
		h.eventually(10*time.Second, "replayed delivery", func() bool { return len(rc.got()) >= before+n })
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
	time.Sleep(300 * time.Millisecond) // longer than the schedule: nothing else may arrive
	reqs := rc.got()
	if len(reqs) != before+1 {
		t.Fatalf("%d requests after one replay, want %d", len(reqs), before+1)
	}
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
