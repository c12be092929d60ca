package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/crypto"
	"github.com/ethereum/go-ethereum/ethclient/simulated"
	"github.com/jmoiron/sqlx"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ctrip-pay/pipeline/services/confirmer/internal/confirm"
	"github.com/ctrip-pay/pipeline/shared/event"
	"github.com/ctrip-pay/pipeline/shared/testkit"
	"github.com/ctrip-pay/pipeline/shared/testkit/chaintest"
)

func TestMain(m *testing.M) { testkit.Main(m) }

const chainID = 1337 // the simulated backend's

var ether = new(big.Int).Exp(big.NewInt(10), big.NewInt(18), nil)

// harness is one test's world: embedded NATS, a fresh migrated database, a simulated chain
// served over HTTP JSON-RPC (through a proxy that can fail on demand) and the confirmer
// running in-process. The test plays the api (payment rows) and the scanner (transfer rows,
// payments.detected, chain heads and reorgs).
type harness struct {
	t    testing.TB
	nats testkit.NATSServer
	db   *sqlx.DB
	nc   *nats.Conn
	js   jetstream.JetStream
	cfg  Config

	chain *chaintest.Chain
	rpc   simulated.Client
	proxy *chaintest.Proxy // between the confirmer and the node; fails on demand
	payer *chaintest.Account

	stop func()
}

// newHarness runs against an embedded nats-server.
func newHarness(t testing.TB, confirmations int) *harness {
	t.Helper()
	return newHarnessOn(t, testkit.MustNATS(t), confirmations)
}

func newHarnessOn(t testing.TB, ns testkit.NATSServer, confirmations int) *harness {
	t.Helper()
	h := &harness{t: t, nats: ns}
	var dsn string
	h.db, dsn = testkit.MustDB(t)

	h.chain = chaintest.New(t, chaintest.WithHTTP())
	h.rpc = h.chain.Client()
	h.payer = h.chain.Accounts[0]
	h.proxy = chaintest.FlakyProxy(t, h.chain.RPCURL(), 1)
	h.proxy.SetFailing(false)

	chainsFile := testkit.TempFile(t, "chains.yaml", fmt.Sprintf(`chains:
  - id: %d
    name: devnet
    rpc_url: %s
    confirmations: %d
    native: {symbol: ETH, decimals: 18}
`, chainID, h.proxy.URL(), confirmations))

	h.nc, h.js = testkit.MustJetStream(t, h.nats.URL())
	h.cfg = Config{
		Base:       testkit.BaseConfig(h.nats.URL(), dsn),
		ChainsFile: chainsFile, ExpiryInterval: 100 * time.Millisecond,
	}
	// Blocks to stand on: heads below the confirmation depth are not interesting.
	h.chain.Mine(3)
	return h
}

// startHarness is newHarness, started.
func startHarness(t testing.TB, confirmations int) *harness {
	t.Helper()
	h := newHarness(t, confirmations)
	h.start()
	return h
}

// start runs the confirmer in-process until the test ends or h.stop is called.
func (h *harness) start() {
	h.t.Helper()
	h.stop = testkit.StartReady(h.t, "confirmer", h.cfg, run, testkit.ConsumersExist(h.js, "PAYMENTS/confirmer", "CHAIN/confirmer")).Stop
}

// idle waits until both confirmer consumers have every published message acked, and the
// outbox is drained: after it, an event that was going to be published is on PAYMENTS.
func (h *harness) idle() {
	h.t.Helper()
	testkit.Eventually(h.t, 15*time.Second, "confirmer idle", func() bool {
		for _, s := range []string{"PAYMENTS", "CHAIN"} {
			info, err := testkit.ConsumerInfo(context.Background(), h.js, s, "confirmer")
			if err != nil || info.NumPending > 0 || info.NumAckPending > 0 {
				return false
			}
		}
		return h.count(`SELECT count(*) FROM outbox WHERE published_at IS NULL`) == 0
	})
}

func (h *harness) count(query string, args ...any) int {
	h.t.Helper()
	return testkit.Count(h.t, h.db, query, args...)
}

