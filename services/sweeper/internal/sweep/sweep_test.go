package sweep_test

import (
	"context"
	"encoding/json"
	"errors"
	"math/big"
	"strings"
	"sync"
	"testing"

	"github.com/ethereum/go-ethereum/common"

	"github.com/ctrip-pay/pipeline/services/sweeper/internal/sweep"
	"github.com/ctrip-pay/pipeline/shared/event"
	"github.com/ctrip-pay/pipeline/shared/fault"
	"github.com/ctrip-pay/pipeline/shared/testkit/chaintest"
)

var errCrash = errors.New("simulated crash")

// crashLedger stops the sweep with errCrash right after the n-th time it reaches step:
// "record" (signed and committed, nothing sent), or a status the sweep writes after the fact
// ("broadcast": the node has the transaction; "mined": it has a receipt).
type crashLedger struct {
	sweep.Ledger
	step    string
	n       int
	seen    map[string]int
	crashed bool
}

func (l *crashLedger) hit(step string) bool {
	l.seen[step]++
	if !l.crashed && step == l.step && l.seen[step] == l.n {
		l.crashed = true
		return true
	}
	return false
}

func (l *crashLedger) Record(ctx context.Context, paymentID string, chainID int64, drafts []sweep.Draft) ([]sweep.Tx, error) {
	txs, err := l.Ledger.Record(ctx, paymentID, chainID, drafts)
	if err == nil && l.hit("record") {
		return nil, errCrash
	}
	return txs, err
}

func (l *crashLedger) SetStatus(ctx context.Context, id, status, errText string) error {
	if l.hit(status) {
		return errCrash
	}
	return l.Ledger.SetStatus(ctx, id, status, errText)
}

// crashPayments fails the confirmed → swept commit once: every transaction is mined, nothing
// says so in payments.
type crashPayments struct {
	sweep.Payments
	crashed bool
}

func (p *crashPayments) MarkSwept(ctx context.Context, r sweep.Round) (bool, error) {
	if !p.crashed {
		p.crashed = true
		return false, errCrash
	}
	return p.Payments.MarkSwept(ctx, r)
}

