// Package sweep moves a confirmed payment's funds from its deposit address to the chain's
// treasury: the native coin in one transaction (balance minus the exact fee), an ERC-20 token
// with a gas top-up from the gas tank first. Every transaction is signed and recorded before it
// is broadcast, so a crash or a redelivery re-broadcasts the recorded transaction instead of
// signing a second one: a payment is never swept twice and its funds are never stranded.
package sweep

import (
	"context"
	"crypto/ecdsa"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"strings"
	"time"

	"github.com/ethereum/go-ethereum"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/crypto"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/ctrip-pay/pipeline/shared/chains"
	"github.com/ctrip-pay/pipeline/shared/event"
	"github.com/ctrip-pay/pipeline/shared/fault"
	"github.com/ctrip-pay/pipeline/shared/outbox"
)

// Transaction kinds (sweeps.kind): at most one of each per payment.
const (
	TxNative   = "native"
	TxGasTopup = "gas_topup"
	TxToken    = "token"
)

// Sweep transaction statuses (sweeps.status).
const (
	StatusSigned    = "signed"
	StatusBroadcast = "broadcast"
	StatusMined     = "mined"
	StatusFailed    = "failed"
)

// nativeTransferGas is the intrinsic gas of a plain value transfer to an account without code.
const nativeTransferGas = 21000

// Codes of the messages the sweeper terminates (the reason is "<code>: <detail>").
const (
	ReasonInvalidEvent   = "invalid_event"
	ReasonUnknownPayment = "unknown_payment"
)

// ErrNotFound is returned by a store for an unknown payment.
var ErrNotFound = errors.New("not found")

// ErrAlreadyRecorded is returned by Ledger.Record when another handler recorded a transaction
// of the same kind for the payment first; the caller reloads and uses that one.
var ErrAlreadyRecorded = errors.New("sweep transaction already recorded")

// Payment is the payments row the sweeper works from, with its transfers for the event.
type Payment struct {
	ID                string
	MerchantID        string
	Status            string
	ChainID           int64
	Token             string
	TokenContract     *string // lower-case 0x address; nil for the native coin
	Decimals          int
	Address           string // lower-case 0x deposit address
	AddressIndex      int64
	AmountBaseUnits   *big.Int
	ReceivedBaseUnits *big.Int
	Metadata          json.RawMessage
	ExpiresAt         time.Time
	Transfers         []event.Transaction
}

// Tx is one recorded sweep transaction (a sweeps row). For a token transfer To is the
// treasury and Value the token amount; the transaction itself is addressed to the contract.
type Tx struct {
	ID        string
	PaymentID string
	Kind      string
	ChainID   int64
	From      common.Address
	To        common.Address
	Nonce     uint64
	Value     *big.Int
	Hash      common.Hash
	Raw       []byte
	Status    string
	Error     string
}

// Draft is a transaction to be signed once its nonce is allocated.
type Draft struct {
	Kind         string
	From         common.Address
	To           common.Address
	Value        *big.Int
	PendingNonce uint64 // the node's pending nonce for From; the store's record may be ahead
	Sign         func(nonce uint64) (*types.Transaction, error)
}

// Payments reads payments and records the sweep's outcome.
type Payments interface {
	Payment(ctx context.Context, id string) (Payment, error)
	// MarkSwept moves the payment confirmed → swept with an audit row and writes evt, in one
	// DB transaction. It reports false if the payment was no longer 'confirmed'.
	MarkSwept(ctx context.Context, paymentID, reason string, evt outbox.Message) (bool, error)
	// ReportFailure writes evt (payments.sweep_failed); the payment stays 'confirmed'.
	ReportFailure(ctx context.Context, evt outbox.Message) error
}

// Ledger records sweep transactions and their nonces.
type Ledger interface {
	Sweeps(ctx context.Context, paymentID string) ([]Tx, error)
	// Record allocates each draft's nonce (the larger of the stored next nonce and
	// PendingNonce), signs and inserts it, all in one DB transaction. It returns
	// ErrAlreadyRecorded if the payment already has a transaction of a draft's kind.
	Record(ctx context.Context, paymentID string, chainID int64, drafts []Draft) ([]Tx, error)
	SetStatus(ctx context.Context, id, status, errText string) error
}

// Client is the part of an Ethereum JSON-RPC client the sweeper uses (*ethclient.Client).
type Client interface {
	ethereum.ContractCaller
	ethereum.GasEstimator
	ethereum.TransactionSender
	BalanceAt(ctx context.Context, account common.Address, blockNumber *big.Int) (*big.Int, error)
	CodeAt(ctx context.Context, account common.Address, blockNumber *big.Int) ([]byte, error)
	HeaderByNumber(ctx context.Context, number *big.Int) (*types.Header, error)
	PendingNonceAt(ctx context.Context, account common.Address) (uint64, error)
	SuggestGasTipCap(ctx context.Context) (*big.Int, error)
	TransactionReceipt(ctx context.Context, txHash common.Hash) (*types.Receipt, error)
}

