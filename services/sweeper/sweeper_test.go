package main

import (
	"context"
	"encoding/json"
	"math/big"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/nats-io/nats.go"

	"github.com/ctrip-pay/pipeline/services/sweeper/internal/postgres"
	"github.com/ctrip-pay/pipeline/services/sweeper/internal/sweep"
	"github.com/ctrip-pay/pipeline/shared/event"
	"github.com/ctrip-pay/pipeline/shared/testkit"
	"github.com/ctrip-pay/pipeline/shared/testkit/chaintest"
)

// ETH (more than 10 ETH) and 6-decimal token payments confirmed at once are swept to the
// treasury through NATS: the native coin minus exactly its fee, tokens in full after a gas
// top-up of exactly what the estimate needs; one payments.swept each, and a redelivered
// payments.confirmed sweeps nothing again.
func TestSweepsConfirmedPaymentsToTheTreasury(t *testing.T) {
	h := startHarness(t)

	ethAmount := new(big.Int).Div(mul(ether, 125), big.NewInt(10)) // 12.5 ETH
	eth := h.newPayment(nil, ethAmount)
	h.chain.WaitMined(h.chain.SendETH(h.chain.Accounts[1], eth.Deposit, ethAmount))
	tokens := []payment{
		h.newPayment(&h.token, big.NewInt(250_000_000)),       // 250 USDC
		h.newPayment(&h.token, big.NewInt(1_000_000_000_001)), // 1,000,000.000001 USDC
	}
	for _, p := range tokens {
		h.chain.MintToken(h.token, p.Deposit, p.Amount)
	}
	tankNonce := h.nonce(h.gasTank.Address)

	all := append([]payment{eth}, tokens...)
	for _, p := range all {
		h.publishConfirmed(p, p.ID+".confirmed")
	}
	testkit.Eventually(t, 30*time.Second, "three payments.swept", func() bool { return len(h.messages(event.SubjectSwept)) == 3 })
	h.settled()

	swept := map[string]sweep.Swept{}
	for _, m := range h.messages(event.SubjectSwept) {
		var env event.Envelope
		if err := json.Unmarshal(m.Data(), &env); err != nil {
			t.Fatal(err)
		}
		var data sweep.Swept
		if err := json.Unmarshal(env.Data, &data); err != nil {
			t.Fatal(err)
		}
		if got := m.Headers().Get(event.HeaderMsgID); got != data.PaymentID+".swept" {
			t.Errorf("Nats-Msg-Id %q", got)
		}
		if got := m.Headers().Get(event.HeaderEventType); got != "payment.swept" || env.Type != "payment.swept" {
			t.Errorf("event type %q / %q", got, env.Type)
		}
		// The trace of the confirmed message continues into the swept one.
		if tp := m.Headers().Get("traceparent"); !strings.Contains(tp, "4bf92f3577b34da6a3ce929d0e0e4736") {
			t.Errorf("traceparent %q does not continue the confirmed message's trace", tp)
		}
		swept[data.PaymentID] = data
	}

	// ETH: treasury + (balance − 21000 × fee cap); the deposit keeps only the unspent fee.
	rows := h.sweepRows(eth.ID)
	if len(rows) != 1 || rows[0].Kind != sweep.TxNative {
		t.Fatalf("eth sweep rows %+v", rows)
	}
	var tx types.Transaction
	if err := tx.UnmarshalBinary(rows[0].Raw); err != nil {
		t.Fatal(err)
	}
	wantValue := sub(ethAmount, mul(tx.GasFeeCap(), tx.Gas()))
	tokenTreasuryETH := big.NewInt(0) // the token sweeps send the treasury no ether
	if got := sub(h.chain.BalanceAt(h.treasury), tokenTreasuryETH); got.Cmp(wantValue) != 0 || tx.Gas() != 21000 {
		t.Errorf("treasury received %s wei (gas %d), want 12.5 ETH − 21000 × %s = %s", got, tx.Gas(), tx.GasFeeCap(), wantValue)
	}
	receipt := h.chain.WaitMined(&tx)
	unspent := sub(sub(ethAmount, wantValue), mul(receipt.EffectiveGasPrice, receipt.GasUsed))
	if got := h.chain.BalanceAt(eth.Deposit); got.Cmp(unspent) != 0 {
		t.Errorf("deposit keeps %s wei, want the unspent fee %s", got, unspent)
	}
	t.Logf("ETH sweep: 12.5 ETH → treasury %s wei; fee cap %s, effective price %s, deposit keeps %s wei",
		wantValue, tx.GasFeeCap(), receipt.EffectiveGasPrice, unspent)
	if d := swept[eth.ID]; d.Amount != "12.5" || d.Token != "ETH" || len(d.SweepTransactions) != 1 ||
		d.SweepTransactions[0].TxHash != rows[0].Hash || d.SweepTransactions[0].ValueBaseUnits != wantValue.String() ||
		!jsonEqual(d.Metadata, `{"order":"42"}`) || d.Treasury != strings.ToLower(h.treasury.Hex()) {
		t.Errorf("eth swept event %+v", d)
	}

	// Tokens: the full balance moved; the top-up is gas × fee cap of the token transfer.
	total := new(big.Int)
	for _, p := range tokens {
		total.Add(total, p.Amount)
		rows := h.sweepRows(p.ID)
		if len(rows) != 2 || rows[0].Kind != sweep.TxGasTopup || rows[1].Kind != sweep.TxToken {
			t.Fatalf("token sweep rows %+v", rows)
		}
		var tokenTx types.Transaction
		if err := tokenTx.UnmarshalBinary(rows[1].Raw); err != nil {
			t.Fatal(err)
		}
		if got, want := testkit.BigInt(t, rows[0].Value), mul(tokenTx.GasFeeCap(), tokenTx.Gas()); got.Cmp(want) != 0 {
			t.Errorf("top-up %s wei, want estimate %d × fee cap %s = %s", got, tokenTx.Gas(), tokenTx.GasFeeCap(), want)
		}
		if got := testkit.BigInt(t, rows[1].Value); got.Cmp(p.Amount) != 0 {
			t.Errorf("token transfer of %s, want the full %s", got, p.Amount)
		}
		if got := h.chain.TokenBalance(h.token, p.Deposit); got.Sign() != 0 {
			t.Errorf("deposit still holds %s", got)
		}
		r := h.chain.WaitMined(&tokenTx)
		t.Logf("token sweep of %s base units: estimate %d gas, used %d; top-up %s wei", p.Amount, tokenTx.Gas(), r.GasUsed, rows[0].Value)
		// Both transfers were estimated while the treasury held no token: a cold storage
		// write, far above the textbook 65k. The one mined second finds the slot warm and
		// uses less than its estimate.
		if tokenTx.Gas() <= 65_000 || r.GasUsed > tokenTx.Gas() {
			t.Errorf("token transfer estimated %d gas, used %d", tokenTx.Gas(), r.GasUsed)
		}
		if d := swept[p.ID]; d.Token != "USDC" || d.TokenContract == nil || len(d.SweepTransactions) != 2 ||
			d.SweepTransactions[0].TxHash != rows[0].Hash || d.SweepTransactions[1].TxHash != rows[1].Hash {
			t.Errorf("token swept event %+v", d)
		}
	}
	if got := h.chain.TokenBalance(h.token, h.treasury); got.Cmp(total) != 0 {
		t.Errorf("treasury holds %s, want %s", got, total)
	}
	if swept[tokens[1].ID].Amount != "1000000.000001" {
		t.Errorf("human amount %q", swept[tokens[1].ID].Amount)
	}
	// Two top-ups from the gas tank, concurrently, on consecutive nonces.
	if got := h.nonce(h.gasTank.Address); got != tankNonce+2 {
		t.Errorf("gas tank nonce %d, want %d", got, tankNonce+2)
	}
	for _, p := range all {
		if got := h.status(p.ID); got != "swept" {
			t.Errorf("%s is %s", p.ID, got)
		}
	}

	// Redelivery: the same event under another message id (a replay) is acked, nothing moves.
	treasuryETH, treasuryTokens := h.chain.BalanceAt(h.treasury), h.chain.TokenBalance(h.token, h.treasury)
	for _, p := range all {
		h.publishConfirmed(p, p.ID+".confirmed.replay")
	}
	testkit.Eventually(t, 10*time.Second, "replays delivered", func() bool { return len(h.messages(event.SubjectConfirmed)) == 6 })
	h.settled()
	h.chain.Mine(2)
	if h.chain.BalanceAt(h.treasury).Cmp(treasuryETH) != 0 || h.chain.TokenBalance(h.token, h.treasury).Cmp(treasuryTokens) != 0 {
		t.Errorf("treasury changed on redelivery")
	}
	for _, p := range all {
		want := 1
		if p.ID != eth.ID {
			want = 2
		}
		if n := len(h.sweepRows(p.ID)); n != want {
			t.Errorf("%s: %d sweep rows after redelivery", p.ID, n)
		}
		if n := h.nonce(p.Deposit); n != 1 {
			t.Errorf("%s: deposit sent %d transactions", p.ID, n)
		}
	}
	if n := len(h.messages(event.SubjectSwept)); n != 3 {
		t.Errorf("%d payments.swept after redelivery", n)
	}
}