// A crash at any step of a sweep, followed by a redelivery, ends with exactly one transaction
// of each kind on chain — the recorded one — the funds in the treasury and one payments.swept.
func TestCrashAtAnyStepSweepsOnce(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	tokenAmount := big.NewInt(1_234_560_000) // 1234.56 with 6 decimals
	ethAmount := new(big.Int).Div(mul(ether, 125), big.NewInt(10))

	for _, tc := range []struct {
		name  string
		token bool
		step  string
		n     int
	}{
		{"native/after record, before broadcast", false, "record", 1},
		{"native/after broadcast", false, sweep.StatusBroadcast, 1},
		{"native/after mined", false, sweep.StatusMined, 1},
		{"native/before swept commit", false, "swept", 1},
		{"token/after record, before broadcast", true, "record", 1},
		{"token/after top-up broadcast", true, sweep.StatusBroadcast, 1},
		{"token/after top-up mined", true, sweep.StatusMined, 1},
		{"token/after token broadcast", true, sweep.StatusBroadcast, 2},
		{"token/after token mined", true, sweep.StatusMined, 2},
		{"token/before swept commit", true, "swept", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var p payment
			if tc.token {
				p = w.paidTokenPayment(t, tokenAmount)
			} else {
				p = w.newPayment(t, nil, ethAmount)
				w.fundETH(t, p.Deposit, ethAmount)
			}
			depositETH := w.chain.BalanceAt(p.Deposit)
			tankNonce := w.nonce(t, w.gasTank.Address)

			crashing := w.sweeper(p.Treasury)
			if tc.step == "swept" {
				crashing.Payments = &crashPayments{Payments: w.store}
			} else {
				crashing.Ledger = &crashLedger{Ledger: w.store, step: tc.step, n: tc.n, seen: map[string]int{}}
			}
			if err := crashing.Sweep(ctx, p.Body); !errors.Is(err, errCrash) {
				t.Fatalf("first delivery: %v, want the simulated crash", err)
			}
			if got := w.status(t, p.ID); got != "confirmed" {
				t.Fatalf("status after crash %s", got)
			}
			if tc.step == "record" {
				// Signed and recorded, nothing sent.
				if n := w.pendingNonce(t, p.Deposit); n != 0 {
					t.Fatalf("deposit pending nonce %d after a crash before broadcast", n)
				}
				if n := w.pendingNonce(t, w.gasTank.Address); n != tankNonce {
					t.Fatalf("gas tank pending nonce %d, was %d", n, tankNonce)
				}
				for _, tx := range w.sweeps(t, p.ID) {
					if tx.Status != sweep.StatusSigned {
						t.Fatalf("%s recorded as %s", tx.Kind, tx.Status)
					}
				}
			}
			recorded := w.sweeps(t, p.ID)

			// The redelivery, handled by a fresh sweeper (a restarted process).
			if err := w.sweeper(p.Treasury).Sweep(ctx, p.Body); err != nil {
				t.Fatalf("redelivery: %v", err)
			}
			if got := w.status(t, p.ID); got != "swept" {
				t.Fatalf("status %s, want swept", got)
			}
			txs := w.sweeps(t, p.ID)
			wantKinds := []string{sweep.TxNative}
			if tc.token {
				wantKinds = []string{sweep.TxGasTopup, sweep.TxToken}
			}
			if len(txs) != len(wantKinds) {
				t.Fatalf("%d sweep rows, want %v", len(txs), wantKinds)
			}
			for i, tx := range txs {
				if tx.Kind != wantKinds[i] || tx.Status != sweep.StatusMined {
					t.Errorf("row %d: %s %s, want %s mined", i, tx.Kind, tx.Status, wantKinds[i])
				}
				if len(recorded) > 0 && tx.Hash != recorded[i].Hash {
					t.Errorf("%s: mined %s, recorded before the crash %s", tx.Kind, tx.Hash.Hex(), recorded[i].Hash.Hex())
				}
				if r := w.receipt(t, tx.Hash); r.Status != 1 {
					t.Errorf("%s reverted", tx.Kind)
				}
			}
			// One transaction from the deposit address ever, and at most one from the tank.
			if n := w.nonce(t, p.Deposit); n != 1 {
				t.Errorf("deposit address sent %d transactions", n)
			}
			wantTank := tankNonce
			if tc.token {
				wantTank++
			}
			if n := w.nonce(t, w.gasTank.Address); n != wantTank {
				t.Errorf("gas tank nonce %d, want %d", n, wantTank)
			}

			if tc.token {
				topup, token := txs[0], txs[1]
				tokenTx := decodeTx(t, token.Raw)
				if got := w.chain.TokenBalance(w.token, p.Treasury); got.Cmp(tokenAmount) != 0 {
					t.Errorf("treasury holds %s, want %s", got, tokenAmount)
				}
				if got := w.chain.TokenBalance(w.token, p.Deposit); got.Sign() != 0 {
					t.Errorf("deposit still holds %s", got)
				}
				// Exactly the gas the transfer may cost at its fee cap, the deposit holding none.
				if need := mul(tokenTx.GasFeeCap(), tokenTx.Gas()); topup.Value.Cmp(need) != 0 {
					t.Errorf("top-up %s, want gas %d × fee cap %s = %s", topup.Value, tokenTx.Gas(), tokenTx.GasFeeCap(), need)
				}
				r := w.receipt(t, token.Hash)
				spent := mul(r.EffectiveGasPrice, r.GasUsed)
				if got, want := w.chain.BalanceAt(p.Deposit), sub(topup.Value, spent); got.Cmp(want) != 0 {
					t.Errorf("deposit keeps %s wei, want top-up − fee = %s", got, want)
				}
			} else {
				native := txs[0]
				tx := decodeTx(t, native.Raw)
				want := sub(depositETH, mul(tx.GasFeeCap(), tx.Gas()))
				if native.Value.Cmp(want) != 0 || tx.Value().Cmp(want) != 0 || tx.Gas() != 21000 {
					t.Errorf("swept %s (gas %d), want balance − 21000 × fee cap = %s", native.Value, tx.Gas(), want)
				}
				if got := w.chain.BalanceAt(p.Treasury); got.Cmp(want) != 0 {
					t.Errorf("treasury got %s, want %s", got, want)
				}
				r := w.receipt(t, native.Hash)
				left := sub(sub(depositETH, want), mul(r.EffectiveGasPrice, r.GasUsed))
				if got := w.chain.BalanceAt(p.Deposit); got.Cmp(left) != 0 {
					t.Errorf("deposit keeps %s, want the unspent fee %s", got, left)
				}
			}

			var data sweep.Swept
			w.onlyEvent(t, event.SubjectSwept, p.ID, &data)
			if data.Status != "swept" || data.PaymentID != p.ID || len(data.SweepTransactions) != len(txs) {
				t.Fatalf("swept event %+v", data)
			}
			for i, st := range data.SweepTransactions {
				if st.TxHash != txs[i].Hash.Hex() || st.Kind != txs[i].Kind || st.GasUsed == 0 {
					t.Errorf("event transaction %d: %+v", i, st)
				}
			}
			var audits int
			if err := w.db.Get(&audits, `SELECT count(*) FROM payment_status_changes WHERE payment_id = $1
				AND from_status = 'confirmed' AND to_status = 'swept'`, p.ID); err != nil || audits != 1 {
				t.Errorf("%d audit rows (%v)", audits, err)
			}

			// A later redelivery changes nothing.
			if err := w.sweeper(p.Treasury).Sweep(ctx, p.Body); err != nil {
				t.Fatal(err)
			}
			if n := len(w.sweeps(t, p.ID)); n != len(txs) || w.nonce(t, p.Deposit) != 1 || len(w.outbox(t, event.SubjectSwept, p.ID)) != 1 {
				t.Errorf("redelivery after swept: %d rows, deposit nonce %d", n, w.nonce(t, p.Deposit))
			}
		})
	}
}