// --- the api's part ---------------------------------------------------------------------

type payment struct {
	ID      string
	Address common.Address
	Token   *common.Address
}

// payment creates a payment as the api does: amount in base units, fresh deposit address.
func (h *harness) payment(amount *big.Int, expiresIn time.Duration, token *common.Address) payment {
	h.t.Helper()
	key, _ := crypto.GenerateKey()
	row := testkit.InsertPayment(h.t, h.db, testkit.Payment{MerchantID: "m_1", ChainID: chainID, Contract: token, Symbol: "TOK",
		Address: crypto.PubkeyToAddress(key.PublicKey), Amount: amount, Metadata: `{"order":"42"}`, ExpiresIn: expiresIn})
	return payment{ID: row.ID, Address: row.Address, Token: token}
}

func (h *harness) status(paymentID string) string {
	h.t.Helper()
	return testkit.PaymentStatus(h.t, h.db, paymentID)
}

func (h *harness) waitStatus(paymentID, want string) {
	h.t.Helper()
	testkit.Eventually(h.t, 15*time.Second, "payment "+want, func() bool { return h.status(paymentID) == want })
}

func (h *harness) transferStatus(tr transfer) string {
	h.t.Helper()
	var s string
	if err := h.db.Get(&s, `SELECT status FROM payment_transfers WHERE chain_id = $1 AND tx_hash = $2 AND log_index = $3`,
		chainID, tr.TxHash, tr.LogIndex); err != nil {
		h.t.Fatal(err)
	}
	return s
}

// changes lists a payment's audit trail as "from→to".
func (h *harness) changes(paymentID string) []string {
	h.t.Helper()
	var out []string
	if err := h.db.Select(&out, `SELECT from_status || '→' || to_status FROM payment_status_changes
		WHERE payment_id = $1 ORDER BY id`, paymentID); err != nil {
		h.t.Fatal(err)
	}
	return out
}

// --- the chain --------------------------------------------------------------------------

type transfer struct {
	PaymentID   string
	TxHash      string
	LogIndex    int64
	BlockNumber uint64
	BlockHash   string
	Value       *big.Int
	Token       *common.Address
	Tx          *types.Transaction
}

func (h *harness) receipt(tx common.Hash) *types.Receipt {
	h.t.Helper()
	r, err := h.rpc.TransactionReceipt(context.Background(), tx)
	if err != nil {
		h.t.Fatalf("receipt %s: %v", tx.Hex(), err)
	}
	return r
}

func (h *harness) headerHash(n uint64) string {
	h.t.Helper()
	hdr, err := h.rpc.HeaderByNumber(context.Background(), new(big.Int).SetUint64(n))
	if err != nil {
		h.t.Fatalf("header %d: %v", n, err)
	}
	return hdr.Hash().Hex()
}

// payETH sends value to the payment's address and mines it; the transfer is what the scanner
// would record.
func (h *harness) payETH(p payment, value *big.Int) transfer {
	h.t.Helper()
	tx := h.chain.SendETH(h.payer, p.Address, value)
	h.chain.Commit()
	r := h.chain.WaitMined(tx)
	return transfer{PaymentID: p.ID, TxHash: tx.Hash().Hex(), LogIndex: -1, BlockNumber: r.BlockNumber.Uint64(),
		BlockHash: r.BlockHash.Hex(), Value: value, Tx: tx}
}

