package main

import (
	"context"
	"errors"
	"math/big"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"

	"github.com/ctrip-pay/pipeline/shared/event"
	"github.com/ctrip-pay/pipeline/shared/testkit"
)

// eth returns n/10 ether in wei: eth(15) is 1.5 ETH.
func eth(tenths int64) *big.Int {
	return new(big.Int).Div(new(big.Int).Mul(big.NewInt(tenths), ether), big.NewInt(10))
}

func TestConfirmsOnlyAfterConfirmations(t *testing.T) {
	cases := []struct {
		name  string
		token bool
	}{
		{"native ETH above 10 ETH", false},
		{"6-decimal token", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := startHarness(t, 3)
			var p payment
			var tr transfer
			var amount *big.Int
			if tc.token {
				tok := h.deployToken()
				amount = big.NewInt(12_500_000) // 12.5 TOK
				p = h.payment(amount, time.Hour, &tok)
				tr = h.payToken(p, amount)
			} else {
				amount = eth(125) // 12.5 ETH: beyond int64 wei
				p = h.payment(amount, time.Hour, nil)
				tr = h.payETH(p, amount)
			}
			h.detect(tr)
			h.waitStatus(p.ID, "detected")
			h.chain.Mine(2)
			h.head(tr.BlockNumber)     // 1 confirmation
			h.head(tr.BlockNumber + 1) // 2
			h.idle()
			if got := h.status(p.ID); got != "detected" {
				t.Fatalf("status after 2 of 3 confirmations = %s", got)
			}
			if got := h.transferStatus(tr); got != "detected" {
				t.Fatalf("transfer after 2 of 3 confirmations = %s", got)
			}
			h.head(tr.BlockNumber + 2) // 3
			h.waitStatus(p.ID, "confirmed")
			h.idle()
			if got := h.transferStatus(tr); got != "confirmed" {
				t.Fatalf("transfer = %s, want confirmed", got)
			}
			evs := h.events(event.SubjectConfirmed, p.ID)
			if len(evs) != 1 {
				t.Fatalf("%d payments.confirmed, want 1", len(evs))
			}
			e := evs[0]
			d := e.Data
			wantAmount := "12.5"
			switch {
			case e.MsgID != p.ID+".confirmed" || e.Type != "payment.confirmed" || e.Env.Type != "payment.confirmed":
				t.Fatalf("msg id %q type %q/%q", e.MsgID, e.Type, e.Env.Type)
			case d.Status != "confirmed" || d.MerchantID != "m_1" || d.ChainID != chainID || d.Chain != "devnet":
				t.Fatalf("data %+v", d.Payment)
			case d.Amount != wantAmount || d.AmountBaseUnits != amount.String() || d.AmountReceivedBaseUnits != amount.String() ||
				d.AmountConfirmedBaseUnits != amount.String():
				t.Fatalf("amounts %q %q %q %q", d.Amount, d.AmountBaseUnits, d.AmountReceivedBaseUnits, d.AmountConfirmedBaseUnits)
			case d.OverpaidBaseUnits != "0" || d.UnderpaidBaseUnits != "0":
				t.Fatalf("over %q under %q", d.OverpaidBaseUnits, d.UnderpaidBaseUnits)
			case d.Confirmations != 3:
				t.Fatalf("confirmations %d, want 3", d.Confirmations)
			case len(d.Transactions) != 1 || d.Transactions[0].TxHash != tr.TxHash || d.Transactions[0].Status != "confirmed" ||
				*d.Transactions[0].LogIndex != tr.LogIndex || d.Transactions[0].BlockHash != tr.BlockHash:
				t.Fatalf("transactions %+v", d.Transactions)
			case string(d.Metadata) != `{"order": "42"}` && string(d.Metadata) != `{"order":"42"}`:
				t.Fatalf("metadata %s", d.Metadata)
			case d.ExpiresAt == nil || d.Address != strings.ToLower(p.Address.Hex()):
				t.Fatalf("expires_at %v address %s", d.ExpiresAt, d.Address)
			}
			if tp := e.Header.Get("traceparent"); !strings.Contains(tp, detectionTraceID) {
				t.Fatalf("traceparent %q does not continue the detection's trace %s", tp, detectionTraceID)
			}
			if tc.token && (d.Token != "TOK" || d.TokenContract == nil || *d.TokenContract != strings.ToLower(p.Token.Hex())) {
				t.Fatalf("token %q contract %v", d.Token, d.TokenContract)
			}
			if got, want := h.changes(p.ID), []string{"pending→detected", "detected→confirmed"}; !slices.Equal(got, want) {
				t.Fatalf("audit %v, want %v", got, want)
			}
		})
	}
}

