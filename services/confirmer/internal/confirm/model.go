// Package confirm is the confirmer: it owns payment status (except swept) and the status of
// every transfer. It turns payments.detected, chain.<id>.head and chain.<id>.reorg into guarded
// status transitions, each with an audit row and, where the merchant must hear of it, an event
// written to the outbox in the same transaction.
package confirm

import (
	"context"
	"errors"
	"math/big"

	"github.com/ctrip-pay/pipeline/shared/event"
	"github.com/ctrip-pay/pipeline/shared/outbox"
)

// counts reports whether a transfer in this status is part of the received value.
func counts(status string) bool {
	return status == event.TransferDetected || status == event.TransferConfirmed
}

// Payment is a payments row.
type Payment struct {
	event.PaymentCore
	// TraceContext is the W3C trace context (traceparent, tracestate) of the payment's first
	// detection: the events the confirmer publishes continue that trace. Nil until detected.
	TraceContext map[string]string
}

// TransferKey identifies a transfer: log index -1 is a native transfer.
type TransferKey struct {
	ChainID  int64
	TxHash   string
	LogIndex int64
}

// Transfer is a payment_transfers row.
type Transfer struct {
	TransferKey
	PaymentID     string
	TokenContract *string
	Value         *big.Int
	BlockNumber   uint64
	BlockHash     string
	Status        string
	// ReorgReported: a reorged transfer already named in a payments.reorged event.
	ReorgReported bool
	// Address is the payment's deposit address (loaded with candidates for verification).
	Address string
}

// PaymentState is a payment and all its transfers, loaded under the payment's row lock.
type PaymentState struct {
	Payment
	Transfers []Transfer
	// TimesConfirmed counts earlier transitions to confirmed (a reorg can undo one).
	TimesConfirmed int
}

func (st *PaymentState) transfer(k TransferKey) *Transfer {
	for i := range st.Transfers {
		if st.Transfers[i].TransferKey == k {
			return &st.Transfers[i]
		}
	}
	return nil
}

// totals are the received (not reorged, not failed) and confirmed sums of the transfers.
func (st *PaymentState) totals() (received, confirmed *big.Int) {
	received, confirmed = new(big.Int), new(big.Int)
	for _, t := range st.Transfers {
		if counts(t.Status) {
			received.Add(received, t.Value)
		}
		if t.Status == event.TransferConfirmed {
			confirmed.Add(confirmed, t.Value)
		}
	}
	return received, confirmed
}

// Changes is what one update writes, in one transaction. Every write is guarded by the state
// it was decided on; the store fails with ErrConflict if that state changed underneath.
type Changes struct {
	// Record inserts a transfer the scanner reported, or revives a reorged one that is
	// canonical again (in the block the event names).
	Record *Transfer
	// Transfers are status changes, guarded by the loaded status and block hash.
	Transfers []TransferUpdate
	// Received and Confirmed are the new totals, nil when unchanged.
	Received, Confirmed *big.Int
	// Transitions are the payment's status changes in order, each guarded by its From.
	Transitions []Transition
	// Events go to the outbox.
	Events []outbox.Message
	// TraceContext is stored if the payment has none yet.
	TraceContext map[string]string
}

// IsZero reports whether there is nothing to write.
func (c Changes) IsZero() bool {
	return c.Record == nil && len(c.Transfers) == 0 && c.Received == nil && c.Confirmed == nil &&
		len(c.Transitions) == 0 && len(c.Events) == 0 && c.TraceContext == nil
}

// TransferUpdate moves one transfer From → To.
type TransferUpdate struct {
	Key           TransferKey
	From          string
	BlockHash     string
	To            string
	ReorgReported bool
}

// Transition is a guarded status change of the payment, recorded in payment_status_changes.
type Transition struct {
	From, To string
	Reason   string
	EventID  string
}

// PaymentStore runs updates of one payment under its row lock and finds payments due to
// expire.
type PaymentStore interface {
	// UpdatePayment loads the payment with its transfers under a row lock, calls decide and
	// writes the changes it returns in the same transaction. ErrUnknownPayment if there is no
	// such payment.
	UpdatePayment(ctx context.Context, paymentID string, decide func(*PaymentState) (Changes, error)) error
	// DueForExpiry lists payments still pending or detected, past expires_at, with less than
	// the amount received.
	DueForExpiry(ctx context.Context, limit int) ([]string, error)
}

// TransferFinder finds transfers to verify.
type TransferFinder interface {
	// ToConfirm lists the chain's detected transfers in blocks at or below maxBlock.
	ToConfirm(ctx context.Context, chainID int64, maxBlock uint64) ([]Transfer, error)
	// Above lists the chain's transfers in blocks above block, whatever their status.
	Above(ctx context.Context, chainID int64, block uint64) ([]Transfer, error)
}

// Store errors.
var (
	ErrUnknownPayment = errors.New("unknown payment")
	// ErrConflict: the rows changed between load and write; retrying decides again.
	ErrConflict = errors.New("concurrent change")
)

// Codes of the messages the confirmer terminates (the reason is "<code>: <detail>").
const (
	ReasonInvalidEvent   = "invalid_event"
	ReasonUnknownPayment = "unknown_payment"
	ReasonUnknownChain   = "unknown_chain"
)
