package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/ctrip-pay/pipeline/shared/event"
	"github.com/ctrip-pay/pipeline/shared/natsbus"
	"github.com/ctrip-pay/pipeline/shared/testkit"
)

// runbook runs scripts/runbook.sh against the harness's NATS server.
func (h *harness) runbook(args ...string) (stdout, stderr string, err error) {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", append([]string{filepath.Join("..", "..", "scripts", "runbook.sh")}, args...)...)
	cmd.Env = append(os.Environ(), "NATS_URL="+h.nats.URL())
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	return out.String(), errOut.String(), err
}

// mustRunbook is runbook that fails the test when the script does.
func (h *harness) mustRunbook(args ...string) string {
	h.t.Helper()
	out, errOut, err := h.runbook(args...)
	if err != nil {
		h.t.Fatalf("runbook.sh %s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), err, out, errOut)
	}
	return out
}

func needRunbookTools(t *testing.T) {
	t.Helper()
	for _, tool := range []string{"nats", "jq"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("scripts/runbook.sh needs %s on PATH: %v", tool, err)
		}
	}
}

// logged is one PAYMENTS message as the test published it.
type logged struct {
	Seq     uint64
	Time    time.Time
	Subject string
	MsgID   string
	Payment string
	EventID string
}

// runbookRecord is one line of `runbook.sh ... -j`.
type runbookRecord struct {
	Seq       uint64          `json:"seq"`
	Time      string          `json:"time"`
	Subject   string          `json:"subject"`
	MsgID     string          `json:"msg_id"`
	EventType string          `json:"event_type"`
	Event     *event.Envelope `json:"event"`
}

func parseRecords(t *testing.T, out string) []runbookRecord {
	t.Helper()
	var recs []runbookRecord
	for sc := bufio.NewScanner(strings.NewReader(out)); sc.Scan(); {
		var r runbookRecord
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("not a JSON record: %q: %v", sc.Text(), err)
		}
		recs = append(recs, r)
	}
	return recs
}

// publishLogged puts one payment event on PAYMENTS with the Nats-Msg-Id its publisher uses and
// returns it with the sequence and time the stream stored.
func (h *harness) publishLogged(subject, paymentID, msgID string) logged {
	h.t.Helper()
	status := map[string]string{"payments.created": event.StatusPending, "payments.detected": event.StatusDetected,
		"payments.confirmed": event.StatusConfirmed, "payments.swept": event.StatusSwept}[subject]
	env, err := event.New(event.TypeForSubject(subject), event.Payment{
		PaymentID: paymentID, MerchantID: "m_1", Status: status, ChainID: 1337, Chain: "devnet",
		Address: "0x00000000000000000000000000000000000000aa", Token: "ETH", Amount: "1",
		AmountBaseUnits: "1000000000000000000", AmountReceivedBaseUnits: "0", Transactions: []event.Transaction{},
	})
	if err != nil {
		h.t.Fatal(err)
	}
	m := nats.NewMsg(subject)
	m.Data = mustJSON(h.t, env)
	m.Header.Set(event.HeaderMsgID, msgID)
	m.Header.Set(event.HeaderEventType, env.Type)
	ctx := context.Background()
	ack, err := h.js.PublishMsg(ctx, m)
	if err != nil {
		h.t.Fatal(err)
	}
	stream, err := h.js.Stream(ctx, "PAYMENTS")
	if err != nil {
		h.t.Fatal(err)
	}
	stored, err := stream.GetMsg(ctx, ack.Sequence)
	if err != nil {
		h.t.Fatal(err)
	}
	return logged{Seq: ack.Sequence, Time: stored.Time, Subject: subject, MsgID: msgID, Payment: paymentID, EventID: env.ID}
}