func TestPartialPaymentsAddUpAndOverpaymentIsReported(t *testing.T) {
	cases := []struct {
		name      string
		parts     []int64 // tenths of ETH, each in its own block
		amount    int64
		confirmAt int // index of the part whose confirmation completes the payment
		over      string
	}{
		{"two halves", []int64{5, 5}, 10, 1, "0"},
		{"overpayment", []int64{15}, 10, 0, eth(5).String()},
		{"partial then overpaying rest", []int64{4, 8}, 10, 1, eth(2).String()},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := startHarness(t, 2)
			p := h.payment(eth(tc.amount), time.Hour, nil)
			var trs []transfer
			for i, part := range tc.parts {
				tr := h.payETH(p, eth(part))
				trs = append(trs, tr)
				h.detect(tr)
				h.chain.Commit()
				h.head(tr.BlockNumber + 1) // 2 confirmations: this part is confirmed
				if i < tc.confirmAt {
					testkit.Eventually(t, 10*time.Second, "part confirmed", func() bool { return h.transferStatus(tr) == "confirmed" })
					h.idle()
					if got := h.status(p.ID); got != "detected" {
						t.Fatalf("after part %d status = %s, want detected", i, got)
					}
				}
			}
			h.waitStatus(p.ID, "confirmed")
			h.idle()
			evs := h.events(event.SubjectConfirmed, p.ID)
			if len(evs) != 1 {
				t.Fatalf("%d payments.confirmed, want 1", len(evs))
			}
			d := evs[0].Data
			sum := new(big.Int)
			for _, part := range tc.parts {
				sum.Add(sum, eth(part))
			}
			if d.AmountReceivedBaseUnits != sum.String() || d.AmountConfirmedBaseUnits != sum.String() {
				t.Fatalf("received %s confirmed %s, want %s", d.AmountReceivedBaseUnits, d.AmountConfirmedBaseUnits, sum)
			}
			if d.OverpaidBaseUnits != tc.over || d.UnderpaidBaseUnits != "0" {
				t.Fatalf("overpaid %s underpaid %s, want %s and 0", d.OverpaidBaseUnits, d.UnderpaidBaseUnits, tc.over)
			}
			if len(d.Transactions) != len(tc.parts) {
				t.Fatalf("%d transactions in the event, want %d", len(d.Transactions), len(tc.parts))
			}
			var received, confirmed string
			if err := h.db.QueryRow(`SELECT received_base_units::text, confirmed_base_units::text FROM payments WHERE id = $1`,
				p.ID).Scan(&received, &confirmed); err != nil {
				t.Fatal(err)
			}
			if received != sum.String() || confirmed != sum.String() {
				t.Fatalf("row totals %s / %s, want %s", received, confirmed, sum)
			}
		})
	}
}

