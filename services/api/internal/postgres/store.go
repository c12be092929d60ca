// Package postgres is the api's adapter to the shared database: merchants and API keys,
// payments (insert with the outbox row in one transaction), webhook endpoints, and the webhook
// sender's attempts and dead letters (read, plus the replay counter). Every query that reads a
// merchant's object filters on the merchant, so another merchant's id is simply not found.
package postgres

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"github.com/ctrip-pay/pipeline/services/api/internal/eventlog"
	"github.com/ctrip-pay/pipeline/services/api/internal/rest"
	"github.com/ctrip-pay/pipeline/shared/deadletter"
	"github.com/ctrip-pay/pipeline/shared/event"
	"github.com/ctrip-pay/pipeline/shared/natsbus"
	"github.com/ctrip-pay/pipeline/shared/outbox"
	sharedpg "github.com/ctrip-pay/pipeline/shared/postgres"
)

// Store implements rest.Store on Postgres.
type Store struct {
	db *sqlx.DB
}

var _ rest.Store = (*Store)(nil)

// New returns a store on db.
func New(db *sqlx.DB) *Store { return &Store{db: db} }

// CreateMerchant inserts the merchant and its first API key together.
func (s *Store) CreateMerchant(ctx context.Context, id, name string, key rest.APIKey) (time.Time, error) {
	var created time.Time
	err := sharedpg.InTx(ctx, s.db, func(tx *sqlx.Tx) error {
		if err := tx.GetContext(ctx, &created, `INSERT INTO merchants (id, name) VALUES ($1, $2) RETURNING created_at`, id, name); err != nil {
			return fmt.Errorf("insert merchant: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO api_keys (id, merchant_id, key_hash, prefix) VALUES ($1, $2, $3, $4)`,
			key.ID, id, key.Hash, key.Prefix); err != nil {
			return fmt.Errorf("insert api key: %w", err)
		}
		return nil
	})
	if err != nil {
		return time.Time{}, err
	}
	return created, nil
}

// AddAPIKey inserts another key for an existing merchant.
func (s *Store) AddAPIKey(ctx context.Context, merchantID string, key rest.APIKey) (time.Time, error) {
	var created time.Time
	err := s.db.GetContext(ctx, &created, `INSERT INTO api_keys (id, merchant_id, key_hash, prefix)
		SELECT $1, id, $3, $4 FROM merchants WHERE id = $2 RETURNING created_at`, key.ID, merchantID, key.Hash, key.Prefix)
	if errors.Is(err, sql.ErrNoRows) {
		return time.Time{}, rest.ErrNotFound
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("insert api key: %w", err)
	}
	return created, nil
}

// RevokeAPIKey marks the key revoked; it stops authenticating at once.
func (s *Store) RevokeAPIKey(ctx context.Context, merchantID, keyID string) error {
	return s.updateOne(ctx, "revoke api key", `UPDATE api_keys SET revoked_at = now()
		WHERE id = $1 AND merchant_id = $2 AND revoked_at IS NULL`, keyID, merchantID)
}

// updateOne runs an UPDATE of one merchant's row: rest.ErrNotFound when it matched none.
func (s *Store) updateOne(ctx context.Context, what, query string, args ...any) error {
	res, err := s.db.ExecContext(ctx, query, args...)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return err
	} else if n == 0 {
		return rest.ErrNotFound
	}
	return nil
}

// MerchantByKeyHash returns the merchant owning an unrevoked key with this SHA-256.
func (s *Store) MerchantByKeyHash(ctx context.Context, hash []byte) (string, error) {
	var id string
	err := s.db.GetContext(ctx, &id, `SELECT merchant_id FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL`, hash)
	if errors.Is(err, sql.ErrNoRows) {
		return "", rest.ErrNotFound
	}
	return id, err
}

const paymentCols = sharedpg.PaymentColumns + `, idempotency_key, request_hash, created_at, updated_at`

type paymentRow struct {
	sharedpg.PaymentRow
	IdempotencyKey *string   `db:"idempotency_key"`
	RequestHash    []byte    `db:"request_hash"`
	CreatedAt      time.Time `db:"created_at"`
	UpdatedAt      time.Time `db:"updated_at"`
}

