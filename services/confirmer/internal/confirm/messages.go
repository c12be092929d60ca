package confirm

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/ctrip-pay/pipeline/shared/event"
	"github.com/ctrip-pay/pipeline/shared/fault"
)

// HandlePaymentMsg is the port of the PAYMENTS consumer (payments.detected): it decodes the
// message and hands the envelope to HandleDetected; natsbus settles the message by the error.
func (c *Confirmer) HandlePaymentMsg(ctx context.Context, msg jetstream.Msg) error {
	if msg.Subject() != event.SubjectDetected {
		// Only payments.detected is ours; the consumer's filter should not have delivered it.
		c.log.WarnContext(ctx, "ignoring unexpected subject", "subject", msg.Subject())
		return nil
	}
	var env event.Envelope
	if err := json.Unmarshal(msg.Data(), &env); err != nil {
		return fault.Invalid(ReasonInvalidEvent, err)
	}
	trace.SpanFromContext(ctx).SetAttributes(attribute.String("event_id", env.ID))
	return c.HandleDetected(ctx, env)
}

// HandleChainMsg is the port of the CHAIN consumer (chain.<id>.head, chain.<id>.reorg): it
// decodes the message and hands it to HandleHead or HandleReorg.
func (c *Confirmer) HandleChainMsg(ctx context.Context, msg jetstream.Msg) error {
	parts := strings.Split(msg.Subject(), ".")
	if len(parts) != 3 || parts[0] != "chain" {
		return fault.Invalid(ReasonInvalidEvent, fmt.Errorf("subject %q", msg.Subject()))
	}
	chainID, err := strconv.ParseInt(parts[1], 10, 64)
	if err != nil {
		return fault.Invalid(ReasonInvalidEvent, fmt.Errorf("subject %q: %w", msg.Subject(), err))
	}
	switch parts[2] {
	case "head":
		h, err := decodeChainMsg[event.ChainHead](msg, chainID, func(h event.ChainHead) int64 { return h.ChainID })
		if err != nil {
			return err
		}
		return c.HandleHead(ctx, h)
	case "reorg":
		r, err := decodeChainMsg[event.ChainReorg](msg, chainID, func(r event.ChainReorg) int64 { return r.ChainID })
		if err != nil {
			return err
		}
		return c.HandleReorg(ctx, r)
	}
	c.log.WarnContext(ctx, "ignoring unexpected subject", "subject", msg.Subject())
	return nil
}

// decodeChainMsg decodes a CHAIN message whose subject names chainID; a body about another chain
// is invalid.
func decodeChainMsg[T any](msg jetstream.Msg, chainID int64, chainOf func(T) int64) (T, error) {
	var v T
	if err := json.Unmarshal(msg.Data(), &v); err != nil {
		return v, fault.Invalid(ReasonInvalidEvent, err)
	}
	if got := chainOf(v); got != chainID {
		return v, fault.Invalid(ReasonInvalidEvent, fmt.Errorf("chain %d message on subject %s", got, msg.Subject()))
	}
	return v, nil
}

// ChainLane keeps the heads and reorgs of one chain in order.
func ChainLane(msg jetstream.Msg) string {
	parts := strings.Split(msg.Subject(), ".")
	if len(parts) > 1 {
		return parts[1]
	}
	return msg.Subject()
}
