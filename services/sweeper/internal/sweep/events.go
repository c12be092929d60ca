package sweep

import (
	"context"
	"fmt"
	"math/big"
	"strings"

	"github.com/ctrip-pay/pipeline/shared/event"
	"github.com/ctrip-pay/pipeline/shared/fault"
	"github.com/ctrip-pay/pipeline/shared/outbox"
)

// SweepTransaction is one sweep transaction as reported in payments.swept and
// payments.sweep_failed. For a token transfer To is the treasury and ValueBaseUnits the token
// amount.
type SweepTransaction struct {
	Kind              string `json:"kind"`
	TxHash            string `json:"tx_hash"`
	From              string `json:"from"`
	To                string `json:"to"`
	Nonce             uint64 `json:"nonce"`
	ValueBaseUnits    string `json:"value_base_units"`
	BlockNumber       uint64 `json:"block_number"`
	BlockHash         string `json:"block_hash"`
	GasUsed           uint64 `json:"gas_used"`
	EffectiveGasPrice string `json:"effective_gas_price"`
	// ReplacedTxHashes are the other signed versions of this transaction (same nonce, other
	// fees), none of which was mined: set only for a re-priced transaction.
	ReplacedTxHashes []string `json:"replaced_tx_hashes,omitempty"`
}

// Swept is the data of payments.swept. SweepTransactions are the mined transactions: the
// version of each that the chain took. Status is the payment's after the sweep: swept for the
// sweep of a confirmed payment (round 0), or expired / swept for a later sweep of value left at
// the address (round > 0, or round 0 of an expired payment): partial value of a payment that
// expired short, value paid after the deadline, value paid after the sweep.
type Swept struct {
	event.Payment
	Treasury          string             `json:"treasury"`
	SweepTransactions []SweepTransaction `json:"sweep_transactions"`
	// SweepRound numbers the payment's sweeps from 0; AmountSweptBaseUnits is what this one
	// moved to the treasury and AmountSweptTotalBaseUnits what all of them moved (native sweeps
	// pay their fee from the value).
	SweepRound                int    `json:"sweep_round"`
	AmountSweptBaseUnits      string `json:"amount_swept_base_units"`
	AmountSweptTotalBaseUnits string `json:"amount_swept_total_base_units"`
	// LateBaseUnits is the value of the payment's transfers detected after its deadline;
	// ShortBaseUnits, for an expired payment, how far its confirmed value fell short of the
	// amount. Both "0" for an ordinary sweep.
	LateBaseUnits  string `json:"late_base_units"`
	ShortBaseUnits string `json:"short_base_units"`
}

// SweepFailed is the data of payments.sweep_failed; the payment stays 'confirmed'.
type SweepFailed struct {
	event.Payment
	Reason            string             `json:"reason"`
	SweepTransactions []SweepTransaction `json:"sweep_transactions"`
}

func (j *job) paymentData(status string) event.Payment {
	p := j.p
	chain := j.in.Chain
	if net, ok := j.s.Networks[p.ChainID]; ok {
		chain = net.Chain.Name
	}
	return event.NewPayment(event.PaymentRow{
		ID: p.ID, MerchantID: p.MerchantID, Status: status, ChainID: p.ChainID, Chain: chain,
		Address: p.Address, Token: p.Token, TokenContract: p.TokenContract, Decimals: p.Decimals,
		Amount: p.Amount, Received: p.Received, Confirmations: j.in.Confirmations,
		Transactions: p.Transfers, Metadata: p.Metadata, ExpiresAt: p.ExpiresAt,
	})
}

func sweepTransactions(ms []mined) []SweepTransaction {
	out := make([]SweepTransaction, 0, len(ms))
	for _, m := range ms {
		st := SweepTransaction{
			Kind: m.tx.Kind, TxHash: m.tx.Hash.Hex(), From: strings.ToLower(m.tx.From.Hex()), To: strings.ToLower(m.tx.To.Hex()),
			Nonce: m.tx.Nonce, ValueBaseUnits: m.tx.Value.String(),
		}
		for _, o := range m.others {
			st.ReplacedTxHashes = append(st.ReplacedTxHashes, o.Hash.Hex())
		}
		if r := m.receipt; r != nil {
			st.BlockNumber, st.BlockHash, st.GasUsed = r.BlockNumber.Uint64(), r.BlockHash.Hex(), r.GasUsed
			if r.EffectiveGasPrice != nil {
				st.EffectiveGasPrice = r.EffectiveGasPrice.String()
			}
		}
		out = append(out, st)
	}
	return out
}