// checkRecords compares the script's JSON records with the messages expected, in order.
func checkRecords(t *testing.T, what string, got []runbookRecord, want []logged) {
	t.Helper()
	seqs := func() (g, w []uint64) {
		for _, r := range got {
			g = append(g, r.Seq)
		}
		for _, l := range want {
			w = append(w, l.Seq)
		}
		return g, w
	}
	if g, w := seqs(); !slices.Equal(g, w) {
		t.Fatalf("%s: sequences %v, want %v", what, g, w)
	}
	for i, r := range got {
		l := want[i]
		at, err := time.Parse(time.RFC3339Nano, r.Time)
		if err != nil || !at.Equal(l.Time) {
			t.Errorf("%s #%d: time %q (%v), want the stream's %s", what, r.Seq, r.Time, err, l.Time.UTC().Format(time.RFC3339Nano))
		}
		if r.Subject != l.Subject || r.MsgID != l.MsgID || r.EventType != event.TypeForSubject(l.Subject) {
			t.Errorf("%s #%d: subject %q msg id %q type %q, want %q %q %q", what, r.Seq, r.Subject, r.MsgID, r.EventType,
				l.Subject, l.MsgID, event.TypeForSubject(l.Subject))
		}
		if r.Event == nil || r.Event.ID != l.EventID {
			t.Errorf("%s #%d: event %+v, want id %s", what, r.Seq, r.Event, l.EventID)
			continue
		}
		var data event.Payment
		if err := json.Unmarshal(r.Event.Data, &data); err != nil || data.PaymentID != l.Payment {
			t.Errorf("%s #%d: data.payment_id %q (%v), want %q", what, r.Seq, data.PaymentID, err, l.Payment)
		}
	}
	if t.Failed() {
		t.FailNow()
	}
}

// The runbook reads a real PAYMENTS stream, provisioned from streams/ as the services do:
// replay-since returns every event from the given time on (inclusive) and none before, in
// order, on the subject asked; payment returns one payment's history and no other payment's;
// each read leaves no consumer behind; bad input is refused.
func TestRunbookReplaySinceAndPaymentHistory(t *testing.T) {
	needRunbookTools(t)
	h := newHarness(t)
	ctx := context.Background()
	if _, err := provision(ctx, h.js, h.cfg.Backoff, natsbus.Sizing{}); err != nil {
		t.Fatal(err)
	}
	payA, payB := event.NewID("pay"), event.NewID("pay")
	detected := func(p, block string) string { return fmt.Sprintf("detected.1337.0x%s.0.0x%s", p, block) }
	before := []logged{
		h.publishLogged("payments.created", payA, payA+".created"),
		h.publishLogged("payments.created", payB, payB+".created"),
		h.publishLogged("payments.detected", payA, detected("aa", "b1")),
	}
	// Past the last earlier message's timestamp, whatever the clock's resolution.
	testkit.Eventually(t, 5*time.Second, "the clock moves on", func() bool { return time.Now().After(before[len(before)-1].Time) })
	after := []logged{
		h.publishLogged("payments.detected", payB, detected("bb", "b2")),
		h.publishLogged("payments.confirmed", payA, payA+".confirmed"),
		h.publishLogged("payments.swept", payA, payA+".swept"),
		h.publishLogged("payments.confirmed", payB, payB+".confirmed"),
	}
	if !after[0].Time.After(before[len(before)-1].Time) {
		t.Fatalf("stream times %s and %s do not tell before from after", before[len(before)-1].Time, after[0].Time)
	}
	// The first later message's own time: the start is inclusive. An offset other than Z.
	since := after[0].Time.In(time.FixedZone("", 3600)).Format(time.RFC3339Nano)

	checkRecords(t, "replay-since", parseRecords(t, h.mustRunbook("replay-since", "-j", since)), after)
	checkRecords(t, "replay-since payments.confirmed",
		parseRecords(t, h.mustRunbook("replay-since", "--json", since, "payments.confirmed")), []logged{after[1], after[3]})
	all := append(append([]logged(nil), before...), after...)
	checkRecords(t, "replay-since the beginning", parseRecords(t, h.mustRunbook("replay-since", "-j", "2000-01-01T00:00:00Z")), all)

	// The table: a header and one line per event, sequence first, then the stream time.
	table := strings.Split(strings.TrimRight(h.mustRunbook("replay-since", since), "\n"), "\n")
	t.Logf("runbook.sh replay-since %s:\n%s", since, strings.Join(table, "\n"))
	if len(table) != 1+len(after) || !strings.HasPrefix(table[0], "SEQ") {
		t.Fatalf("table of %d lines, want a header and %d events", len(table), len(after))
	}
	for i, line := range table[1:] {
		f := strings.Fields(line)
		l := after[i]
		if len(f) != 7 || f[0] != strconv.FormatUint(l.Seq, 10) || f[2] != l.Subject || f[3] != l.Payment || f[5] != l.EventID || f[6] != l.MsgID {
			t.Fatalf("table line %q, want #%d %s %s %s %s", line, l.Seq, l.Subject, l.Payment, l.EventID, l.MsgID)
		}
	}

	// One payment's history, found by its payload (the detection's msg id does not name it).
	var historyA, historyB []logged
	for _, l := range all {
		if l.Payment == payA {
			historyA = append(historyA, l)
		} else {
			historyB = append(historyB, l)
		}
	}
	checkRecords(t, "payment A", parseRecords(t, h.mustRunbook("payment", "-j", payA)), historyA)
	checkRecords(t, "payment B", parseRecords(t, h.mustRunbook("payment", "-j", payB)), historyB)
	checkRecords(t, "payment A since", parseRecords(t, h.mustRunbook("payment", "-j", "--since", since, payA)), historyA[2:])
	lines := strings.Split(strings.TrimRight(h.mustRunbook("payment", payA), "\n"), "\n")
	for i, line := range lines[1:] {
		if f := strings.Fields(line); len(lines) != 1+len(historyA) || len(f) != 7 || f[0] != strconv.FormatUint(historyA[i].Seq, 10) || f[3] != payA {
			t.Fatalf("payment table of %s, want %d lines of it:\n%s", payA, len(historyA), strings.Join(lines, "\n"))
		}
	}

	// Nothing to show: nothing on stdout, a note on stderr, success.
	for _, args := range [][]string{
		{"replay-since", time.Now().Add(time.Hour).UTC().Format(time.RFC3339)},
		{"payment", "pay_nobody"},
		{"replay-since", since, "payments.expired"},
	} {
		out, errOut, err := h.runbook(args...)
		if err != nil || out != "" || !strings.Contains(errOut, "no events") {
			t.Fatalf("runbook.sh %v: %v, stdout %q, stderr %q; want success with nothing to show", args, err, out, errOut)
		}
	}
	// Bad input is refused, naming it.
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"replay-since", "yesterday"}, "invalid time"},
		{[]string{"replay-since", "2026-12-02 07:00:00"}, "invalid time"},
		{[]string{"replay-since", since, "webhooks.deliver.ep_1"}, "invalid subject"},
		{[]string{"payment", "pay_1; rm -rf /"}, "invalid payment id"},
		{[]string{"payment"}, "usage"},
		{[]string{"replay"}, "unknown command"},
	} {
		_, errOut, err := h.runbook(tc.args...)
		if err == nil || !strings.Contains(errOut, tc.want) {
			t.Fatalf("runbook.sh %q: %v, stderr %q; want a failure saying %q", tc.args, err, errOut, tc.want)
		}
	}

	// Every read removed its consumer: only the provisioned ones are left.
	stream, err := h.js.Stream(ctx, "PAYMENTS")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for name := range stream.ConsumerNames(ctx).Name() {
		names = append(names, name)
	}
	if !slices.Equal(names, []string{"webhook-fanout"}) {
		t.Fatalf("consumers on PAYMENTS after the runbook: %v, want only webhook-fanout", names)
	}
}