// payFailing mines a transaction that fails (ether sent to a contract without a payable
// fallback) and returns it as a native transfer of value to the payment, as a careless scanner
// that reads block transactions without their receipts would record it.
func (h *harness) payFailing(p payment, value *big.Int) transfer {
	h.t.Helper()
	token, _ := h.chain.DeployToken(6)
	from := h.chain.Accounts[1]
	ctx := context.Background()
	nonce, err := h.rpc.PendingNonceAt(ctx, from.Address)
	if err != nil {
		h.t.Fatal(err)
	}
	head, err := h.rpc.HeaderByNumber(ctx, nil)
	if err != nil {
		h.t.Fatal(err)
	}
	tx := types.MustSignNewTx(from.Key, types.LatestSignerForChainID(big.NewInt(chainID)), &types.DynamicFeeTx{
		ChainID: big.NewInt(chainID), Nonce: nonce, To: &token, Value: value, Gas: 100_000,
		GasTipCap: big.NewInt(1e9), GasFeeCap: new(big.Int).Add(new(big.Int).Mul(head.BaseFee, big.NewInt(2)), big.NewInt(1e9)),
	})
	if err := h.rpc.SendTransaction(ctx, tx); err != nil {
		h.t.Fatal(err)
	}
	h.chain.Commit()
	r := h.chain.WaitMined(tx)
	if r.Status != types.ReceiptStatusFailed {
		h.t.Fatalf("transaction did not fail")
	}
	return transfer{PaymentID: p.ID, TxHash: tx.Hash().Hex(), LogIndex: -1, BlockNumber: r.BlockNumber.Uint64(),
		BlockHash: r.BlockHash.Hex(), Value: value, Tx: tx}
}

// deployToken deploys a 6-decimal ERC-20 and mints the payer a supply.
func (h *harness) deployToken() common.Address {
	h.t.Helper()
	addr, _ := h.chain.DeployToken(6)
	h.chain.MintToken(addr, h.payer.Address, big.NewInt(1_000_000_000_000))
	return addr
}

// payToken transfers value of the payment's token to its address and mines it.
func (h *harness) payToken(p payment, value *big.Int) transfer {
	h.t.Helper()
	tx := h.chain.TransferToken(h.payer, *p.Token, p.Address, value)
	h.chain.Commit()
	r := h.chain.WaitMined(tx)
	if r.Status != types.ReceiptStatusSuccessful || len(r.Logs) != 1 {
		h.t.Fatalf("token transfer: status %d, %d logs", r.Status, len(r.Logs))
	}
	return transfer{PaymentID: p.ID, TxHash: tx.Hash().Hex(), LogIndex: int64(r.Logs[0].Index),
		BlockNumber: r.BlockNumber.Uint64(), BlockHash: r.BlockHash.Hex(), Value: value, Token: p.Token, Tx: tx}
}

func (h *harness) tip() uint64 {
	h.t.Helper()
	n, err := h.rpc.BlockNumber(context.Background())
	if err != nil {
		h.t.Fatal(err)
	}
	return n
}

// --- the scanner's part -----------------------------------------------------------------

// detect records the transfer and publishes payments.detected, as the scanner does.
func (h *harness) detect(tr transfer) {
	h.t.Helper()
	h.record(tr)
	h.publishDetected(tr, "")
}

