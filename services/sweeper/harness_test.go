package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/crypto"
	"github.com/jmoiron/sqlx"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ctrip-pay/pipeline/services/sweeper/internal/wallet"
	"github.com/ctrip-pay/pipeline/shared/event"
	"github.com/ctrip-pay/pipeline/shared/testkit"
	"github.com/ctrip-pay/pipeline/shared/testkit/chaintest"
	"github.com/ctrip-pay/pipeline/streams"
)

func TestMain(m *testing.M) { testkit.Main(m) }

const chainID = 1337

var ether = big.NewInt(1e18)

// harness is one test's world: a chain served over HTTP with a block timer, embedded NATS, a
// fresh database, a CHAINS_FILE naming the treasury and a 6-decimal token, and the sweeper
// running in-process.
type harness struct {
	t        *testing.T
	chain    *chaintest.Chain
	nats     *testkit.NATS
	db       *sqlx.DB
	js       jetstream.JetStream
	cfg      Config
	wallet   *wallet.Wallet
	token    common.Address
	treasury common.Address
	gasTank  *chaintest.Account
	next     uint32
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	h := &harness{t: t, chain: chaintest.New(t, chaintest.WithHTTP(), chaintest.WithBlockInterval(50*time.Millisecond)),
		nats: testkit.MustNATS(t), treasury: chaintest.NewAccount("treasury").Address}
	h.gasTank = h.chain.Accounts[0]
	waitForTxIndex(t, h.chain)
	h.token, _ = h.chain.DeployToken(6)
	var dsn string
	h.db, dsn = testkit.MustDB(t)
	if _, err := h.db.Exec(`INSERT INTO merchants (id, name) VALUES ('mer_1', 'Merchant')`); err != nil {
		t.Fatal(err)
	}
	h.cfg = Config{
		Base:              testkit.BaseConfig(h.nats.URL(), dsn),
		WalletMnemonic:    testkit.Mnemonic,
		GasTankPrivateKey: hex.EncodeToString(crypto.FromECDSA(h.gasTank.Key)),
		ReceiptTimeout:    20 * time.Second, PollInterval: 20 * time.Millisecond, Concurrency: 4, RepriceAfter: time.Minute, LeftoverInterval: 200 * time.Millisecond,
	}
	var err error
	if h.wallet, err = wallet.FromMnemonic(testkit.Mnemonic); err != nil {
		t.Fatal(err)
	}
	h.useRPC(h.chain.RPCURL())
	_, h.js = testkit.MustJetStream(t, h.nats.URL())
	return h
}

// useRPC writes the CHAINS_FILE the sweeper reads, with rpcURL for the chain.
func (h *harness) useRPC(rpcURL string) {
	h.t.Helper()
	doc := fmt.Sprintf(`{"chains": [{"id": %d, "name": "devnet", "rpc_url": %q, "confirmations": 1,
		"native": {"symbol": "ETH", "decimals": 18}, "treasury": %q,
		"tokens": [{"symbol": "USDC", "contract": %q, "decimals": 6}]}]}`, chainID, rpcURL, h.treasury.Hex(), h.token.Hex())
	h.cfg.ChainsFile = testkit.TempFile(h.t, "chains.json", doc)
}

// startHarness is newHarness, started.
func startHarness(t *testing.T) *harness {
	t.Helper()
	h := newHarness(t)
	h.start()
	return h
}

// start runs the sweeper until the returned stop is called or the test ends.
func (h *harness) start() (stop func()) {
	h.t.Helper()
	return testkit.StartReady(h.t, "sweeper", h.cfg, run, testkit.ConsumersExist(h.js, streams.Payments+"/"+consumerName)).Stop
}

// waitForTxIndex waits until the node answers receipt queries: right after start geth says
// "transaction indexing is in progress", which chaintest.WaitMined takes for a failure.
func waitForTxIndex(t *testing.T, c *chaintest.Chain) {
	t.Helper()
	var err error
	if !testkit.Poll(10*time.Second, func() bool {
		_, err = c.Client().TransactionReceipt(context.Background(), common.Hash{})
		return errors.Is(err, ethereum.NotFound)
	}) {
		t.Fatalf("receipts not served: %v", err)
	}
}

type payment struct {
	ID      string
	Deposit common.Address
	Amount  *big.Int
	Env     event.Envelope
}

