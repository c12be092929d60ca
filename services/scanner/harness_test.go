package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/jmoiron/sqlx"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ctrip-pay/pipeline/shared/event"
	"github.com/ctrip-pay/pipeline/shared/testkit"
	"github.com/ctrip-pay/pipeline/shared/testkit/chaintest"
	"github.com/ctrip-pay/pipeline/streams"
)

func TestMain(m *testing.M) { testkit.Main(m) }

const (
	testChainID       = 1337
	testChainName     = "devnet"
	testConfirmations = 3
	testMerchant      = "m_scanner_test"
)

// harness is one test's world: a simulated chain served over HTTP with a 6- and an 18-decimal
// token, embedded NATS, a fresh migrated database, and the scanner run in-process.
type harness struct {
	t       testing.TB
	chain   *chaintest.Chain
	usdc    common.Address // 6 decimals
	dai     common.Address // 18 decimals
	nats    *testkit.NATS
	db      *sqlx.DB
	nc      *nats.Conn
	js      jetstream.JetStream
	cfg     Config
	payer   *chaintest.Account
	stopRun func()
}

type harnessOption func(*harnessSettings)

type harnessSettings struct {
	rpcURL     func(chainURL string) string // e.g. a fault-injecting proxy in front of the chain
	noTokens   bool
	maxHeadAge time.Duration
}

func withMaxHeadAge(d time.Duration) harnessOption {
	return func(s *harnessSettings) { s.maxHeadAge = d }
}

// withoutTokens leaves the chain at genesis: no token is deployed or minted.
func withoutTokens() harnessOption { return func(s *harnessSettings) { s.noTokens = true } }

// viaRPC puts something (a proxy) between the scanner and the chain.
func viaRPC(f func(chainURL string) string) harnessOption {
	return func(s *harnessSettings) { s.rpcURL = f }
}

func newHarness(t testing.TB, opts ...harnessOption) *harness {
	t.Helper()
	var s harnessSettings
	for _, o := range opts {
		o(&s)
	}
	h := &harness{t: t, chain: chaintest.New(t, chaintest.WithHTTP()), nats: testkit.MustNATS(t)}
	h.payer = h.chain.Accounts[0]
	tokens := ""
	if !s.noTokens {
		h.usdc, _ = h.chain.DeployNamedToken("USD Coin", "USDC", 6)
		h.dai, _ = h.chain.DeployNamedToken("Dai", "DAI", 18)
		h.chain.MintToken(h.usdc, h.payer.Address, big.NewInt(1_000_000_000_000))
		h.chain.MintToken(h.dai, h.payer.Address, ether(1000))
		tokens = fmt.Sprintf(`    tokens:
      - {symbol: USDC, contract: "%s", decimals: 6}
      - {symbol: DAI, contract: "%s", decimals: 18}
`, h.usdc.Hex(), h.dai.Hex())
	}
	var dsn string
	h.db, dsn = testkit.MustDB(t)
	h.nc, h.js = testkit.MustJetStream(t, h.nats.URL())

	rpcURL := h.chain.RPCURL()
	if s.rpcURL != nil {
		rpcURL = s.rpcURL(rpcURL)
	}
	doc := fmt.Sprintf(`chains:
  - id: %d
    name: %s
    rpc_url: %s
    confirmations: %d
    native: {symbol: ETH, decimals: 18}
%s`, testChainID, testChainName, rpcURL, testConfirmations, tokens)
	if s.maxHeadAge > 0 {
		doc += fmt.Sprintf("    max_head_age: %s\n", s.maxHeadAge)
	}
	chainsFile := testkit.TempFile(t, "chains.yaml", doc)
	h.cfg = Config{
		Base:       testkit.BaseConfig(h.nats.URL(), dsn),
		ChainsFile: chainsFile, PollInterval: 20 * time.Millisecond, BatchBlocks: 100, Prefetch: 4,
		RPCTimeout: 5 * time.Second, RetryMax: 200 * time.Millisecond, LeaseInterval: 100 * time.Millisecond,
	}
	if _, err := h.db.Exec(`INSERT INTO merchants (id, name) VALUES ($1, $1)`, testMerchant); err != nil {
		t.Fatal(err)
	}
	return h
}