// Sweeps that cannot succeed are reported once as payments.sweep_failed; the payment stays
// confirmed and nothing is signed.
func TestUnsweepablePaymentsAreReported(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	amount := big.NewInt(5_000_000)
	for _, tc := range []struct {
		name  string
		token bool
		setup func(t *testing.T, p payment, s *sweep.Sweeper)
		code  string
	}{
		{"dust: balance below the fee", false, func(t *testing.T, p payment, _ *sweep.Sweeper) {
			w.fundETH(t, p.Deposit, big.NewInt(1000))
		}, "dust"},
		{"nothing to sweep", false, nil, "empty"},
		{"treasury contract refuses ether", false, func(t *testing.T, p payment, s *sweep.Sweeper) {
			w.fundETH(t, p.Deposit, ether)
			n := s.Networks[chainID]
			n.Chain.Treasury = strings.ToLower(w.token.Hex()) // a contract with no receive function
			s.Networks[chainID] = n
		}, "treasury_rejects"},
		{"no treasury", false, func(t *testing.T, p payment, s *sweep.Sweeper) {
			w.fundETH(t, p.Deposit, ether)
			n := s.Networks[chainID]
			n.Chain.Treasury = ""
			s.Networks[chainID] = n
		}, "no_treasury"},
		{"chain not configured", false, func(t *testing.T, p payment, s *sweep.Sweeper) {
			delete(s.Networks, chainID)
		}, "chain_not_configured"},
		{"deposit address from another wallet", false, func(t *testing.T, p payment, _ *sweep.Sweeper) {
			other := chaintest.NewAccount("not ours " + p.ID).Address
			w.fundETH(t, p.Deposit, ether)
			if _, err := w.db.Exec(`UPDATE payments SET address = $2 WHERE id = $1`, p.ID, strings.ToLower(other.Hex())); err != nil {
				t.Fatal(err)
			}
		}, "wallet_mismatch"},
		{"token sweep without a gas tank", true, func(t *testing.T, p payment, s *sweep.Sweeper) {
			w.chain.MintToken(w.token, p.Deposit, amount)
			s.GasTank = nil
		}, "no_gas_tank"},
		{"token balance empty", true, nil, "empty"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var p payment
			if tc.token {
				p = w.newPayment(t, &w.token, amount)
			} else {
				p = w.newPayment(t, nil, amount)
			}
			s := w.sweeper(p.Treasury)
			if tc.setup != nil {
				tc.setup(t, p, s)
			}
			for range 2 { // a redelivery reports nothing new
				if err := s.Sweep(ctx, p.Body); err != nil {
					t.Fatalf("sweep: %v", err)
				}
			}
			var data sweep.SweepFailed
			w.onlyEvent(t, event.SubjectSweepFailed, p.ID, &data)
			if !strings.HasPrefix(data.Reason, tc.code+": ") || data.PaymentID != p.ID || data.Status != "confirmed" {
				t.Errorf("reason %q status %s, want %s: ...", data.Reason, data.Status, tc.code)
			}
			t.Logf("reason: %s", data.Reason)
			if got := w.status(t, p.ID); got != "confirmed" {
				t.Errorf("status %s", got)
			}
			if n := len(w.sweeps(t, p.ID)); n != 0 {
				t.Errorf("%d transactions recorded", n)
			}
			if n := w.pendingNonce(t, p.Deposit); n != 0 {
				t.Errorf("deposit sent %d transactions", n)
			}
		})
	}
}