// TestReorgBeforeConfirmations: the block holding the payment is replaced (a fork at its
// parent, a replacement transaction with the same nonce) before it has its confirmations.
// Whether the reorg message or a head of the new branch arrives first, the transfer is
// reorged, the payment steps back, payments.reorged is published once (also when the reorg
// message is delivered twice) and payments.confirmed never.
func TestReorgBeforeConfirmations(t *testing.T) {
	for _, headFirst := range []bool{false, true} {
		name := map[bool]string{false: "reorg message first", true: "head of new branch first"}[headFirst]
		t.Run(name, func(t *testing.T) {
			h, p, tr := startDetected(t, 3)
			ancestor, ancestorHash := h.ancestorOf(tr, 1)
			h.head(tr.BlockNumber)
			h.idle()

			someone := common.HexToAddress("0x00000000000000000000000000000000000000ee")
			var replacement *types.Transaction
			orphaned := h.chain.Reorg(1, func() { replacement = h.chain.SendETH(h.payer, someone, big.NewInt(1)) })
			h.chain.Mine(1) // the new branch: replacement block, and two on top
			if len(orphaned) != 1 || orphaned[0].Hex() != tr.BlockHash {
				t.Fatalf("orphaned %v, want the payment's block %s", orphaned, tr.BlockHash)
			}
			if replacement.Nonce() != tr.Tx.Nonce() {
				t.Fatalf("replacement nonce %d, want %d", replacement.Nonce(), tr.Tx.Nonce())
			}
			if _, err := h.rpc.TransactionReceipt(context.Background(), tr.Tx.Hash()); !errors.Is(err, ethereum.NotFound) {
				t.Fatalf("the paying transaction is still on the chain: %v", err)
			}
			reorg := event.ChainReorg{
				CommonAncestorNumber: ancestor, CommonAncestorHash: ancestorHash,
				OldHeadNumber: tr.BlockNumber, OldHeadHash: tr.BlockHash,
				NewHeadNumber: h.tip(), NewHeadHash: h.headerHash(h.tip()),
			}
			if headFirst {
				h.head(h.tip()) // would be the 3rd confirmation on the old branch
				testkit.Eventually(t, 10*time.Second, "transfer reorged by the head", func() bool { return h.transferStatus(tr) == "reorged" })
			}
			h.reorg(reorg, "reorg."+reorg.NewHeadHash)
			h.reorg(reorg, "reorg."+reorg.NewHeadHash+".again") // delivered twice
			for n := tr.BlockNumber; n <= h.tip(); n++ {
				h.head(n)
			}
			h.waitStatus(p.ID, "pending")
			h.idle()
			if got := h.transferStatus(tr); got != "reorged" {
				t.Fatalf("transfer = %s, want reorged", got)
			}
			if evs := h.events(event.SubjectConfirmed, p.ID); len(evs) != 0 {
				t.Fatalf("payments.confirmed published for a reorged-out transfer")
			}
			evs := h.events(event.SubjectReorged, p.ID)
			if len(evs) != 1 {
				t.Fatalf("%d payments.reorged, want 1", len(evs))
			}
			d := evs[0].Data
			if evs[0].MsgID != p.ID+".reorged."+reorg.CommonAncestorHash || d.Status != "pending" ||
				!strings.Contains(d.Reason, tr.TxHash) || d.AmountReceivedBaseUnits != "0" ||
				len(d.Transactions) != 1 || d.Transactions[0].Status != "reorged" || d.UnderpaidBaseUnits != eth(10).String() ||
				d.TokenID != "ETH" {
				t.Fatalf("payments.reorged: msg id %s data %+v", evs[0].MsgID, d)
			}
			if got, want := h.changes(p.ID), []string{"pending→detected", "detected→pending"}; !slices.Equal(got, want) {
				t.Fatalf("audit %v, want %v", got, want)
			}
		})
	}
}

