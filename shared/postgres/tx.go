package postgres

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/jmoiron/sqlx"
)

// TxBeginner is what InTx runs a transaction on: a *sqlx.DB, or a *sqlx.Conn such as the one
// Migrate holds its advisory lock on.
type TxBeginner interface {
	BeginTxx(ctx context.Context, opts *sql.TxOptions) (*sqlx.Tx, error)
}

// ErrRollback is returned by a transaction's fn to end it without committing when it has
// nothing to write (a guarded update found its row moved on, a decision changed nothing):
// InTx rolls back and returns nil.
var ErrRollback = errors.New("postgres: roll back")

// InTx runs fn in a transaction and commits it. When fn fails or panics the transaction is
// rolled back, and fn's error is returned (or the panic goes on). A failed rollback is not
// reported: the server drops a transaction whose connection broke, and database/sql has
// already rolled back one whose context ended.
func InTx(ctx context.Context, db TxBeginner, fn func(tx *sqlx.Tx) error) error {
	tx, err := db.BeginTxx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin transaction: %w", err)
	}
	// Deferred, so that a panic in fn rolls back too; after Commit it does nothing.
	defer func() { _ = tx.Rollback() }()
	if err := fn(tx); err != nil {
		if errors.Is(err, ErrRollback) {
			return nil
		}
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit transaction: %w", err)
	}
	return nil
}
