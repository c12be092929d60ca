package retention_test

import (
	"context"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/ctrip-pay/pipeline/shared/retention"
	"github.com/ctrip-pay/pipeline/shared/testkit"
)

func TestMain(m *testing.M) { testkit.Main(m) }

const day = 24 * time.Hour

var discard = slog.New(slog.NewTextHandler(io.Discard, nil))

// attempts inserts n webhook_attempts rows attempted age ago, for event, and returns their ids.
func attempts(t *testing.T, db *sqlx.DB, event string, n int, age time.Duration) []int64 {
	t.Helper()
	var ids []int64
	if err := db.Select(&ids, `INSERT INTO webhook_attempts (event_id, event_type, endpoint_id, stream_seq, attempt,
			latency_ms, delivered, attempted_at)
		SELECT $1, 'payment.confirmed', 'ep_1', 1, g, 1, g % 2 = 0, now() - $3 * interval '1 second'
		FROM generate_series(1, $2) g RETURNING id`, event, n, age.Seconds()); err != nil {
		t.Fatal(err)
	}
	return ids
}

func remaining(t *testing.T, db *sqlx.DB, query string) []string {
	t.Helper()
	var out []string
	if err := db.Select(&out, query); err != nil {
		t.Fatal(err)
	}
	return out
}