// A deposit address that already holds enough ether for its token transfer gets no top-up.
func TestTokenSweepWithoutTopUpWhenTheDepositHasGas(t *testing.T) {
	w := newWorld(t)
	amount := big.NewInt(3_000_000)
	p := w.paidTokenPayment(t, amount)
	w.fundETH(t, p.Deposit, ether)
	tankNonce := w.nonce(t, w.gasTank.Address)
	if err := w.sweeper(p.Treasury).Sweep(context.Background(), p.Body); err != nil {
		t.Fatal(err)
	}
	txs := w.sweeps(t, p.ID)
	if len(txs) != 1 || txs[0].Kind != sweep.TxToken {
		t.Fatalf("sweep rows %+v, want the token transfer alone", txs)
	}
	if w.nonce(t, w.gasTank.Address) != tankNonce || w.chain.TokenBalance(w.token, p.Treasury).Cmp(amount) != 0 {
		t.Errorf("tank nonce %d (was %d), treasury %s", w.nonce(t, w.gasTank.Address), tankNonce, w.chain.TokenBalance(w.token, p.Treasury))
	}
}

// An empty gas tank is an operator's to fix, not the payment's failure: the sweep is retried,
// nothing is signed meanwhile, and it completes once the tank is refilled.
func TestEmptyGasTankIsRetried(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	amount := big.NewInt(7_000_000)
	p := w.paidTokenPayment(t, amount)
	poor := chaintest.NewAccount("poor tank")
	w.fundETH(t, poor.Address, big.NewInt(1000))

	s := w.sweeper(p.Treasury)
	s.GasTank = poor.Key
	err := s.Sweep(ctx, p.Body)
	if e, ok := fault.As(err); !ok || e.Kind != fault.KindTransient {
		t.Fatalf("sweep with an empty tank: %v, want a transient error", err)
	}
	if n := len(w.sweeps(t, p.ID)); n != 0 || len(w.outbox(t, event.SubjectSweepFailed, p.ID)) != 0 {
		t.Fatalf("%d transactions recorded or a failure reported", n)
	}
	w.fundETH(t, poor.Address, ether)
	if err := s.Sweep(ctx, p.Body); err != nil {
		t.Fatal(err)
	}
	if got := w.chain.TokenBalance(w.token, p.Treasury); got.Cmp(amount) != 0 || w.status(t, p.ID) != "swept" {
		t.Fatalf("treasury holds %s", got)
	}
}

// Two deliveries of the same event handled at once (two replicas) sign one set of
// transactions between them.
func TestConcurrentDeliveriesSweepOnce(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	amount := big.NewInt(42_000_000)
	p := w.paidTokenPayment(t, amount)
	tankNonce := w.nonce(t, w.gasTank.Address)

	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Go(func() {
			errs[i] = w.sweeper(p.Treasury).Sweep(ctx, p.Body)
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("delivery %d: %v", i, err)
		}
	}
	if n := len(w.sweeps(t, p.ID)); n != 2 {
		t.Errorf("%d sweep rows", n)
	}
	if w.nonce(t, p.Deposit) != 1 || w.nonce(t, w.gasTank.Address) != tankNonce+1 {
		t.Errorf("deposit nonce %d, tank nonce %d (was %d)", w.nonce(t, p.Deposit), w.nonce(t, w.gasTank.Address), tankNonce)
	}
	if got := w.chain.TokenBalance(w.token, p.Treasury); got.Cmp(amount) != 0 {
		t.Errorf("treasury holds %s", got)
	}
	if n := len(w.outbox(t, event.SubjectSwept, p.ID)); n != 1 || w.status(t, p.ID) != "swept" {
		t.Errorf("%d swept events", n)
	}
}

func TestPoisonMessagesAreTerminated(t *testing.T) {
	w := newWorld(t)
	unknown, _ := event.New("payment.confirmed", event.Payment{PaymentID: "pay_missing"})
	unknownBody, _ := json.Marshal(unknown)
	noID, _ := event.New("payment.confirmed", event.Payment{})
	noIDBody, _ := json.Marshal(noID)
	for name, body := range map[string][]byte{
		"not json":        []byte("{"),
		"no envelope":     []byte(`{"hello":"world"}`),
		"no payment id":   noIDBody,
		"unknown payment": unknownBody,
	} {
		t.Run(name, func(t *testing.T) {
			err := w.sweeper(common.Address{1}).Sweep(context.Background(), body)
			if k := fault.KindOf(err); k != fault.KindInvalid && k != fault.KindNotFound {
				t.Fatalf("%v (%s), want invalid or not found", err, k)
			}
		})
	}
}