// record inserts the transfer row as the scanner does before it publishes.
func (h *harness) record(tr transfer) {
	h.t.Helper()
	var contract *string
	if tr.Token != nil {
		s := strings.ToLower(tr.Token.Hex())
		contract = &s
	}
	if _, err := h.db.Exec(`INSERT INTO payment_transfers (chain_id, tx_hash, log_index, payment_id, token_contract,
			value_base_units, block_number, block_hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
		chainID, tr.TxHash, tr.LogIndex, tr.PaymentID, contract, tr.Value.String(), tr.BlockNumber, tr.BlockHash); err != nil {
		h.t.Fatal(err)
	}
}

// publishDetected publishes the scanner's event; a non-empty again makes it a distinct
// message with the same content (a republish the stream does not deduplicate).
func (h *harness) publishDetected(tr transfer, again string) {
	h.t.Helper()
	li := tr.LogIndex
	env, err := event.New("payment.detected", event.Payment{
		PaymentID: tr.PaymentID, MerchantID: "m_1", Status: "detected", ChainID: chainID, Chain: "devnet",
		Transactions: []event.Transaction{{TxHash: tr.TxHash, LogIndex: &li, BlockNumber: tr.BlockNumber,
			BlockHash: tr.BlockHash, ValueBaseUnits: tr.Value.String()}},
	})
	if err != nil {
		h.t.Fatal(err)
	}
	// The scanner's detection starts the payment's trace.
	h.publishWith(event.SubjectDetected, fmt.Sprintf("%d.%s.%d%s", chainID, tr.TxHash, tr.LogIndex, again), env.Type, env,
		nats.Header{"traceparent": {"00-" + detectionTraceID + "-00f067aa0ba902b7-01"}})
}

// detectionTraceID is the trace every detected event in the tests belongs to.
const detectionTraceID = "4bf92f3577b34da6a3ce929d0e0e4736"

// head publishes chain.<id>.head for the canonical block at number.
func (h *harness) head(number uint64) time.Time {
	h.t.Helper()
	hdr, err := h.rpc.HeaderByNumber(context.Background(), new(big.Int).SetUint64(number))
	if err != nil {
		h.t.Fatalf("header %d: %v", number, err)
	}
	return h.publish(event.HeadSubject(chainID), "head."+hdr.Hash().Hex(), "chain.head", event.ChainHead{
		ChainID: chainID, Number: number, Hash: hdr.Hash().Hex(), ParentHash: hdr.ParentHash.Hex(), Time: time.Now().UTC(),
	})
}

func (h *harness) reorg(r event.ChainReorg, msgID string) {
	h.t.Helper()
	r.ChainID = chainID
	h.publish(event.ReorgSubject(chainID), msgID, "chain.reorg", r)
}

func (h *harness) publish(subject, msgID, typ string, v any) time.Time {
	h.t.Helper()
	return h.publishWith(subject, msgID, typ, v, nil)
}

func (h *harness) publishWith(subject, msgID, typ string, v any, hdr nats.Header) time.Time {
	h.t.Helper()
	body, err := json.Marshal(v)
	if err != nil {
		h.t.Fatal(err)
	}
	m := nats.NewMsg(subject)
	for k, vs := range hdr {
		m.Header[k] = vs
	}
	m.Data = body
	m.Header.Set(event.HeaderMsgID, msgID)
	m.Header.Set(event.HeaderEventType, typ)
	at := time.Now()
	if _, err := h.js.PublishMsg(context.Background(), m); err != nil {
		h.t.Fatalf("publish %s: %v", subject, err)
	}
	return at
}

// --- what reached PAYMENTS -------------------------------------------------------------

type published struct {
	MsgID  string
	Type   string
	Header nats.Header
	Env    event.Envelope
	Data   confirm.PaymentData
}

// events returns the messages on PAYMENTS with subject about paymentID, in stream order.
func (h *harness) events(subject, paymentID string) []published {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cons, err := h.js.OrderedConsumer(ctx, "PAYMENTS", jetstream.OrderedConsumerConfig{FilterSubjects: []string{subject}})
	if err != nil {
		h.t.Fatal(err)
	}
	var out []published
	for {
		batch, err := cons.FetchNoWait(100)
		if err != nil {
			h.t.Fatal(err)
		}
		n := 0
		for m := range batch.Messages() {
			n++
			var p published
			p.MsgID, p.Type, p.Header = m.Headers().Get(event.HeaderMsgID), m.Headers().Get(event.HeaderEventType), m.Headers()
			if err := json.Unmarshal(m.Data(), &p.Env); err != nil {
				h.t.Fatal(err)
			}
			if err := json.Unmarshal(p.Env.Data, &p.Data); err != nil {
				h.t.Fatal(err)
			}
			if p.Data.PaymentID == paymentID {
				// What the confirmer publishes keeps the event contract (the harness writes the
				// payments.detected it is fed itself).
				if subject != event.SubjectDetected {
					if v := event.ContractViolations(m.Data()); v != nil {
						h.t.Errorf("%s %s breaks the event contract: %v", subject, p.MsgID, v)
					}
				}
				out = append(out, p)
			}
		}
		if batch.Error() != nil {
			h.t.Fatal(batch.Error())
		}
		if n == 0 {
			return out
		}
	}
}
