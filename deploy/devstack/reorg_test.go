package main

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ctrip-pay/pipeline/shared/testkit"
	"github.com/ctrip-pay/pipeline/shared/testkit/chaintest"
)

// The real scanner and confirmer together through a reorg that moves a payment's transaction
// into a different block: the merchant is told the transfer was reorged (once), then that the
// payment is confirmed (once) in its new block.
func TestReorgedTransferIsReportedThenConfirmedInItsNewBlock(t *testing.T) {
	ctx := systemTest(t, "builds and runs the scanner and the confirmer", 3*time.Minute)
	chain := chaintest.New(t, chaintest.WithHTTP())
	ns := testkit.MustNATSProcess(t)
	db, dsn := testkit.MustDB(t)

	deposit := chaintest.NewAccount("reorg test deposit").Address
	payment := "pay_reorg_test"
	for _, q := range []string{
		`INSERT INTO merchants (id, name) VALUES ('m_reorg', 'Reorg Shop')`,
		fmt.Sprintf(`INSERT INTO payments (id, merchant_id, chain_id, token, decimals, address, address_index, amount_base_units, expires_at)
			VALUES ('%s', 'm_reorg', 1337, 'ETH', 18, '%s', 0, 1000000000000000000, now() + interval '1 hour')`,
			payment, strings.ToLower(deposit.Hex())),
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	chainsFile := filepath.Join(t.TempDir(), "chains.yaml")
	if err := os.WriteFile(chainsFile, []byte(fmt.Sprintf(`chains:
  - {id: 1337, name: devnet, rpc_url: "%s", confirmations: 3, native: {symbol: ETH, decimals: 18}, treasury: "%s"}
`, chain.RPCURL(), chaintest.NewAccount("reorg test treasury").Address.Hex())), 0o600); err != nil {
		t.Fatal(err)
	}
	env := append(os.Environ(), "NATS_URL="+ns.URL(), "DATABASE_URL="+dsn, "CHAINS_FILE="+chainsFile,
		"LOG_LEVEL=warn", "OPS_ADDR=127.0.0.1:0", "SCAN_POLL_INTERVAL=100ms", "SCAN_START_BLOCK=0",
		"CONFIRMER_EXPIRY_INTERVAL=1s", "OUTBOX_INTERVAL=100ms")
	for _, svc := range []string{"scanner", "confirmer"} {
		startService(t, svc, env)
	}

	nc, err := nats.Connect(ns.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	eventsOf := func(subject string) []map[string]any {
		s, err := js.Stream(ctx, "PAYMENTS")
		if err != nil {
			return nil
		}
		var out []map[string]any
		info, err := s.Info(ctx)
		if err != nil {
			return nil
		}
		for seq := info.State.FirstSeq; seq <= info.State.LastSeq && seq > 0; seq++ {
			m, err := s.GetMsg(ctx, seq)
			if err != nil || m.Subject != subject {
				continue
			}
			var e struct {
				Data map[string]any `json:"data"`
			}
			if json.Unmarshal(m.Data, &e) == nil {
				out = append(out, e.Data)
			}
		}
		return out
	}
	waitUntil := func(what string, cond func() bool) {
		t.Helper()
		for !cond() {
			if ctx.Err() != nil {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}

	eth := big.NewInt(1_000_000_000_000_000_000)
	tx := chain.SendETH(chain.Accounts[0], deposit, eth)
	chain.Commit()
	receipt := chain.WaitMined(tx)
	oldBlock := receipt.BlockHash
	waitUntil("the first detection", func() bool { return len(eventsOf("payments.detected")) == 1 })

	// The same transaction, now in a different block at the same height (another transaction
	// beside it changes the block's hash), then enough blocks for the confirmations.
	chain.ReorgFrom(receipt.BlockNumber.Uint64(), func() {
		chain.Resend(tx)
		chain.SendETH(chain.Accounts[1], common.HexToAddress("0x000000000000000000000000000000000000dEaD"), big.NewInt(1))
	})
	newReceipt := chain.Receipt(tx.Hash())
	if newReceipt == nil || newReceipt.BlockHash == oldBlock {
		t.Fatalf("the reorg did not move the transaction: %+v", newReceipt)
	}
	// The chain goes on producing blocks, as a real one does: the confirmer may record the
	// transfer in its new block only after it handled the reorg, and counts confirmations on
	// the heads that follow.
	waitUntil("payments.confirmed", func() bool {
		chain.Commit()
		return len(eventsOf("payments.confirmed")) == 1
	})
	time.Sleep(time.Second) // room for a duplicate to show up
	if n := len(eventsOf("payments.reorged")); n != 1 {
		t.Fatalf("%d payments.reorged events, want 1", n)
	}
	if n := len(eventsOf("payments.confirmed")); n != 1 {
		t.Fatalf("%d payments.confirmed events, want 1", n)
	}
	var status, blockHash, transferStatus string
	if err := db.QueryRow(`SELECT p.status, t.block_hash, t.status FROM payments p JOIN payment_transfers t ON t.payment_id = p.id
		WHERE p.id = $1`, payment).Scan(&status, &blockHash, &transferStatus); err != nil {
		t.Fatal(err)
	}
	if status != "confirmed" || transferStatus != "confirmed" || !strings.EqualFold(blockHash, newReceipt.BlockHash.Hex()) {
		t.Fatalf("payment %s, transfer %s in block %s; want confirmed in %s", status, transferStatus, blockHash, newReceipt.BlockHash.Hex())
	}
}

// startService builds and runs one service binary until the test ends.
func startService(t *testing.T, svc string, env []string) {
	t.Helper()
	bin := filepath.Join(t.TempDir(), svc)
	if err := buildService(t.Context(), svc, bin); err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(t.TempDir(), svc+".log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd, err := startBinary(bin, svc, env, logf, logf)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		awaitExit(slog.New(slog.NewTextHandler(logf, nil)), svc, cmd)
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("%s log:\n%s", svc, b)
		}
	})
}
