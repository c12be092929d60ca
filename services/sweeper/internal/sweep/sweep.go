// Package sweep moves a confirmed payment's funds from its deposit address to the chain's
// treasury: the native coin in one transaction (balance minus the exact fee), an ERC-20 token
// with a gas top-up from the gas tank first. Every transaction is signed and recorded before it
// is broadcast, so a crash or a redelivery re-broadcasts the recorded transaction instead of
// signing a second one: a payment is never swept twice and its funds are never stranded.
//
// A transaction that has no receipt RepriceAfter after its broadcast is re-priced (reprice.go):
// a replacement with the same nonce and higher fees, recorded before broadcast like the first.
// Every version stays in the ledger; whichever is mined wins, and the others are marked
// replaced (earlier versions) or dropped (later ones).
package sweep

import (
	"context"
	"crypto/ecdsa"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"slices"
	"strings"
	"time"

	"github.com/ethereum/go-ethereum"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/crypto"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/ctrip-pay/pipeline/shared/chains"
	"github.com/ctrip-pay/pipeline/shared/event"
	"github.com/ctrip-pay/pipeline/shared/fault"
	"github.com/ctrip-pay/pipeline/shared/natsbus"
	"github.com/ctrip-pay/pipeline/shared/outbox"
)

// Transaction kinds (sweeps.kind). A payment has one native transfer or one token transfer (in
// as many versions as it was re-priced), and gas top-ups: the first, its versions, and one more
// for each re-priced token transfer that needs more gas.
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
	// StatusReplaced: a later version with the same nonce was signed, or was mined. Until the
	// nonce is used this version may still be mined, and then it wins.
	StatusReplaced = "replaced"
	// StatusDropped: an earlier version with the same nonce was mined; this one never will be.
	StatusDropped = "dropped"
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

// ErrAlreadyRecorded is returned by Ledger.Record when another handler recorded a draft's step
// (its kind and Seq) for the payment first, or settled the transaction a draft replaces; the
// caller reloads and uses what is recorded.
var ErrAlreadyRecorded = errors.New("sweep transaction already recorded")

// Payment is the payments row the sweeper works from, with its transfers for the event.
type Payment struct {
	event.PaymentCore
	// SweepRounds is how many sweep rounds completed and CoveredBaseUnits the confirmed value
	// the last one accounted for: more confirmed than covered is value left at the address.
	SweepRounds      int
	CoveredBaseUnits *big.Int
	// LateBaseUnits is the value of the transfers detected after the payment's deadline.
	LateBaseUnits *big.Int
	Transfers     []event.Transaction
	// TraceContext is the payment's trace (the api request that created it): a leftover sweep
	// round, which no message starts, continues it.
	TraceContext natsbus.TraceCarrier
}

// Tx is one recorded sweep transaction (a sweeps row): one signed version. For a token
// transfer To is the treasury and Value the token amount; the transaction itself is addressed
// to the contract. Versions of one transaction share Kind, From and Nonce.
type Tx struct {
	ID          string
	PaymentID   string
	Kind        string
	Seq         int // its place among the payment's transactions of Kind, from 0
	Round       int // the sweep round it belongs to: 0 the payment's sweep, then one per leftover sweep
	ChainID     int64
	From        common.Address
	To          common.Address
	Nonce       uint64
	Value       *big.Int
	Hash        common.Hash
	Raw         []byte
	Status      string
	Error       string
	BroadcastAt time.Time // first broadcast; zero while only signed
}

// Draft is a transaction to be signed once its nonce is allocated.
type Draft struct {
	Kind string
	// Seq is the draft's place among the payment's transactions of Kind: 0 for the first,
	// one more for each replacement or further top-up. Two handlers recording the same step
	// collide on it (ErrAlreadyRecorded).
	Seq          int
	Round        int // set by the job: the round being swept
	From         common.Address
	To           common.Address
	Value        *big.Int
	PendingNonce uint64 // the node's pending nonce for From; the store's record may be ahead
	// Replaces is the version this draft re-prices: the draft is signed with its nonce
	// (nothing is allocated) and it becomes StatusReplaced. Nil: a new transaction.
	Replaces *Tx
	Sign     func(nonce uint64) (*types.Transaction, error)
}

// Payments reads payments and records the sweep's outcome.
type Payments interface {
	Payment(ctx context.Context, id string) (Payment, error)
	// MarkSwept records a completed sweep round and writes its event, in one DB transaction:
	// round 0 of a confirmed payment moves it confirmed → swept (with an audit row); a round of
	// an expired or swept payment leaves its status. It reports false, writing nothing, if the
	// round was recorded already or the payment is in no status a sweep completes in (a
	// reorg stepped it back).
	MarkSwept(ctx context.Context, r Round) (bool, error)
	// ValueLeft lists up to limit payments, expired or swept, whose confirmed value exceeds what
	// their sweep rounds covered: value that would otherwise stay at the deposit address.
	ValueLeft(ctx context.Context, limit int) ([]string, error)
	// ReportFailure writes evt (payments.sweep_failed); the payment stays 'confirmed'.
	ReportFailure(ctx context.Context, evt outbox.Message) error
}

