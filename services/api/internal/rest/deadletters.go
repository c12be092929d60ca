package rest

import (
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/ctrip-pay/pipeline/shared/deadletter"
)

type deadLetterResponse struct {
	ID             string          `json:"id"`
	Object         string          `json:"object"`
	EndpointID     string          `json:"endpoint_id"`
	EventID        *string         `json:"event_id"`
	EventType      *string         `json:"event_type"`
	PaymentID      *string         `json:"payment_id"`
	Reason         string          `json:"reason"`
	Deliveries     int             `json:"deliveries"`
	LastError      *string         `json:"last_error"`
	OriginStream   string          `json:"origin_stream"`
	OriginSeq      int64           `json:"origin_seq"`
	Replayable     bool            `json:"replayable"`
	ReplayCount    int             `json:"replay_count"`
	LastReplayedAt *time.Time      `json:"last_replayed_at"`
	Event          json.RawMessage `json:"event,omitempty"` // the webhook body, when it is JSON
	CreatedAt      time.Time       `json:"created_at"`
}

func deadLetterJSON(dl deadletter.Letter) deadLetterResponse {
	out := deadLetterResponse{
		ID: dl.ID, Object: "dead_letter", EndpointID: dl.EndpointID, EventID: dl.EventID, EventType: dl.EventType,
		PaymentID: dl.PaymentID, Reason: dl.Reason, Deliveries: dl.Deliveries, LastError: dl.LastError,
		OriginStream: dl.OriginStream, OriginSeq: int64(dl.OriginSeq), Replayable: dl.Replayable(),
		ReplayCount: dl.ReplayCount, LastReplayedAt: dl.LastReplayedAt, CreatedAt: dl.CreatedAt,
	}
	if json.Valid(dl.Body) {
		out.Event = dl.Body
	}
	return out
}

func (h *Handler) listDeadLetters(w http.ResponseWriter, r *http.Request, merchantID string) *apiError {
	page, e := h.pageParams(r, merchantID)
	if e != nil {
		return e
	}
	dls, err := h.cfg.Store.DeadLetters(r.Context(), merchantID, page.fetch())
	if err != nil {
		return h.storeError(r, err)
	}
	dls, next := trimPage(h, r, merchantID, dls, page.Limit, func(d deadletter.Letter) cursor { return cursor{At: &d.CreatedAt, ID: d.ID} })
	data := make([]deadLetterResponse, len(dls))
	for i, dl := range dls {
		data[i] = deadLetterJSON(dl)
	}
	writeJSON(w, http.StatusOK, listResponse[deadLetterResponse]{Object: "list", Data: data, HasMore: next != nil, NextCursor: next})
	return nil
}

func (h *Handler) getDeadLetter(w http.ResponseWriter, r *http.Request, merchantID string) *apiError {
	dl, err := h.cfg.Store.DeadLetter(r.Context(), merchantID, r.PathValue("id"))
	if err != nil {
		return h.storeError(r, err)
	}
	writeJSON(w, http.StatusOK, deadLetterJSON(dl))
	return nil
}

type replayResponse struct {
	ID          string `json:"id"`
	ReplayCount int    `json:"replay_count"`
	MsgID       string `json:"nats_msg_id"`
	Stream      string `json:"stream"`
	Sequence    uint64 `json:"stream_seq"`
}

// replayDeadLetter republishes the merchant's dead letter with deadletter.Replay: the body — and
// so the webhook-id the merchant sees — is unchanged, the Nats-Msg-Id is "<original>.replay<k>".
func (h *Handler) replayDeadLetter(w http.ResponseWriter, r *http.Request, merchantID string) *apiError {
	dl, err := h.cfg.Store.DeadLetter(r.Context(), merchantID, r.PathValue("id"))
	if err != nil {
		return h.storeError(r, err)
	}
	if !dl.Replayable() {
		return h.storeError(r, deadletter.ErrOriginalLost)
	}
	done, err := deadletter.Replay(r.Context(), h.cfg.JS, h.cfg.Store, dl)
	if errors.Is(err, deadletter.ErrNotPublished) {
		h.cfg.Log.ErrorContext(r.Context(), "replay publish failed", "dead_letter_id", dl.ID, "err", err)
		// Whatever the publish error, nothing was counted and the same request can be retried.
		return &apiError{Status: http.StatusServiceUnavailable, Code: "unavailable", RetryAfter: retryAfterUnavailable,
			Message: "could not publish the replay; retry the same request in a few seconds"}
	}
	if err != nil {
		// ErrReplayRaced is a 409: a concurrent replay took this number, and its message (same
		// Nats-Msg-Id) is the one the stream kept.
		return h.storeError(r, err)
	}
	h.cfg.Log.InfoContext(r.Context(), "dead letter replayed", "merchant_id", merchantID, "dead_letter_id", dl.ID,
		"endpoint_id", dl.EndpointID, "replay_count", done.ReplayCount, "stream_seq", done.Ack.Sequence)
	writeJSON(w, http.StatusAccepted, replayResponse{ID: dl.ID, ReplayCount: done.ReplayCount, MsgID: done.MsgID,
		Stream: done.Ack.Stream, Sequence: done.Ack.Sequence})
	return nil
}
