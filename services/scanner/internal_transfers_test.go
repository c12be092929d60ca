package main

import (
	"fmt"
	"math/big"
	"strconv"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"

	"github.com/ctrip-pay/pipeline/services/scanner/internal/scan"
	"github.com/ctrip-pay/pipeline/shared/testkit"
	"github.com/ctrip-pay/pipeline/shared/testkit/chaintest"
)

// rpcMode is how the chain's node is reached: with the debug API (the scanner reads transfers
// inside transactions from block traces) or without it (it reconciles balances, read with the
// balance reader where eth_call takes a state override, else with eth_getBalance).
type rpcMode struct {
	name       string
	debug      bool
	noOverride bool
}

var rpcModes = []rpcMode{{"debug API", true, false}, {"no debug API", false, false}, {"no debug API or state override", false, true}}

// meteredHarness is a harness whose scanner reaches the chain through a chaintest.Meter,
// which hides the debug API unless mode has it, and refuses state overrides if mode does.
func meteredHarness(t *testing.T, mode rpcMode, opts ...harnessOption) (*harness, *chaintest.Meter) {
	t.Helper()
	var m *chaintest.Meter
	opts = append(opts, viaRPC(func(chainURL string) string {
		m = chaintest.NewMeter(t, chainURL)
		if !mode.debug {
			m.HideDebug()
		}
		if mode.noOverride {
			m.RefuseStateOverride()
		}
		return m.URL()
	}))
	return newHarness(t, opts...), m
}

// inEachMode runs test once in each rpcMode (a subtest each), on a metered harness, and
// checks afterwards that the scanner used the mode's way of detection.
func inEachMode(t *testing.T, test func(t *testing.T, h *harness, mode rpcMode)) {
	for _, mode := range rpcModes {
		t.Run(mode.name, func(t *testing.T) {
			h, meter := meteredHarness(t, mode)
			test(t, h, mode)
			checkMode(t, mode, meter)
		})
	}
}

// checkMode fails the test unless the scanner used the way of mode: traces with the debug
// API; else balance readings, by eth_call (the probe and at least one reading) or by
// eth_getBalance, and not the other way.
func checkMode(t *testing.T, mode rpcMode, m *chaintest.Meter) {
	t.Helper()
	traces, calls, reads := m.Requests("debug_traceBlockByHash"), m.Calls("eth_call"), m.Calls("eth_getBalance")
	var ok bool
	switch {
	case mode.debug:
		ok = traces >= 2 && calls == 0 && reads == 0
	case mode.noOverride:
		ok = traces == 0 && reads > 0
	default:
		ok = traces == 0 && calls >= 2 && reads == 0
	}
	if !ok {
		t.Fatalf("%s: %d trace requests reached the node, %d eth_call and %d eth_getBalance calls", mode.name, traces, calls, reads)
	}
}

// wantKey is the (tx_hash, log_index) a transfer to p made in receipt's transaction is
// detected with: the transaction and its place among the transaction's value calls with the
// debug API; the block's hash and the address's index without.
func (h *harness) wantKey(mode rpcMode, p payment, r *types.Receipt, place int) (string, int64) {
	h.t.Helper()
	if mode.debug {
		return lower(r.TxHash.Hex()), scan.InternalLogIndex(place)
	}
	var index int64
	if err := h.db.Get(&index, `SELECT address_index FROM payments WHERE id = $1`, p.ID); err != nil {
		h.t.Fatal(err)
	}
	return lower(r.BlockHash.Hex()), scan.ReconciledLogIndex(index)
}

// checkDetected checks that p has exactly one payments.detected event, for value in receipt's
// block under the key of wantKey, and one transfer row.
func (h *harness) checkDetected(mode rpcMode, p payment, r *types.Receipt, place int, value *big.Int) {
	h.t.Helper()
	got := h.detectedFor(p.ID)
	if len(got) != 1 {
		h.t.Fatalf("payment %s: %d payments.detected events, want 1", p.ID, len(got))
	}
	txHash, logIndex := h.wantKey(mode, p, r, place)
	d := got[0]
	wantID := fmt.Sprintf("detected.%d.%s.%d.%s", testChainID, txHash, logIndex, lower(r.BlockHash.Hex()))
	if d.msgID != wantID {
		h.t.Fatalf("msg id %q, want %q", d.msgID, wantID)
	}
	if len(d.data.Transactions) != 1 {
		h.t.Fatalf("transactions: %+v", d.data.Transactions)
	}
	tr := d.data.Transactions[0]
	if tr.TxHash != txHash || tr.LogIndex == nil || *tr.LogIndex != logIndex || tr.BlockNumber != r.BlockNumber.Uint64() ||
		tr.BlockHash != lower(r.BlockHash.Hex()) || tr.ValueBaseUnits != value.String() || tr.Status != "detected" {
		h.t.Fatalf("transaction %+v; want %s log %d in block %d, value %s", tr, txHash, logIndex, r.BlockNumber, value)
	}
	if n := h.count(`SELECT count(*) FROM payment_transfers WHERE payment_id = $1 AND tx_hash = $2 AND log_index = $3
			AND value_base_units = $4::numeric AND block_number = $5 AND status = 'detected'`,
		p.ID, txHash, logIndex, value.String(), r.BlockNumber.Int64()); n != 1 {
		h.t.Fatalf("%d matching payment_transfers rows, want 1", n)
	}
}