// Round is one completed sweep round of a payment, as MarkSwept records it.
type Round struct {
	PaymentID string
	Round     int
	// Swept is what the round moved to the treasury (native or token value; top-ups aside),
	// Covered the confirmed value it accounts for.
	Swept, Covered *big.Int
	Reason         string          // the audit row's reason, when the status changes
	Event          *outbox.Message // payments.swept; nil when the round found nothing to move
}

// Ledger records sweep transactions and their nonces.
type Ledger interface {
	Sweeps(ctx context.Context, paymentID string) ([]Tx, error)
	// Record allocates each draft's nonce (the larger of the stored next nonce and
	// PendingNonce; a replacement's is the one it replaces), signs and inserts it, all in one
	// DB transaction. It returns ErrAlreadyRecorded if the payment already has a draft's kind
	// and Seq, or the transaction a draft replaces is no longer signed or broadcast.
	Record(ctx context.Context, paymentID string, chainID int64, drafts []Draft) ([]Tx, error)
	// SetStatus updates a recorded version's status. StatusBroadcast also sets BroadcastAt
	// the first time. StatusMined and StatusFailed (its nonce is used) mark the other versions
	// of the nonce replaced (earlier) or dropped (later) in the same DB transaction.
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
	NonceAt(ctx context.Context, account common.Address, blockNumber *big.Int) (uint64, error)
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
	// RepriceAfter is how long a broadcast transaction may wait for a receipt before it is
	// replaced by one with higher fees (bounded by the chain's max_fee_gwei); default 2m.
	RepriceAfter time.Duration
	OutboxWake   func() // called after an event is written to the outbox (wakes the relay); optional

	Tracer trace.Tracer // default: no spans
	Meter  metric.Meter // default: no metrics
	Log    *slog.Logger
}

// Default timings of a Sweeper.
const (
	DefaultReceiptTimeout = 5 * time.Minute
	DefaultPollInterval   = time.Second
	DefaultRepriceAfter   = 2 * time.Minute
)

// Validate reports what a Sweeper cannot run without.
func (c Config) Validate() error {
	if c.Networks == nil || c.Keys == nil || c.Payments == nil || c.Ledger == nil || c.Log == nil {
		return errors.New("sweep: Networks, Keys, Payments, Ledger and Log are required")
	}
	if c.ReceiptTimeout < 0 || c.PollInterval < 0 || c.RepriceAfter < 0 {
		return errors.New("sweep: ReceiptTimeout, PollInterval and RepriceAfter must not be negative")
	}
	return nil
}

// Sweeper handles payments.confirmed.
type Sweeper struct {
	Config
	metrics metrics
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
	if cfg.RepriceAfter == 0 {
		cfg.RepriceAfter = DefaultRepriceAfter
	}
	if cfg.OutboxWake == nil {
		cfg.OutboxWake = func() {}
	}
	if cfg.Tracer == nil {
		cfg.Tracer = noop.NewTracerProvider().Tracer("sweep")
	}
	return &Sweeper{Config: cfg, metrics: newMetrics(cfg.Meter)}, nil
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
	// Postgres' text refuses NUL: such an id would fail every redelivery as a database error.
	if strings.ContainsRune(in.PaymentID, 0) {
		return fault.Invalid(ReasonInvalidEvent, fmt.Errorf("event %s: payment_id holds a NUL character", env.ID))
	}
	return s.HandleConfirmed(ctx, env, in)
}

// HandleConfirmed is the sweeper's decision on one payments.confirmed event (decoded by Sweep):
// it sweeps the payment, or finishes the sweep a previous delivery recorded. A sweep that cannot
// succeed is reported as payments.sweep_failed and returns nil.
func (s *Sweeper) HandleConfirmed(ctx context.Context, env event.Envelope, in event.Payment) error {
	log := s.Log.With("payment_id", in.PaymentID, "event_id", env.ID)
	trace.SpanFromContext(ctx).SetAttributes(attribute.String("payment.id", in.PaymentID))

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
	recorded = ofRound(recorded, 0)
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

	j := &job{s: s, p: p, in: in, round: 0, recorded: recorded, log: log}
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
	round    int
	recorded []Tx // the round's
	log      *slog.Logger

	net      Network
	key      *ecdsa.PrivateKey
	deposit  common.Address
	treasury common.Address
	signer   types.Signer
	maxFee   *big.Int // the chain's max_fee_gwei in wei; nil: no bound

	topups []mined // gas top-ups landed so far, in order
}

// mined is a sweep transaction with its receipt, and the other versions of its nonce.
type mined struct {
	tx      Tx
	receipt *types.Receipt
	others  []Tx
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
	j.maxFee = net.Chain.MaxFeeWei()
	if j.p.TokenContract == nil {
		return j.sweepNative(ctx)
	}
	return j.sweepToken(ctx)
}

