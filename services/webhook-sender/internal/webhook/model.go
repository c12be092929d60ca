// Package webhook turns payment events into signed webhook deliveries: the fan-out stage
// (PAYMENTS → one WEBHOOKS message per endpoint), the delivery stage (signed POST, retried on
// the consumer's BackOff schedule) and the dead-letter stage (advisories → dlq.webhooks.*).
package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/lib/pq"

	"github.com/ctrip-pay/pipeline/shared/deadletter"
)

// Endpoint is a merchant's webhook destination.
type Endpoint struct {
	ID                      string         `db:"id"`
	MerchantID              *string        `db:"merchant_id"`
	URL                     string         `db:"url"`
	Secret                  string         `db:"secret"`
	PreviousSecret          *string        `db:"previous_secret"`
	PreviousSecretExpiresAt *time.Time     `db:"previous_secret_expires_at"`
	EventTypes              pq.StringArray `db:"event_types"` // empty: every type
	LegacySignature         bool           `db:"legacy_signature"`
	Enabled                 bool           `db:"enabled"`
	Deleted                 bool           `db:"deleted"`
}

// Attempt is one recorded delivery attempt.
type Attempt struct {
	EventID      string
	EventType    string
	PaymentID    string
	EndpointID   string
	StreamSeq    uint64
	Attempt      int
	StatusCode   int // 0 when there was no HTTP response
	Latency      time.Duration
	Error        string
	ResponseBody string
	Delivered    bool
}

// ErrNotFound is returned by stores for a missing row.
var ErrNotFound = errors.New("not found")

// EndpointFinder lists the endpoints an event must go to.
type EndpointFinder interface {
	EndpointsFor(ctx context.Context, merchantID, eventType string) ([]Endpoint, error)
}

// DeliveryStore is what the delivery stage needs from Postgres.
type DeliveryStore interface {
	Endpoint(ctx context.Context, id string) (Endpoint, error)
	DisableEndpoint(ctx context.Context, id, reason string) error
}

// DeliveryRecorder writes an attempt row.
type DeliveryRecorder interface {
	RecordAttempt(ctx context.Context, a Attempt) error
}

// DeadLetterStore is what the dead-letter stage needs from Postgres (a replay goes through
// shared/deadletter).
type DeadLetterStore interface {
	// SaveDeadLetter inserts dl unless a row for the same origin exists; it returns the stored row.
	SaveDeadLetter(ctx context.Context, dl deadletter.Letter) (deadletter.Letter, error)
	MarkDeadLetterPublished(ctx context.Context, id string, dlqSeq uint64) error
	LastAttemptError(ctx context.Context, eventID, endpointID string) (string, error)
}

// eventBody is the part of the envelope the sender reads: the fan-out needs the merchant, the
// delivery stage the ids for the attempt row. One decode checks the shape (the fields
// event.Envelope.Validate requires, data an object) and picks the fields out, without a second
// pass over data; the body itself is published and posted as it is.
type eventBody struct {
	ID        string    `json:"id"`
	Type      string    `json:"type"`
	Timestamp time.Time `json:"timestamp"`
	Data      *struct {
		PaymentID  string `json:"payment_id"`
		MerchantID string `json:"merchant_id"`
	} `json:"data"`
}

func decodeEventBody(body []byte) (eventBody, error) {
	var env eventBody
	if err := json.Unmarshal(body, &env); err != nil {
		return env, fmt.Errorf("undecodable event: %w", err)
	}
	switch {
	case env.ID == "":
		return env, errors.New("event: missing id")
	case env.Type == "":
		return env, errors.New("event: missing type")
	case env.Timestamp.IsZero():
		return env, errors.New("event: missing timestamp")
	case env.Data == nil:
		return env, errors.New("event: data must be a JSON object")
	case strings.ContainsRune(env.ID+env.Type+env.Data.PaymentID+env.Data.MerchantID, 0):
		// Postgres' text refuses NUL: the endpoint lookup or the attempt row would fail on
		// every redelivery.
		return env, errors.New("event: id, type, payment_id or merchant_id holds a NUL character")
	}
	return env, nil
}

// Term reason codes. The DLQ processor splits "<code>: <detail>" into Dlq-Reason and
// Dlq-Last-Error.
const (
	ReasonMaxDeliveries    = "max_deliveries"
	ReasonEndpointGone     = "endpoint_gone"
	ReasonEndpointDisabled = "endpoint_disabled"
	ReasonEndpointUnknown  = "endpoint_unknown"
	ReasonPoison           = "poison"
)