// Rows older than the age go in DELETEs of at most the batch size, oldest first, until one is
// short; younger rows stay; a second pass finds nothing.
func TestPruneDeletesOldRowsInBatches(t *testing.T) {
	for _, tc := range []struct {
		name    string
		old     int
		batch   int
		batches []int64
	}{
		{"a short last batch", 25, 10, []int64{10, 10, 5}},
		{"an exact multiple ends on an empty batch", 20, 10, []int64{10, 10, 0}},
		{"fewer than a batch", 3, 10, []int64{3}},
		{"nothing due", 0, 10, []int64{0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db, _ := testkit.MustDB(t)
			attempts(t, db, "evt_old", tc.old, 40*day)
			attempts(t, db, "evt_almost", 3, 29*day)
			attempts(t, db, "evt_new", 2, 0)
			p := &retention.Pruner{DB: db, Table: "webhook_attempts", TimeColumn: "attempted_at",
				Config: retention.Config{Age: 30 * day, Batch: tc.batch}, Log: discard}
			res, err := p.Prune(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(res.Batches, tc.batches) || res.Rows() != int64(tc.old) {
				t.Fatalf("batches %v (%d rows), want %v", res.Batches, res.Rows(), tc.batches)
			}
			left := remaining(t, db, `SELECT event_id FROM webhook_attempts ORDER BY id`)
			if want := []string{"evt_almost", "evt_almost", "evt_almost", "evt_new", "evt_new"}; !slices.Equal(left, want) {
				t.Fatalf("left %v, want %v", left, want)
			}
			if res, err := p.Prune(context.Background()); err != nil || !slices.Equal(res.Batches, []int64{0}) {
				t.Fatalf("second pass: %v %v, want one empty batch", res.Batches, err)
			}
		})
	}
}

// Oldest first: a pass cut short (here by its context, after one batch) has removed the oldest
// rows, not any rows.
func TestPruneTakesTheOldestFirst(t *testing.T) {
	db, _ := testkit.MustDB(t)
	attempts(t, db, "evt_newer", 5, 35*day)
	attempts(t, db, "evt_oldest", 5, 50*day)
	ctx, cancel := context.WithCancel(context.Background())
	p := &retention.Pruner{DB: db, Table: "webhook_attempts", TimeColumn: "attempted_at",
		Config: retention.Config{Age: 30 * day, Batch: 5, Pause: time.Hour}, Log: discard}
	done := make(chan struct{})
	var res retention.Result
	var err error
	go func() {
		defer close(done)
		res, err = p.Prune(ctx)
	}()
	testkit.Eventually(t, 10*time.Second, "the first batch", func() bool {
		return testkit.Count(t, db, `SELECT count(*) FROM webhook_attempts`) == 5
	})
	cancel()
	<-done
	if err == nil || !slices.Equal(res.Batches, []int64{5}) {
		t.Fatalf("cancelled pass: %v %v, want one batch of 5 and the context's error", res.Batches, err)
	}
	if left := remaining(t, db, `SELECT DISTINCT event_id FROM webhook_attempts`); !slices.Equal(left, []string{"evt_newer"}) {
		t.Fatalf("left %v, want the newer rows", left)
	}
}

// The owner's condition keeps rows past their age: published outbox rows go, unpublished and
// parked ones stay however old (the relay has not sent them yet), as do recent publications.
func TestPruneKeepsWhatWhereKeeps(t *testing.T) {
	db, _ := testkit.MustDB(t)
	if _, err := db.Exec(`INSERT INTO outbox (subject, msg_id, payload, created_at, published_at, parked_at) VALUES
		('payments.created', 'old-published-1', '{}', now() - interval '40 days', now() - interval '40 days', NULL),
		('payments.created', 'old-published-2', '{}', now() - interval '40 days', now() - interval '31 days', NULL),
		('payments.created', 'old-unpublished', '{}', now() - interval '40 days', NULL, NULL),
		('payments.created', 'old-parked', '{}', now() - interval '40 days', NULL, now() - interval '39 days'),
		('payments.created', 'old-published-late', '{}', now() - interval '40 days', now() - interval '1 day', NULL),
		('payments.created', 'new-published', '{}', now(), now(), NULL)`); err != nil {
		t.Fatal(err)
	}
	p := &retention.Pruner{DB: db, Table: "outbox", TimeColumn: "published_at", Where: "t.published_at IS NOT NULL",
		Config: retention.Config{Age: 30 * day, Batch: 1}, Log: discard}
	res, err := p.Prune(context.Background())
	if err != nil || !slices.Equal(res.Batches, []int64{1, 1, 0}) {
		t.Fatalf("batches %v %v, want 1, 1, 0", res.Batches, err)
	}
	left := remaining(t, db, `SELECT msg_id FROM outbox ORDER BY id`)
	if want := []string{"old-unpublished", "old-parked", "old-published-late", "new-published"}; !slices.Equal(left, want) {
		t.Fatalf("left %v, want %v", left, want)
	}

	// $1 in Where is the cutoff: an event's attempts go together, once the last is old enough.
	attempts(t, db, "evt_done", 3, 40*day)
	attempts(t, db, "evt_retried", 3, 40*day)
	attempts(t, db, "evt_retried", 1, time.Hour)
	p = &retention.Pruner{DB: db, Table: "webhook_attempts", TimeColumn: "attempted_at",
		Where:  `NOT EXISTS (SELECT 1 FROM webhook_attempts n WHERE n.event_id = t.event_id AND n.attempted_at >= $1)`,
		Config: retention.Config{Age: 30 * day, Batch: 100}, Log: discard}
	if res, err := p.Prune(context.Background()); err != nil || res.Rows() != 3 {
		t.Fatalf("pruned %d (%v), want evt_done's 3", res.Rows(), err)
	}
	if left := remaining(t, db, `SELECT DISTINCT event_id FROM webhook_attempts`); !slices.Equal(left, []string{"evt_retried"}) {
		t.Fatalf("left %v", left)
	}
}

// RETENTION_AGE=0 keeps every row: Prune deletes nothing and Run returns at once.
func TestAgeZeroKeepsEverything(t *testing.T) {
	db, _ := testkit.MustDB(t)
	attempts(t, db, "evt_ancient", 4, 3650*day)
	p := &retention.Pruner{DB: db, Table: "webhook_attempts", TimeColumn: "attempted_at",
		Config: retention.Config{Age: 0, Batch: 1, Interval: time.Millisecond}, Log: discard}
	if res, err := p.Prune(context.Background()); err != nil || res.Batches != nil {
		t.Fatalf("age 0 pruned %v (%v)", res.Batches, err)
	}
	done := make(chan struct{})
	go func() {
		p.Run(context.Background())
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run with age 0 did not return")
	}
	if n := testkit.Count(t, db, `SELECT count(*) FROM webhook_attempts`); n != 4 {
		t.Fatalf("%d rows left, want all 4", n)
	}
}

// Replicas prune the same table at once: together they delete each due row once, and the
// counter ctrip.retention.pruned{table} adds up to the rows deleted.
func TestReplicasPruneTogetherAndCount(t *testing.T) {
	db, _ := testkit.MustDB(t)
	attempts(t, db, "evt_old", 500, 40*day)
	attempts(t, db, "evt_new", 7, 0)
	reader := sdkmetric.NewManualReader()
	meter := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)).Meter("test")
	var wg sync.WaitGroup
	rows := make([]int64, 3)
	for i := range rows {
		p := &retention.Pruner{DB: db, Table: "webhook_attempts", TimeColumn: "attempted_at",
			Config: retention.Config{Age: 30 * day, Batch: 20}, Log: discard, Meter: meter}
		wg.Go(func() {
			res, err := p.Prune(context.Background())
			if err != nil {
				t.Error(err)
			}
			rows[i] = res.Rows()
		})
	}
	wg.Wait()
	if total := rows[0] + rows[1] + rows[2]; total != 500 {
		t.Fatalf("replicas deleted %v = %d rows, want 500", rows, total)
	}
	if n := testkit.Count(t, db, `SELECT count(*) FROM webhook_attempts`); n != 7 {
		t.Fatalf("%d rows left, want the 7 new ones", n)
	}
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	var counted int64
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != "ctrip.retention.pruned" {
				continue
			}
			for _, dp := range m.Data.(metricdata.Sum[int64]).DataPoints {
				if table, _ := dp.Attributes.Value("table"); table.AsString() != "webhook_attempts" {
					t.Fatalf("table attribute %q", table.AsString())
				}
				counted += dp.Value
			}
		}
	}
	if counted != 500 {
		t.Fatalf("ctrip.retention.pruned = %d, want 500", counted)
	}
}

