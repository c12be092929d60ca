package postgres_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"github.com/ctrip-pay/pipeline/shared/postgres"
	"github.com/ctrip-pay/pipeline/shared/testkit"
)

func TestInTx(t *testing.T) {
	db, _ := testkit.MustDB(t)
	ctx := context.Background()
	if _, err := db.Exec(`CREATE TABLE parents (id int PRIMARY KEY);
		CREATE TABLE children (id int PRIMARY KEY,
			parent_id int REFERENCES parents (id) DEFERRABLE INITIALLY DEFERRED)`); err != nil {
		t.Fatal(err)
	}
	// insert adds a row in tx and checks that the transaction sees it, so that its absence
	// afterwards is the rollback's doing.
	insert := func(t *testing.T, tx *sqlx.Tx, id int) {
		t.Helper()
		if _, err := tx.ExecContext(ctx, `INSERT INTO parents (id) VALUES ($1)`, id); err != nil {
			t.Fatal(err)
		}
		var n int
		if err := tx.GetContext(ctx, &n, `SELECT count(*) FROM parents WHERE id = $1`, id); err != nil || n != 1 {
			t.Fatalf("row %d not visible in its transaction: %d, %v", id, n, err)
		}
	}
	stored := func(t *testing.T, id int) bool {
		t.Helper()
		return testkit.Count(t, db, `SELECT count(*) FROM parents WHERE id = $1`, id) == 1
	}
	idle := func(t *testing.T) {
		t.Helper()
		if n := db.Stats().InUse; n != 0 {
			t.Fatalf("%d connections still in use: the transaction was not ended", n)
		}
	}

	t.Run("commits", func(t *testing.T) {
		if err := postgres.InTx(ctx, db, func(tx *sqlx.Tx) error {
			insert(t, tx, 1)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if !stored(t, 1) {
			t.Fatal("committed row missing")
		}
		idle(t)
	})

	t.Run("rolls back on error and returns it as it is", func(t *testing.T) {
		boom := errors.New("boom")
		err := postgres.InTx(ctx, db, func(tx *sqlx.Tx) error {
			insert(t, tx, 2)
			return boom
		})
		if err != boom {
			t.Fatalf("InTx returned %v, want fn's error", err)
		}
		if stored(t, 2) {
			t.Fatal("row of a failed transaction was committed")
		}
		idle(t)
	})

	t.Run("ErrRollback rolls back without an error", func(t *testing.T) {
		if err := postgres.InTx(ctx, db, func(tx *sqlx.Tx) error {
			insert(t, tx, 3)
			return postgres.ErrRollback
		}); err != nil {
			t.Fatal(err)
		}
		if stored(t, 3) {
			t.Fatal("row of a rolled back transaction was committed")
		}
		idle(t)
	})

	t.Run("rolls back on panic and panics on", func(t *testing.T) {
		func() {
			defer func() {
				if p := recover(); p != "boom" {
					t.Fatalf("recovered %v, want the panic of fn", p)
				}
			}()
			_ = postgres.InTx(ctx, db, func(tx *sqlx.Tx) error {
				insert(t, tx, 4)
				panic("boom")
			})
			t.Fatal("InTx returned after fn panicked")
		}()
		if stored(t, 4) {
			t.Fatal("row of a panicked transaction was committed")
		}
		idle(t)
	})

	t.Run("wraps a failed commit", func(t *testing.T) {
		err := postgres.InTx(ctx, db, func(tx *sqlx.Tx) error {
			insert(t, tx, 5)
			// The foreign key is checked at commit: child 1's parent does not exist.
			_, err := tx.ExecContext(ctx, `INSERT INTO children (id, parent_id) VALUES (1, 99)`)
			return err
		})
		var pqErr *pq.Error
		if !errors.As(err, &pqErr) || pqErr.Code != "23503" || !strings.HasPrefix(err.Error(), "commit transaction: ") {
			t.Fatalf("InTx returned %v, want the commit's foreign key violation, wrapped", err)
		}
		if stored(t, 5) {
			t.Fatal("row of a failed commit is there")
		}
		idle(t)
	})

	t.Run("runs on the connection given", func(t *testing.T) {
		conn, err := db.Connx(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		var connPID, txPID int
		if err := conn.GetContext(ctx, &connPID, `SELECT pg_backend_pid()`); err != nil {
			t.Fatal(err)
		}
		if err := postgres.InTx(ctx, conn, func(tx *sqlx.Tx) error {
			return tx.GetContext(ctx, &txPID, `SELECT pg_backend_pid()`)
		}); err != nil || txPID != connPID {
			t.Fatalf("transaction ran in backend %d, the connection is %d (%v)", txPID, connPID, err)
		}
	})

	t.Run("a failed begin is returned", func(t *testing.T) {
		done, cancel := context.WithCancel(ctx)
		cancel()
		called := false
		err := postgres.InTx(done, db, func(*sqlx.Tx) error { called = true; return nil })
		if !errors.Is(err, context.Canceled) || called {
			t.Fatalf("InTx on a cancelled context: %v (fn called: %v)", err, called)
		}
	})
}