// TestReincludedTransferIsConfirmed: after a reorg the same transaction lands in another
// block; the scanner reports it again and the confirmer counts it in its new block. However the
// reorg message, a head that finds the old block orphaned and the new detection interleave,
// payments.reorged is published once and the payment is confirmed once.
func TestReincludedTransferIsConfirmed(t *testing.T) {
	cases := []struct {
		name  string
		order string // r: reorg message, d: new detection, h: head of the new branch
	}{
		{"reorg message first", "rdh"},
		{"re-detection first", "drh"},
		{"head finds it orphaned, then re-detection", "hdrh"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h, p, tr := startDetected(t, 2)
			ancestor, ancestorHash := h.ancestorOf(tr, 2)

			// Two blocks replaced; the new branch's first block holds the same transaction, one
			// block lower than before.
			h.chain.Reorg(2, func() { h.chain.Resend(tr.Tx) })
			r := h.receipt(tr.Tx.Hash())
			moved := tr
			moved.BlockNumber, moved.BlockHash = r.BlockNumber.Uint64(), r.BlockHash.Hex()
			if moved.BlockNumber != tr.BlockNumber-1 {
				t.Fatalf("re-included in block %d, want %d", moved.BlockNumber, tr.BlockNumber-1)
			}
			reorg := event.ChainReorg{CommonAncestorNumber: ancestor, CommonAncestorHash: ancestorHash,
				OldHeadNumber: tr.BlockNumber, OldHeadHash: tr.BlockHash, NewHeadNumber: h.tip(), NewHeadHash: h.headerHash(h.tip())}
			reorged := false
			for i, step := range tc.order {
				switch step {
				case 'r':
					h.reorg(reorg, "reorg.1")
					reorged = true
					testkit.Eventually(t, 10*time.Second, "reorg reported", func() bool { return len(h.events(event.SubjectReorged, p.ID)) == 1 })
					if i == 0 {
						h.waitStatus(p.ID, "pending")
						// A stale delivery of the first detected event (orphaned block) changes nothing.
						h.publishDetected(tr, ".stale")
						h.idle()
						if got := h.status(p.ID); got != "pending" {
							t.Fatalf("stale detected event revived the transfer: payment %s", got)
						}
					}
				case 'd':
					h.publishDetected(moved, "."+moved.BlockHash)
					if !reorged {
						testkit.Eventually(t, 10*time.Second, "re-detection retried until the reorg is handled", func() bool {
							info, err := testkit.ConsumerInfo(context.Background(), h.js, "PAYMENTS", "confirmer")
							return err == nil && info.NumRedelivered > 0
						})
					}
				case 'h':
					if reorged {
						testkit.Eventually(t, 10*time.Second, "transfer recorded in its new block", func() bool {
							var block int64
							return h.db.Get(&block, `SELECT block_number FROM payment_transfers WHERE tx_hash = $1 AND status = 'detected'`,
								tr.TxHash) == nil && uint64(block) == moved.BlockNumber
						})
					}
					h.chain.Commit()
					h.head(h.tip())
					if !reorged {
						testkit.Eventually(t, 10*time.Second, "head finds the block orphaned", func() bool { return h.transferStatus(tr) == "reorged" })
					}
				}
			}
			h.waitStatus(p.ID, "confirmed")
			h.idle()
			var block int64
			if err := h.db.Get(&block, `SELECT block_number FROM payment_transfers WHERE tx_hash = $1`, tr.TxHash); err != nil || uint64(block) != moved.BlockNumber {
				t.Fatalf("transfer block %d (%v), want %d", block, err, moved.BlockNumber)
			}
			if n := len(h.events(event.SubjectConfirmed, p.ID)); n != 1 {
				t.Fatalf("%d payments.confirmed, want 1", n)
			}
			if n := len(h.events(event.SubjectReorged, p.ID)); n != 1 {
				t.Fatalf("%d payments.reorged, want 1", n)
			}
			want := []string{"pending→detected", "detected→pending", "pending→detected", "detected→confirmed"}
			if got := h.changes(p.ID); !slices.Equal(got, want) {
				t.Fatalf("audit %v, want %v", got, want)
			}
		})
	}
}

