package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math/big"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"

	"github.com/ctrip-pay/pipeline/shared/event"
	"github.com/ctrip-pay/pipeline/shared/testkit"
	"github.com/ctrip-pay/pipeline/shared/testkit/chaintest"
)

// TestDetection runs one scanner over a chain and checks, case by case, which transfers become
// payments.detected events and what those say.
func TestDetection(t *testing.T) {
	h := startHarness(t)
	later := time.Now().Add(30 * time.Minute)

	cases := []struct {
		name string
		run  func(t *testing.T, h *harness)
	}{
		{"ETH payment above 10 ETH", func(t *testing.T, h *harness) {
			twelve := ether(12)
			p := h.newPayment("ETH", twelve, later)
			tx := h.chain.SendETH(h.payer, p.Address, twelve)
			receipt := h.mine(tx)[0]
			block, blockHash := receipt.BlockNumber.Uint64(), receipt.BlockHash
			h.waitScanned(block)

			got := h.detectedFor(p.ID)
			if len(got) != 1 {
				t.Fatalf("%d payments.detected events, want 1", len(got))
			}
			d := got[0]
			wantID := fmt.Sprintf("detected.%d.%s.-1.%s", testChainID, lower(tx.Hash().Hex()), lower(blockHash.Hex()))
			if d.msgID != wantID || d.eventType != "payment.detected" || d.env.Type != "payment.detected" || d.env.ID == "" {
				t.Fatalf("headers/envelope: msg id %q (want %q), type %q/%q, id %q", d.msgID, wantID, d.eventType, d.env.Type, d.env.ID)
			}
			data := d.data
			if data.Status != "detected" || data.MerchantID != testMerchant || data.ChainID != testChainID ||
				data.Chain != testChainName || data.Address != lower(p.Address.Hex()) || data.Token != "ETH" ||
				data.TokenContract != nil || data.Amount != "12" || data.AmountBaseUnits != "12000000000000000000" ||
				data.AmountReceivedBaseUnits != "12000000000000000000" || data.Confirmations < 1 {
				t.Fatalf("data: %+v", data)
			}
			if data.ExpiresAt == nil || !data.ExpiresAt.Equal(later.Round(time.Microsecond)) {
				t.Fatalf("expires_at %v, want %v", data.ExpiresAt, later)
			}
			var meta map[string]string
			if err := json.Unmarshal(data.Metadata, &meta); err != nil || meta["order"] != p.ID {
				t.Fatalf("metadata %s (%v)", data.Metadata, err)
			}
			if len(data.Transactions) != 1 {
				t.Fatalf("transactions: %+v", data.Transactions)
			}
			tr := data.Transactions[0]
			if tr.TxHash != lower(tx.Hash().Hex()) || tr.LogIndex != nil || tr.BlockNumber != block ||
				tr.BlockHash != lower(blockHash.Hex()) || tr.ValueBaseUnits != "12000000000000000000" || tr.Status != "detected" {
				t.Fatalf("transaction: %+v", tr)
			}
			// The raw JSON carries amounts as strings, never numbers.
			var raw map[string]any
			if err := json.Unmarshal(d.env.Data, &raw); err != nil {
				t.Fatal(err)
			}
			for _, k := range []string{"amount", "amount_base_units", "amount_received_base_units"} {
				if _, ok := raw[k].(string); !ok {
					t.Fatalf("%s is %T in %s", k, raw[k], d.env.Data)
				}
			}
			var row struct {
				Value    string `db:"value"`
				LogIndex int    `db:"log_index"`
				Block    int64  `db:"block_number"`
				Hash     string `db:"block_hash"`
				Status   string `db:"status"`
			}
			if err := h.db.Get(&row, `SELECT value_base_units::text AS value, log_index, block_number, block_hash, status
				FROM payment_transfers WHERE payment_id = $1`, p.ID); err != nil {
				t.Fatal(err)
			}
			if row.Value != "12000000000000000000" || row.LogIndex != -1 || row.Block != int64(block) ||
				row.Hash != lower(blockHash.Hex()) || row.Status != "detected" {
				t.Fatalf("payment_transfers row: %+v", row)
			}
			h.waitHead(block)
		}},
		{"6-decimal token payment; other tokens and ETH to its address not counted", func(t *testing.T, h *harness) {
			amount := big.NewInt(12_500_000) // 12.5 USDC
			p := h.newPayment("USDC", amount, later)
			eth := h.chain.SendETH(h.payer, p.Address, ether(1))
			dai := h.chain.TransferToken(h.payer, h.dai, p.Address, ether(5))
			tx := h.chain.TransferToken(h.payer, h.usdc, p.Address, amount)
			receipt := h.mine(eth, dai, tx)[2]
			blockHash := receipt.BlockHash
			h.waitScanned(h.head())

			got := h.detectedFor(p.ID)
			if len(got) != 1 {
				t.Fatalf("%d payments.detected events, want 1 (only the USDC transfer)", len(got))
			}
			data := got[0].data
			logIndex := int64(receipt.Logs[0].Index)
			wantID := fmt.Sprintf("detected.%d.%s.%d.%s", testChainID, lower(tx.Hash().Hex()), logIndex, lower(blockHash.Hex()))
			if got[0].msgID != wantID {
				t.Fatalf("msg id %q, want %q", got[0].msgID, wantID)
			}
			if data.Token != "USDC" || data.TokenContract == nil || *data.TokenContract != lower(h.usdc.Hex()) ||
				data.Amount != "12.5" || data.AmountBaseUnits != "12500000" || data.AmountReceivedBaseUnits != "12500000" {
				t.Fatalf("data: %+v", data)
			}
			if tr := data.Transactions[0]; tr.LogIndex == nil || *tr.LogIndex != logIndex || tr.ValueBaseUnits != "12500000" {
				t.Fatalf("transaction: %+v", tr)
			}
			if n := h.count(`SELECT count(*) FROM payment_transfers WHERE payment_id = $1`, p.ID); n != 1 {
				t.Fatalf("%d transfers recorded, want 1", n)
			}
		}},
		{"two partial payments: two events, growing amount received", func(t *testing.T, h *harness) {
			p := h.newPayment("ETH", big.NewInt(1_500_000_000_000_000_000), later)
			h.mine(h.chain.SendETH(h.payer, p.Address, big.NewInt(500_000_000_000_000_000)))
			h.mine(h.chain.SendETH(h.payer, p.Address, ether(1)))
			h.waitScanned(h.head())

			got := h.detectedFor(p.ID)
			want := []struct{ value, received string }{
				{"500000000000000000", "500000000000000000"},
				{"1000000000000000000", "1500000000000000000"},
			}
			if len(got) != len(want) {
				t.Fatalf("%d events, want %d", len(got), len(want))
			}
			for i, w := range want {
				d := got[i].data
				if d.AmountReceivedBaseUnits != w.received || len(d.Transactions) != 1 || d.Transactions[0].ValueBaseUnits != w.value {
					t.Fatalf("event %d: received %s, transactions %+v; want value %s received %s", i, d.AmountReceivedBaseUnits, d.Transactions, w.value, w.received)
				}
			}
		}},
		{"two transfers to one payment in one block: events in order, growing amount received", func(t *testing.T, h *harness) {
			p := h.newPayment("USDC", big.NewInt(5_000_000), later)
			h.mine(h.chain.TransferToken(h.payer, h.usdc, p.Address, big.NewInt(2_000_000)),
				h.chain.TransferToken(h.payer, h.usdc, p.Address, big.NewInt(3_000_000)))
			h.waitScanned(h.head())
			got := h.detectedFor(p.ID)
			if len(got) != 2 {
				t.Fatalf("%d events, want 2", len(got))
			}
			for i, want := range []string{"2000000", "5000000"} {
				if r := got[i].data.AmountReceivedBaseUnits; r != want {
					t.Fatalf("event %d (stream order): received %s, want %s", i, r, want)
				}
			}
		}},
		{"failed transaction not detected", func(t *testing.T, h *harness) {
			// A contract without a payable fallback rejects ether: the transaction is mined with
			// status 0 and moves nothing.
			rejecter, _ := h.chain.DeployNamedToken("Rejects ETH", "REJ", 0)
			failing := h.paymentAt(rejecter, "ETH", ether(1), later)
			ok := h.newPayment("ETH", ether(1), later)
			failedTx := h.sendWithGas(h.chain.Accounts[1], rejecter, ether(1), 100_000)
			okTx := h.chain.SendETH(h.payer, ok.Address, ether(1))
			if r := h.mine(failedTx, okTx)[0]; r.Status != types.ReceiptStatusFailed {
				t.Fatalf("the transaction to the rejecting contract has status %d, want failed", r.Status)
			}
			h.waitScanned(h.head())
			if n := len(h.detectedFor(ok.ID)); n != 1 {
				t.Fatalf("the successful transfer in the same block: %d events, want 1", n)
			}
			if n := len(h.detectedFor(failing.ID)); n != 0 {
				t.Fatalf("failed transaction: %d events, want 0", n)
			}
			if n := h.count(`SELECT count(*) FROM payment_transfers WHERE payment_id = $1`, failing.ID); n != 0 {
				t.Fatalf("failed transaction recorded %d transfers", n)
			}
		}},
		{"payment past its expiry still detected", func(t *testing.T, h *harness) {
			expired := time.Now().Add(-time.Hour)
			p := h.newPayment("ETH", ether(2), expired)
			if _, err := h.db.Exec(`UPDATE payments SET status = 'expired' WHERE id = $1`, p.ID); err != nil {
				t.Fatal(err)
			}
			h.mine(h.chain.SendETH(h.payer, p.Address, ether(2)))
			h.waitScanned(h.head())
			got := h.detectedFor(p.ID)
			if len(got) != 1 {
				t.Fatalf("%d events for the late payment, want 1", len(got))
			}
			if d := got[0].data; d.Status != "detected" || d.ExpiresAt == nil || !d.ExpiresAt.Before(time.Now()) || d.AmountReceivedBaseUnits != "2000000000000000000" {
				t.Fatalf("data: %+v", d)
			}
		}},
	}
	for _, c := range cases {
		h.subtest(t, c.name, c.run)
	}
}

