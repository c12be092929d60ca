package sweep_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/jmoiron/sqlx"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/ctrip-pay/pipeline/services/sweeper/internal/postgres"
	"github.com/ctrip-pay/pipeline/services/sweeper/internal/sweep"
	"github.com/ctrip-pay/pipeline/services/sweeper/internal/wallet"
	"github.com/ctrip-pay/pipeline/shared/chains"
	"github.com/ctrip-pay/pipeline/shared/event"
	"github.com/ctrip-pay/pipeline/shared/testkit"
	"github.com/ctrip-pay/pipeline/shared/testkit/chaintest"
)

func TestMain(m *testing.M) { testkit.Main(m) }

const chainID = 1337 // the simulated backend's

var ether = big.NewInt(1e18)

// world is a chain with a block timer, a migrated database, the wallet and a gas tank, shared
// by a test's subtests; each payment gets its own deposit index and treasury.
type world struct {
	chain   *chaintest.Chain
	db      *sqlx.DB
	store   *postgres.Store
	wallet  *wallet.Wallet
	gasTank *chaintest.Account
	funder  *chaintest.Account
	token   common.Address // 6 decimals
	next    uint32
}

func newWorld(t *testing.T) *world {
	t.Helper()
	return newWorldOn(t, chaintest.New(t, chaintest.WithBlockInterval(20*time.Millisecond)))
}

// newManualWorld is a world whose chain mines only when the test says so (Commit): what is
// broadcast waits in the node's pool until then.
func newManualWorld(t *testing.T) *world {
	t.Helper()
	return newWorldOn(t, chaintest.New(t))
}

func newWorldOn(t *testing.T, chain *chaintest.Chain) *world {
	t.Helper()
	w := &world{chain: chain}
	w.db, _ = testkit.MustDB(t)
	w.store = postgres.New(w.db)
	var err error
	if w.wallet, err = wallet.FromMnemonic(testkit.Mnemonic); err != nil {
		t.Fatal(err)
	}
	w.gasTank, w.funder = w.chain.Accounts[0], w.chain.Accounts[1]
	// Right after start geth answers receipt queries with "transaction indexing is in
	// progress", which chaintest.WaitMined takes for a failure.
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := w.chain.Client().TransactionReceipt(context.Background(), common.Hash{})
		if errors.Is(err, ethereum.NotFound) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("receipts not served: %v", err)
		}
		if w.chain.BlockInterval() == 0 {
			w.chain.Commit() // the indexer moves on with the chain
		}
		time.Sleep(10 * time.Millisecond)
	}
	w.token, _ = w.chain.DeployToken(6)
	if _, err := w.db.Exec(`INSERT INTO merchants (id, name) VALUES ('mer_1', 'Merchant')`); err != nil {
		t.Fatal(err)
	}
	return w
}

func (w *world) sweeper(treasury common.Address) *sweep.Sweeper { return w.sweeperWith(treasury, 1) }

