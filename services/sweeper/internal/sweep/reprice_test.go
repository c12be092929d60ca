package sweep_test

import (
	"context"
	"errors"
	"math/big"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"

	"github.com/ctrip-pay/pipeline/services/sweeper/internal/sweep"
	"github.com/ctrip-pay/pipeline/shared/chains"
	"github.com/ctrip-pay/pipeline/shared/event"
	"github.com/ctrip-pay/pipeline/shared/testkit"
)

// lowballClient makes the sweeper sign below the market while on: it reports a base fee and
// a tip of 1 wei, so the fee cap is 3 wei — below the simulated chain's base fee, which never
// falls under 7 wei. Such a transaction waits in the pool however many blocks are mined.
type lowballClient struct {
	sweep.Client
	on atomic.Bool
}

func (c *lowballClient) HeaderByNumber(ctx context.Context, number *big.Int) (*types.Header, error) {
	h, err := c.Client.HeaderByNumber(ctx, number)
	if err == nil && c.on.Load() {
		h = types.CopyHeader(h)
		h.BaseFee = big.NewInt(1)
	}
	return h, err
}

func (c *lowballClient) SuggestGasTipCap(ctx context.Context) (*big.Int, error) {
	if c.on.Load() {
		return big.NewInt(1), nil
	}
	return c.Client.SuggestGasTipCap(ctx)
}

// afterRecord calls after once each Record succeeds.
type afterRecord struct {
	sweep.Ledger
	after func()
}

func (l *afterRecord) Record(ctx context.Context, paymentID string, chainID int64, drafts []sweep.Draft) ([]sweep.Tx, error) {
	txs, err := l.Ledger.Record(ctx, paymentID, chainID, drafts)
	if err == nil {
		l.after()
	}
	return txs, err
}

// stuckFirst makes s sign its first transactions with a fee cap below the base fee and
// everything after at market fees, re-pricing after repriceAfter.
func stuckFirst(w *world, s *sweep.Sweeper, repriceAfter time.Duration) {
	n := s.Networks[chainID]
	client := &lowballClient{Client: n.Client}
	client.on.Store(true)
	n.Client = client
	s.Networks[chainID] = n
	s.Ledger = &afterRecord{Ledger: s.Ledger, after: func() { client.on.Store(false) }}
	s.RepriceAfter = repriceAfter
	s.ReceiptTimeout = 10 * time.Second
}

func fees(t *testing.T, tx sweep.Tx) (tip, feeCap *big.Int) {
	t.Helper()
	signed := decodeTx(t, tx.Raw)
	return signed.GasTipCap(), signed.GasFeeCap()
}

// raised reports whether next clears geth's replacement rule over prev: both fees at least
// 10 % higher.
func raised(t *testing.T, prev, next sweep.Tx) bool {
	t.Helper()
	pt, pc := fees(t, prev)
	nt, nc := fees(t, next)
	min := func(x *big.Int) *big.Int {
		return new(big.Int).Div(new(big.Int).Mul(x, big.NewInt(110)), big.NewInt(100))
	}
	return nt.Cmp(pt) > 0 && nc.Cmp(pc) > 0 && nt.Cmp(min(pt)) >= 0 && nc.Cmp(min(pc)) >= 0
}

func (w *world) sweptEvent(t *testing.T, paymentID string) sweep.Swept {
	t.Helper()
	var data sweep.Swept
	w.onlyEvent(t, event.SubjectSwept, paymentID, &data)
	return data
}

func (w *world) neverMined(t *testing.T, tx sweep.Tx) {
	t.Helper()
	if r := w.chain.Receipt(tx.Hash); r != nil {
		t.Errorf("%s seq %d (%s) was mined too", tx.Kind, tx.Seq, tx.Hash.Hex())
	}
}

