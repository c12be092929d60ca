package rest

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ctrip-pay/pipeline/shared/event"
	"github.com/ctrip-pay/pipeline/shared/natsbus"
	"github.com/ctrip-pay/pipeline/streams"
)

// TestEventType is the type of the event POST /v1/endpoints/{id}/test sends. It is never a
// payment event: no payment, no subscription filter, one endpoint.
const TestEventType = "endpoint.test"

// deliverSubjectPrefix + endpoint id is the WEBHOOKS subject of one delivery (DESIGN.md).
const deliverSubjectPrefix = "webhooks.deliver."

// maxStatusHistory bounds the status history in one answer: a payment changes status a handful
// of times (each reorg adds two changes).
const maxStatusHistory = 100

// Replay bounds: at most maxReplayLimit events per request (the rest is one more request away,
// from next_since).
const (
	defaultReplayLimit = 1000
	maxReplayLimit     = 1000
)

type statusChangeResponse struct {
	From    string    `json:"from"`
	To      string    `json:"to"`
	Reason  string    `json:"reason"`
	EventID *string   `json:"event_id"`
	At      time.Time `json:"at"`
}

type deliverySummaryResponse struct {
	EndpointID      string    `json:"endpoint_id"`
	Attempts        int       `json:"attempts"`
	Delivered       bool      `json:"delivered"`
	LastStatusCode  *int      `json:"last_status_code"`
	LastError       *string   `json:"last_error"`
	LastAttemptedAt time.Time `json:"last_attempted_at"`
}

type paymentEventResponse struct {
	ID          string                    `json:"id"`
	Type        string                    `json:"type"`
	Timestamp   time.Time                 `json:"timestamp"`
	Data        json.RawMessage           `json:"data"`
	PublishedAt *time.Time                `json:"published_at"`
	Deliveries  []deliverySummaryResponse `json:"deliveries"`
}

type paymentEventsResponse struct {
	Object        string                 `json:"object"`
	PaymentID     string                 `json:"payment_id"`
	Status        string                 `json:"status"`
	StatusHistory []statusChangeResponse `json:"status_history"`
	Data          []paymentEventResponse `json:"data"`
	HasMore       bool                   `json:"has_more"`
	NextCursor    *string                `json:"next_cursor"`
}