func jsonEqual(raw []byte, want string) bool {
	var a, b any
	return json.Unmarshal(raw, &a) == nil && json.Unmarshal([]byte(want), &b) == nil && reflect.DeepEqual(a, b)
}

// RPC failures in the middle of sweeps (a node behind a flaky load balancer) are retried with
// NakWithDelay until the sweeps complete — each exactly once.
func TestFlakyRPCSweepsOnce(t *testing.T) {
	h := newHarness(t)
	// Every 11th request fails: the longest run of calls a sweep makes before recording (a
	// token sweep's 9) fits between two failures, so a retry can get through.
	proxy := chaintest.FlakyProxy(t, h.chain.RPCURL(), 11)
	h.useRPC(proxy.URL())
	h.start()

	eth := h.newPayment(nil, ether)
	h.chain.WaitMined(h.chain.SendETH(h.chain.Accounts[1], eth.Deposit, ether))
	tok := h.newPayment(&h.token, big.NewInt(99_000_000))
	h.chain.MintToken(h.token, tok.Deposit, tok.Amount)
	for _, p := range []payment{eth, tok} {
		h.publishConfirmed(p, p.ID+".confirmed")
	}
	testkit.Eventually(t, 40*time.Second, "both payments swept", func() bool { return len(h.messages(event.SubjectSwept)) == 2 })
	h.settled()
	if proxy.Failures() == 0 {
		t.Fatal("no RPC request failed: the test tested nothing")
	}
	t.Logf("%d of %d RPC requests failed", proxy.Failures(), proxy.Requests())
	for _, p := range []payment{eth, tok} {
		if h.nonce(p.Deposit) != 1 || h.status(p.ID) != "swept" {
			t.Errorf("%s: deposit nonce %d, status %s", p.ID, h.nonce(p.Deposit), h.status(p.ID))
		}
	}
	if got := h.chain.TokenBalance(h.token, h.treasury); got.Cmp(tok.Amount) != 0 {
		t.Errorf("treasury holds %s", got)
	}
}

