package rest

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http/httptest"
	"testing"

	"github.com/lib/pq"

	"github.com/ctrip-pay/pipeline/shared/deadletter"
	"github.com/ctrip-pay/pipeline/shared/fault"
)

// storeError is the one mapping from an error's fault kind to the answer; every answer here is
// one a handler gave before the mapping existed, word for word.
func TestStoreErrorMapsKinds(t *testing.T) {
	_, dialErr := net.Dial("tcp", closedAddr(t))
	unavailableAnswer := &apiError{Status: 503, Code: "unavailable", RetryAfter: 5,
		Message: "a backing service is temporarily unavailable; retry the same request in a few seconds"}
	internalAnswer := &apiError{Status: 500, Code: "internal_error", Message: "internal error; retry later"}
	tests := []struct {
		name string
		err  error
		want *apiError
	}{
		{"nil", nil, nil},
		{"not found", ErrNotFound, &apiError{Status: 404, Code: "not_found", Message: "no such object"}},
		{"not found, wrapped by the store", fmt.Errorf("payment: %w", ErrNotFound), &apiError{Status: 404, Code: "not_found", Message: "no such object"}},
		{"a dead letter not found", deadletter.ErrNotFound, &apiError{Status: 404, Code: "not_found", Message: "no such object"}},
		{"replay raced", fmt.Errorf("replay dl_1 published as x.replay1, not counted: %w", ErrReplayRaced), &apiError{Status: 409, Code: "replay_conflict",
			Message: "this dead letter was replayed by a concurrent request; check replay_count and retry if needed"}},
		{"original lost", deadletter.ErrOriginalLost, &apiError{Status: 409, Code: "original_lost",
			Message: "the original message had left the WEBHOOKS stream before it was dead-lettered; there is nothing to replay"}},
		{"invalid", fmt.Errorf("store: %w", fault.Invalid("invalid_cursor", errors.New("cursor is not one of ours"))),
			&apiError{Status: 400, Code: "invalid_cursor", Message: "cursor is not one of ours"}},
		{"invalid without detail", fault.Invalid("invalid_thing", nil), &apiError{Status: 400, Code: "invalid_thing", Message: "invalid_thing"}},
		{"database unreachable", fmt.Errorf("list payments: %w", dialErr), unavailableAnswer},
		{"database shutting down", &pq.Error{Severity: "FATAL", Code: "57P01"}, unavailableAnswer},
		{"transient and unreachable", fault.Transient(dialErr), unavailableAnswer},
		{"transient, a bug", fault.Transient(errors.New("scan: unexpected column")), internalAnswer},
		{"no kind, a bug", errors.New("scan: unexpected column"), internalAnswer},
		{"query refused", &pq.Error{Code: "22021"}, internalAnswer},
	}
	h := &Handler{cfg: Config{Log: slog.New(slog.NewTextHandler(io.Discard, nil))}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := h.storeError(httptest.NewRequest("GET", "/v1/payments", nil), tc.err)
			if (got == nil) != (tc.want == nil) || (got != nil && *got != *tc.want) {
				t.Fatalf("storeError(%v) = %+v, want %+v", tc.err, got, tc.want)
			}
		})
	}
}