// waitDetected waits until p has n payments.detected events.
func (h *harness) waitDetected(p payment, n int) {
	h.t.Helper()
	if !testkit.Poll(20*time.Second, func() bool { return len(h.detectedFor(p.ID)) >= n }) {
		h.t.Fatalf("payment %s: %d payments.detected events after 20s, want %d", p.ID, len(h.detectedFor(p.ID)), n)
	}
}

// TestContractPaymentsAreDetected: ETH paid to a deposit address from inside a contract's
// transaction — a wallet's forward, an exchange's batch payout, a call two levels down — is
// detected once with its value, on a node with the debug API and on one without; a transfer
// that a revert undid is not; a direct payment next to a forwarded one counts once.
func TestContractPaymentsAreDetected(t *testing.T) {
	inEachMode(t, func(t *testing.T, h *harness, mode rpcMode) {
		fwd, next := h.chain.DeployForwarder(), h.chain.DeployForwarder()
		h.start()
		later := time.Now().Add(30 * time.Minute)

		cases := []struct {
			name string
			run  func(t *testing.T, h *harness)
		}{
			{"forward pays a payment in full", func(t *testing.T, h *harness) {
				p := h.newPayment("ETH", ether(2), later)
				r := h.mine(h.chain.Forward(h.payer, fwd, p.Address, ether(2)))[0]
				h.waitDetected(p, 1)
				h.checkDetected(mode, p, r, 0, ether(2))
				if d := h.detectedFor(p.ID)[0].data; d.AmountReceivedBaseUnits != ether(2).String() || d.Status != "detected" {
					t.Fatalf("data: %+v", d)
				}
			}},
			{"batch payout pays two payments in one transaction", func(t *testing.T, h *harness) {
				a, b := h.newPayment("ETH", ether(1), later), h.newPayment("ETH", ether(3), later)
				r := h.mine(h.chain.ForwardMany(h.payer, fwd, []common.Address{a.Address, b.Address}, []*big.Int{ether(1), ether(3)}))[0]
				h.waitDetected(a, 1)
				h.waitDetected(b, 1)
				h.checkDetected(mode, a, r, 0, ether(1))
				h.checkDetected(mode, b, r, 1, ether(3))
			}},
			{"a payment two calls deep", func(t *testing.T, h *harness) {
				p := h.newPayment("ETH", ether(1), later)
				r := h.mine(h.chain.ForwardVia(h.payer, fwd, next, p.Address, ether(1)))[0]
				h.waitDetected(p, 1)
				// The first value call pays the second forwarder, the second the address.
				h.checkDetected(mode, p, r, 1, ether(1))
			}},
			{"reverted forward and failed inner call not detected", func(t *testing.T, h *harness) {
				reverted, failed, paid := h.newPayment("ETH", ether(1), later), h.newPayment("ETH", ether(1), later), h.newPayment("ETH", ether(1), later)
				rs := h.mine(
					h.chain.ForwardThenRevert(h.payer, fwd, reverted.Address, ether(1)),
					h.chain.TryForward(h.payer, fwd, failed.Address, big.NewInt(1), chaintest.GenesisBalance),
					h.chain.Forward(h.payer, fwd, paid.Address, ether(1)),
				)
				if rs[0].Status != types.ReceiptStatusFailed || rs[1].Status != types.ReceiptStatusSuccessful {
					t.Fatalf("statuses %d, %d: want a failed then a successful transaction", rs[0].Status, rs[1].Status)
				}
				h.chain.Mine(3)
				h.waitDetected(paid, 1) // the same blocks were scanned
				h.waitScanned(h.head())
				for _, p := range []payment{reverted, failed} {
					if n := len(h.detectedFor(p.ID)); n != 0 {
						t.Fatalf("payment %s: %d events for ETH that never arrived", p.ID, n)
					}
					if n := h.count(`SELECT count(*) FROM payment_transfers WHERE payment_id = $1`, p.ID); n != 0 {
						t.Fatalf("payment %s: %d transfers recorded", p.ID, n)
					}
				}
			}},
			{"direct and forwarded payments each counted once", func(t *testing.T, h *harness) {
				p := h.newPayment("ETH", ether(4), later)
				h.mine(h.chain.SendETH(h.payer, p.Address, ether(1)))
				rs := h.mine(h.chain.Forward(h.payer, fwd, p.Address, ether(2)), h.chain.SendETH(h.chain.Accounts[1], p.Address, big.NewInt(5e17)))
				h.mine(h.chain.SendETH(h.payer, p.Address, big.NewInt(1e17)))
				h.waitDetected(p, 4)
				h.chain.Mine(3)
				h.waitScanned(h.head())
				got := h.detectedFor(p.ID)
				if len(got) != 4 {
					t.Fatalf("%d events, want 4 (three direct payments, one forwarded)", len(got))
				}
				internal, sum := 0, new(big.Int)
				for _, d := range got {
					tr := d.data.Transactions[0]
					v, _ := new(big.Int).SetString(tr.ValueBaseUnits, 10)
					sum.Add(sum, v)
					if tr.LogIndex != nil {
						internal++
						if tr.ValueBaseUnits != ether(2).String() || tr.BlockNumber != rs[0].BlockNumber.Uint64() {
							t.Fatalf("forwarded transfer: %+v", tr)
						}
					}
				}
				want := new(big.Int).Add(ether(3), big.NewInt(6e17))
				if internal != 1 || sum.Cmp(want) != 0 || got[3].data.AmountReceivedBaseUnits != want.String() {
					t.Fatalf("%d forwarded transfers, values sum to %s, last received %s; want 1, %s, %s",
						internal, sum, got[3].data.AmountReceivedBaseUnits, want, want)
				}
			}},
		}
		for _, c := range cases {
			h.subtest(t, c.name, c.run)
		}
	})
}