func (s *Sweeper) markSwept(ctx context.Context, j *job, ms []mined) error {
	status, msgID := event.StatusSwept, j.p.ID+".swept"
	if j.p.Status != event.StatusConfirmed {
		status = j.p.Status // expired or swept: a sweep of value left at the address
	}
	if j.round > 0 {
		msgID = fmt.Sprintf("%s.swept.%d", j.p.ID, j.round)
	}
	moved := new(big.Int)
	for _, m := range ms {
		if m.tx.Kind != TxGasTopup {
			moved.Add(moved, m.tx.Value)
		}
	}
	total := new(big.Int).Add(orZero(j.p.Swept), moved)
	short := new(big.Int)
	if j.p.Status == event.StatusExpired && orZero(j.p.Confirmed).Cmp(j.p.Amount) < 0 {
		short.Sub(j.p.Amount, orZero(j.p.Confirmed))
	}
	data := Swept{Payment: j.paymentData(status), Treasury: strings.ToLower(j.treasury.Hex()), SweepTransactions: sweepTransactions(ms),
		SweepRound: j.round, AmountSweptBaseUnits: moved.String(), AmountSweptTotalBaseUnits: total.String(),
		LateBaseUnits: orZero(j.p.LateBaseUnits).String(), ShortBaseUnits: short.String()}
	evt, err := outbox.NewMessage(ctx, event.SubjectSwept, msgID, data)
	if err != nil {
		return fault.Transient(err)
	}
	hashes := make([]string, len(data.SweepTransactions))
	for i, st := range data.SweepTransactions {
		hashes[i] = st.Kind + " " + st.TxHash
	}
	ok, err := s.Payments.MarkSwept(ctx, Round{PaymentID: j.p.ID, Round: j.round, Swept: moved,
		Covered: orZero(j.p.Confirmed), Reason: "swept: " + strings.Join(hashes, ", "), Event: &evt})
	if err != nil {
		return fault.Transient(err)
	}
	if !ok {
		j.log.WarnContext(ctx, "funds swept but the round was recorded already or the payment stepped back; nothing changed",
			"round", j.round, "status", j.p.Status)
		return nil
	}
	s.metrics.ended(ctx, j, OutcomeSwept, "")
	j.log.InfoContext(ctx, "payment swept", "event_id", evt.EventID, "round", j.round, "status", status,
		"swept", moved.String(), "transactions", strings.Join(hashes, ", "))
	s.OutboxWake()
	return nil
}

func orZero(v *big.Int) *big.Int {
	if v == nil {
		return new(big.Int)
	}
	return v
}

func (s *Sweeper) reportFailure(ctx context.Context, j *job, f *failure, ms []mined) error {
	data := SweepFailed{Payment: j.paymentData(j.p.Status), Reason: f.Error(), SweepTransactions: sweepTransactions(ms)}
	evt, err := outbox.NewMessage(ctx, event.SubjectSweepFailed, j.p.ID+".sweep_failed", data)
	if err != nil {
		return fault.Transient(err)
	}
	if err := s.Payments.ReportFailure(ctx, evt); err != nil {
		return fault.Transient(err)
	}
	s.metrics.ended(ctx, j, OutcomeFailed, f.Code)
	s.OutboxWake()
	return nil
}

// reportMaxFee tells operators, once per waiting version, that latest cannot be re-priced within
// the chain's max_fee_gwei: payments.sweep_failed with reason max_fee_reached, the payment
// staying 'confirmed'. The sweep itself goes on waiting for a receipt (the base fee may fall)
// and ends in payments.swept as usual if one comes.
func (s *Sweeper) reportMaxFee(ctx context.Context, j *job, latest Tx, detail string) error {
	data := SweepFailed{Payment: j.paymentData(j.p.Status), Reason: ReasonMaxFeeReached + ": " + detail,
		SweepTransactions: sweepTransactions([]mined{{tx: latest}})}
	evt, err := outbox.NewMessage(ctx, event.SubjectSweepFailed, j.p.ID+".sweep_failed."+ReasonMaxFeeReached+"."+latest.Hash.Hex(), data)
	if err != nil {
		return err
	}
	if err := s.Payments.ReportFailure(ctx, evt); err != nil {
		return err
	}
	s.metrics.ended(ctx, j, OutcomeMaxFeeReached, "")
	s.OutboxWake()
	return nil
}
