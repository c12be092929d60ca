package rest

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/ctrip-pay/pipeline/shared/event"
)

// HeaderReplayOf marks a WEBHOOKS message republished from a dead letter (the same header the
// webhook sender's replay sets).
const HeaderReplayOf = "Ctrip-Replay-Of"

const publishTimeout = 5 * time.Second

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

func deadLetterJSON(dl DeadLetter) deadLetterResponse {
	out := deadLetterResponse{
		ID: dl.ID, Object: "dead_letter", EndpointID: dl.EndpointID, EventID: dl.EventID, EventType: dl.EventType,
		PaymentID: dl.PaymentID, Reason: dl.Reason, Deliveries: dl.Deliveries, LastError: dl.LastError,
		OriginStream: dl.OriginStream, OriginSeq: dl.OriginSeq, Replayable: replayable(dl),
		ReplayCount: dl.ReplayCount, LastReplayedAt: dl.LastReplayedAt, CreatedAt: dl.CreatedAt,
	}
	if json.Valid(dl.Body) {
		out.Event = dl.Body
	}
	return out
}

// replayable: the dead letter still has the original message (it had not aged out of WEBHOOKS
// when the dead-letter processor copied it).
func replayable(dl DeadLetter) bool { return dl.OriginSubject != "" && len(dl.Body) > 0 }

func (h *Handler) listDeadLetters(w http.ResponseWriter, r *http.Request, merchantID string) *apiError {
	if e := onlyParams(r, "limit", "cursor"); e != nil {
		return e
	}
	page, e := pageParams(r)
	if e != nil {
		return e
	}
	dls, err := h.cfg.Store.DeadLetters(r.Context(), merchantID, page.fetch())
	if err != nil {
		return h.internalError(r, err)
	}
	dls, next := trimPage(dls, page.Limit, func(d DeadLetter) cursor { return cursor{At: &d.CreatedAt, ID: d.ID} })
	data := make([]deadLetterResponse, len(dls))
	for i, dl := range dls {
		data[i] = deadLetterJSON(dl)
	}
	writeJSON(w, http.StatusOK, listResponse[deadLetterResponse]{Object: "list", Data: data, HasMore: next != nil, NextCursor: next})
	return nil
}

func (h *Handler) getDeadLetter(w http.ResponseWriter, r *http.Request, merchantID string) *apiError {
	dl, err := h.cfg.Store.DeadLetter(r.Context(), merchantID, r.PathValue("id"))
	if errors.Is(err, ErrNotFound) {
		return errNotFound
	}
	if err != nil {
		return h.internalError(r, err)
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

// replayDeadLetter republishes the original body to its WEBHOOKS subject, as the webhook
// sender's replay does: the body — and so the webhook-id the merchant sees — is unchanged; the
// Nats-Msg-Id is "<original>.replay<k>", new for every replay so the duplicate window does not
// swallow it, and the same for a retry after a failure to count it, so that one is dropped.
func (h *Handler) replayDeadLetter(w http.ResponseWriter, r *http.Request, merchantID string) *apiError {
	dl, err := h.cfg.Store.DeadLetter(r.Context(), merchantID, r.PathValue("id"))
	if errors.Is(err, ErrNotFound) {
		return errNotFound
	}
	if err != nil {
		return h.internalError(r, err)
	}
	if !replayable(dl) {
		return &apiError{Status: http.StatusConflict, Code: "original_lost",
			Message: "the original message had left the WEBHOOKS stream before it was dead-lettered; there is nothing to replay"}
	}
	m := nats.NewMsg(dl.OriginSubject)
	m.Data = dl.Body
	for _, k := range []string{event.HeaderEventType, "traceparent", "tracestate"} {
		if v, ok := dl.Headers[k]; ok {
			m.Header.Set(k, v)
		}
	}
	base := dl.Headers[event.HeaderMsgID]
	if base == "" {
		base = dl.OriginStream + "." + strconv.FormatInt(dl.OriginSeq, 10)
	}
	msgID := base + ".replay" + strconv.Itoa(dl.ReplayCount+1)
	m.Header.Set(event.HeaderMsgID, msgID)
	m.Header.Set(HeaderReplayOf, dl.ID)
	pctx, cancel := context.WithTimeout(r.Context(), publishTimeout)
	ack, err := h.cfg.JS.PublishMsg(pctx, m)
	cancel()
	if err != nil {
		h.cfg.Log.ErrorContext(r.Context(), "replay publish failed", "dead_letter_id", dl.ID, "err", err)
		// Whatever the publish error, nothing was counted and the same request can be retried.
		return &apiError{Status: http.StatusServiceUnavailable, Code: "unavailable", RetryAfter: retryAfterUnavailable,
			Message: "could not publish the replay; retry the same request in a few seconds"}
	}
	n, err := h.cfg.Store.MarkReplayed(r.Context(), dl.ID, dl.ReplayCount)
	if errors.Is(err, ErrReplayRaced) {
		// A concurrent replay took this number; its message (same Nats-Msg-Id) is the one sent.
		return &apiError{Status: http.StatusConflict, Code: "replay_conflict",
			Message: "this dead letter was replayed by a concurrent request; check replay_count and retry if needed"}
	}
	if err != nil {
		return h.internalError(r, err)
	}
	h.cfg.Log.InfoContext(r.Context(), "dead letter replayed", "merchant_id", merchantID, "dead_letter_id", dl.ID,
		"endpoint_id", dl.EndpointID, "replay_count", n, "stream_seq", ack.Sequence)
	writeJSON(w, http.StatusAccepted, replayResponse{ID: dl.ID, ReplayCount: n, MsgID: msgID, Stream: ack.Stream, Sequence: ack.Sequence})
	return nil
}