// newPayment inserts a confirmed payment at the next deposit index (token nil: ETH).
func (h *harness) newPayment(token *common.Address, amount *big.Int) payment {
	h.t.Helper()
	index := h.next
	h.next++
	deposit, err := h.wallet.Address(index)
	if err != nil {
		h.t.Fatal(err)
	}
	i := int64(index)
	row := testkit.InsertPayment(h.t, h.db, testkit.Payment{MerchantID: "mer_1", Status: event.StatusConfirmed, ChainID: chainID,
		Contract: token, Symbol: "USDC", Address: deposit, Index: &i, Amount: amount, Received: amount, Confirmed: amount,
		Metadata: `{"order":"42"}`, ExpiresIn: time.Hour})
	p := payment{ID: row.ID, Deposit: deposit, Amount: amount}
	if p.Env, err = event.New(event.TypeForSubject(event.SubjectConfirmed), row.Event("devnet", 1)); err != nil {
		h.t.Fatal(err)
	}
	return p
}

// traceparent is the W3C trace context the confirmer's message carries.
const traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

// publishConfirmed publishes payments.confirmed as the confirmer does, under msgID.
func (h *harness) publishConfirmed(p payment, msgID string) {
	h.t.Helper()
	body, _ := json.Marshal(p.Env)
	m := nats.NewMsg(event.SubjectConfirmed)
	m.Data = body
	m.Header.Set(event.HeaderMsgID, msgID)
	m.Header.Set(event.HeaderEventType, p.Env.Type)
	m.Header.Set("traceparent", traceparent)
	if _, err := h.js.PublishMsg(context.Background(), m); err != nil {
		h.t.Fatal(err)
	}
}

// messages returns every message on subject in PAYMENTS.
func (h *harness) messages(subject string) []jetstream.Msg {
	h.t.Helper()
	ctx := context.Background()
	s, err := h.js.Stream(ctx, streams.Payments)
	if err != nil {
		h.t.Fatal(err)
	}
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(subject))
	if err != nil {
		h.t.Fatal(err)
	}
	n := info.State.Subjects[subject]
	if n == 0 {
		return nil
	}
	cons, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{subject}})
	if err != nil {
		h.t.Fatal(err)
	}
	var out []jetstream.Msg
	for uint64(len(out)) < n {
		m, err := cons.Next(jetstream.FetchMaxWait(2 * time.Second))
		if err != nil {
			h.t.Fatalf("read %s: %v", subject, err)
		}
		out = append(out, m)
	}
	return out
}

// settled waits until the sweeper has acked everything delivered to it.
func (h *harness) settled() {
	h.t.Helper()
	testkit.Eventually(h.t, 20*time.Second, "sweeper consumer drained", func() bool {
		info, err := testkit.ConsumerInfo(context.Background(), h.js, streams.Payments, consumerName)
		return err == nil && info.NumPending == 0 && info.NumAckPending == 0 && info.NumRedelivered == 0
	})
}

func (h *harness) status(id string) string {
	h.t.Helper()
	return testkit.PaymentStatus(h.t, h.db, id)
}

type sweepRow struct {
	Kind  string `db:"kind"`
	Hash  string `db:"tx_hash"`
	Value string `db:"value_base_units"`
	Raw   []byte `db:"raw_tx"`
}

func (h *harness) sweepRows(paymentID string) []sweepRow {
	h.t.Helper()
	var rows []sweepRow
	if err := h.db.Select(&rows, `SELECT kind, tx_hash, value_base_units::text AS value_base_units, raw_tx
		FROM sweeps WHERE payment_id = $1 ORDER BY CASE kind WHEN 'gas_topup' THEN 0 ELSE 1 END`, paymentID); err != nil {
		h.t.Fatal(err)
	}
	return rows
}

func (h *harness) nonce(addr common.Address) uint64 {
	h.t.Helper()
	n, err := h.chain.Client().NonceAt(context.Background(), addr, nil)
	if err != nil {
		h.t.Fatal(err)
	}
	return n
}

func mul(a *big.Int, b uint64) *big.Int { return new(big.Int).Mul(a, new(big.Int).SetUint64(b)) }
func sub(a, b *big.Int) *big.Int        { return new(big.Int).Sub(a, b) }
