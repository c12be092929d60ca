package rest

import (
	"context"
	"errors"
	"math/big"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ctrip-pay/pipeline/shared/deadletter"
	"github.com/ctrip-pay/pipeline/shared/event"
	"github.com/ctrip-pay/pipeline/shared/fault"
	"github.com/ctrip-pay/pipeline/shared/outbox"
)

// ErrNotFound is returned by the store for a missing row — or one that belongs to another
// merchant, which the API must not tell apart.
var ErrNotFound = fault.NotFound("not_found", errors.New("not found"))

// ErrReplayRaced means a concurrent replay of the same dead letter bumped its counter first: a
// conflict (409 replay_conflict).
var ErrReplayRaced = deadletter.ErrReplayRaced

// Payment is a row of payments with, when loaded by id or listed, its transfers.
type Payment struct {
	event.PaymentCore
	IdempotencyKey *string
	RequestHash    []byte
	CreatedAt      time.Time
	UpdatedAt      time.Time
	Transfers      []Transfer
}

// Transfer is a row of payment_transfers. LogIndex is -1 for a native transfer.
type Transfer struct {
	PaymentID     string
	TxHash        string
	LogIndex      int64
	TokenContract *string
	Value         *big.Int
	BlockNumber   int64
	BlockHash     string
	Status        string
	DetectedAt    time.Time
	ConfirmedAt   *time.Time
	ReorgedAt     *time.Time
}

// Endpoint is a merchant's row of webhook_endpoints, without its secrets.
type Endpoint struct {
	ID                      string
	MerchantID              string
	URL                     string
	EventTypes              []string
	LegacySignature         bool
	Enabled                 bool
	DisabledReason          *string
	DisabledAt              *time.Time
	PreviousSecretExpiresAt *time.Time
	CreatedAt               time.Time
	UpdatedAt               time.Time
}

// EndpointPatch holds the fields a PATCH sets; nil leaves a field as it is.
type EndpointPatch struct {
	URL             *string
	EventTypes      *[]string
	LegacySignature *bool
	Enabled         *bool
}

// Attempt is a row of webhook_attempts.
type Attempt struct {
	ID           int64
	EventID      string
	EventType    string
	PaymentID    *string
	EndpointID   string
	Attempt      int
	StatusCode   *int
	LatencyMS    float64
	Error        *string
	ResponseBody *string
	Delivered    bool
	AttemptedAt  time.Time
}

// Page is a keyset position: the (created_at, id) — or, for attempts, the id — of the last row
// of the previous page.
type Page struct {
	Limit    int
	AfterAt  *time.Time
	AfterID  string
	AfterSeq int64
}

// Merchants is what merchant administration and authentication need.
type Merchants interface {
	CreateMerchant(ctx context.Context, id, name string, key APIKey) (time.Time, error)
	MerchantByKeyHash(ctx context.Context, hash []byte) (string, error)
	// AddAPIKey gives an existing merchant another key (ErrNotFound for no such merchant).
	AddAPIKey(ctx context.Context, merchantID string, key APIKey) (time.Time, error)
	// RevokeAPIKey stops a key from authenticating (ErrNotFound if it is not the merchant's
	// or already revoked).
	RevokeAPIKey(ctx context.Context, merchantID, keyID string) error
}

// APIKey is a stored key: only its hash and a displayable prefix.
type APIKey struct {
	ID     string
	Hash   []byte
	Prefix string
}

// Payments is what the payment calls need.
type Payments interface {
	// CreatePayment inserts p and msg in one transaction. When p carries an idempotency key
	// already used by the merchant, nothing is written and the existing payment is returned
	// with created = false.
	CreatePayment(ctx context.Context, p Payment, msg outbox.Message) (stored Payment, created bool, err error)
	PaymentByIdempotencyKey(ctx context.Context, merchantID, key string) (Payment, error)
	NextAddressIndex(ctx context.Context) (int64, error)
	Payment(ctx context.Context, merchantID, id string) (Payment, error)
	Payments(ctx context.Context, merchantID, status string, page Page) ([]Payment, error)
	Attempts(ctx context.Context, merchantID, paymentID string, page Page) ([]Attempt, error)
}

// Endpoints is what the endpoint calls need.
type Endpoints interface {
	CreateEndpoint(ctx context.Context, ep Endpoint, secret string) (Endpoint, error)
	Endpoint(ctx context.Context, merchantID, id string) (Endpoint, error)
	ListEndpoints(ctx context.Context, merchantID string) ([]Endpoint, error)
	UpdateEndpoint(ctx context.Context, merchantID, id string, patch EndpointPatch) (Endpoint, error)
	DeleteEndpoint(ctx context.Context, merchantID, id string) error
	RotateSecret(ctx context.Context, merchantID, id, secret string, grace time.Duration) (Endpoint, error)
}

// DeadLetters is what dead-letter inspection and replay need.
type DeadLetters interface {
	DeadLetters(ctx context.Context, merchantID string, page Page) ([]deadletter.Letter, error)
	DeadLetter(ctx context.Context, merchantID, id string) (deadletter.Letter, error)
	// MarkReplayed bumps replay_count from seen to seen+1; ErrReplayRaced if it moved.
	MarkReplayed(ctx context.Context, id string, seen int) (int, error)
}

// StatusChange is a row of payment_status_changes.
type StatusChange struct {
	From    string
	To      string
	Reason  string
	EventID *string
	At      time.Time
}

// StoredEvent is an event as the outbox keeps it: its envelope (Payload) as published.
type StoredEvent struct {
	Seq         int64 // the outbox row's id: the order events were written in
	Subject     string
	Payload     []byte
	CreatedAt   time.Time
	PublishedAt *time.Time
}

// DeliverySummary sums up the attempts to deliver one event to one endpoint.
type DeliverySummary struct {
	EventID         string
	EndpointID      string
	Attempts        int
	Delivered       bool
	LastStatusCode  *int
	LastError       *string
	LastAttemptedAt time.Time
}

// Events is what reading events back needs: a payment's history and events, and a merchant's
// events since a time (endpoint replay).
type Events interface {
	// StatusChanges returns the payment's first limit status changes, oldest first (the
	// caller has checked that the payment is the merchant's).
	StatusChanges(ctx context.Context, paymentID string, limit int) ([]StatusChange, error)
	// PaymentEvents returns the payment's events after page.AfterSeq, oldest first.
	PaymentEvents(ctx context.Context, paymentID string, page Page) ([]StoredEvent, error)
	// DeliverySummaries sums up the attempts for the payment's events to the merchant's endpoints.
	DeliverySummaries(ctx context.Context, merchantID, paymentID string, eventIDs []string) ([]DeliverySummary, error)
	// MerchantEvents returns up to limit of the merchant's published events on subjects,
	// written at or after since, oldest first.
	MerchantEvents(ctx context.Context, merchantID string, since time.Time, subjects []string, limit int) ([]StoredEvent, error)
}

// Store is every table the api reads or writes.
type Store interface {
	Merchants
	Payments
	Endpoints
	DeadLetters
	Events
	Operator
}

// AddressDeriver turns a BIP-32 child index into a deposit address.
type AddressDeriver interface {
	Address(index int64) (common.Address, error)
}

// Publisher publishes to JetStream and waits for the stream's ack.
type Publisher interface {
	PublishMsg(ctx context.Context, msg *nats.Msg, opts ...jetstream.PublishOpt) (*jetstream.PubAck, error)
}