// market returns the node's suggested tip and the head's base fee.
func (j *job) market(ctx context.Context) (tip, baseFee *big.Int, err error) {
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
	return tip, head.BaseFee, nil
}

// fees returns the EIP-1559 tip and fee cap of a new transaction: the node's suggested tip,
// and twice the current base fee plus the tip, so the transaction stays includable through
// several full blocks — both bounded by the chain's max_fee_gwei.
func (j *job) fees(ctx context.Context) (tip, feeCap *big.Int, err error) {
	tip, baseFee, err := j.market(ctx)
	if err != nil {
		return nil, nil, err
	}
	feeCap = marketFeeCap(baseFee, tip)
	if j.maxFee != nil && feeCap.Cmp(j.maxFee) > 0 {
		j.log.WarnContext(ctx, "fee cap bounded by max_fee_gwei", "fee_cap", feeCap.String(), "max_fee", j.maxFee.String(),
			"base_fee", baseFee.String())
		feeCap = new(big.Int).Set(j.maxFee)
	}
	if tip.Cmp(feeCap) > 0 {
		tip = new(big.Int).Set(feeCap)
	}
	return tip, feeCap, nil
}

// record signs and records drafts, or — if a concurrent handler won the race — returns what
// that handler recorded. Either way j.recorded is the ledger afterwards.
func (j *job) record(ctx context.Context, drafts []Draft) ([]Tx, error) {
	for i := range drafts {
		drafts[i].Round = j.round
	}
	txs, err := j.s.Ledger.Record(ctx, j.p.ID, j.p.ChainID, drafts)
	if errors.Is(err, ErrAlreadyRecorded) {
		j.log.InfoContext(ctx, "sweep recorded concurrently, using that one")
		return j.reload(ctx)
	}
	if err != nil {
		return nil, err
	}
	for _, tx := range txs {
		j.log.InfoContext(ctx, "sweep transaction recorded", "kind", tx.Kind, "seq", tx.Seq, "tx_hash", tx.Hash.Hex(),
			"from", tx.From.Hex(), "nonce", tx.Nonce, "value", tx.Value.String())
		trace.SpanFromContext(ctx).AddEvent("signed", trace.WithAttributes(attribute.String("sweep.kind", tx.Kind),
			attribute.Int("sweep.seq", tx.Seq), attribute.String("sweep.tx_hash", tx.Hash.Hex()), attribute.Int64("sweep.nonce", int64(tx.Nonce))))
	}
	return j.reload(ctx)
}

// reload reads the payment's ledger into j.recorded.
func (j *job) reload(ctx context.Context) ([]Tx, error) {
	txs, err := j.s.Ledger.Sweeps(ctx, j.p.ID)
	if err != nil {
		return nil, err
	}
	j.recorded = ofRound(txs, j.round)
	return j.recorded, nil
}

// ofRound returns the recorded transactions of a sweep round.
func ofRound(txs []Tx, round int) []Tx {
	var out []Tx
	for _, tx := range txs {
		if tx.Round == round {
			out = append(out, tx)
		}
	}
	return out
}

// ofKind returns the recorded transactions of kind, in Seq order.
func ofKind(txs []Tx, kind string) []Tx {
	var out []Tx
	for _, tx := range txs {
		if tx.Kind == kind {
			out = append(out, tx)
		}
	}
	slices.SortFunc(out, func(a, b Tx) int { return a.Seq - b.Seq })
	return out
}

// versions returns the recorded versions of tx's transaction (same kind, sender and nonce),
// in Seq order: the last is the latest, with the highest fees.
func versions(txs []Tx, tx Tx) []Tx {
	var out []Tx
	for _, v := range ofKind(txs, tx.Kind) {
		if v.From == tx.From && v.Nonce == tx.Nonce {
			out = append(out, v)
		}
	}
	return out
}

// byNonce splits transactions of one kind into their transactions' versions, in the order the
// transactions were first recorded.
func byNonce(txs []Tx) [][]Tx {
	type sender struct {
		from  common.Address
		nonce uint64
	}
	var out [][]Tx
	seen := map[sender]bool{}
	for _, tx := range txs {
		if k := (sender{tx.From, tx.Nonce}); !seen[k] {
			seen[k] = true
			out = append(out, versions(txs, tx))
		}
	}
	return out
}

// nextSeq is the Seq of the payment's next transaction of kind.
func nextSeq(txs []Tx, kind string) int {
	n := 0
	for _, tx := range txs {
		if tx.Kind == kind && tx.Seq >= n {
			n = tx.Seq + 1
		}
	}
	return n
}

func dynamicFeeTx(chainID int64, nonce, gas uint64, tip, feeCap *big.Int, to common.Address, value *big.Int, data []byte) *types.DynamicFeeTx {
	return &types.DynamicFeeTx{
		ChainID: big.NewInt(chainID), Nonce: nonce, GasTipCap: tip, GasFeeCap: feeCap, Gas: gas,
		To: &to, Value: value, Data: data,
	}
}