// A balance that cannot pay its own fee is reported as payments.sweep_failed; the payment stays
// confirmed. A message that is no event at all is terminated, not retried.
func TestDustIsReportedAsSweepFailed(t *testing.T) {
	h := startHarness(t)
	poison := nats.NewMsg(event.SubjectConfirmed)
	poison.Data = []byte("not an event")
	poison.Header.Set(event.HeaderMsgID, "poison.confirmed")
	if _, err := h.js.PublishMsg(context.Background(), poison); err != nil {
		t.Fatal(err)
	}
	p := h.newPayment(nil, big.NewInt(1000))
	h.chain.WaitMined(h.chain.SendETH(h.chain.Accounts[1], p.Deposit, big.NewInt(1000)))
	h.publishConfirmed(p, p.ID+".confirmed")
	testkit.Eventually(t, 20*time.Second, "payments.sweep_failed", func() bool { return len(h.messages(event.SubjectSweepFailed)) == 1 })
	h.settled()

	m := h.messages(event.SubjectSweepFailed)[0]
	var env event.Envelope
	var data sweep.SweepFailed
	if err := json.Unmarshal(m.Data(), &env); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(env.Data, &data); err != nil {
		t.Fatal(err)
	}
	if m.Headers().Get(event.HeaderMsgID) != p.ID+".sweep_failed" || env.Type != "payment.sweep_failed" ||
		!strings.HasPrefix(data.Reason, "dust: ") || data.PaymentID != p.ID {
		t.Errorf("sweep_failed %s %s", m.Headers(), env.Data)
	}
	if got := h.status(p.ID); got != "confirmed" {
		t.Errorf("status %s", got)
	}
	if n := len(h.sweepRows(p.ID)); n != 0 || h.nonce(p.Deposit) != 0 {
		t.Errorf("%d transactions recorded for dust", n)
	}
	if got := h.chain.BalanceAt(p.Deposit); got.Int64() != 1000 {
		t.Errorf("deposit holds %s", got)
	}
}