// sweeperWith is a sweeper on a chain of that many confirmations.
func (w *world) sweeperWith(treasury common.Address, confirmations uint64) *sweep.Sweeper {
	s, err := sweep.New(sweep.Config{
		Networks: map[int64]sweep.Network{chainID: {
			Chain: chains.Chain{ID: chainID, Name: "devnet", Confirmations: confirmations, Treasury: strings.ToLower(treasury.Hex()),
				Native: chains.Token{Symbol: "ETH", Decimals: 18},
				Tokens: []chains.Token{{Symbol: "USDC", Contract: strings.ToLower(w.token.Hex()), Decimals: 6}}},
			Client: w.chain.Client(),
		}},
		Keys: w.wallet, GasTank: w.gasTank.Key, Payments: w.store, Ledger: w.store,
		ReceiptTimeout: 20 * time.Second, PollInterval: 10 * time.Millisecond,
		Tracer: noop.NewTracerProvider().Tracer("test"), Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		panic(err) // the world's own wiring
	}
	return s
}

// payment is a confirmed payment row and the payments.confirmed body announcing it.
type payment struct {
	ID       string
	Index    uint32
	Deposit  common.Address
	Token    *common.Address
	Treasury common.Address
	Body     []byte
}

// newPayment inserts a confirmed payment at the next deposit index, for token (nil: ETH).
func (w *world) newPayment(t *testing.T, token *common.Address, amount *big.Int) payment {
	t.Helper()
	index, deposit := w.nextDeposit(t)
	id := event.NewID("pay")
	p := payment{ID: id, Index: index, Deposit: deposit, Token: token, Treasury: chaintest.NewAccount("treasury/" + id).Address}
	i := int64(index)
	row := testkit.InsertPayment(t, w.db, testkit.Payment{ID: id, MerchantID: "mer_1", Status: event.StatusConfirmed, ChainID: chainID,
		Contract: token, Symbol: "USDC", Address: deposit, Index: &i, Amount: amount, Received: amount, Confirmed: amount,
		ExpiresIn: time.Hour})
	env, err := event.New(event.TypeForSubject(event.SubjectConfirmed), row.Event("devnet", 3))
	if err != nil {
		t.Fatal(err)
	}
	if p.Body, err = json.Marshal(env); err != nil {
		t.Fatal(err)
	}
	return p
}

// nextDeposit takes the next deposit index and its address.
func (w *world) nextDeposit(t *testing.T) (uint32, common.Address) {
	t.Helper()
	index := w.next
	w.next++
	deposit, err := w.wallet.Address(index)
	if err != nil {
		t.Fatal(err)
	}
	return index, deposit
}

// paidTokenPayment is a confirmed token payment of amount whose deposit address holds it.
func (w *world) paidTokenPayment(t *testing.T, amount *big.Int) payment {
	t.Helper()
	p := w.newPayment(t, &w.token, amount)
	w.chain.MintToken(w.token, p.Deposit, amount)
	return p
}

func (w *world) fundETH(t *testing.T, to common.Address, wei *big.Int) {
	t.Helper()
	tx := w.chain.SendETH(w.funder, to, wei)
	if w.chain.BlockInterval() == 0 {
		w.chain.Commit()
	}
	if r := w.chain.WaitMined(tx); r.Status != types.ReceiptStatusSuccessful {
		t.Fatal("funding reverted")
	}
}

func (w *world) nonce(t *testing.T, addr common.Address) uint64 {
	t.Helper()
	n, err := w.chain.Client().NonceAt(context.Background(), addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func (w *world) pendingNonce(t *testing.T, addr common.Address) uint64 {
	t.Helper()
	n, err := w.chain.Client().PendingNonceAt(context.Background(), addr)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func (w *world) status(t *testing.T, paymentID string) string {
	t.Helper()
	return testkit.PaymentStatus(t, w.db, paymentID)
}

func (w *world) sweeps(t *testing.T, paymentID string) []sweep.Tx {
	t.Helper()
	txs, err := w.store.Sweeps(context.Background(), paymentID)
	if err != nil {
		t.Fatal(err)
	}
	return txs
}

func (w *world) receipt(t *testing.T, hash common.Hash) *types.Receipt {
	t.Helper()
	r, err := w.chain.Client().TransactionReceipt(context.Background(), hash)
	if err != nil {
		t.Fatalf("receipt %s: %v", hash.Hex(), err)
	}
	return r
}

// outbox returns the payloads written for subject about the payment.
// onlyEvent decodes into data the one event on subject the payment has in the outbox, failing
// the test if there is not exactly one.
func (w *world) onlyEvent(t *testing.T, subject, paymentID string, data any) {
	t.Helper()
	events := w.outbox(t, subject, paymentID)
	if len(events) != 1 {
		t.Fatalf("%d %s events for %s, want 1", len(events), subject, paymentID)
	}
	if err := json.Unmarshal(events[0].Data, data); err != nil {
		t.Fatal(err)
	}
}

func (w *world) outbox(t *testing.T, subject, paymentID string) []event.Envelope {
	t.Helper()
	var rows []struct {
		MsgID   string `db:"msg_id"`
		Payload []byte `db:"payload"`
		Headers []byte `db:"headers"`
	}
	if err := w.db.Select(&rows, `SELECT msg_id, payload, headers FROM outbox WHERE subject = $1 AND msg_id LIKE $2 || '.%' ORDER BY id`,
		subject, paymentID); err != nil {
		t.Fatal(err)
	}
	var out []event.Envelope
	for _, r := range rows {
		want := paymentID + "." + strings.TrimPrefix(subject, "payments.")
		if r.MsgID != want && !strings.HasPrefix(r.MsgID, want+"."+sweep.ReasonMaxFeeReached+".0x") && !isRound(r.MsgID, want) {
			t.Errorf("msg id %s, want %s", r.MsgID, want)
		}
		var hdr map[string]string
		if err := json.Unmarshal(r.Headers, &hdr); err != nil || hdr[event.HeaderEventType] != event.TypeForSubject(subject) {
			t.Errorf("outbox headers %s", r.Headers)
		}
		// Every event the sweeper writes keeps the contract (DESIGN.md's envelope).
		if v := event.ContractViolations(r.Payload); v != nil {
			t.Errorf("%s breaks the event contract: %v", r.MsgID, v)
		}
		var env event.Envelope
		if err := json.Unmarshal(r.Payload, &env); err != nil {
			t.Fatal(err)
		}
		out = append(out, env)
	}
	return out
}

// decodeTx decodes a recorded raw transaction.
func decodeTx(t *testing.T, raw []byte) *types.Transaction {
	t.Helper()
	var tx types.Transaction
	if err := tx.UnmarshalBinary(raw); err != nil {
		t.Fatal(err)
	}
	return &tx
}

func mul(a *big.Int, b uint64) *big.Int { return new(big.Int).Mul(a, new(big.Int).SetUint64(b)) }
func sub(a, b *big.Int) *big.Int        { return new(big.Int).Sub(a, b) }

// isRound reports a later sweep round's id: want.<n>.
func isRound(msgID, want string) bool {
	n, ok := strings.CutPrefix(msgID, want+".")
	_, err := strconv.Atoi(n)
	return ok && err == nil
}