func (r paymentRow) payment() rest.Payment {
	return rest.Payment{
		PaymentCore: r.Core(), IdempotencyKey: r.IdempotencyKey, RequestHash: r.RequestHash,
		CreatedAt: r.CreatedAt.UTC(), UpdatedAt: r.UpdatedAt.UTC(), Transfers: []rest.Transfer{},
	}
}

// NextAddressIndex takes the next BIP-32 child index. A sequence never hands out a value twice,
// whatever the concurrency and even when the transaction that used it rolls back.
func (s *Store) NextAddressIndex(ctx context.Context) (int64, error) {
	var i int64
	if err := s.db.GetContext(ctx, &i, `SELECT nextval('deposit_address_index')`); err != nil {
		return 0, fmt.Errorf("next address index: %w", err)
	}
	return i, nil
}

// CreatePayment inserts the payment and its payments.created event in one transaction. Not
// sharedpg.InTx: when the idempotency key raced, the transaction is rolled back here, with a
// failed rollback reported, before the winner's payment is read.
func (s *Store) CreatePayment(ctx context.Context, p rest.Payment, msg outbox.Message) (rest.Payment, bool, error) {
	tx, err := s.db.BeginTxx(ctx, nil)
	if err != nil {
		return rest.Payment{}, false, err
	}
	defer tx.Rollback()
	// ON CONFLICT names the idempotency constraint only: a clash on address or address_index
	// would be a bug and must fail loudly, not be swallowed.
	res, err := tx.ExecContext(ctx, `INSERT INTO payments (id, merchant_id, status, chain_id, token, token_contract,
		decimals, address, address_index, amount_base_units, metadata, idempotency_key, request_hash,
		expires_at, created_at, updated_at, trace_context)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10::numeric, $11, $12, $13, $14, $15, $15, $16)
		ON CONFLICT (merchant_id, idempotency_key) DO NOTHING`,
		p.ID, p.MerchantID, p.Status, p.ChainID, p.Token, p.TokenContract, p.Decimals, p.Address, p.AddressIndex,
		sharedpg.NewNumeric(p.Amount), []byte(p.Metadata), p.IdempotencyKey, p.RequestHash, p.ExpiresAt, p.CreatedAt,
		// The creating request's trace context: every later span of the payment descends from it.
		natsbus.CarrierOf(ctx))
	if err != nil {
		return rest.Payment{}, false, fmt.Errorf("insert payment: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return rest.Payment{}, false, err
	} else if n == 0 {
		// The key was used by a request that committed first (the unique index made this
		// insert wait for it).
		if err := tx.Rollback(); err != nil {
			return rest.Payment{}, false, err
		}
		existing, err := s.PaymentByIdempotencyKey(ctx, p.MerchantID, *p.IdempotencyKey)
		return existing, false, err
	}
	if err := outbox.Add(ctx, tx, msg); err != nil {
		return rest.Payment{}, false, err
	}
	if err := tx.Commit(); err != nil {
		return rest.Payment{}, false, fmt.Errorf("commit payment: %w", err)
	}
	stored, err := s.Payment(ctx, p.MerchantID, p.ID)
	return stored, true, err
}

// PaymentByIdempotencyKey returns the merchant's payment created with key.
func (s *Store) PaymentByIdempotencyKey(ctx context.Context, merchantID, key string) (rest.Payment, error) {
	return s.onePayment(ctx, `merchant_id = $1 AND idempotency_key = $2`, merchantID, key)
}

// Payment returns the merchant's payment with its transfers.
func (s *Store) Payment(ctx context.Context, merchantID, id string) (rest.Payment, error) {
	return s.onePayment(ctx, `merchant_id = $1 AND id = $2`, merchantID, id)
}

func (s *Store) onePayment(ctx context.Context, where string, args ...any) (rest.Payment, error) {
	var row paymentRow
	err := s.db.GetContext(ctx, &row, `SELECT `+paymentCols+` FROM payments WHERE `+where, args...)
	if errors.Is(err, sql.ErrNoRows) {
		return rest.Payment{}, rest.ErrNotFound
	}
	if err != nil {
		return rest.Payment{}, fmt.Errorf("payment: %w", err)
	}
	ps := []rest.Payment{row.payment()}
	if err := s.attachTransfers(ctx, ps); err != nil {
		return rest.Payment{}, err
	}
	return ps[0], nil
}

// Payments lists the merchant's payments, newest first, after the page's position.
func (s *Store) Payments(ctx context.Context, merchantID, status string, page rest.Page) ([]rest.Payment, error) {
	q := `SELECT ` + paymentCols + ` FROM payments WHERE merchant_id = $1 AND ($2 = '' OR status = $2)`
	args := []any{merchantID, status, page.Limit}
	if page.AfterAt != nil {
		q += ` AND (created_at, id) < ($4, $5)`
		args = append(args, *page.AfterAt, page.AfterID)
	}
	q += ` ORDER BY created_at DESC, id DESC LIMIT $3`
	var rows []paymentRow
	if err := s.db.SelectContext(ctx, &rows, q, args...); err != nil {
		return nil, fmt.Errorf("list payments: %w", err)
	}
	out := make([]rest.Payment, len(rows))
	for i, r := range rows {
		out[i] = r.payment()
	}
	return out, s.attachTransfers(ctx, out)
}

func (s *Store) attachTransfers(ctx context.Context, ps []rest.Payment) error {
	if len(ps) == 0 {
		return nil
	}
	ids := make([]string, len(ps))
	at := make(map[string]int, len(ps))
	for i, p := range ps {
		ids[i] = p.ID
		at[p.ID] = i
	}
	var rows []struct {
		sharedpg.TransferRow
		DetectedAt  time.Time  `db:"detected_at"`
		ConfirmedAt *time.Time `db:"confirmed_at"`
		ReorgedAt   *time.Time `db:"reorged_at"`
	}
	if err := s.db.SelectContext(ctx, &rows, `SELECT `+sharedpg.TransferColumns("")+`, detected_at, confirmed_at, reorged_at
		FROM payment_transfers WHERE payment_id = ANY($1) ORDER BY block_number, tx_hash, log_index`, pq.Array(ids)); err != nil {
		return fmt.Errorf("payment transfers: %w", err)
	}
	for _, r := range rows {
		i := at[r.PaymentID]
		ps[i].Transfers = append(ps[i].Transfers, rest.Transfer{
			PaymentID: r.PaymentID, TxHash: r.TxHash, LogIndex: r.LogIndex, TokenContract: r.TokenContract, Value: r.Value.Int(),
			BlockNumber: r.BlockNumber, BlockHash: r.BlockHash, Status: r.Status, DetectedAt: r.DetectedAt.UTC(),
			ConfirmedAt: utcPtr(r.ConfirmedAt), ReorgedAt: utcPtr(r.ReorgedAt),
		})
	}
	return nil
}

func utcPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

// Attempts returns the delivery attempts for the merchant's payment, to the merchant's own
// endpoints, oldest first. The operator's default endpoint (merchant_id NULL) is not the
// merchant's: its attempts, with that server's responses, stay out.
func (s *Store) Attempts(ctx context.Context, merchantID, paymentID string, page rest.Page) ([]rest.Attempt, error) {
	var rows []struct {
		ID           int64     `db:"id"`
		EventID      string    `db:"event_id"`
		EventType    string    `db:"event_type"`
		PaymentID    *string   `db:"payment_id"`
		EndpointID   string    `db:"endpoint_id"`
		Attempt      int       `db:"attempt"`
		StatusCode   *int      `db:"status_code"`
		LatencyMS    float64   `db:"latency_ms"`
		Error        *string   `db:"error"`
		ResponseBody *string   `db:"response_body"`
		Delivered    bool      `db:"delivered"`
		AttemptedAt  time.Time `db:"attempted_at"`
	}
	err := s.db.SelectContext(ctx, &rows, `SELECT a.id, a.event_id, a.event_type, a.payment_id, a.endpoint_id, a.attempt,
		a.status_code, a.latency_ms, a.error, a.response_body, a.delivered, a.attempted_at
		FROM webhook_attempts a JOIN payments p ON p.id = a.payment_id
		JOIN webhook_endpoints e ON e.id = a.endpoint_id AND e.merchant_id = p.merchant_id
		WHERE p.merchant_id = $1 AND a.payment_id = $2 AND a.id > $3
		ORDER BY a.id LIMIT $4`, merchantID, paymentID, page.AfterSeq, page.Limit)
	if err != nil {
		return nil, fmt.Errorf("attempts: %w", err)
	}
	out := make([]rest.Attempt, len(rows))
	for i, r := range rows {
		out[i] = rest.Attempt{
			ID: r.ID, EventID: r.EventID, EventType: r.EventType, PaymentID: r.PaymentID, EndpointID: r.EndpointID,
			Attempt: r.Attempt, StatusCode: r.StatusCode, LatencyMS: r.LatencyMS, Error: r.Error,
			ResponseBody: r.ResponseBody, Delivered: r.Delivered, AttemptedAt: r.AttemptedAt.UTC(),
		}
	}
	return out, nil
}

const endpointCols = `id, merchant_id, url, event_types, legacy_signature, enabled, disabled_reason, disabled_at,
	previous_secret_expires_at, created_at, updated_at`

type endpointRow struct {
	ID                      string         `db:"id"`
	MerchantID              string         `db:"merchant_id"`
	URL                     string         `db:"url"`
	EventTypes              pq.StringArray `db:"event_types"`
	LegacySignature         bool           `db:"legacy_signature"`
	Enabled                 bool           `db:"enabled"`
	DisabledReason          *string        `db:"disabled_reason"`
	DisabledAt              *time.Time     `db:"disabled_at"`
	PreviousSecretExpiresAt *time.Time     `db:"previous_secret_expires_at"`
	CreatedAt               time.Time      `db:"created_at"`
	UpdatedAt               time.Time      `db:"updated_at"`
}

func (r endpointRow) endpoint() rest.Endpoint {
	types := []string(r.EventTypes)
	if types == nil {
		types = []string{}
	}
	return rest.Endpoint{
		ID: r.ID, MerchantID: r.MerchantID, URL: r.URL, EventTypes: types, LegacySignature: r.LegacySignature,
		Enabled: r.Enabled, DisabledReason: r.DisabledReason, DisabledAt: utcPtr(r.DisabledAt),
		PreviousSecretExpiresAt: utcPtr(r.PreviousSecretExpiresAt), CreatedAt: r.CreatedAt.UTC(), UpdatedAt: r.UpdatedAt.UTC(),
	}
}

func (s *Store) oneEndpoint(ctx context.Context, q string, args ...any) (rest.Endpoint, error) {
	var row endpointRow
	err := s.db.GetContext(ctx, &row, q, args...)
	if errors.Is(err, sql.ErrNoRows) {
		return rest.Endpoint{}, rest.ErrNotFound
	}
	if err != nil {
		return rest.Endpoint{}, fmt.Errorf("endpoint: %w", err)
	}
	return row.endpoint(), nil
}

// CreateEndpoint inserts ep with its signing secret.
func (s *Store) CreateEndpoint(ctx context.Context, ep rest.Endpoint, secret string) (rest.Endpoint, error) {
	return s.oneEndpoint(ctx, `INSERT INTO webhook_endpoints (id, merchant_id, url, secret, event_types, legacy_signature)
		VALUES ($1, $2, $3, $4, $5, $6) RETURNING `+endpointCols,
		ep.ID, ep.MerchantID, ep.URL, secret, pq.StringArray(ep.EventTypes), ep.LegacySignature)
}

// Endpoint returns the merchant's endpoint unless it was deleted.
func (s *Store) Endpoint(ctx context.Context, merchantID, id string) (rest.Endpoint, error) {
	return s.oneEndpoint(ctx, `SELECT `+endpointCols+` FROM webhook_endpoints
		WHERE merchant_id = $1 AND id = $2 AND deleted_at IS NULL`, merchantID, id)
}

// ListEndpoints returns the merchant's endpoints, oldest first.
func (s *Store) ListEndpoints(ctx context.Context, merchantID string) ([]rest.Endpoint, error) {
	var rows []endpointRow
	if err := s.db.SelectContext(ctx, &rows, `SELECT `+endpointCols+` FROM webhook_endpoints
		WHERE merchant_id = $1 AND deleted_at IS NULL ORDER BY created_at, id`, merchantID); err != nil {
		return nil, fmt.Errorf("list endpoints: %w", err)
	}
	out := make([]rest.Endpoint, len(rows))
	for i, r := range rows {
		out[i] = r.endpoint()
	}
	return out, nil
}

// UpdateEndpoint applies patch. Re-enabling clears the reason the sender (410 Gone) or the
// merchant disabled it; disabling an enabled endpoint records the merchant as the reason, and
// disabling a disabled one keeps the original reason.
func (s *Store) UpdateEndpoint(ctx context.Context, merchantID, id string, patch rest.EndpointPatch) (rest.Endpoint, error) {
	var types any
	if patch.EventTypes != nil {
		types = pq.StringArray(*patch.EventTypes)
	}
	return s.oneEndpoint(ctx, `UPDATE webhook_endpoints SET
		url = COALESCE($3, url),
		event_types = COALESCE($4::text[], event_types),
		legacy_signature = COALESCE($5, legacy_signature),
		enabled = COALESCE($6, enabled),
		disabled_reason = CASE WHEN $6::boolean IS NULL THEN disabled_reason
			WHEN $6 THEN NULL WHEN enabled THEN 'disabled by merchant' ELSE disabled_reason END,
		disabled_at = CASE WHEN $6::boolean IS NULL THEN disabled_at
			WHEN $6 THEN NULL WHEN enabled THEN now() ELSE disabled_at END,
		updated_at = now()
		WHERE merchant_id = $1 AND id = $2 AND deleted_at IS NULL
		RETURNING `+endpointCols, merchantID, id, patch.URL, types, patch.LegacySignature, patch.Enabled)
}

// DeleteEndpoint soft-deletes: attempts and dead letters keep pointing at the row.
func (s *Store) DeleteEndpoint(ctx context.Context, merchantID, id string) error {
	return s.updateOne(ctx, "delete endpoint", `UPDATE webhook_endpoints SET deleted_at = now(), updated_at = now()
		WHERE merchant_id = $1 AND id = $2 AND deleted_at IS NULL`, merchantID, id)
}

// RotateSecret installs secret; the old one keeps signing until now + grace (with grace 0 it
// stops at once).
func (s *Store) RotateSecret(ctx context.Context, merchantID, id, secret string, grace time.Duration) (rest.Endpoint, error) {
	return s.oneEndpoint(ctx, `UPDATE webhook_endpoints SET
		previous_secret = CASE WHEN $4::bigint > 0 THEN secret END,
		previous_secret_expires_at = CASE WHEN $4::bigint > 0 THEN now() + make_interval(secs => $4::bigint) END,
		secret = $3, updated_at = now()
		WHERE merchant_id = $1 AND id = $2 AND deleted_at IS NULL
		RETURNING `+endpointCols, merchantID, id, secret, int64(grace/time.Second))
}

// deadLetterOwned limits dead letters to those of the merchant's endpoints (deleted ones
// included), or — when the endpoint is unknown — those whose event names the merchant. The
// operator's default endpoint (merchant_id NULL) stays the operator's.
const deadLetterOwned = `(EXISTS (SELECT 1 FROM webhook_endpoints e WHERE e.id = d.endpoint_id AND e.merchant_id = $1)
	OR (d.merchant_id = $1 AND NOT EXISTS (SELECT 1 FROM webhook_endpoints e WHERE e.id = d.endpoint_id)))`

// DeadLetters lists the merchant's dead letters, newest first.
func (s *Store) DeadLetters(ctx context.Context, merchantID string, page rest.Page) ([]deadletter.Letter, error) {
	q := `SELECT ` + deadletter.Columns + ` FROM webhook_dead_letters d WHERE ` + deadLetterOwned
	args := []any{merchantID, page.Limit}
	if page.AfterAt != nil {
		q += ` AND (d.created_at, d.id) < ($3, $4)`
		args = append(args, *page.AfterAt, page.AfterID)
	}
	q += ` ORDER BY d.created_at DESC, d.id DESC LIMIT $2`
	var dls []deadletter.Letter
	if err := s.db.SelectContext(ctx, &dls, q, args...); err != nil {
		return nil, fmt.Errorf("list dead letters: %w", err)
	}
	for i := range dls {
		inUTC(&dls[i])
	}
	return dls, nil
}

// DeadLetter returns one of the merchant's dead letters.
func (s *Store) DeadLetter(ctx context.Context, merchantID, id string) (deadletter.Letter, error) {
	var dl deadletter.Letter
	err := s.db.GetContext(ctx, &dl, `SELECT `+deadletter.Columns+` FROM webhook_dead_letters d
		WHERE d.id = $2 AND `+deadLetterOwned, merchantID, id)
	if errors.Is(err, sql.ErrNoRows) {
		return deadletter.Letter{}, rest.ErrNotFound
	}
	if err != nil {
		return deadletter.Letter{}, fmt.Errorf("dead letter: %w", err)
	}
	inUTC(&dl)
	return dl, nil
}

// inUTC puts dl's times in UTC, as the api answers every time.
func inUTC(dl *deadletter.Letter) {
	dl.CreatedAt = dl.CreatedAt.UTC()
	dl.PublishedAt, dl.LastReplayedAt = utcPtr(dl.PublishedAt), utcPtr(dl.LastReplayedAt)
}

// MarkReplayed moves replay_count from seen to seen+1 (rest.ErrReplayRaced if it moved).
func (s *Store) MarkReplayed(ctx context.Context, id string, seen int) (int, error) {
	return deadletter.MarkReplayed(ctx, s.db, id, seen)
}

// StatusChanges returns the payment's status changes, oldest first.
func (s *Store) StatusChanges(ctx context.Context, paymentID string, limit int) ([]rest.StatusChange, error) {
	var rows []struct {
		From    string    `db:"from_status"`
		To      string    `db:"to_status"`
		Reason  string    `db:"reason"`
		EventID *string   `db:"event_id"`
		At      time.Time `db:"created_at"`
	}
	if err := s.db.SelectContext(ctx, &rows, `SELECT from_status, to_status, reason, event_id, created_at
		FROM payment_status_changes WHERE payment_id = $1 ORDER BY id LIMIT $2`, paymentID, limit); err != nil {
		return nil, fmt.Errorf("status changes: %w", err)
	}
	out := make([]rest.StatusChange, len(rows))
	for i, r := range rows {
		out[i] = rest.StatusChange{From: r.From, To: r.To, Reason: r.Reason, EventID: r.EventID, At: r.At.UTC()}
	}
	return out, nil
}

type storedEventRow struct {
	Seq         int64      `db:"id"`
	Subject     string     `db:"subject"`
	Payload     []byte     `db:"payload"`
	CreatedAt   time.Time  `db:"created_at"`
	PublishedAt *time.Time `db:"published_at"`
}

func storedEvents(rows []storedEventRow) []rest.StoredEvent {
	out := make([]rest.StoredEvent, len(rows))
	for i, r := range rows {
		out[i] = rest.StoredEvent{Seq: r.Seq, Subject: r.Subject, Payload: r.Payload, CreatedAt: r.CreatedAt.UTC(),
			PublishedAt: utcPtr(r.PublishedAt)}
	}
	return out
}

// PaymentEvents returns the payment's events from the outbox (index outbox_payment).
func (s *Store) PaymentEvents(ctx context.Context, paymentID string, page rest.Page) ([]rest.StoredEvent, error) {
	var rows []storedEventRow
	if err := s.db.SelectContext(ctx, &rows, `SELECT id, subject, payload, created_at, published_at FROM outbox
		WHERE payment_id = $1 AND id > $2 ORDER BY id LIMIT $3`, paymentID, page.AfterSeq, page.Limit); err != nil {
		return nil, fmt.Errorf("payment events: %w", err)
	}
	return storedEvents(rows), nil
}

// DeliverySummaries groups the attempts of the payment's events by event and endpoint, counting
// only the merchant's own endpoints (as Attempts does).
func (s *Store) DeliverySummaries(ctx context.Context, merchantID, paymentID string, eventIDs []string) ([]rest.DeliverySummary, error) {
	if len(eventIDs) == 0 {
		return nil, nil
	}
	var rows []struct {
		EventID         string    `db:"event_id"`
		EndpointID      string    `db:"endpoint_id"`
		Attempts        int       `db:"attempts"`
		Delivered       bool      `db:"delivered"`
		LastStatusCode  *int      `db:"last_status_code"`
		LastError       *string   `db:"last_error"`
		LastAttemptedAt time.Time `db:"last_attempted_at"`
	}
	err := s.db.SelectContext(ctx, &rows, `SELECT a.event_id, a.endpoint_id, count(*) AS attempts, bool_or(a.delivered) AS delivered,
		(array_agg(a.status_code ORDER BY a.id DESC))[1] AS last_status_code,
		(array_agg(a.error ORDER BY a.id DESC))[1] AS last_error,
		max(a.attempted_at) AS last_attempted_at
		FROM webhook_attempts a JOIN webhook_endpoints e ON e.id = a.endpoint_id AND e.merchant_id = $1
		WHERE a.payment_id = $2 AND a.event_id = ANY($3)
		GROUP BY a.event_id, a.endpoint_id ORDER BY a.event_id, a.endpoint_id`, merchantID, paymentID, pq.Array(eventIDs))
	if err != nil {
		return nil, fmt.Errorf("delivery summaries: %w", err)
	}
	out := make([]rest.DeliverySummary, len(rows))
	for i, r := range rows {
		out[i] = rest.DeliverySummary{EventID: r.EventID, EndpointID: r.EndpointID, Attempts: r.Attempts, Delivered: r.Delivered,
			LastStatusCode: r.LastStatusCode, LastError: r.LastError, LastAttemptedAt: r.LastAttemptedAt.UTC()}
	}
	return out, nil
}

// MerchantEvents returns the merchant's published events since a time (index
// outbox_merchant_created).
func (s *Store) MerchantEvents(ctx context.Context, merchantID string, since time.Time, subjects []string, limit int) ([]rest.StoredEvent, error) {
	var rows []storedEventRow
	if err := s.db.SelectContext(ctx, &rows, `SELECT id, subject, payload, created_at, published_at FROM outbox
		WHERE merchant_id = $1 AND created_at >= $2 AND subject = ANY($3) AND published_at IS NOT NULL
		ORDER BY created_at, id LIMIT $4`, merchantID, since, pq.Array(subjects), limit); err != nil {
		return nil, fmt.Errorf("merchant events: %w", err)
	}
	return storedEvents(rows), nil
}

var _ eventlog.Store = (*Store)(nil)

// LogEvents inserts the events as published outbox rows in one statement (the relays skip
// them); a row already there stays as it is.
func (s *Store) LogEvents(ctx context.Context, events []eventlog.Event) error {
	if len(events) == 0 {
		return nil
	}
	n := len(events)
	subjects, msgIDs, headers, merchants, payments := make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	bodies := make([][]byte, n)
	for i, e := range events {
		h, err := json.Marshal(map[string]string{event.HeaderEventType: e.EventType})
		if err != nil {
			return err
		}
		subjects[i], msgIDs[i], headers[i], merchants[i], payments[i], bodies[i] = e.Subject, e.MsgID, string(h), e.MerchantID, e.PaymentID, e.Body
	}
	_, err := s.db.ExecContext(ctx, `INSERT INTO outbox (subject, msg_id, headers, payload, merchant_id, payment_id, published_at)
		SELECT u.subject, u.msg_id, u.headers::jsonb, u.payload, u.merchant_id, u.payment_id, now()
		FROM unnest($1::text[], $2::text[], $3::text[], $4::bytea[], $5::text[], $6::text[])
			AS u(subject, msg_id, headers, payload, merchant_id, payment_id)
		ON CONFLICT (msg_id) DO NOTHING`,
		pq.Array(subjects), pq.Array(msgIDs), pq.Array(headers), pq.ByteaArray(bodies), pq.Array(merchants), pq.Array(payments))
	if err != nil {
		return fmt.Errorf("log %d events: %w", n, err)
	}
	return nil
}