// TestContractPaymentsRescannedOnce: a scanner restarted from an earlier cursor scans the
// blocks of forwarded payments again — and, without the debug API, reconciles the balances
// of the blocks before its cursor — yet every payment has one event and one transfer row.
func TestContractPaymentsRescannedOnce(t *testing.T) {
	inEachMode(t, func(t *testing.T, h *harness, mode rpcMode) {
		fwd := h.chain.DeployForwarder()
		h.start()
		// The cursor is rewound below to the block before the first payment: the scanner must
		// have started below it (it starts at the head it first sees, less the confirmations).
		h.waitScanned(h.head())
		later := time.Now().Add(30 * time.Minute)
		var payments []payment
		var receipts []*types.Receipt
		pay := func() {
			p := h.newPayment("ETH", ether(1), later)
			receipts = append(receipts, h.mine(h.chain.Forward(h.payer, fwd, p.Address, ether(1)))[0])
			payments = append(payments, p)
		}
		pay()
		// Paid directly first, then forwarded: the restarted scanner's reconciliation goes
		// back over both blocks and must count the direct payment as detected, not again.
		mixed := h.newPayment("ETH", ether(2), later)
		direct := h.mine(h.chain.SendETH(h.payer, mixed.Address, ether(1)))[0]
		forwarded := h.mine(h.chain.Forward(h.payer, fwd, mixed.Address, ether(1)))[0]
		pay()
		h.waitDetected(payments[1], 1)
		h.waitDetected(mixed, 2)
		h.waitScanned(h.head())
		h.stop()

		pay() // while the scanner is down
		h.chain.Mine(testConfirmations + 2)
		rewound := receipts[0].BlockNumber.Int64() - 1
		h.rewindCursor(rewound)
		h.start()
		h.waitDetected(payments[2], 1)
		h.waitScanned(h.head())

		ids := map[string]bool{}
		for _, d := range h.detected() {
			if ids[d.msgID] {
				t.Errorf("duplicate message %s on the stream", d.msgID)
			}
			ids[d.msgID] = true
		}
		for i, p := range payments {
			h.checkDetected(mode, p, receipts[i], 0, ether(1))
		}
		got := h.detectedFor(mixed.ID)
		if len(got) != 2 || got[0].data.Transactions[0].LogIndex != nil || got[0].data.Transactions[0].TxHash != lower(direct.TxHash.Hex()) {
			t.Fatalf("paid directly then forwarded: %d events (%+v), want the direct payment then the forwarded one", len(got), got)
		}
		txHash, logIndex := h.wantKey(mode, mixed, forwarded, 0)
		if tr := got[1].data.Transactions[0]; tr.TxHash != txHash || *tr.LogIndex != logIndex || got[1].data.AmountReceivedBaseUnits != ether(2).String() {
			t.Fatalf("forwarded: %+v, received %s; want %s log %d, 2 ETH", tr, got[1].data.AmountReceivedBaseUnits, txHash, logIndex)
		}
		if n := h.count(`SELECT count(*) FROM payment_transfers WHERE payment_id = $1`, mixed.ID); n != 2 {
			t.Fatalf("paid directly then forwarded: %d transfers recorded, want 2", n)
		}
	})
}

