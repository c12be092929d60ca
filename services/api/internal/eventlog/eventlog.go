// Package eventlog completes the api's event log with the events it does not write itself.
// The api, the confirmer and the sweeper write their events to the outbox table, which keeps
// them; the scanner publishes payments.detected straight to PAYMENTS (catching up, a round
// trip to Postgres per batch of events would cost it a fifth of its rate). The api's durable
// consumer api-events copies each of those into the outbox as a published row, with its owner,
// so GET /v1/payments/{id}/events and endpoint replays read every merchant-visible event from
// one table. A redelivered event is kept once (the row's Nats-Msg-Id is unique).
package eventlog

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/ctrip-pay/pipeline/shared/event"
	"github.com/ctrip-pay/pipeline/shared/fault"
	"github.com/ctrip-pay/pipeline/shared/natsbus"
)

// Durable is the consumer's name on PAYMENTS.
const Durable = "api-events"

// Event is one event to keep: the message as published and its owner.
type Event struct {
	Subject, MsgID, EventType string
	MerchantID, PaymentID     string
	Body                      []byte
}

// Store keeps events as published outbox rows; an event already kept stays as it is.
type Store interface {
	LogEvents(ctx context.Context, events []Event) error
}

// Logger is the consumer's handler.
type Logger struct{ Store Store }

// HandleBatch keeps the batch's events in one statement. A message that is not a payment event
// (no Nats-Msg-Id, not an envelope of its subject's type, no payment or merchant id) is
// terminated with the reason: it can never be kept.
func (l Logger) HandleBatch(ctx context.Context, batch []natsbus.BatchItem) []error {
	errs := make([]error, len(batch))
	events := make([]Event, 0, len(batch))
	kept := make([]int, 0, len(batch))
	for i, it := range batch {
		e, err := decode(it.Msg.Subject(), it.Msg.Headers().Get(event.HeaderMsgID), it.Msg.Data())
		if err != nil {
			errs[i] = fault.Invalid("invalid_event", err)
			continue
		}
		events = append(events, e)
		kept = append(kept, i)
	}
	if len(events) == 0 {
		return errs
	}
	if err := l.Store.LogEvents(ctx, events); err != nil {
		for _, i := range kept {
			errs[i] = fault.Transient(err)
		}
	}
	return errs
}

// decode checks a message at the edge for what the event log (and Postgres' text columns)
// needs.
func decode(subject, msgID string, body []byte) (Event, error) {
	var env struct {
		ID   string `json:"id"`
		Type string `json:"type"`
		Data struct {
			PaymentID  string `json:"payment_id"`
			MerchantID string `json:"merchant_id"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &env); err != nil {
		return Event{}, fmt.Errorf("not an event envelope: %w", err)
	}
	switch want := event.TypeForSubject(subject); {
	case msgID == "":
		return Event{}, errors.New("no " + event.HeaderMsgID + " header")
	case !strings.HasPrefix(env.ID, "evt_"):
		return Event{}, fmt.Errorf("event id %q", env.ID)
	case env.Type != want:
		return Event{}, fmt.Errorf("event type %q on %s, want %q", env.Type, subject, want)
	case env.Data.PaymentID == "" || env.Data.MerchantID == "":
		return Event{}, errors.New("no data.payment_id or data.merchant_id")
	}
	for _, s := range []string{msgID, env.Data.PaymentID, env.Data.MerchantID} {
		if !utf8.ValidString(s) || strings.ContainsRune(s, 0) || len(s) > 512 {
			return Event{}, fmt.Errorf("%q is not a valid id", s)
		}
	}
	return Event{Subject: subject, MsgID: msgID, EventType: env.Type, MerchantID: env.Data.MerchantID, PaymentID: env.Data.PaymentID, Body: body}, nil
}
