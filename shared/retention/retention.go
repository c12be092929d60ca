// Package retention prunes rows older than a configured age from the tables that grow with
// every payment (delivery attempts, published outbox rows, status changes), in small batches
// with a pause between them: never one DELETE that locks and rewrites a month of rows at once,
// holds back autovacuum and replication, and fills the WAL in one go.
//
// Each table is pruned by the service that owns it; the rows to keep beyond their age (an open
// payment's history, an unpublished outbox row) are the owner's Where condition.
package retention

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/ctrip-pay/pipeline/shared/config"
	"github.com/ctrip-pay/pipeline/shared/periodic"
)

// Config is the retention part of a pruning service's environment.
type Config struct {
	// Age is how old a row must be to be pruned; 0 keeps everything. The default matches the
	// PAYMENTS stream's MaxAge: what the database shows is what the stream can still replay.
	Age time.Duration `env:"RETENTION_AGE, default=720h"`
	// Batch is the most rows one DELETE removes.
	Batch int `env:"RETENTION_BATCH, default=1000"`
	// Interval is how often a pass runs; a pass deletes batch after batch until no row is due.
	Interval time.Duration `env:"RETENTION_INTERVAL, default=1h"`
	// Pause is the wait between two batches of a pass, which lets other writers, autovacuum and
	// replicas keep up.
	Pause time.Duration `env:"RETENTION_PAUSE, default=100ms"`
}

// MinAge is the shortest RETENTION_AGE accepted: shorter would prune the rows of work still in
// progress.
const MinAge = time.Hour

// Validate names the first unusable variable. With RETENTION_AGE=0 nothing is pruned and the
// other variables are not used.
func (c Config) Validate() error {
	switch {
	case c.Age < 0:
		return &config.Error{Var: "RETENTION_AGE", Msg: "must not be negative (0 keeps every row)"}
	case c.Age == 0:
		return nil
	case c.Age < MinAge:
		return &config.Error{Var: "RETENTION_AGE", Msg: fmt.Sprintf("%v is shorter than %v (0 keeps every row)", c.Age, MinAge)}
	case c.Batch < 1 || c.Batch > maxBatch:
		return &config.Error{Var: "RETENTION_BATCH", Msg: fmt.Sprintf("must be between 1 and %d", maxBatch)}
	case c.Interval <= 0:
		return &config.Error{Var: "RETENTION_INTERVAL", Msg: "must be positive"}
	case c.Pause < 0:
		return &config.Error{Var: "RETENTION_PAUSE", Msg: "must not be negative"}
	}
	return nil
}

// maxBatch keeps one DELETE small whatever RETENTION_BATCH says.
const maxBatch = 100_000

// Pruner deletes the rows of one table whose TimeColumn is older than Config.Age, oldest first,
// at most Config.Batch rows per DELETE. The table has a bigint primary key id and an index on
// TimeColumn. Rows locked by someone else are skipped for this pass, so replicas of a service
// may prune the same table at once.
type Pruner struct {
	DB         *sqlx.DB
	Table      string
	TimeColumn string
	// Where, optional, is a further condition on the candidate row, aliased t; $1 is the cutoff
	// time. E.g. `NOT EXISTS (SELECT 1 FROM payments p WHERE p.id = t.payment_id AND p.status = 'pending')`.
	Where  string
	Config Config
	Log    *slog.Logger
	Meter  metric.Meter // optional: ctrip.retention.pruned{table}

	once   sync.Once
	query  string
	pruned metric.Int64Counter
}

// Result is what one pass deleted: the rows of each DELETE, in order. The last batch is the
// first one short of Config.Batch (possibly 0).
type Result struct {
	Batches []int64
}

// Rows is how many rows the pass deleted.
func (r Result) Rows() int64 {
	var n int64
	for _, b := range r.Batches {
		n += b
	}
	return n
}

func (p *Pruner) init() {
	p.once.Do(func() {
		table, column := pq.QuoteIdentifier(p.Table), pq.QuoteIdentifier(p.TimeColumn)
		where := ""
		if p.Where != "" {
			where = " AND (" + p.Where + ")"
		}
		// Ordered by the indexed time column, each batch reads only the rows it deletes.
		p.query = fmt.Sprintf(`DELETE FROM %[1]s WHERE id IN (
			SELECT t.id FROM %[1]s t WHERE t.%[2]s < $1%[3]s
			ORDER BY t.%[2]s LIMIT $2 FOR UPDATE OF t SKIP LOCKED)`, table, column, where)
		if p.Meter != nil {
			p.pruned, _ = p.Meter.Int64Counter("ctrip.retention.pruned",
				metric.WithDescription("Rows deleted by retention, by table"), metric.WithUnit("{row}"))
		}
	})
}

// Prune runs one pass: DELETE after DELETE, each of at most Config.Batch rows older than
// Config.Age at the pass's start, until one deletes fewer. With Config.Age 0 it deletes nothing.
func (p *Pruner) Prune(ctx context.Context) (Result, error) {
	var res Result
	if p.Config.Age <= 0 {
		return res, nil
	}
	p.init()
	batch := max(p.Config.Batch, 1)
	cutoff := time.Now().Add(-p.Config.Age)
	for {
		r, err := p.DB.ExecContext(ctx, p.query, cutoff, batch)
		if err != nil {
			return res, fmt.Errorf("retention: prune %s: %w", p.Table, err)
		}
		n, err := r.RowsAffected()
		if err != nil {
			return res, fmt.Errorf("retention: prune %s: %w", p.Table, err)
		}
		res.Batches = append(res.Batches, n)
		if p.pruned != nil && n > 0 {
			p.pruned.Add(ctx, n, metric.WithAttributes(attribute.String("table", p.Table)))
		}
		if n < int64(batch) {
			return res, nil
		}
		select {
		case <-ctx.Done():
			return res, ctx.Err()
		case <-time.After(p.Config.Pause):
		}
	}
}

// Run prunes at once and then every Config.Interval until ctx ends. A failed pass is logged and
// retried at the next interval.
func (p *Pruner) Run(ctx context.Context) {
	if p.Config.Age <= 0 {
		return
	}
	pass := func(ctx context.Context) bool {
		res, err := p.Prune(ctx)
		if err != nil {
			if ctx.Err() == nil {
				p.Log.Warn("retention", "table", p.Table, "err", err, "rows", res.Rows())
			}
			return true
		}
		if n := res.Rows(); n > 0 {
			p.Log.Info("retention pruned", "table", p.Table, "rows", n, "batches", len(res.Batches),
				"older_than", p.Config.Age.String())
		}
		return true
	}
	pass(ctx)
	periodic.Every(ctx, p.Config.Interval, pass)
}

// Start runs each pruner in its own goroutine until stop is called; stop waits for them.
func Start(ctx context.Context, pruners ...*Pruner) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for _, p := range pruners {
		wg.Go(func() { p.Run(ctx) })
	}
	return func() {
		cancel()
		wg.Wait()
	}
}