// TestExpiry: payments past their deadline without their full amount expire once; a payment
// whose full amount is detected waits for its confirmations instead, also when the scanner
// recorded the transfer but its payments.detected has not been handled yet; an expired payment
// records late value but is never confirmed.
func TestExpiry(t *testing.T) {
	h := startHarness(t, 2)
	unpaid := h.payment(eth(10), time.Hour, nil)
	partial := h.payment(eth(10), time.Hour, nil)
	full := h.payment(eth(10), time.Hour, nil)
	unannounced := h.payment(eth(10), time.Hour, nil)
	trPartial := h.payETH(partial, eth(4))
	h.detect(trPartial)
	trFull := h.payETH(full, eth(10))
	h.detect(trFull)
	h.record(h.payETH(unannounced, eth(10))) // recorded, event not yet published
	h.waitStatus(partial.ID, "detected")
	h.waitStatus(full.ID, "detected")
	if _, err := h.db.Exec(`UPDATE payments SET expires_at = now() - interval '1 second'`); err != nil {
		t.Fatal(err)
	}
	h.waitStatus(unpaid.ID, "expired")
	h.waitStatus(partial.ID, "expired")
	// The expiry pass found the unannounced transfer: detected, not expired.
	h.waitStatus(unannounced.ID, "detected")
	// A payment that expires after those proves another full pass ran since.
	sentinel := h.payment(eth(10), -time.Second, nil)
	h.waitStatus(sentinel.ID, "expired")
	for _, p := range []payment{full, unannounced} {
		if got := h.status(p.ID); got != "detected" {
			t.Fatalf("fully detected payment %s: %s, want detected", p.ID, got)
		}
	}
	h.idle()
	for _, c := range []struct {
		p     payment
		under string
	}{{unpaid, eth(10).String()}, {partial, eth(6).String()}} {
		evs := h.events(event.SubjectExpired, c.p.ID)
		if len(evs) != 1 || evs[0].MsgID != c.p.ID+".expired" || evs[0].Data.Status != "expired" ||
			evs[0].Data.UnderpaidBaseUnits != c.under || evs[0].Data.TokenID != "ETH" {
			t.Fatalf("payments.expired of %s: %+v", c.p.ID, evs)
		}
	}

	// The full one confirms; a late payment to the expired one is recorded but never confirms it.
	late := h.payETH(unpaid, eth(10))
	h.detect(late)
	h.chain.Commit()
	h.head(h.tip())
	h.waitStatus(full.ID, "confirmed")
	h.waitStatus(unannounced.ID, "confirmed")
	testkit.Eventually(t, 10*time.Second, "late transfer confirmed", func() bool { return h.transferStatus(late) == "confirmed" })
	h.idle()
	if got := h.status(unpaid.ID); got != "expired" {
		t.Fatalf("expired payment moved to %s", got)
	}
	var received string
	if err := h.db.Get(&received, `SELECT received_base_units::text FROM payments WHERE id = $1`, unpaid.ID); err != nil || received != eth(10).String() {
		t.Fatalf("late value not recorded: %s (%v)", received, err)
	}
	// Confirmed too: the sweeper's leftover pass sweeps confirmed value of expired payments.
	var confirmed string
	if err := h.db.Get(&confirmed, `SELECT confirmed_base_units::text FROM payments WHERE id = $1`, unpaid.ID); err != nil || confirmed != eth(10).String() {
		t.Fatalf("late value not counted as confirmed: %s (%v)", confirmed, err)
	}
	if n := len(h.events(event.SubjectConfirmed, unpaid.ID)); n != 0 {
		t.Fatalf("expired payment confirmed")
	}
	if got, want := h.changes(unpaid.ID), []string{"pending→expired"}; !slices.Equal(got, want) {
		t.Fatalf("audit %v, want %v", got, want)
	}
}

// TestRedeliveryChangesStatusOnce: every message is handled twice — republished with the
// same content, and redelivered to a fresh consumer after a restart — and still each
// transition happens once and each event is published once.
func TestRedeliveryChangesStatusOnce(t *testing.T) {
	h := startHarness(t, 2)
	p := h.payment(eth(10), time.Hour, nil)
	tr := h.payETH(p, eth(10))
	h.detect(tr)
	h.publishDetected(tr, ".again")
	h.chain.Commit()
	h.head(tr.BlockNumber + 1)
	h.publish(event.HeadSubject(chainID), "head.again", "chain.head", event.ChainHead{
		ChainID: chainID, Number: tr.BlockNumber + 1, Hash: h.headerHash(tr.BlockNumber + 1)})
	h.waitStatus(p.ID, "confirmed")
	h.idle()
	check := func(when string) {
		t.Helper()
		if got, want := h.changes(p.ID), []string{"pending→detected", "detected→confirmed"}; !slices.Equal(got, want) {
			t.Fatalf("%s: audit %v, want %v", when, got, want)
		}
		if n := len(h.events(event.SubjectConfirmed, p.ID)); n != 1 {
			t.Fatalf("%s: %d payments.confirmed, want 1", when, n)
		}
		if n := h.count(`SELECT count(*) FROM outbox WHERE msg_id LIKE $1`, p.ID+"%"); n != 1 {
			t.Fatalf("%s: %d outbox rows, want 1", when, n)
		}
	}
	check("after republish")

	// Restart with the consumers' state lost: every message is delivered again.
	h.stop()
	for _, s := range []string{"PAYMENTS", "CHAIN"} {
		if err := h.js.DeleteConsumer(context.Background(), s, "confirmer"); err != nil {
			t.Fatal(err)
		}
	}
	h.start()
	testkit.Eventually(t, 10*time.Second, "redelivery", func() bool {
		info, err := testkit.ConsumerInfo(context.Background(), h.js, "CHAIN", "confirmer")
		return err == nil && info.Delivered.Stream >= 2 && info.NumAckPending == 0
	})
	h.idle()
	check("after restart and redelivery")
}