// Start runs the pruners at once, again every interval, and stop waits for them.
func TestStartPrunesAtOnceAndEveryInterval(t *testing.T) {
	db, _ := testkit.MustDB(t)
	attempts(t, db, "evt_old", 3, 40*day)
	p := &retention.Pruner{DB: db, Table: "webhook_attempts", TimeColumn: "attempted_at",
		Config: retention.Config{Age: 30 * day, Batch: 10, Interval: 50 * time.Millisecond}, Log: discard}
	stop := retention.Start(context.Background(), p)
	defer stop()
	testkit.Eventually(t, 10*time.Second, "the first pass", func() bool {
		return testkit.Count(t, db, `SELECT count(*) FROM webhook_attempts`) == 0
	})
	attempts(t, db, "evt_later", 2, 40*day)
	testkit.Eventually(t, 10*time.Second, "a later pass", func() bool {
		return testkit.Count(t, db, `SELECT count(*) FROM webhook_attempts`) == 0
	})
	stop()
}

func TestConfigDefaultsAndErrorsNameTheVariable(t *testing.T) {
	var cfg retention.Config
	if err := testkit.LoadConfig(&cfg, nil); err != nil {
		t.Fatal(err)
	}
	if want := (retention.Config{Age: 30 * day, Batch: 1000, Interval: time.Hour, Pause: 100 * time.Millisecond}); cfg != want {
		t.Fatalf("defaults %+v, want %+v", cfg, want)
	}
	for name, tc := range map[string]struct {
		env     map[string]string
		wantVar string // "": valid
	}{
		"keep forever":            {map[string]string{"RETENTION_AGE": "0"}, ""},
		"keep forever, no batch":  {map[string]string{"RETENTION_AGE": "0s", "RETENTION_BATCH": "0"}, ""},
		"a week in small batches": {map[string]string{"RETENTION_AGE": "168h", "RETENTION_BATCH": "50"}, ""},
		"negative age":            {map[string]string{"RETENTION_AGE": "-1h"}, "RETENTION_AGE"},
		"age under an hour":       {map[string]string{"RETENTION_AGE": "30m"}, "RETENTION_AGE"},
		"age not a duration":      {map[string]string{"RETENTION_AGE": "30d"}, "RETENTION_AGE"},
		"zero batch":              {map[string]string{"RETENTION_BATCH": "0"}, "RETENTION_BATCH"},
		"huge batch":              {map[string]string{"RETENTION_BATCH": "1000000"}, "RETENTION_BATCH"},
		"batch not a number":      {map[string]string{"RETENTION_BATCH": "lots"}, "RETENTION_BATCH"},
		"zero interval":           {map[string]string{"RETENTION_INTERVAL": "0s"}, "RETENTION_INTERVAL"},
		"negative pause":          {map[string]string{"RETENTION_PAUSE": "-1s"}, "RETENTION_PAUSE"},
	} {
		t.Run(name, func(t *testing.T) {
			var cfg retention.Config
			err := testkit.LoadConfig(&cfg, tc.env)
			switch {
			case tc.wantVar == "" && err != nil:
				t.Fatalf("valid config refused: %v", err)
			case tc.wantVar != "" && (err == nil || !strings.Contains(err.Error(), tc.wantVar)):
				t.Fatalf("error %v, want one naming %s", err, tc.wantVar)
			}
		})
	}
}