// TestContractPaymentsFoundWhileCatchingUp: a scanner that starts far behind the head (its
// balance readings then spread over many blocks, each window bisected down to the block of
// the rise) still puts each forwarded payment in the block that holds it, next to direct
// payments in the same range.
func TestContractPaymentsFoundWhileCatchingUp(t *testing.T) {
	// The catch-up of about 30 blocks is shorter than the catch-up stride (10 × 100 blocks):
	// the balances are read at its end only. In polls of 2 blocks (stride 20) they are read
	// spread over it as well.
	for _, batch := range []uint64{100, 2} {
		t.Run(fmt.Sprintf("batch %d", batch), func(t *testing.T) { foundWhileCatchingUp(t, batch) })
	}
}

func foundWhileCatchingUp(t *testing.T, batch uint64) {
	inEachMode(t, func(t *testing.T, h *harness, mode rpcMode) {
		h.cfg.BatchBlocks = batch
		fwd := h.chain.DeployForwarder()
		later := time.Now().Add(30 * time.Minute)
		first := h.head() + 1
		type paid struct {
			p       payment
			r       *types.Receipt
			forward bool
		}
		var all []paid
		for i := range 12 {
			p := h.newPayment("ETH", ether(1), later)
			var tx *types.Transaction
			if i%3 != 2 {
				tx = h.chain.Forward(h.payer, fwd, p.Address, ether(1))
			} else {
				tx = h.chain.SendETH(h.payer, p.Address, ether(1))
			}
			all = append(all, paid{p, h.mine(tx)[0], i%3 != 2})
			h.chain.Mine(i % 4)
		}
		h.cfg.StartBlock = strconv.FormatUint(first, 10)
		h.start()
		h.waitScanned(h.head())
		for _, x := range all {
			h.waitDetected(x.p, 1)
			if x.forward {
				h.checkDetected(mode, x.p, x.r, 0, ether(1))
			} else if n := len(h.detectedFor(x.p.ID)); n != 1 {
				t.Fatalf("direct payment: %d events, want 1", n)
			}
		}
	})
}

// TestContractPaymentReorged: a forwarded payment whose block a reorg replaces is detected
// again in the new branch's block that holds it, next to a forwarded payment only the new
// branch has.
func TestContractPaymentReorged(t *testing.T) {
	inEachMode(t, func(t *testing.T, h *harness, mode rpcMode) {
		fwd := h.chain.DeployForwarder()
		h.start()
		later := time.Now().Add(30 * time.Minute)
		moved, fresh := h.newPayment("ETH", ether(1), later), h.newPayment("ETH", ether(2), later)
		tx := h.chain.Forward(h.payer, fwd, moved.Address, ether(1))
		old := h.mine(tx)[0]
		h.chain.Commit()
		h.waitDetected(moved, 1)
		h.waitScanned(h.head())

		var freshTx *types.Transaction
		h.chain.ReorgFrom(old.BlockNumber.Uint64(), func() {
			h.chain.Resend(tx)
			freshTx = h.chain.Forward(h.chain.Accounts[1], fwd, fresh.Address, ether(2))
		})
		rs := h.mine(tx, freshTx)
		if rs[0].BlockHash == old.BlockHash {
			t.Fatal("the forward was not moved to another block")
		}
		h.waitDetected(moved, 2)
		h.waitDetected(fresh, 1)
		h.waitScanned(h.head())
		if n := len(h.streamMsgs("CHAIN", "chain.1337.reorg")); n != 1 {
			t.Fatalf("%d reorg messages, want 1", n)
		}
		got := h.detectedFor(moved.ID)
		if len(got) != 2 {
			t.Fatalf("moved payment: %d events, want 2 (its old block, its new one)", len(got))
		}
		txHash, logIndex := h.wantKey(mode, moved, rs[0], 0)
		if tr := got[1].data.Transactions[0]; tr.BlockHash != lower(rs[0].BlockHash.Hex()) || tr.TxHash != txHash ||
			tr.LogIndex == nil || *tr.LogIndex != logIndex || tr.ValueBaseUnits != ether(1).String() {
			t.Fatalf("detection in the new branch: %+v; want %s log %d in block %s", tr, txHash, logIndex, rs[0].BlockHash.Hex())
		}
		// Received counts the new block only: the old one is no longer the scanner's.
		if r := got[1].data.AmountReceivedBaseUnits; r != ether(1).String() {
			t.Fatalf("received %s after the reorg, want 1 ETH", r)
		}
		h.checkDetected(mode, fresh, rs[1], 0, ether(2))
	})
}
