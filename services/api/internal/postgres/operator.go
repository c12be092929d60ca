package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/ctrip-pay/pipeline/services/api/internal/rest"
)

var _ rest.Operator = (*Store)(nil)

// DeliveryBuckets sums up every endpoint's attempts since since (the webhook sender's
// webhook_attempts), one row per endpoint per bucket of the given width, buckets aligned on
// the Unix epoch and oldest first.
func (s *Store) DeliveryBuckets(ctx context.Context, since time.Time, width time.Duration) ([]rest.DeliveryBucket, error) {
	secs := int64(width / time.Second)
	if secs < 1 {
		return nil, fmt.Errorf("delivery buckets: width %v is under a second", width)
	}
	var rows []struct {
		EndpointID string  `db:"endpoint_id"`
		URL        *string `db:"url"`
		MerchantID *string `db:"merchant_id"`
		Start      int64   `db:"bucket"`
		Attempts   int     `db:"attempts"`
		Delivered  int     `db:"delivered"`
		AvgMS      float64 `db:"latency_avg_ms"`
		P95MS      float64 `db:"latency_p95_ms"`
	}
	err := s.db.SelectContext(ctx, &rows, `
		SELECT a.endpoint_id, e.url, e.merchant_id,
		       floor(extract(epoch FROM a.attempted_at) / $2)::bigint * $2 AS bucket,
		       count(*) AS attempts,
		       count(*) FILTER (WHERE a.delivered) AS delivered,
		       avg(a.latency_ms) AS latency_avg_ms,
		       percentile_cont(0.95) WITHIN GROUP (ORDER BY a.latency_ms) AS latency_p95_ms
		FROM webhook_attempts a
		LEFT JOIN webhook_endpoints e ON e.id = a.endpoint_id
		WHERE a.attempted_at >= $1
		GROUP BY a.endpoint_id, e.url, e.merchant_id, bucket
		ORDER BY a.endpoint_id, bucket`, since, secs)
	if err != nil {
		return nil, fmt.Errorf("delivery buckets: %w", err)
	}
	out := make([]rest.DeliveryBucket, len(rows))
	for i, r := range rows {
		out[i] = rest.DeliveryBucket{EndpointID: r.EndpointID, MerchantID: r.MerchantID, Start: time.Unix(r.Start, 0).UTC(),
			Attempts: r.Attempts, Delivered: r.Delivered, LatencyAvgMS: r.AvgMS, LatencyP95MS: r.P95MS}
		if r.URL != nil {
			out[i].URL = *r.URL
		}
	}
	return out, nil
}

// ChainCursors returns the scanner's last committed block of every chain it has scanned.
func (s *Store) ChainCursors(ctx context.Context) ([]rest.ChainCursor, error) {
	var rows []struct {
		ChainID   int64     `db:"chain_id"`
		Number    int64     `db:"block_number"`
		Hash      string    `db:"block_hash"`
		UpdatedAt time.Time `db:"updated_at"`
	}
	if err := s.db.SelectContext(ctx, &rows, `SELECT chain_id, block_number, block_hash, updated_at FROM chain_cursors ORDER BY chain_id`); err != nil {
		return nil, fmt.Errorf("chain cursors: %w", err)
	}
	out := make([]rest.ChainCursor, len(rows))
	for i, r := range rows {
		out[i] = rest.ChainCursor{ChainID: r.ChainID, Number: r.Number, Hash: r.Hash, UpdatedAt: r.UpdatedAt}
	}
	return out, nil
}

// DeadLetterCounts counts every endpoint's dead letters, and those never replayed.
func (s *Store) DeadLetterCounts(ctx context.Context) (rest.DeadLetterCounts, error) {
	var row struct {
		Total         int `db:"total"`
		NeverReplayed int `db:"never_replayed"`
	}
	if err := s.db.GetContext(ctx, &row, `SELECT count(*) AS total, count(*) FILTER (WHERE replay_count = 0) AS never_replayed
		FROM webhook_dead_letters`); err != nil {
		return rest.DeadLetterCounts{}, fmt.Errorf("dead letter counts: %w", err)
	}
	return rest.DeadLetterCounts{Total: row.Total, NeverReplayed: row.NeverReplayed}, nil
}