// waitHead waits for a chain.<id>.head message at or above block n and checks its headers.
func (h *harness) waitHead(n uint64) {
	h.t.Helper()
	testkit.Eventually(h.t, 10*time.Second, fmt.Sprintf("chain head %d", n), func() bool {
		for _, m := range h.streamMsgs("CHAIN", event.HeadSubject(testChainID)) {
			var head event.ChainHead
			if err := json.Unmarshal(m.Data, &head); err != nil {
				h.t.Fatal(err)
			}
			if head.Number >= n {
				want := fmt.Sprintf("head.%d.%d.%s", testChainID, head.Number, head.Hash)
				if got := m.Header.Get(event.HeaderMsgID); got != want || m.Header.Get(event.HeaderEventType) != "chain.head" {
					h.t.Fatalf("head message headers: %v, want msg id %s", m.Header, want)
				}
				return true
			}
		}
		return false
	})
}

// sendWithGas sends wei with a fixed gas limit, skipping estimation (which refuses a
// transaction that would revert). from must be used by no other sender in the test.
func (h *harness) sendWithGas(from *chaintest.Account, to common.Address, wei *big.Int, gas uint64) *types.Transaction {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c := h.chain.Client()
	nonce, err := c.PendingNonceAt(ctx, from.Address)
	if err != nil {
		h.t.Fatal(err)
	}
	tip, err := c.SuggestGasTipCap(ctx)
	if err != nil {
		h.t.Fatal(err)
	}
	head := h.chain.Head()
	tx, err := types.SignNewTx(from.Key, types.LatestSignerForChainID(h.chain.ChainID()), &types.DynamicFeeTx{
		ChainID: h.chain.ChainID(), Nonce: nonce, GasTipCap: tip,
		GasFeeCap: new(big.Int).Add(new(big.Int).Mul(head.BaseFee, big.NewInt(2)), tip),
		Gas:       gas, To: &to, Value: wei,
	})
	if err != nil {
		h.t.Fatal(err)
	}
	if err := c.SendTransaction(ctx, tx); err != nil {
		h.t.Fatal(err)
	}
	return tx
}