// Network is one configured chain and its RPC client.
type Network struct {
	Chain  chains.Chain
	Client Client
}

// Keys derives deposit address keys (wallet.Wallet).
type Keys interface {
	Key(index uint32) (*ecdsa.PrivateKey, error)
}

// Config wires a Sweeper.
type Config struct {
	Networks map[int64]Network
	Keys     Keys
	GasTank  *ecdsa.PrivateKey // nil: token sweeps that need gas fail
	Payments Payments
	Ledger   Ledger

	ReceiptTimeout time.Duration // how long one delivery waits for a receipt; default 5m
	PollInterval   time.Duration // receipt polling; default 1s
	OutboxWake     func()        // called after an event is written to the outbox (wakes the relay); optional

	Tracer trace.Tracer // default: no spans
	Log    *slog.Logger
}

// Default timings of a Sweeper.
const (
	DefaultReceiptTimeout = 5 * time.Minute
	DefaultPollInterval   = time.Second
)

// Validate reports what a Sweeper cannot run without.
func (c Config) Validate() error {
	if c.Networks == nil || c.Keys == nil || c.Payments == nil || c.Ledger == nil || c.Log == nil {
		return errors.New("sweep: Networks, Keys, Payments, Ledger and Log are required")
	}
	if c.ReceiptTimeout < 0 || c.PollInterval < 0 {
		return errors.New("sweep: ReceiptTimeout and PollInterval must not be negative")
	}
	return nil
}

// Sweeper handles payments.confirmed.
type Sweeper struct {
	Config
}

// New builds a Sweeper, with defaults for what cfg leaves zero.
func New(cfg Config) (*Sweeper, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.ReceiptTimeout == 0 {
		cfg.ReceiptTimeout = DefaultReceiptTimeout
	}
	if cfg.PollInterval == 0 {
		cfg.PollInterval = DefaultPollInterval
	}
	if cfg.OutboxWake == nil {
		cfg.OutboxWake = func() {}
	}
	if cfg.Tracer == nil {
		cfg.Tracer = noop.NewTracerProvider().Tracer("sweep")
	}
	return &Sweeper{Config: cfg}, nil
}

// Handle is the port of the payments.confirmed consumer: natsbus settles the message by the
// error Sweep returns. The pull loop heartbeats the message while it waits for receipts (every
// AckWait/3), so the consumer's short ack wait brings a crashed sweeper's message back within
// seconds.
func (s *Sweeper) Handle(ctx context.Context, msg jetstream.Msg) error {
	return s.Sweep(ctx, msg.Data())
}

// Sweep decodes and validates one payments.confirmed body — what cannot be decoded is
// invalid, so natsbus terminates it — and hands it to HandleConfirmed, the idempotent handler.
func (s *Sweeper) Sweep(ctx context.Context, body []byte) error {
	var env event.Envelope
	if err := json.Unmarshal(body, &env); err != nil {
		return fault.Invalid(ReasonInvalidEvent, fmt.Errorf("undecodable event: %w", err))
	}
	if err := env.Validate(); err != nil {
		return fault.Invalid(ReasonInvalidEvent, err)
	}
	var in event.Payment
	if err := json.Unmarshal(env.Data, &in); err != nil {
		return fault.Invalid(ReasonInvalidEvent, fmt.Errorf("event %s data: %w", env.ID, err))
	}
	if in.PaymentID == "" {
		return fault.Invalid(ReasonInvalidEvent, fmt.Errorf("event %s: no payment_id", env.ID))
	}
	return s.HandleConfirmed(ctx, env, in)
}

// HandleConfirmed is the sweeper's decision on one payments.confirmed event (decoded by Sweep):
// it sweeps the payment, or finishes the sweep a previous delivery recorded. A sweep that cannot
// succeed is reported as payments.sweep_failed and returns nil.
func (s *Sweeper) HandleConfirmed(ctx context.Context, env event.Envelope, in event.Payment) error {
	log := s.Log.With("payment_id", in.PaymentID, "event_id", env.ID)

	p, err := s.Payments.Payment(ctx, in.PaymentID)
	if errors.Is(err, ErrNotFound) {
		return fault.NotFound(ReasonUnknownPayment, fmt.Errorf("payment %s does not exist", in.PaymentID))
	}
	if err != nil {
		return fault.Transient(err)
	}
	recorded, err := s.Ledger.Sweeps(ctx, p.ID)
	if err != nil {
		return fault.Transient(err)
	}
	switch {
	case p.Status == event.StatusSwept:
		log.InfoContext(ctx, "already swept")
		return nil
	case p.Status != event.StatusConfirmed && len(recorded) == 0:
		// Nothing signed yet and no longer confirmed (e.g. reorged back): nothing to sweep.
		log.WarnContext(ctx, "payment is not confirmed, not sweeping", "status", p.Status)
		return nil
	}
	// From here on, transactions already recorded are always pushed through, whatever the
	// payment's status: they are signed, and a recorded gas-tank nonce left unsent would block
	// every later top-up.

	j := &job{s: s, p: p, in: in, recorded: recorded, log: log}
	txs, err := j.run(ctx)
	var f *failure
	if errors.As(err, &f) {
		log.WarnContext(ctx, "sweep failed", "reason", f.Error())
		return s.reportFailure(ctx, j, f, txs)
	}
	if err != nil {
		return fault.Transient(err)
	}
	return s.markSwept(ctx, j, txs)
}

