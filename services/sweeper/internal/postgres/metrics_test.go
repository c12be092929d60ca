package postgres_test

import (
	"context"
	"testing"
)

// A version waiting for its receipt counts as a pending replacement only while an earlier
// version of its nonce is marked replaced, and only until one of them is mined.
func TestPendingReplacementsCountsRepricedWaitingVersions(t *testing.T) {
	db, store, _, _ := ledgerFixture(t)
	ctx := context.Background()
	pay := insertPayment(t, db, 1)
	sweepRow := func(seq int, nonce int, status, hash string) {
		t.Helper()
		if _, err := db.Exec(`INSERT INTO sweeps (id, payment_id, kind, seq, chain_id, from_address, to_address, nonce,
			value_base_units, tx_hash, raw_tx, status) VALUES ($1, $2, 'native', $3, 1337, '0xaa', '0xbb', $4, 1, $5, '\x00', $6)`,
			hash, pay, seq, nonce, hash, status); err != nil {
			t.Fatal(err)
		}
	}
	sweepRow(0, 7, "replaced", "0x01")
	sweepRow(1, 7, "replaced", "0x02")
	sweepRow(2, 7, "broadcast", "0x03") // re-priced twice, waiting
	sweepRow(3, 8, "broadcast", "0x04") // first version, waiting: not a replacement
	got, err := store.PendingReplacements(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[1337] != 1 {
		t.Fatalf("pending replacements %v, want 1 on chain 1337", got)
	}
	db.MustExec(`UPDATE sweeps SET status = 'mined' WHERE tx_hash = '0x03'`)
	if got, err = store.PendingReplacements(ctx); err != nil || len(got) != 0 {
		t.Fatalf("after the replacement was mined: %v (%v), want none", got, err)
	}
}