func TestPoisonIsTerminated(t *testing.T) {
	h := startHarness(t, 2)
	terms, err := h.nc.SubscribeSync("$JS.EVENT.ADVISORY.CONSUMER.MSG_TERMINATED.>")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name    string
		publish func()
	}{
		{"detected for an unknown payment", func() {
			h.publishDetected(transfer{PaymentID: "pay_unknown", TxHash: "0x01", LogIndex: -1, BlockNumber: 1,
				BlockHash: "0x02", Value: big.NewInt(1)}, "")
		}},
		{"detected that is not JSON", func() {
			m := []byte("{not json")
			if _, err := h.js.Publish(context.Background(), event.SubjectDetected, m); err != nil {
				t.Fatal(err)
			}
		}},
		{"head of an unconfigured chain", func() {
			h.publish(event.HeadSubject(999), "head.999", "chain.head", event.ChainHead{ChainID: 999, Number: 10})
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.publish()
			if _, err := terms.NextMsg(10 * time.Second); err != nil {
				t.Fatalf("no MSG_TERMINATED advisory: %v", err)
			}
		})
	}
	h.idle()
}

// TestRPCFailureIsRetried: the node is unreachable when the head that completes the
// confirmations arrives; the head is retried, nothing is confirmed without verification, and
// once the node is back the payment is confirmed once.
func TestRPCFailureIsRetried(t *testing.T) {
	h := startHarness(t, 2)
	p := h.payment(eth(10), time.Hour, nil)
	tr := h.payETH(p, eth(10))
	h.detect(tr)
	h.waitStatus(p.ID, "detected")
	h.chain.Commit()
	h.proxy.SetFailing(true)
	h.head(tr.BlockNumber + 1)
	testkit.Eventually(t, 10*time.Second, "head redelivered", func() bool {
		info, err := testkit.ConsumerInfo(context.Background(), h.js, "CHAIN", "confirmer")
		return err == nil && info.NumRedelivered > 0
	})
	if got := h.status(p.ID); got != "detected" {
		t.Fatalf("status %s while the node is down, want detected", got)
	}
	h.proxy.SetFailing(false)
	h.waitStatus(p.ID, "confirmed")
	h.idle()
	if n := len(h.events(event.SubjectConfirmed, p.ID)); n != 1 {
		t.Fatalf("%d payments.confirmed, want 1", n)
	}
}

// TestReorgMessageReconcilesTransfersWithTheChain: a reorg message looks at every transfer
// above its common ancestor. One reorged earlier whose block is canonical again (the chain
// flipped back) counts again; one the head rejected (a failed transaction: status failed, not
// reorged, and no payments.reorged for it) stays out although its block is canonical.
func TestReorgMessageReconcilesTransfersWithTheChain(t *testing.T) {
	h := startHarness(t, 2)

	back := h.payment(eth(10), time.Hour, nil)
	trBack := h.payETH(back, eth(10))
	h.record(trBack)
	// As left by an earlier reorg whose branch lost again: reorged and reported, nothing received.
	if _, err := h.db.Exec(`UPDATE payment_transfers SET status = 'reorged', reorged_at = now(), reorg_reported_at = now()
		WHERE tx_hash = $1`, trBack.TxHash); err != nil {
		t.Fatal(err)
	}

	failed := h.payment(eth(10), time.Hour, nil)
	trFailed := h.payFailing(failed, eth(10))
	h.detectFailed(failed, trFailed)

	ancestor := min(trBack.BlockNumber, trFailed.BlockNumber) - 1
	h.reorg(event.ChainReorg{CommonAncestorNumber: ancestor, CommonAncestorHash: h.headerHash(ancestor),
		NewHeadNumber: h.tip(), NewHeadHash: h.headerHash(h.tip())}, "reorg.flip")
	h.waitStatus(back.ID, "detected")
	h.chain.Commit()
	h.head(h.tip())
	h.waitStatus(back.ID, "confirmed")
	h.idle()
	if got := h.transferStatus(trFailed); got != "failed" {
		t.Fatalf("failed transfer %s after the reorg message, want it kept out as failed", got)
	}
	if got, want := h.changes(failed.ID), []string{"pending→detected", "detected→pending"}; !slices.Equal(got, want) {
		t.Fatalf("audit of the failed one %v, want %v", got, want)
	}
	for _, p := range []payment{back, failed} {
		if n := len(h.events(event.SubjectReorged, p.ID)); n != 0 {
			t.Fatalf("%d payments.reorged for %s: nothing left the chain in this reorg", n, p.ID)
		}
	}
	if n := len(h.events(event.SubjectConfirmed, back.ID)); n != 1 {
		t.Fatalf("%d payments.confirmed, want 1", n)
	}
}