// job is one payment's sweep.
type job struct {
	s        *Sweeper
	p        Payment
	in       event.Payment
	recorded []Tx
	log      *slog.Logger

	net      Network
	key      *ecdsa.PrivateKey
	deposit  common.Address
	treasury common.Address
	signer   types.Signer
}

// mined is a sweep transaction with its receipt.
type mined struct {
	tx      Tx
	receipt *types.Receipt
}

func (j *job) run(ctx context.Context) ([]mined, error) {
	net, ok := j.s.Networks[j.p.ChainID]
	if !ok {
		return nil, fail("chain_not_configured", "chain %d is not in CHAINS_FILE", j.p.ChainID)
	}
	j.net = net
	if net.Chain.Treasury == "" {
		return nil, fail("no_treasury", "no treasury configured for chain %d", j.p.ChainID)
	}
	j.treasury = common.HexToAddress(net.Chain.Treasury)
	if j.p.AddressIndex < 0 || j.p.AddressIndex >= 1<<31 {
		return nil, fail("wallet_mismatch", "address index %d is not a non-hardened BIP-32 index", j.p.AddressIndex)
	}
	key, err := j.s.Keys.Key(uint32(j.p.AddressIndex))
	if err != nil {
		return nil, fail("wallet_mismatch", "derive key %d: %v", j.p.AddressIndex, err)
	}
	j.key = key
	j.deposit = crypto.PubkeyToAddress(key.PublicKey)
	if !strings.EqualFold(j.deposit.Hex(), j.p.Address) {
		// The api derived the address from another account than this wallet's.
		return nil, fail("wallet_mismatch", "wallet key %d is for %s, not the deposit address %s", j.p.AddressIndex, j.deposit.Hex(), j.p.Address)
	}
	j.signer = types.LatestSignerForChainID(big.NewInt(j.p.ChainID))
	if j.p.TokenContract == nil {
		return j.sweepNative(ctx)
	}
	return j.sweepToken(ctx)
}

// fees returns the EIP-1559 tip and fee cap: the node's suggested tip, and twice the current
// base fee plus the tip, so the transaction stays includable through several full blocks.
func (j *job) fees(ctx context.Context) (tip, feeCap *big.Int, err error) {
	tip, err = j.net.Client.SuggestGasTipCap(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("suggest gas tip: %w", err)
	}
	head, err := j.net.Client.HeaderByNumber(ctx, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("head: %w", err)
	}
	if head.BaseFee == nil {
		return nil, nil, fail("no_eip1559", "chain %d has no base fee (pre-London)", j.p.ChainID)
	}
	feeCap = new(big.Int).Add(new(big.Int).Mul(head.BaseFee, big.NewInt(2)), tip)
	return tip, feeCap, nil
}

// record signs and records drafts, or — if a concurrent handler won the race — returns what
// that handler recorded.
func (j *job) record(ctx context.Context, drafts []Draft) ([]Tx, error) {
	txs, err := j.s.Ledger.Record(ctx, j.p.ID, j.p.ChainID, drafts)
	if errors.Is(err, ErrAlreadyRecorded) {
		j.log.InfoContext(ctx, "sweep recorded concurrently, using that one")
		return j.s.Ledger.Sweeps(ctx, j.p.ID)
	}
	for _, tx := range txs {
		j.log.InfoContext(ctx, "sweep transaction recorded", "kind", tx.Kind, "tx_hash", tx.Hash.Hex(),
			"from", tx.From.Hex(), "nonce", tx.Nonce, "value", tx.Value.String())
	}
	return txs, err
}

func find(txs []Tx, kind string) *Tx {
	for i := range txs {
		if txs[i].Kind == kind {
			return &txs[i]
		}
	}
	return nil
}

func dynamicFeeTx(chainID int64, nonce, gas uint64, tip, feeCap *big.Int, to common.Address, value *big.Int, data []byte) *types.DynamicFeeTx {
	return &types.DynamicFeeTx{
		ChainID: big.NewInt(chainID), Nonce: nonce, GasTipCap: tip, GasFeeCap: feeCap, Gas: gas,
		To: &to, Value: value, Data: data,
	}
}
