package main

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/ctrip-pay/pipeline/services/webhook-sender/internal/postgres"
	"github.com/ctrip-pay/pipeline/services/webhook-sender/internal/webhook"
	sharedpg "github.com/ctrip-pay/pipeline/shared/postgres"
)

// Attempt rows are written in batches: whatever a merchant answered (tabs, newlines,
// backslashes, invalid UTF-8, NUL bytes) is stored readably and does not fail the batch.
func TestAttemptBatchStoresAnyResponseBody(t *testing.T) {
	h := newHarness(t)
	if _, err := sharedpg.Migrate(t.Context(), h.db, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	bodies := []string{
		"plain",
		"tab\there\nnew line\r\nand a \\ backslash, \\N and \\.",
		"invalid \xff\xfe utf-8",
		"nul \x00 byte",
		"", // no body: NULL
	}
	rows := make([]webhook.Attempt, len(bodies))
	for i, b := range bodies {
		rows[i] = webhook.Attempt{EventID: "evt_store", EventType: "payment.confirmed", EndpointID: "ep_store",
			StreamSeq: uint64(i + 1), Attempt: i + 1, StatusCode: 500, Latency: 1500 * time.Microsecond,
			Error: "HTTP 500", ResponseBody: b}
	}
	rows[4].StatusCode, rows[4].Error = 0, "dial tcp: connection refused"
	if err := postgres.New(h.db).RecordAttempts(t.Context(), rows); err != nil {
		t.Fatal(err)
	}
	got := h.attempts("evt_store", "ep_store")
	if len(got) != len(bodies) {
		t.Fatalf("%d rows stored, want %d", len(got), len(bodies))
	}
	want := []string{bodies[0], bodies[1], "invalid \uFFFD utf-8", "nul \uFFFD byte"}
	for i, w := range want {
		if got[i].Body == nil || *got[i].Body != w {
			t.Errorf("row %d body = %v, want %q", i, got[i].Body, w)
		}
		if got[i].Attempt != i+1 || got[i].StatusCode == nil || *got[i].StatusCode != 500 || got[i].LatencyMS != 1.5 {
			t.Errorf("row %d = %+v", i, got[i])
		}
	}
	if got[4].Body != nil || got[4].StatusCode != nil || got[4].Error == nil || !strings.Contains(*got[4].Error, "refused") {
		t.Errorf("row without response = %+v, want NULL body and status, the error kept", got[4])
	}
}