// dead-letters lists the DLQ with its Dlq-* headers (through dlq.sh list).
func TestRunbookDeadLetters(t *testing.T) {
	needRunbookTools(t)
	h, _, epID, env, dlqSeq := deadLettered(t)
	out := h.mustRunbook("dead-letters")
	t.Logf("runbook.sh dead-letters:\n%s", out)
	var line string
	for sc := bufio.NewScanner(strings.NewReader(out)); sc.Scan(); {
		if strings.Contains(sc.Text(), env.ID) {
			line = sc.Text()
		}
	}
	f := strings.Fields(line)
	if len(f) < 6 || f[0] != strconv.FormatUint(dlqSeq, 10) || f[2] != epID || f[3] != env.ID || f[4] != "max_deliveries" ||
		!strings.Contains(line, "HTTP 500") {
		t.Fatalf("dead-letters line %q, want DLQ #%d, endpoint %s, event %s, max_deliveries, HTTP 500", line, dlqSeq, epID, env.ID)
	}
	if out := h.mustRunbook("dead-letters", epID); !strings.Contains(out, env.ID) {
		t.Fatalf("dead-letters %s does not list event %s:\n%s", epID, env.ID, out)
	}
	if out := h.mustRunbook("dead-letters", "ep_nobody"); strings.Contains(out, env.ID) {
		t.Fatalf("dead-letters ep_nobody lists another endpoint's dead letter:\n%s", out)
	}
}