// A transaction recorded by a sweeper that crashed before broadcasting it is what a restarted
// sweeper sends — not a freshly signed one. The recorded one moves half the balance, which no
// fresh signing would choose.
func TestRestartBroadcastsTheRecordedTransaction(t *testing.T) {
	h := newHarness(t)
	amount := mul(ether, 3)
	p := h.newPayment(nil, amount)
	h.chain.WaitMined(h.chain.SendETH(h.chain.Accounts[1], p.Deposit, amount))

	// What the crashed process left: a signed, recorded, never sent transaction.
	key, err := h.wallet.Key(0)
	if err != nil {
		t.Fatal(err)
	}
	half := new(big.Int).Div(amount, big.NewInt(2))
	head := h.chain.Head()
	feeCap := new(big.Int).Add(mul(head.BaseFee, 2), big.NewInt(1e9))
	signer := types.LatestSignerForChainID(big.NewInt(chainID))
	recorded, err := postgres.New(h.db).Record(context.Background(), p.ID, chainID, []sweep.Draft{{
		Kind: sweep.TxNative, From: p.Deposit, To: h.treasury, Value: half,
		Sign: func(n uint64) (*types.Transaction, error) {
			to := h.treasury
			return types.SignNewTx(key, signer, &types.DynamicFeeTx{ChainID: big.NewInt(chainID), Nonce: n, Gas: 21000,
				GasTipCap: big.NewInt(1e9), GasFeeCap: feeCap, To: &to, Value: half})
		},
	}})
	if err != nil {
		t.Fatal(err)
	}

	h.start()
	h.publishConfirmed(p, p.ID+".confirmed")
	testkit.Eventually(t, 20*time.Second, "payments.swept", func() bool { return len(h.messages(event.SubjectSwept)) == 1 })
	h.settled()
	rows := h.sweepRows(p.ID)
	if len(rows) != 1 || common.HexToHash(rows[0].Hash) != recorded[0].Hash {
		t.Fatalf("rows %+v, want only the recorded %s", rows, recorded[0].Hash.Hex())
	}
	if got := h.chain.BalanceAt(h.treasury); got.Cmp(half) != 0 {
		t.Errorf("treasury received %s, want the recorded %s", got, half)
	}
	if h.nonce(p.Deposit) != 1 || h.status(p.ID) != "swept" {
		t.Errorf("deposit nonce %d, status %s", h.nonce(p.Deposit), h.status(p.ID))
	}
}
