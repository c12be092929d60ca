// Package event holds the event envelope of DESIGN.md — the JSON carried on PAYMENTS and
// posted to merchants as the webhook body — and the NATS header names every message carries.
package event

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math/big"
	"strings"
	"time"
)

// Header names on every NATS message.
const (
	HeaderMsgID     = "Nats-Msg-Id"
	HeaderEventType = "Ctrip-Event-Type"
)

// Subjects on the PAYMENTS stream.
const (
	SubjectCreated     = "payments.created"
	SubjectDetected    = "payments.detected"
	SubjectConfirmed   = "payments.confirmed"
	SubjectExpired     = "payments.expired"
	SubjectReorged     = "payments.reorged"
	SubjectSwept       = "payments.swept"
	SubjectSweepFailed = "payments.sweep_failed"
)

// Payment statuses (DESIGN.md, "Payment statuses").
const (
	StatusPending   = "pending"
	StatusDetected  = "detected"
	StatusConfirmed = "confirmed"
	StatusSwept     = "swept"
	StatusExpired   = "expired"
)

// Transfer statuses. Detected and confirmed transfers count towards the received value; a
// reorged one left the canonical chain; a failed one is in a canonical block but never paid
// (receipt status 0, or no matching Transfer log).
const (
	TransferDetected  = "detected"
	TransferConfirmed = "confirmed"
	TransferReorged   = "reorged"
	TransferFailed    = "failed"
)

// Envelope is the event as stored on PAYMENTS and sent as the webhook body.
type Envelope struct {
	ID        string          `json:"id"`
	Type      string          `json:"type"`
	Timestamp time.Time       `json:"timestamp"`
	Data      json.RawMessage `json:"data"`
}

// Validate checks the fields every consumer relies on.
func (e Envelope) Validate() error {
	switch {
	case e.ID == "":
		return fmt.Errorf("event: missing id")
	case e.Type == "":
		return fmt.Errorf("event: missing type")
	case e.Timestamp.IsZero():
		return fmt.Errorf("event: missing timestamp")
	case len(e.Data) == 0 || e.Data[0] != '{':
		return fmt.Errorf("event: data must be a JSON object")
	}
	return nil
}

// Payment is the data of every payment.* event. Amounts are decimal strings in base units
// (big integers), with the human amount alongside.
type Payment struct {
	PaymentID               string          `json:"payment_id"`
	MerchantID              string          `json:"merchant_id"`
	Status                  string          `json:"status"`
	ChainID                 int64           `json:"chain_id"`
	Chain                   string          `json:"chain"`
	Address                 string          `json:"address"`
	Token                   string          `json:"token"`
	TokenID                 string          `json:"token_id,omitempty"`
	TokenContract           *string         `json:"token_contract"`
	Amount                  string          `json:"amount"`
	AmountBaseUnits         string          `json:"amount_base_units"`
	AmountReceivedBaseUnits string          `json:"amount_received_base_units"`
	Confirmations           int64           `json:"confirmations"`
	Transactions            []Transaction   `json:"transactions"`
	Metadata                json.RawMessage `json:"metadata,omitempty"`
	ExpiresAt               *time.Time      `json:"expires_at,omitempty"`
}

// PaymentRow is what every payment.* event's data is built from: the payment's row as each
// service loads it, with its transfers.
type PaymentRow struct {
	ID, MerchantID, Status string
	ChainID                int64
	Chain                  string // the chain's name in CHAINS_FILE
	Address                string
	Token                  string  // the token's id in CHAINS_FILE ("ETH", "USDC")
	TokenContract          *string // nil for the native coin
	Decimals               int
	Amount                 *big.Int
	Received               *big.Int // nil: nothing received
	Confirmations          int64
	Transactions           []Transaction
	Metadata               json.RawMessage
	ExpiresAt              time.Time
}

// NewPayment is the one builder of the data every payment.* event carries: the seed's fields
// (payment_id, status, address, amount, chain, token_id) and the rest of DESIGN.md's envelope,
// amounts in base units with the human amount alongside. Event types that say more embed it.
func NewPayment(r PaymentRow) Payment {
	received := "0"
	if r.Received != nil {
		received = r.Received.String()
	}
	amount := "0"
	if r.Amount != nil {
		amount = r.Amount.String()
	}
	txs := r.Transactions
	if txs == nil {
		txs = []Transaction{}
	}
	expires := r.ExpiresAt.UTC()
	return Payment{
		PaymentID: r.ID, MerchantID: r.MerchantID, Status: r.Status, ChainID: r.ChainID, Chain: r.Chain,
		Address: r.Address, Token: r.Token, TokenID: r.Token, TokenContract: r.TokenContract,
		Amount: FormatUnits(r.Amount, r.Decimals), AmountBaseUnits: amount, AmountReceivedBaseUnits: received,
		Confirmations: r.Confirmations, Transactions: txs, Metadata: r.Metadata, ExpiresAt: &expires,
	}
}