// startHarness is newHarness, started.
func startHarness(t testing.TB, opts ...harnessOption) *harness {
	t.Helper()
	h := newHarness(t, opts...)
	h.start()
	return h
}

// start runs the scanner until the test ends or stop is called.
func (h *harness) start() {
	h.t.Helper()
	h.stopRun = testkit.StartReady(h.t, "scanner", h.cfg, run, testkit.StreamExists(h.js, streams.Chain)).Stop
}

func (h *harness) stop() {
	h.t.Helper()
	h.stopRun()
}

// payment is a row of payments as the api creates it.
type payment struct {
	ID      string
	Address common.Address
	Token   string
}

// newPayment creates a payment for amount base units of token ("ETH", "USDC" or "DAI") on a
// fresh random deposit address.
func (h *harness) newPayment(token string, amount *big.Int, expiresAt time.Time) payment {
	h.t.Helper()
	var raw [20]byte
	if _, err := rand.Read(raw[:]); err != nil {
		h.t.Fatal(err)
	}
	return h.paymentAt(common.BytesToAddress(raw[:]), token, amount, expiresAt)
}

// paymentAt creates a payment whose deposit address is addr.
func (h *harness) paymentAt(addr common.Address, token string, amount *big.Int, expiresAt time.Time) payment {
	h.t.Helper()
	var contract *string
	decimals := 18
	switch token {
	case "USDC":
		c := lower(h.usdc.Hex())
		contract, decimals = &c, 6
	case "DAI":
		c := lower(h.dai.Hex())
		contract = &c
	}
	p := payment{ID: event.NewID("pay"), Address: addr, Token: token}
	_, err := h.db.Exec(`INSERT INTO payments (id, merchant_id, chain_id, token, token_contract, decimals, address,
			address_index, amount_base_units, metadata, expires_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, nextval('deposit_address_index'), $8::numeric, $9, $10)`,
		p.ID, testMerchant, testChainID, token, contract, decimals, lower(addr.Hex()), amount.String(),
		`{"order":"`+p.ID+`"}`, expiresAt)
	if err != nil {
		h.t.Fatal(err)
	}
	return p
}

// detectedMsg is one message on payments.detected.
type detectedMsg struct {
	msgID     string
	eventType string
	env       event.Envelope
	data      event.Payment
}

// detected returns every payments.detected message on PAYMENTS, in stream order.
func (h *harness) detected() []detectedMsg {
	h.t.Helper()
	var out []detectedMsg
	for _, m := range h.streamMsgs("PAYMENTS", event.SubjectDetected) {
		d := detectedMsg{msgID: m.Header.Get(event.HeaderMsgID), eventType: m.Header.Get(event.HeaderEventType)}
		if v := event.ContractViolations(m.Data); v != nil {
			h.t.Errorf("payments.detected %s breaks the event contract: %v", d.msgID, v)
		}
		if err := json.Unmarshal(m.Data, &d.env); err != nil {
			h.t.Fatalf("payments.detected body: %v", err)
		}
		if err := json.Unmarshal(d.env.Data, &d.data); err != nil {
			h.t.Fatalf("payments.detected data: %v", err)
		}
		out = append(out, d)
	}
	return out
}

// subtest runs f as the subtest name of t on this harness, which reports to the subtest
// while it runs.
func (h *harness) subtest(t *testing.T, name string, f func(t *testing.T, h *harness)) {
	t.Run(name, func(t *testing.T) {
		outer := h.t
		h.t = t
		defer func() { h.t = outer }()
		f(t, h)
	})
}

// rewindCursor moves the chain's cursor back to block n and forgets the blocks above it, as a
// crash between publishing blocks' events and committing them leaves the scanner.
func (h *harness) rewindCursor(n int64) {
	h.t.Helper()
	if _, err := h.db.Exec(`UPDATE chain_cursors SET block_number = $2,
			block_hash = (SELECT hash FROM chain_blocks WHERE chain_id = $1 AND number = $2) WHERE chain_id = $1`,
		testChainID, n); err != nil {
		h.t.Fatal(err)
	}
	if _, err := h.db.Exec(`DELETE FROM chain_blocks WHERE chain_id = $1 AND number > $2`, testChainID, n); err != nil {
		h.t.Fatal(err)
	}
}