// A sweep whose first transaction waits — its fee cap below the base fee — is re-priced after
// RepriceAfter: a replacement with the same nonce and both fees raised by geth's minimum, recorded
// before broadcast. One transaction per nonce is mined, the payment is swept once, the ledger
// keeps the replaced version next to the mined one, and payments.swept names the winner.
func TestStuckSweepsAreRepriced(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()

	t.Run("native", func(t *testing.T) {
		amount := new(big.Int).Mul(ether, big.NewInt(3))
		p := w.newPayment(t, nil, amount)
		w.fundETH(t, p.Deposit, amount)
		s := w.sweeper(p.Treasury)
		stuckFirst(w, s, 300*time.Millisecond)
		start := time.Now()
		if err := s.Sweep(ctx, p.Body); err != nil {
			t.Fatalf("sweep: %v", err)
		}
		t.Logf("swept in %s", time.Since(start))
		if got := w.status(t, p.ID); got != "swept" {
			t.Fatalf("status %s", got)
		}
		txs := w.sweeps(t, p.ID)
		if len(txs) != 2 {
			t.Fatalf("%d sweep rows, want the stuck transaction and its replacement: %+v", len(txs), txs)
		}
		stuck, won := txs[0], txs[1]
		if stuck.Seq != 0 || stuck.Status != sweep.StatusReplaced || won.Seq != 1 || won.Status != sweep.StatusMined {
			t.Errorf("rows %s/%d %s, %s/%d %s; want native/0 replaced, native/1 mined", stuck.Kind, stuck.Seq, stuck.Status, won.Kind, won.Seq, won.Status)
		}
		if stuck.Nonce != won.Nonce || stuck.Nonce != 0 || w.nonce(t, p.Deposit) != 1 {
			t.Errorf("nonces %d and %d, deposit sent %d", stuck.Nonce, won.Nonce, w.nonce(t, p.Deposit))
		}
		if _, c := fees(t, stuck); c.Cmp(w.chain.Head().BaseFee) >= 0 {
			t.Errorf("stuck fee cap %s is not below the base fee %s", c, w.chain.Head().BaseFee)
		}
		if !raised(t, stuck, won) {
			t.Errorf("replacement does not raise both fees by 10%%")
		}
		w.neverMined(t, stuck)
		tx := decodeTx(t, won.Raw)
		want := sub(amount, mul(tx.GasFeeCap(), tx.Gas()))
		if won.Value.Cmp(want) != 0 || tx.Value().Cmp(want) != 0 || w.chain.BalanceAt(p.Treasury).Cmp(want) != 0 {
			t.Errorf("replacement sends %s, treasury holds %s; want balance − 21000 × new fee cap = %s", won.Value, w.chain.BalanceAt(p.Treasury), want)
		}
		data := w.sweptEvent(t, p.ID)
		if len(data.SweepTransactions) != 1 || data.SweepTransactions[0].TxHash != won.Hash.Hex() ||
			strings.Join(data.SweepTransactions[0].ReplacedTxHashes, ",") != stuck.Hash.Hex() {
			t.Errorf("swept event transactions %+v, want %s replacing %s", data.SweepTransactions, won.Hash.Hex(), stuck.Hash.Hex())
		}
	})

	t.Run("token", func(t *testing.T) {
		amount := big.NewInt(77_000_000)
		p := w.paidTokenPayment(t, amount)
		tankNonce := w.nonce(t, w.gasTank.Address)
		s := w.sweeper(p.Treasury)
		stuckFirst(w, s, 300*time.Millisecond)
		if err := s.Sweep(ctx, p.Body); err != nil {
			t.Fatalf("sweep: %v", err)
		}
		if got := w.status(t, p.ID); got != "swept" {
			t.Fatalf("status %s", got)
		}
		// The stuck top-up is replaced; then the stuck token transfer, whose higher fee cap
		// needs a further top-up of the difference (a new gas-tank nonce).
		txs := w.sweeps(t, p.ID)
		type row struct {
			kind   string
			seq    int
			status string
		}
		want := []row{
			{sweep.TxGasTopup, 0, sweep.StatusReplaced}, {sweep.TxGasTopup, 1, sweep.StatusMined}, {sweep.TxGasTopup, 2, sweep.StatusMined},
			{sweep.TxToken, 0, sweep.StatusReplaced}, {sweep.TxToken, 1, sweep.StatusMined},
		}
		if len(txs) != len(want) {
			t.Fatalf("%d rows, want %v", len(txs), want)
		}
		for i, tx := range txs {
			if (row{tx.Kind, tx.Seq, tx.Status}) != want[i] {
				t.Errorf("row %d: %s/%d %s, want %v", i, tx.Kind, tx.Seq, tx.Status, want[i])
			}
		}
		top0, top1, top2, tok0, tok1 := txs[0], txs[1], txs[2], txs[3], txs[4]
		if top0.Nonce != tankNonce || top1.Nonce != tankNonce || top2.Nonce != tankNonce+1 || w.nonce(t, w.gasTank.Address) != tankNonce+2 {
			t.Errorf("tank nonces %d %d %d (tank at %d), want %d %d %d", top0.Nonce, top1.Nonce, top2.Nonce, w.nonce(t, w.gasTank.Address), tankNonce, tankNonce, tankNonce+1)
		}
		if tok0.Nonce != 0 || tok1.Nonce != 0 || w.nonce(t, p.Deposit) != 1 {
			t.Errorf("token nonces %d %d, deposit sent %d", tok0.Nonce, tok1.Nonce, w.nonce(t, p.Deposit))
		}
		if !raised(t, top0, top1) || !raised(t, tok0, tok1) || top1.Value.Cmp(top0.Value) != 0 {
			t.Errorf("replacements do not raise both fees by 10%% or change the top-up")
		}
		w.neverMined(t, top0)
		w.neverMined(t, tok0)
		// The deposit held the first top-up; the second brings it to gas × the new fee cap.
		transfer := decodeTx(t, tok1.Raw)
		if got, want := new(big.Int).Add(top1.Value, top2.Value), mul(transfer.GasFeeCap(), transfer.Gas()); got.Cmp(want) != 0 {
			t.Errorf("top-ups %s + %s, want gas %d × fee cap %s = %s", top1.Value, top2.Value, transfer.Gas(), transfer.GasFeeCap(), want)
		}
		if got := w.chain.TokenBalance(w.token, p.Treasury); got.Cmp(amount) != 0 {
			t.Errorf("treasury holds %s", got)
		}
		data := w.sweptEvent(t, p.ID)
		var got []string
		for _, st := range data.SweepTransactions {
			got = append(got, st.Kind+" "+st.TxHash+" replacing ["+strings.Join(st.ReplacedTxHashes, ",")+"]")
		}
		wantEvt := []string{
			"gas_topup " + top1.Hash.Hex() + " replacing [" + top0.Hash.Hex() + "]",
			"gas_topup " + top2.Hash.Hex() + " replacing []",
			"token " + tok1.Hash.Hex() + " replacing [" + tok0.Hash.Hex() + "]",
		}
		if strings.Join(got, "\n") != strings.Join(wantEvt, "\n") {
			t.Errorf("swept event transactions\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(wantEvt, "\n"))
		}
	})
}

// max_fee_gwei bounds re-pricing: a replacement goes up to the cap and no further, the sweep
// keeps waiting (reported once per waiting version as payments.sweep_failed max_fee_reached,
// the payment staying confirmed), and completes once the cap allows a replacement again.
func TestRepricingStopsAtMaxFee(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	amount := ether
	p := w.newPayment(t, nil, amount)
	w.fundETH(t, p.Deposit, amount)

	s := w.sweeper(p.Treasury)
	stuckFirst(w, s, 100*time.Millisecond)
	s.ReceiptTimeout = time.Second
	maxFee, err := chains.ParseGwei("0.000000005") // 5 wei: one step above the stuck 3 wei, below any base fee here
	if err != nil {
		t.Fatal(err)
	}
	n := s.Networks[chainID]
	n.Chain.MaxFeeGwei = maxFee
	s.Networks[chainID] = n

	for range 2 { // the redelivery waits on and reports nothing new
		err := s.Sweep(ctx, p.Body)
		if err == nil || !strings.Contains(err.Error(), "no receipt") {
			t.Fatalf("sweep at the cap: %v, want a transient no-receipt error", err)
		}
	}
	if got := w.status(t, p.ID); got != "confirmed" {
		t.Fatalf("status %s", got)
	}
	txs := w.sweeps(t, p.ID)
	if len(txs) != 2 {
		t.Fatalf("%d rows, want the stuck transaction and one replacement at the cap", len(txs))
	}
	for _, tx := range txs {
		if _, c := fees(t, tx); c.Cmp(maxFee.Wei()) > 0 {
			t.Errorf("seq %d signed with fee cap %s above max_fee %s", tx.Seq, c, maxFee.Wei())
		}
	}
	if tip, c := fees(t, txs[1]); c.Cmp(maxFee.Wei()) != 0 || tip.Cmp(maxFee.Wei()) != 0 || txs[1].Status != sweep.StatusBroadcast || txs[0].Status != sweep.StatusReplaced {
		t.Errorf("replacement tip %s fee cap %s %s, first %s; want both at the cap, broadcast, and replaced", tip, c, txs[1].Status, txs[0].Status)
	}
	if want := sub(amount, mul(maxFee.Wei(), 21000)); txs[1].Value.Cmp(want) != 0 {
		t.Errorf("replacement value %s, want %s", txs[1].Value, want)
	}
	var data sweep.SweepFailed
	w.onlyEvent(t, event.SubjectSweepFailed, p.ID, &data)
	if !strings.HasPrefix(data.Reason, sweep.ReasonMaxFeeReached+": ") || data.Status != "confirmed" ||
		len(data.SweepTransactions) != 1 || data.SweepTransactions[0].TxHash != txs[1].Hash.Hex() {
		t.Errorf("sweep_failed %+v", data)
	}
	t.Logf("reason: %s", data.Reason)
	if r := w.chain.Receipt(txs[0].Hash); r != nil || w.chain.Receipt(txs[1].Hash) != nil {
		t.Fatal("a transaction below the base fee was mined")
	}

	// The operator lifts the cap: the next delivery re-prices and the payment is swept.
	n.Chain.MaxFeeGwei = nil
	s.Networks[chainID] = n
	s.ReceiptTimeout = 10 * time.Second
	if err := s.Sweep(ctx, p.Body); err != nil {
		t.Fatalf("sweep without the cap: %v", err)
	}
	txs = w.sweeps(t, p.ID)
	if len(txs) != 3 || txs[2].Status != sweep.StatusMined || txs[1].Status != sweep.StatusReplaced || w.status(t, p.ID) != "swept" {
		t.Fatalf("after lifting the cap: %d rows, status %s", len(txs), w.status(t, p.ID))
	}
}

// A crash between recording a replacement and broadcasting it: the next delivery broadcasts
// the recorded replacement (never a third transaction, never a fresh nonce), and whichever
// version the chain takes — the replacement, or the earlier one still in the pool — wins.
func TestRepriceCrashBeforeBroadcast(t *testing.T) {
	w := newManualWorld(t)
	ctx := context.Background()
	for _, tc := range []struct {
		name        string
		earlierWins bool
	}{
		{"the replacement is broadcast and mined", false},
		{"the earlier version is mined first", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			amount := ether
			p := w.newPayment(t, nil, amount)
			w.fundETH(t, p.Deposit, amount)

			// No block is mined, so the first transaction waits; the second Record is the
			// replacement, committed but never sent.
			crashing := w.sweeper(p.Treasury)
			crashing.RepriceAfter = 100 * time.Millisecond
			crashing.ReceiptTimeout = 5 * time.Second
			crashing.Ledger = &crashLedger{Ledger: w.store, step: "record", n: 2, seen: map[string]int{}}
			if err := crashing.Sweep(ctx, p.Body); !errors.Is(err, errCrash) {
				t.Fatalf("first delivery: %v, want the simulated crash", err)
			}
			txs := w.sweeps(t, p.ID)
			if len(txs) != 2 || txs[0].Status != sweep.StatusReplaced || txs[1].Status != sweep.StatusSigned || txs[0].Nonce != txs[1].Nonce {
				t.Fatalf("after the crash %+v, want the first replaced and its replacement signed", txs)
			}
			first, second := txs[0], txs[1]
			if _, _, err := w.chain.Client().TransactionByHash(ctx, second.Hash); !errors.Is(err, ethereum.NotFound) {
				t.Fatalf("the replacement reached the node before its broadcast: %v", err)
			}
			if tc.earlierWins {
				w.chain.Commit()
				w.chain.WaitMined(decodeTx(t, first.Raw))
			}

			// The redelivery, by a fresh process that would not re-price again for a while.
			s := w.sweeper(p.Treasury)
			s.RepriceAfter = time.Minute
			done := make(chan error, 1)
			go func() { done <- s.Sweep(ctx, p.Body) }()
			if !tc.earlierWins {
				testkit.Eventually(t, 10*time.Second, "the recorded replacement is broadcast", func() bool {
					_, _, err := w.chain.Client().TransactionByHash(ctx, second.Hash)
					return err == nil
				})
				w.chain.Commit()
			}
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("redelivery: %v", err)
				}
			case <-time.After(15 * time.Second):
				t.Fatal("redelivery did not finish")
			}

			winner, loser, loserStatus := second, first, sweep.StatusReplaced
			if tc.earlierWins {
				winner, loser, loserStatus = first, second, sweep.StatusDropped
			}
			txs = w.sweeps(t, p.ID)
			if len(txs) != 2 {
				t.Fatalf("%d rows after the redelivery, want the two recorded", len(txs))
			}
			byHash := map[common.Hash]sweep.Tx{txs[0].Hash: txs[0], txs[1].Hash: txs[1]}
			if byHash[winner.Hash].Status != sweep.StatusMined || byHash[loser.Hash].Status != loserStatus {
				t.Errorf("winner %s, loser %s; want mined and %s", byHash[winner.Hash].Status, byHash[loser.Hash].Status, loserStatus)
			}
			w.neverMined(t, loser)
			if w.nonce(t, p.Deposit) != 1 || w.status(t, p.ID) != "swept" {
				t.Errorf("deposit nonce %d, status %s", w.nonce(t, p.Deposit), w.status(t, p.ID))
			}
			if got := w.chain.BalanceAt(p.Treasury); got.Cmp(winner.Value) != 0 {
				t.Errorf("treasury holds %s, the winner sends %s", got, winner.Value)
			}
			data := w.sweptEvent(t, p.ID)
			if len(data.SweepTransactions) != 1 || data.SweepTransactions[0].TxHash != winner.Hash.Hex() ||
				strings.Join(data.SweepTransactions[0].ReplacedTxHashes, ",") != loser.Hash.Hex() {
				t.Errorf("swept event %+v, want %s", data.SweepTransactions, winner.Hash.Hex())
			}
		})
	}
}
