package confirm

import (
	"context"
	"math/big"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/ctrip-pay/pipeline/shared/event"
	"github.com/ctrip-pay/pipeline/shared/natsbus"
	"github.com/ctrip-pay/pipeline/shared/outbox"
)

// PaymentData is the data of the events the confirmer publishes: event.Payment plus how the
// received value compares with the amount. Overpaid and underpaid compare
// amount_received_base_units (detected and not reorged) with amount_base_units; at most one of
// them is non-zero.
type PaymentData struct {
	event.Payment
	AmountConfirmedBaseUnits string `json:"amount_confirmed_base_units"`
	OverpaidBaseUnits        string `json:"overpaid_base_units"`
	UnderpaidBaseUnits       string `json:"underpaid_base_units"`
	Reason                   string `json:"reason,omitempty"`
}

// paymentEvent builds the outbox message for subject about st; head (0: unknown) gives the
// confirmations.
func (c *Confirmer) paymentEvent(ctx context.Context, st *PaymentState, subject, msgID string, head uint64, reason string) (outbox.Message, string, error) {
	over, under := new(big.Int), new(big.Int)
	switch diff := new(big.Int).Sub(st.Received, st.Amount); diff.Sign() {
	case 1:
		over = diff
	case -1:
		under = diff.Neg(diff)
	}
	data := PaymentData{
		Payment: event.NewPayment(event.PaymentRow{
			ID: st.ID, MerchantID: st.MerchantID, Status: st.Status, ChainID: st.ChainID, Chain: c.chains[st.ChainID].Name,
			Address: st.Address, Token: st.Token, TokenContract: st.TokenContract, Decimals: st.Decimals,
			Amount: st.Amount, Received: st.Received, Confirmations: int64(minConfirmations(st.Transfers, head)),
			Transactions: transactions(st.Transfers), Metadata: st.Metadata, ExpiresAt: st.ExpiresAt,
		}),
		AmountConfirmedBaseUnits: st.Confirmed.String(),
		OverpaidBaseUnits:        over.String(),
		UnderpaidBaseUnits:       under.String(),
		Reason:                   reason,
	}
	// The event continues the payment's trace (stored with the row by the api request that
	// created it) and links to the span that caused it (a chain head, a reorg, the expiry pass).
	parent := ctx
	if st.TraceContext != nil {
		carrier := nats.Header{}
		for k, v := range st.TraceContext {
			carrier.Set(k, v)
		}
		parent = natsbus.Extract(context.Background(), carrier)
	}
	pctx, span := c.tracer.Start(parent, "confirmer publish "+subject, trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithLinks(trace.LinkFromContext(ctx)), trace.WithAttributes(attribute.String("payment.id", st.ID)))
	defer span.End()
	m, err := outbox.NewMessage(pctx, subject, msgID, data)
	if err != nil {
		return outbox.Message{}, "", err
	}
	span.SetAttributes(attribute.String("event_id", m.EventID))
	return m, m.EventID, nil
}

// minConfirmations is the confirmations of the least confirmed counted transfer at head.
func minConfirmations(ts []Transfer, head uint64) uint64 {
	if head == 0 {
		return 0
	}
	var out uint64
	first := true
	for _, t := range ts {
		if t.Status != event.TransferConfirmed {
			continue
		}
		if n := confirmations(head, t.BlockNumber); first || n < out {
			out, first = n, false
		}
	}
	return out
}

func transactions(ts []Transfer) []event.Transaction {
	out := make([]event.Transaction, 0, len(ts))
	for _, t := range ts {
		li := t.LogIndex
		out = append(out, event.Transaction{
			TxHash: t.TxHash, LogIndex: &li, BlockNumber: t.BlockNumber, BlockHash: t.BlockHash,
			ValueBaseUnits: t.Value.String(), Status: t.Status,
		})
	}
	return out
}

// byPayment groups transfers by payment, keeping the order of first appearance.
func byPayment(ts []Transfer) [][]Transfer {
	idx := map[string]int{}
	var out [][]Transfer
	for _, t := range ts {
		i, ok := idx[t.PaymentID]
		if !ok {
			i = len(out)
			idx[t.PaymentID] = i
			out = append(out, nil)
		}
		out[i] = append(out[i], t)
	}
	return out
}