// startDetected starts a confirmer that needs confirmations, and pays a 10 ETH payment in full
// in one transfer, which the scanner reports.
func startDetected(t *testing.T, confirmations int) (*harness, payment, transfer) {
	t.Helper()
	h := startHarness(t, confirmations)
	p := h.payment(eth(10), time.Hour, nil)
	tr := h.payETH(p, eth(10))
	h.detect(tr)
	h.waitStatus(p.ID, "detected")
	return h, p, tr
}

// ancestorOf is the block depth below the transfer's, with its hash: the common ancestor of a
// reorg that replaces depth blocks from the transfer's up.
func (h *harness) ancestorOf(tr transfer, depth uint64) (uint64, string) {
	n := tr.BlockNumber - depth
	return n, h.headerHash(n)
}

// detectFailed detects a failed transfer and lets the next head reject it: the transfer is
// failed and its payment back to pending with nothing received.
func (h *harness) detectFailed(p payment, tr transfer) {
	h.t.Helper()
	h.detect(tr)
	h.waitStatus(p.ID, "detected")
	h.chain.Commit()
	h.head(h.tip())
	testkit.Eventually(h.t, 10*time.Second, "the head finds the transfer failed", func() bool { return h.transferStatus(tr) == "failed" })
	h.waitStatus(p.ID, "pending")
	var received string
	if err := h.db.Get(&received, `SELECT received_base_units::text FROM payments WHERE id = $1`, p.ID); err != nil {
		h.t.Fatal(err)
	}
	if received != "0" {
		h.t.Fatalf("received %s after the transfer failed, want 0", received)
	}
}

// A failed transfer is its own status, not a reorg: it never counts, stays in the payment's
// transfers, and no payments.reorged names it — neither when the head finds it failed nor when
// its block later leaves the chain (then it is reorged quietly, so that a detection in another
// block can record it afresh).
func TestFailedTransferIsFailedNotReorged(t *testing.T) {
	h := startHarness(t, 2)
	p := h.payment(eth(10), time.Hour, nil)
	tr := h.payFailing(p, eth(10))
	ancestor, ancestorHash := h.ancestorOf(tr, 1)
	h.detectFailed(p, tr)

	orphaned := h.chain.Reorg(int(h.tip()-ancestor), func() {})
	h.chain.Mine(1)
	if len(orphaned) == 0 || orphaned[0].Hex() != tr.BlockHash {
		t.Fatalf("orphaned %v, want the failed transfer's block %s first", orphaned, tr.BlockHash)
	}
	h.reorg(event.ChainReorg{CommonAncestorNumber: ancestor, CommonAncestorHash: ancestorHash,
		OldHeadNumber: tr.BlockNumber, OldHeadHash: tr.BlockHash,
		NewHeadNumber: h.tip(), NewHeadHash: h.headerHash(h.tip())}, "reorg.failed")
	testkit.Eventually(t, 10*time.Second, "the failed transfer's block reorged out", func() bool { return h.transferStatus(tr) == "reorged" })
	h.idle()
	if n := len(h.events(event.SubjectReorged, p.ID)); n != 0 {
		t.Fatalf("%d payments.reorged for a transfer that never counted", n)
	}
	if got, want := h.changes(p.ID), []string{"pending→detected", "detected→pending"}; !slices.Equal(got, want) {
		t.Fatalf("audit %v, want %v", got, want)
	}
}
