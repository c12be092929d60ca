package sweep_test

import (
	"context"
	"math/big"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/core/types"

	"github.com/ctrip-pay/pipeline/services/sweeper/internal/sweep"
	"github.com/ctrip-pay/pipeline/shared/event"
)

// A sweep is final only when its transaction is as deep as the chain's confirmations: a reorg
// shallower than that takes the token transfer out of the chain, and the node's pool need not
// put it back (here it does not: chaintest's reorg clears the pool). Found by `make chaos`'s
// reorg scenario, where a payment was recorded as swept at its sweep's first receipt and the
// tokens stayed at the deposit address. The sweeper sees the receipt go, broadcasts the same
// transaction again, and records the payment as swept once that one is final.
func TestSweepReorgedOutBeforeItIsFinalIsSentAgain(t *testing.T) {
	w := newManualWorld(t)
	amount := big.NewInt(4_000_000)
	p := w.paidTokenPayment(t, amount)
	w.fundETH(t, p.Deposit, ether) // gas of its own: the token transfer is the sweep's one transaction
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- w.sweeperWith(p.Treasury, 3).Sweep(ctx, p.Body) }()

	// Mine until the transfer has a receipt.
	var first *types.Receipt
	for first == nil {
		select {
		case err := <-done:
			t.Fatalf("Sweep returned (%v) before its transfer was mined", err)
		case <-ctx.Done():
			t.Fatal("the sweep transaction was never broadcast")
		case <-time.After(20 * time.Millisecond):
		}
		if txs := w.sweeps(t, p.ID); len(txs) == 1 && txs[0].Status == sweep.StatusBroadcast {
			w.chain.Commit()
			if r, err := w.chain.Client().TransactionReceipt(ctx, txs[0].Hash); err == nil {
				first = r
			}
		}
	}
	// One block deep of three: not final, and the payment is not swept.
	select {
	case err := <-done:
		t.Fatalf("Sweep returned (%v) with its transfer one block deep of three", err)
	case <-time.After(300 * time.Millisecond):
	}
	if st := w.status(t, p.ID); st != event.StatusConfirmed {
		t.Fatalf("payment %s with its sweep one block deep, want confirmed", st)
	}

	w.chain.ReorgFrom(first.BlockNumber.Uint64(), nil)
	if r, err := w.chain.Client().TransactionReceipt(ctx, first.TxHash); err == nil && r.BlockHash == first.BlockHash {
		t.Fatal("the reorg left the transfer's block in the chain")
	}
	for waiting := true; waiting; {
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("Sweep: %v", err)
			}
			waiting = false
		case <-ctx.Done():
			t.Fatal("the reorged sweep never became final")
		case <-time.After(50 * time.Millisecond):
			w.chain.Commit()
		}
	}
	if st := w.status(t, p.ID); st != event.StatusSwept {
		t.Errorf("payment %s, want swept", st)
	}
	if got := w.chain.TokenBalance(w.token, p.Treasury); got.Cmp(amount) != 0 {
		t.Errorf("treasury holds %s, want %s", got, amount)
	}
	txs := w.sweeps(t, p.ID)
	if len(txs) != 1 || txs[0].Status != sweep.StatusMined {
		t.Fatalf("sweep rows %+v, want the one token transfer, mined", txs)
	}
	if r := w.receipt(t, txs[0].Hash); r.BlockHash == first.BlockHash {
		t.Errorf("the transfer's receipt is still in the orphaned block %s", first.BlockHash.Hex())
	}
}
