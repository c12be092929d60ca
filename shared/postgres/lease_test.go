package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/ctrip-pay/pipeline/shared/postgres"
	"github.com/ctrip-pay/pipeline/shared/testkit"
)

// One holder at a time: a second replica waits while the first holds the lease and takes it
// over once the first releases it, or once the first's session is killed (the leader lost the
// database) — and then the first knows it lost it.
func TestLeaseHasOneHolderAndFailsOver(t *testing.T) {
	db, _ := testkit.MustDB(t)
	ctx := context.Background()
	const interval = 50 * time.Millisecond
	acquire := func() <-chan *postgres.Lease {
		got := make(chan *postgres.Lease, 1)
		go func() {
			l, err := postgres.AcquireLease(ctx, db.DB, "scanner/chain/1337", interval)
			if err != nil {
				t.Error(err)
			}
			got <- l
		}()
		return got
	}

	first := <-acquire()
	second := acquire()
	testkit.Never(t, 20*interval, "a second holder while the first holds the lease", func() bool { return len(second) > 0 })
	first.Release()
	var l *postgres.Lease
	select {
	case l = <-second:
	case <-time.After(10 * time.Second):
		t.Fatal("the standby did not take the released lease")
	}
	if first.Held.Err() == nil {
		t.Fatal("the released lease is still held")
	}

	third := acquire()
	k := uint64(postgres.LeaseKey("scanner/chain/1337"))
	res, err := db.Exec(`SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory'
		AND classid = $1 AND objid = $2 AND objsubid = 1 AND granted`, int64(uint32(k>>32)), int64(uint32(k)))
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		t.Fatalf("%d sessions held the lease, want 1", n)
	}
	testkit.Eventually(t, 10*time.Second, "the holder notices its session ended", func() bool { return l.Held.Err() != nil })
	select {
	case l = <-third:
	case <-time.After(10 * time.Second):
		t.Fatal("the standby did not take over from the killed session")
	}
	l.Release()
}