// listPaymentEvents answers the payment's status history and the events written for it (the
// outbox keeps each one's envelope as published), with a summary of their deliveries to the
// merchant's endpoints. Events are paginated; the history comes whole on every page.
func (h *Handler) listPaymentEvents(w http.ResponseWriter, r *http.Request, merchantID string) *apiError {
	page, e := h.pageParams(r, merchantID)
	if e != nil {
		return e
	}
	p, err := h.cfg.Store.Payment(r.Context(), merchantID, r.PathValue("id"))
	if err != nil {
		return h.storeError(r, err)
	}
	changes, err := h.cfg.Store.StatusChanges(r.Context(), p.ID, maxStatusHistory)
	if err != nil {
		return h.storeError(r, err)
	}
	evs, err := h.cfg.Store.PaymentEvents(r.Context(), p.ID, page.fetch())
	if err != nil {
		return h.storeError(r, err)
	}
	evs, next := trimPage(h, r, merchantID, evs, page.Limit, func(e StoredEvent) cursor { return cursor{Seq: e.Seq} })

	out := paymentEventsResponse{Object: "payment_events", PaymentID: p.ID, Status: p.Status,
		StatusHistory: make([]statusChangeResponse, len(changes)), Data: make([]paymentEventResponse, 0, len(evs)),
		HasMore: next != nil, NextCursor: next}
	for i, c := range changes {
		out.StatusHistory[i] = statusChangeResponse{From: c.From, To: c.To, Reason: c.Reason, EventID: c.EventID, At: c.At}
	}
	ids := make([]string, 0, len(evs))
	for _, ev := range evs {
		var env event.Envelope
		if err := json.Unmarshal(ev.Payload, &env); err != nil || env.Validate() != nil {
			// Every payload is an envelope one of our services wrote; one that is not is logged
			// rather than failing the payment's whole history.
			h.cfg.Log.WarnContext(r.Context(), "outbox row is not an event envelope", "payment_id", p.ID, "outbox_id", ev.Seq)
			continue
		}
		ids = append(ids, env.ID)
		out.Data = append(out.Data, paymentEventResponse{ID: env.ID, Type: env.Type, Timestamp: env.Timestamp.UTC(),
			Data: env.Data, PublishedAt: ev.PublishedAt, Deliveries: []deliverySummaryResponse{}})
	}
	sums, err := h.cfg.Store.DeliverySummaries(r.Context(), merchantID, p.ID, ids)
	if err != nil {
		return h.storeError(r, err)
	}
	for _, s := range sums {
		i := slices.IndexFunc(out.Data, func(e paymentEventResponse) bool { return e.ID == s.EventID })
		if i < 0 {
			continue
		}
		out.Data[i].Deliveries = append(out.Data[i].Deliveries, deliverySummaryResponse{EndpointID: s.EndpointID,
			Attempts: s.Attempts, Delivered: s.Delivered, LastStatusCode: s.LastStatusCode, LastError: s.LastError,
			LastAttemptedAt: s.LastAttemptedAt})
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// errEndpointDisabled answers a test or a replay to a disabled endpoint: the deliverer would
// terminate every message (and dead-letter it), so nothing is sent.
var errEndpointDisabled = &apiError{Status: http.StatusConflict, Code: "endpoint_disabled",
	Message: "the endpoint is disabled; re-enable it with PATCH {\"enabled\": true} first"}

// enabledEndpoint loads the merchant's endpoint for a test or a replay.
func (h *Handler) enabledEndpoint(r *http.Request, merchantID string) (Endpoint, *apiError) {
	ep, err := h.cfg.Store.Endpoint(r.Context(), merchantID, r.PathValue("id"))
	if err != nil {
		return ep, h.storeError(r, err)
	}
	if !ep.Enabled {
		return ep, errEndpointDisabled
	}
	return ep, nil
}

// deliveryMsg is the WEBHOOKS message of one delivery of body to the endpoint, as the
// webhook-sender's fan-out builds it, with the request's trace context.
func deliveryMsg(r *http.Request, endpointID, eventType, msgID string, body []byte) *nats.Msg {
	m := nats.NewMsg(deliverSubjectPrefix + endpointID)
	m.Data = body
	m.Header.Set(event.HeaderMsgID, msgID)
	m.Header.Set(event.HeaderEventType, eventType)
	natsbus.Inject(r.Context(), m.Header)
	return m
}

type testEventData struct {
	EndpointID string `json:"endpoint_id"`
	MerchantID string `json:"merchant_id"`
	Message    string `json:"message"`
}

type endpointTestResponse struct {
	Object     string `json:"object"`
	EndpointID string `json:"endpoint_id"`
	EventID    string `json:"event_id"`
	EventType  string `json:"event_type"`
}

// testEndpoint sends the endpoint a signed endpoint.test event through WEBHOOKS, so it is
// signed, retried and recorded like every delivery. Nats-Msg-Id <event_id>.<endpoint_id>, as
// the fan-out's: each request is a fresh event.
func (h *Handler) testEndpoint(w http.ResponseWriter, r *http.Request, merchantID string) *apiError {
	if e := onlyParams(r); e != nil {
		return e
	}
	if e := decode(w, r, &struct{}{}, true); e != nil {
		return e
	}
	ep, e := h.enabledEndpoint(r, merchantID)
	if e != nil {
		return e
	}
	env, err := event.New(TestEventType, testEventData{EndpointID: ep.ID, MerchantID: merchantID,
		Message: "test event sent with POST /v1/endpoints/" + ep.ID + "/test"})
	if err != nil {
		return h.internalError(r, err)
	}
	body, err := json.Marshal(env)
	if err != nil {
		return h.internalError(r, err)
	}
	m := deliveryMsg(r, ep.ID, env.Type, env.ID+"."+ep.ID, body)
	if _, err := h.cfg.JS.PublishMsg(r.Context(), m, jetstream.WithExpectStream(streams.Webhooks)); err != nil {
		return h.internalError(r, fmt.Errorf("publish test event: %w", err))
	}
	h.cfg.Log.InfoContext(r.Context(), "endpoint test event sent", "merchant_id", merchantID, "endpoint_id", ep.ID, "event_id", env.ID)
	writeJSON(w, http.StatusAccepted, endpointTestResponse{Object: "endpoint_test", EndpointID: ep.ID, EventID: env.ID, EventType: env.Type})
	return nil
}

type replayEndpointRequest struct {
	Since *string `json:"since"`
	Limit *int    `json:"limit"`
}

type endpointReplayResponse struct {
	Object     string     `json:"object"`
	EndpointID string     `json:"endpoint_id"`
	Since      time.Time  `json:"since"`
	Replayed   int        `json:"replayed"`
	Duplicates int        `json:"duplicates"`
	HasMore    bool       `json:"has_more"`
	NextSince  *time.Time `json:"next_since"`
}

// replayEndpoint resends the endpoint every event since a time that it would have received:
// its merchant's published events of the types the fan-out delivers and the endpoint
// subscribes to (its filter as it is now), written since the endpoint was created. Each goes
// out with its original body, so with the original webhook-id, under Nats-Msg-Id
// <event_id>.<endpoint_id>.replay.<since, unix ns>: not a duplicate of the original delivery,
// but the same request retried within WEBHOOKS' 10-minute duplicate window is dropped rather
// than delivered twice (counted in duplicates).
func (h *Handler) replayEndpoint(w http.ResponseWriter, r *http.Request, merchantID string) *apiError {
	if e := onlyParams(r); e != nil {
		return e
	}
	var req replayEndpointRequest
	if e := decode(w, r, &req, false); e != nil {
		return e
	}
	since, e := h.replaySince(r, req.Since)
	if e != nil {
		return e
	}
	limit := defaultReplayLimit
	if req.Limit != nil {
		if *req.Limit < 1 || *req.Limit > maxReplayLimit {
			return invalid("limit", "invalid_limit", "must be an integer from 1 to "+strconv.Itoa(maxReplayLimit))
		}
		limit = *req.Limit
	}
	ep, e := h.enabledEndpoint(r, merchantID)
	if e != nil {
		return e
	}
	subjects, err := h.fanoutSubjects(ep.EventTypes)
	if err != nil {
		return h.internalError(r, err)
	}
	from := since
	if ep.CreatedAt.After(from) {
		from = ep.CreatedAt
	}
	evs, err := h.cfg.Store.MerchantEvents(r.Context(), merchantID, from, subjects, limit+1)
	if err != nil {
		return h.storeError(r, err)
	}
	out := endpointReplayResponse{Object: "endpoint_replay", EndpointID: ep.ID, Since: since}
	if len(evs) > limit {
		out.HasMore, out.NextSince = true, &evs[limit].CreatedAt
		evs = evs[:limit]
	}
	tag := ".replay." + strconv.FormatInt(since.UnixNano(), 10)
	for _, ev := range evs {
		var env event.Envelope
		if err := json.Unmarshal(ev.Payload, &env); err != nil || env.Validate() != nil {
			h.cfg.Log.WarnContext(r.Context(), "outbox row is not an event envelope; not replayed", "outbox_id", ev.Seq)
			continue
		}
		m := deliveryMsg(r, ep.ID, env.Type, env.ID+"."+ep.ID+tag, ev.Payload)
		ack, err := h.cfg.JS.PublishMsg(r.Context(), m, jetstream.WithExpectStream(streams.Webhooks))
		if err != nil {
			// What was published stays published; the same request retried republishes it into
			// the duplicate window, where it is dropped.
			h.cfg.Log.ErrorContext(r.Context(), "endpoint replay publish failed", "endpoint_id", ep.ID,
				"replayed", out.Replayed, "err", err)
			return &apiError{Status: http.StatusServiceUnavailable, Code: "unavailable", RetryAfter: retryAfterUnavailable,
				Message: fmt.Sprintf("could not publish the replay after %d events; retry the same request in a few seconds", out.Replayed+out.Duplicates)}
		}
		if ack.Duplicate {
			out.Duplicates++
		} else {
			out.Replayed++
		}
	}
	h.cfg.Log.InfoContext(r.Context(), "endpoint replayed", "merchant_id", merchantID, "endpoint_id", ep.ID,
		"since", since, "replayed", out.Replayed, "duplicates", out.Duplicates, "has_more", out.HasMore)
	writeJSON(w, http.StatusAccepted, out)
	return nil
}

// replaySince validates since: required, RFC 3339, not in the future, and within the PAYMENTS
// stream's retention (the event log's horizon, DESIGN.md: 30 days).
func (h *Handler) replaySince(r *http.Request, v *string) (time.Time, *apiError) {
	const field = "since"
	if v == nil || *v == "" {
		return time.Time{}, invalid(field, "invalid_since", "is required: an RFC 3339 time such as 2026-11-28T20:14:26Z")
	}
	since, err := time.Parse(time.RFC3339Nano, *v)
	if err != nil {
		return time.Time{}, invalid(field, "invalid_since", "must be an RFC 3339 time such as 2026-11-28T20:14:26Z")
	}
	since = since.UTC()
	now := time.Now()
	if since.After(now) {
		return time.Time{}, invalid(field, "invalid_since", "must not be in the future")
	}
	retention, err := paymentsRetention()
	if err != nil {
		return time.Time{}, h.internalError(r, err)
	}
	if since.Before(now.Add(-retention)) {
		return time.Time{}, invalid(field, "invalid_since",
			fmt.Sprintf("must be within the last %d days (the event log's retention)", int(retention/(24*time.Hour))))
	}
	return since, nil
}

// paymentsRetention is the PAYMENTS stream's MaxAge, from its definition.
func paymentsRetention() (time.Duration, error) {
	s, err := streams.Stream(streams.Payments)
	if err != nil {
		return 0, err
	}
	if s.MaxAge <= 0 {
		return 0, errors.New("rest: the PAYMENTS stream has no MaxAge")
	}
	return s.MaxAge, nil
}

// fanoutSubjects are the PAYMENTS subjects the webhook-sender's fan-out delivers (its
// consumer's filter), narrowed to the endpoint's event types (none: all of them).
func (h *Handler) fanoutSubjects(eventTypes []string) ([]string, error) {
	c, err := streams.Consumer(streams.Payments, "webhook-fanout")
	if err != nil {
		return nil, err
	}
	subjects := c.FilterSubjects
	if c.FilterSubject != "" {
		subjects = append(subjects, c.FilterSubject)
	}
	out := make([]string, 0, len(subjects))
	for _, s := range subjects {
		if len(eventTypes) == 0 || slices.Contains(eventTypes, event.TypeForSubject(s)) {
			out = append(out, s)
		}
	}
	return out, nil
}
