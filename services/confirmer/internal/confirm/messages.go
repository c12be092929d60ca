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
		var h event.ChainHead
		if err := json.Unmarshal(msg.Data(), &h); err != nil {
			return fault.Invalid(ReasonInvalidEvent, err)
		}
		if h.ChainID != chainID {
			return fault.Invalid(ReasonInvalidEvent, fmt.Errorf("chain %d head on subject %s", h.ChainID, msg.Subject()))
		}
		return c.HandleHead(ctx, h)
	case "reorg":
		var r event.ChainReorg
		if err := json.Unmarshal(msg.Data(), &r); err != nil {
			return fault.Invalid(ReasonInvalidEvent, err)
		}
		if r.ChainID != chainID {
			return fault.Invalid(ReasonInvalidEvent, fmt.Errorf("chain %d reorg on subject %s", r.ChainID, msg.Subject()))
		}
		return c.HandleReorg(ctx, r)
	}
	c.log.WarnContext(ctx, "ignoring unexpected subject", "subject", msg.Subject())
	return nil
}

// ChainLane keeps the heads and reorgs of one chain in order.
func ChainLane(msg jetstream.Msg) string {
	parts := strings.Split(msg.Subject(), ".")
	if len(parts) > 1 {
		return parts[1]
	}
	return msg.Subject()
}
