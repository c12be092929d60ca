package postgres

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"hash/fnv"
	"time"

	"github.com/ctrip-pay/pipeline/shared/periodic"
)

// Lease is leadership of one named role among the replicas of a service (the scanner of one
// chain): a session-level advisory lock held on a connection of its own. Postgres releases the
// lock the moment that session ends — the process was killed, or lost the database — so a
// standby's next try takes over; the holder checks its connection every interval and gives the
// lease up (cancelling Held) as soon as the check fails, before a standby can have it for long.
type Lease struct {
	// Held is cancelled when the lease is lost or released: run the leader's work on it.
	Held context.Context

	key     int64
	conn    *sql.Conn
	cancel  context.CancelFunc
	stopped chan struct{}
}

// LeaseKey is the advisory-lock key of a lease name: its 64-bit FNV-1a hash.
func LeaseKey(name string) int64 {
	h := fnv.New64a()
	h.Write([]byte("ctrip-lease/" + name))
	return int64(h.Sum64())
}

// AcquireLease blocks until this process holds the lease called name, trying every interval,
// or ctx ends (then it returns ctx's error). The lease is checked every interval while held.
func AcquireLease(ctx context.Context, db *sql.DB, name string, interval time.Duration) (*Lease, error) {
	key := LeaseKey(name)
	for {
		// An error (the database down or restarting) is retried like a lease held elsewhere.
		if l, _ := tryLease(ctx, db, key); l != nil {
			go l.watch(interval)
			return l, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(interval):
		}
	}
}

func tryLease(ctx context.Context, db *sql.DB, key int64) (*Lease, error) {
	conn, err := db.Conn(ctx)
	if err != nil {
		return nil, err
	}
	var held bool
	if err := conn.QueryRowContext(ctx, `SELECT pg_try_advisory_lock($1)`, key).Scan(&held); err != nil || !held {
		conn.Close()
		return nil, err
	}
	l := &Lease{key: key, conn: conn, stopped: make(chan struct{})}
	l.Held, l.cancel = context.WithCancel(ctx)
	return l, nil
}

// watch pings the lease's connection every interval; a failed ping (or the end of the
// caller's context) ends the lease. The connection is then discarded, not returned to the
// pool: closing it ends the session, which releases the lock even if no unlock could be sent.
func (l *Lease) watch(interval time.Duration) {
	defer close(l.stopped)
	defer func() {
		_ = l.conn.Raw(func(any) error { return driver.ErrBadConn })
		_ = l.conn.Close()
	}()
	defer l.cancel()
	periodic.Every(l.Held, interval, func(ctx context.Context) bool {
		pctx, cancel := context.WithTimeout(ctx, interval)
		defer cancel()
		// The lock is the session's until it ends: a live session still holds it.
		_, err := l.conn.ExecContext(pctx, `SELECT 1`)
		return err == nil
	})
}

// Release gives the lease up: Held is cancelled and the session holding the lock ends.
func (l *Lease) Release() {
	l.cancel()
	<-l.stopped
}
