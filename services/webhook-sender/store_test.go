package main

import (
	"fmt"
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
// Both ways of writing a batch are checked: a few rows (one INSERT) and many (COPY).
func TestAttemptBatchStoresAnyResponseBody(t *testing.T) {
	h := newHarness(t)
	if _, err := sharedpg.Migrate(t.Context(), h.db, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	for _, copies := range []int{1, 4} { // 5 rows, then 20
		t.Run(fmt.Sprintf("%d rows", 5*copies), func(t *testing.T) { testAttemptBatch(t, h, copies) })
	}
}

func testAttemptBatch(t *testing.T, h *harness, copies int) {
	eventID := fmt.Sprintf("evt_store_%d", copies)
	bodies := []string{
		"plain",
		"tab\there\nnew line\r\nand a \\ backslash, \\N and \\.",
		"invalid \xff\xfe utf-8",
		"nul \x00 byte",
		"", // no body: NULL
	}
	var rows []webhook.Attempt
	for range copies {
		for i, b := range bodies {
			a := webhook.Attempt{EventID: eventID, EventType: "payment.confirmed", EndpointID: "ep_store",
				StreamSeq: uint64(i + 1), Attempt: i + 1, StatusCode: 500, Latency: 1500 * time.Microsecond,
				Error: "HTTP 500", ResponseBody: b}
			if i == 4 {
				a.StatusCode, a.Error = 0, "dial tcp: connection refused"
			}
			rows = append(rows, a)
		}
	}
	if err := postgres.New(h.db).RecordAttempts(t.Context(), rows); err != nil {
		t.Fatal(err)
	}
	all := h.attempts(eventID, "ep_store")
	if len(all) != len(rows) {
		t.Fatalf("%d rows stored, want %d", len(all), len(rows))
	}
	// Rows come back in the order written: the five bodies, copies times over.
	want := []string{bodies[0], bodies[1], "invalid \uFFFD utf-8", "nul \uFFFD byte"}
	for k, got := range all {
		i := k % len(bodies)
		if i == 4 {
			if got.Body != nil || got.StatusCode != nil || got.Error == nil || !strings.Contains(*got.Error, "refused") {
				t.Errorf("row %d without response = %+v, want NULL body and status, the error kept", k, got)
			}
			continue
		}
		if got.Body == nil || *got.Body != want[i] {
			t.Errorf("row %d body = %v, want %q", k, got.Body, want[i])
		}
		if got.Attempt != i+1 || got.StatusCode == nil || *got.StatusCode != 500 || got.LatencyMS != 1.5 {
			t.Errorf("row %d = %+v", k, got)
		}
	}
}
