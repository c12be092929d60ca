package postgres_test

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"testing"

	"github.com/ctrip-pay/pipeline/shared/postgres"
	"github.com/ctrip-pay/pipeline/shared/testkit"
)

func TestMain(m *testing.M) { testkit.Main(m) }

// Several services start at once: every migration is applied exactly once.
func TestConcurrentMigrateAppliesEachMigrationOnce(t *testing.T) {
	dsn := testkit.MustDatabaseURL(t)
	ctx := context.Background()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	ms, err := postgres.Migrations()
	if err != nil || len(ms) == 0 {
		t.Fatalf("migrations: %v (%d)", err, len(ms))
	}
	var wg sync.WaitGroup
	applied := make([]int, 4)
	errs := make([]error, 4)
	for i := range 4 {
		wg.Go(func() {
			db, err := postgres.Open(ctx, dsn)
			if err != nil {
				errs[i] = err
				return
			}
			defer db.Close()
			applied[i], errs[i] = postgres.Migrate(ctx, db, log)
		})
	}
	wg.Wait()
	total := 0
	for i := range 4 {
		if errs[i] != nil {
			t.Fatalf("migrator %d: %v", i, errs[i])
		}
		total += applied[i]
	}
	if total != len(ms) {
		t.Fatalf("%d migrations applied in all, want %d", total, len(ms))
	}
	db, err := postgres.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if n, err := postgres.Migrate(ctx, db, log); err != nil || n != 0 {
		t.Fatalf("re-run applied %d (%v), want 0", n, err)
	}
	var versions int
	if err := db.Get(&versions, `SELECT count(*) FROM schema_migrations`); err != nil || versions != len(ms) {
		t.Fatalf("schema_migrations has %d rows (%v)", versions, err)
	}
}
