package outbox

import (
	"context"
	"database/sql"
	"time"

	"github.com/jmoiron/sqlx"
	"go.opentelemetry.io/otel/metric"
)

// backlogQueryTimeout bounds the backlog query of one scrape.
const backlogQueryTimeout = 2 * time.Second

// RegisterBacklog exports the outbox table's backlog on m, read when metrics are collected
// (one query per scrape over the partial index outbox_unpublished, which holds exactly these
// rows, so its cost follows the backlog, not the table):
//
//	ctrip.outbox.backlog     rows written and not yet published (parked rows aside: those are
//	                         ctrip.outbox.parked_rows)
//	ctrip.outbox.oldest.age  seconds since the oldest of them was written (0 when none)
//
// The table is shared: every service running a relay reports the same figures (aggregate with
// max). A failed query reports nothing for that scrape rather than a zero.
func RegisterBacklog(m metric.Meter, db *sqlx.DB) (metric.Registration, error) {
	backlog, err := m.Int64ObservableGauge("ctrip.outbox.backlog", metric.WithUnit("{row}"),
		metric.WithDescription("Outbox rows not yet published (parked rows aside)"))
	if err != nil {
		return nil, err
	}
	oldest, err := m.Float64ObservableGauge("ctrip.outbox.oldest.age", metric.WithUnit("s"),
		metric.WithDescription("Age of the oldest unpublished outbox row (0 when there is none)"))
	if err != nil {
		return nil, err
	}
	return m.RegisterCallback(func(ctx context.Context, o metric.Observer) error {
		ctx, cancel := context.WithTimeout(ctx, backlogQueryTimeout)
		defer cancel()
		var row struct {
			Backlog int64           `db:"backlog"`
			Age     sql.NullFloat64 `db:"age"`
		}
		if err := db.GetContext(ctx, &row, `SELECT count(*) AS backlog,
			EXTRACT(EPOCH FROM now() - min(created_at))::float8 AS age
			FROM outbox WHERE published_at IS NULL AND parked_at IS NULL`); err != nil {
			return err
		}
		o.ObserveInt64(backlog, row.Backlog)
		o.ObserveFloat64(oldest, max(row.Age.Float64, 0))
		return nil
	}, backlog, oldest)
}