// paidETHPayments creates n payments of 1 ETH, each paid in full in a block of its own.
func (h *harness) paidETHPayments(n int) []payment {
	h.t.Helper()
	var out []payment
	for range n {
		p := h.newPayment("ETH", ether(1), time.Now().Add(time.Hour))
		h.mine(h.chain.SendETH(h.payer, p.Address, ether(1)))
		out = append(out, p)
	}
	return out
}

// checkNothingLost: through a proxy that failed some requests, every payment was detected once
// and every block from first to head recorded.
func (h *harness) checkNothingLost(proxy *chaintest.Proxy, payments []payment, first, head uint64) {
	h.t.Helper()
	if proxy.Failures() == 0 {
		h.t.Fatal("the proxy failed no request: the test injected nothing")
	}
	seen := h.detections()
	for i, p := range payments {
		if seen[p.ID] != 1 {
			h.t.Errorf("transfer %d (to %s): %d events, want 1", i, p.Address, seen[p.ID])
		}
	}
	if n := h.count(`SELECT count(*) FROM chain_blocks WHERE chain_id = $1 AND number BETWEEN $2 AND $3`,
		testChainID, first, head); n != int(head-first+1) {
		h.t.Fatalf("%d blocks recorded between %d and %d, want %d", n, first, head, head-first+1)
	}
}

// detections counts the payments.detected messages per payment id.
func (h *harness) detections() map[string]int {
	h.t.Helper()
	seen := map[string]int{}
	for _, d := range h.detected() {
		seen[d.data.PaymentID]++
	}
	return seen
}

// detectedFor returns the payments.detected messages of one payment.
func (h *harness) detectedFor(paymentID string) []detectedMsg {
	h.t.Helper()
	var out []detectedMsg
	for _, d := range h.detected() {
		if d.data.PaymentID == paymentID {
			out = append(out, d)
		}
	}
	return out
}

// streamMsgs reads a stream's messages on subject directly, by sequence.
func (h *harness) streamMsgs(stream, subject string) []*jetstream.RawStreamMsg {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := h.js.Stream(ctx, stream)
	if err != nil {
		h.t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		h.t.Fatal(err)
	}
	var out []*jetstream.RawStreamMsg
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			h.t.Fatalf("%s seq %d: %v", stream, seq, err)
		}
		if m.Subject == subject {
			out = append(out, m)
		}
	}
	return out
}

// cursor is the scanner's last processed block, or -1 before the first.
func (h *harness) cursor() int64 {
	h.t.Helper()
	var n int64 = -1
	if err := h.db.Get(&n, `SELECT COALESCE((SELECT block_number FROM chain_cursors WHERE chain_id = $1), -1)`, testChainID); err != nil {
		h.t.Fatal(err)
	}
	return n
}

// waitScanned waits until the scanner has processed block n.
func (h *harness) waitScanned(n uint64) {
	h.t.Helper()
	testkit.Eventually(h.t, 20*time.Second, fmt.Sprintf("cursor at block %d", n), func() bool { return h.cursor() >= int64(n) })
}

// head is the chain's head block number.
func (h *harness) head() uint64 { return h.chain.Head().Number.Uint64() }

func (h *harness) count(query string, args ...any) int {
	h.t.Helper()
	return testkit.Count(h.t, h.db, query, args...)
}

func ether(n int64) *big.Int { return new(big.Int).Mul(big.NewInt(n), big.NewInt(1e18)) }

func lower(s string) string { return strings.ToLower(s) }

func (h *harness) ctx() context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	h.t.Cleanup(cancel)
	return ctx
}

// mine commits blocks until every tx has a receipt and returns the receipts. Under load the
// simulated miner may seal a block before it has packed every pending transaction; the rest
// go into the next one.
func (h *harness) mine(txs ...*types.Transaction) []*types.Receipt {
	h.t.Helper()
	receipts := make([]*types.Receipt, len(txs))
	for range 10 {
		h.chain.Commit()
		missing := 0
		for i, tx := range txs {
			if receipts[i] != nil {
				continue
			}
			r, err := h.chain.Client().TransactionReceipt(h.ctx(), tx.Hash())
			if err != nil {
				missing++
				continue
			}
			receipts[i] = r
		}
		if missing == 0 {
			return receipts
		}
	}
	h.t.Fatalf("transactions not mined after 10 blocks")
	return nil
}