// FormatUnits renders base units as a decimal string in token units, the human amount of an
// event: 12500000 with 6 decimals is "12.5". No floats: the digits are cut, never rounded, and
// trailing zeros are trimmed. A nil value is "0"; a negative one keeps its sign.
func FormatUnits(v *big.Int, decimals int) string {
	if v == nil {
		return "0"
	}
	neg := v.Sign() < 0
	digits := new(big.Int).Abs(v).String()
	if decimals > 0 {
		if len(digits) <= decimals {
			digits = strings.Repeat("0", decimals-len(digits)+1) + digits
		}
		whole, frac := digits[:len(digits)-decimals], strings.TrimRight(digits[len(digits)-decimals:], "0")
		digits = whole
		if frac != "" {
			digits += "." + frac
		}
	}
	if neg {
		return "-" + digits
	}
	return digits
}

// Transaction is one transfer counted towards a payment.
type Transaction struct {
	TxHash         string `json:"tx_hash"`
	LogIndex       *int64 `json:"log_index"`
	BlockNumber    uint64 `json:"block_number"`
	BlockHash      string `json:"block_hash,omitempty"`
	ValueBaseUnits string `json:"value_base_units"`
	Status         string `json:"status,omitempty"` // detected, confirmed, reorged
}

// TypeForSubject maps a PAYMENTS subject to the merchant-facing event type:
// "payments.confirmed" → "payment.confirmed".
func TypeForSubject(subject string) string {
	if rest, ok := strings.CutPrefix(subject, "payments."); ok {
		return "payment." + rest
	}
	return subject
}

// New builds an envelope with a fresh id and the current time.
func New(typ string, data any) (Envelope, error) {
	raw, err := json.Marshal(data)
	if err != nil {
		return Envelope{}, fmt.Errorf("event: marshal data: %w", err)
	}
	return Envelope{ID: NewID("evt"), Type: typ, Timestamp: time.Now().UTC().Truncate(time.Millisecond), Data: raw}, nil
}

// NewFor is New with the id IDFor("evt", at, key).
func NewFor(typ string, at time.Time, key string, data any) (Envelope, error) {
	env, err := New(typ, data)
	env.ID = IDFor("evt", at, key)
	return env, err
}

// crockford is the ULID alphabet: ids sort by creation time and read unambiguously.
const crockford = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

// NewID returns prefix_<ULID>: 48 bits of milliseconds then 80 random bits, 26 characters.
func NewID(prefix string) string {
	var b [16]byte
	ms := uint64(time.Now().UnixMilli())
	binary.BigEndian.PutUint64(b[:8], ms<<16)
	if _, err := rand.Read(b[6:]); err != nil {
		panic(fmt.Sprintf("event: crypto/rand failed: %v", err)) // the OS is broken; nothing sane to do
	}
	return ulid(prefix, b)
}

// IDFor returns the same prefix_<ULID> for the same key and time: the milliseconds of at, then
// 80 bits of the key's SHA-256. An event that a rerun may build again (the scanner's, after a
// crash before its block was committed) keeps its id, so the stream and the event log agree.
func IDFor(prefix string, at time.Time, key string) string {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], uint64(at.UnixMilli())<<16)
	sum := sha256.Sum256([]byte(key))
	copy(b[6:], sum[:10])
	return ulid(prefix, b)
}

func ulid(prefix string, b [16]byte) string {
	hi := binary.BigEndian.Uint64(b[:8])
	lo := binary.BigEndian.Uint64(b[8:])
	out := make([]byte, 26)
	// 128 bits → 26 base32 digits (the first digit carries 3 bits).
	for i := 25; i >= 0; i-- {
		out[i] = crockford[lo&31]
		lo = lo>>5 | hi<<59
		hi >>= 5
	}
	return prefix + "_" + string(out)
}

// Subjects on the CHAIN stream, per chain id.
func HeadSubject(chainID int64) string  { return fmt.Sprintf("chain.%d.head", chainID) }
func ReorgSubject(chainID int64) string { return fmt.Sprintf("chain.%d.reorg", chainID) }

// ChainHead is published on chain.<id>.head when the scanner has processed a new canonical
// block (all payments.detected events of that block are already on PAYMENTS).
type ChainHead struct {
	ChainID    int64     `json:"chain_id"`
	Number     uint64    `json:"number"`
	Hash       string    `json:"hash"`
	ParentHash string    `json:"parent_hash"`
	Time       time.Time `json:"time"`
}

// ChainReorg is published on chain.<id>.reorg when blocks the scanner had processed left the
// canonical chain: every block above CommonAncestor is orphaned and will be rescanned.
type ChainReorg struct {
	ChainID              int64  `json:"chain_id"`
	CommonAncestorNumber uint64 `json:"common_ancestor_number"`
	CommonAncestorHash   string `json:"common_ancestor_hash"`
	OldHeadNumber        uint64 `json:"old_head_number"`
	OldHeadHash          string `json:"old_head_hash"`
	NewHeadNumber        uint64 `json:"new_head_number"`
	NewHeadHash          string `json:"new_head_hash"`
}
