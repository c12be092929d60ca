package main

import (
	"context"
	"io"
	"log/slog"
	"math/big"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"

	"github.com/ctrip-pay/pipeline/shared/event"
	"github.com/ctrip-pay/pipeline/shared/retention"
	"github.com/ctrip-pay/pipeline/shared/testkit"
)

// The confirmer prunes the status history of payments that can no longer change, whole, once
// their last change is older than RETENTION_AGE, and published outbox rows; an open payment's
// history, a final payment's recent history and unpublished rows stay. The running confirmer
// does it at start-up.
func TestConfirmerPrunesFinishedHistoryAndPublishedOutbox(t *testing.T) {
	h := newHarness(t, 3)
	var n int64
	history := func(status string, ages ...int) string {
		t.Helper()
		n++
		p := testkit.InsertPayment(t, h.db, testkit.Payment{MerchantID: "m_1", Status: status, ChainID: chainID,
			Address: common.BigToAddress(big.NewInt(n)), Amount: big.NewInt(1)})
		for _, days := range ages {
			if _, err := h.db.Exec(`INSERT INTO payment_status_changes (payment_id, from_status, to_status, reason, created_at)
				VALUES ($1, 'pending', $2, 'test', now() - $3 * interval '1 day')`, p.ID, status, days); err != nil {
				t.Fatal(err)
			}
		}
		return p.ID
	}
	sweptLongAgo := history(event.StatusSwept, 45, 44, 40)
	expiredLongAgo := history(event.StatusExpired, 50)
	sweptRecently := history(event.StatusSwept, 45, 44, 1)     // its history stays whole
	confirmedLongAgo := history(event.StatusConfirmed, 45, 40) // waiting for its sweep: open
	detectedLongAgo := history(event.StatusDetected, 60)
	if _, err := h.db.Exec(`INSERT INTO outbox (subject, msg_id, payload, created_at, published_at) VALUES
		('payments.swept', 'old-published', '{}', now() - interval '40 days', now() - interval '40 days'),
		('payments.swept', 'old-unpublished', '{}', now() - interval '40 days', NULL),
		('payments.swept', 'new-published', '{}', now(), now())`); err != nil {
		t.Fatal(err)
	}
	kept := func() []string {
		var ids []string
		if err := h.db.Select(&ids, `SELECT DISTINCT payment_id FROM payment_status_changes ORDER BY payment_id`); err != nil {
			t.Fatal(err)
		}
		return ids
	}
	wantKept := []string{sweptRecently, confirmedLongAgo, detectedLongAgo}
	slices.Sort(wantKept)

	// One pass of each pruner, in batches of one.
	discard := slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg := h.cfg
	cfg.Config = retention.Config{Age: 30 * 24 * time.Hour, Batch: 1, Interval: time.Hour}
	rows := map[string]int64{}
	for _, p := range pruners(cfg, h.db, discard, nil) {
		res, err := p.Prune(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		rows[p.Table] = res.Rows()
		if int64(len(res.Batches)) != res.Rows()+1 {
			t.Fatalf("%s: batches %v, want batches of one", p.Table, res.Batches)
		}
	}
	if rows["payment_status_changes"] != 4 || rows["outbox"] != 1 {
		t.Fatalf("pruned %v, want 4 status changes (%s, %s) and 1 outbox row", rows, sweptLongAgo, expiredLongAgo)
	}
	if got := kept(); !slices.Equal(got, wantKept) {
		t.Fatalf("histories kept %v, want %v", got, wantKept)
	}
	if n := h.count(`SELECT count(*) FROM payment_status_changes WHERE payment_id = $1`, sweptRecently); n != 3 {
		t.Fatalf("the recently swept payment keeps %d of its 3 changes", n)
	}
	var msgs []string
	if err := h.db.Select(&msgs, `SELECT msg_id FROM outbox ORDER BY id`); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(msgs, []string{"old-unpublished", "new-published"}) {
		t.Fatalf("outbox keeps %v", msgs)
	}

	// The running confirmer prunes at start-up: the recent history, once it is old too.
	if _, err := h.db.Exec(`UPDATE payment_status_changes SET created_at = now() - interval '31 days' WHERE payment_id = $1`, sweptRecently); err != nil {
		t.Fatal(err)
	}
	h.cfg.Config = cfg.Config
	h.start()
	testkit.Eventually(t, 15*time.Second, "the confirmer's first pass", func() bool {
		return h.count(`SELECT count(*) FROM payment_status_changes WHERE payment_id = $1`, sweptRecently) == 0
	})
	if n := h.count(`SELECT count(*) FROM payment_status_changes`); n != 3 {
		t.Fatalf("%d status changes left, want the open payments' 3", n)
	}
}

func TestRetentionConfigNamesTheVariable(t *testing.T) {
	good := testkit.TempFile(t, "chains.yaml", goodChains)
	var cfg Config
	if err := testkit.LoadConfig(&cfg, map[string]string{"CHAINS_FILE": good}); err != nil {
		t.Fatal(err)
	}
	if cfg.Age != 30*24*time.Hour || cfg.Batch != 1000 {
		t.Fatalf("retention defaults %+v", cfg.Config)
	}
	for env, value := range map[string]string{"RETENTION_AGE": "10m", "RETENTION_BATCH": "0", "RETENTION_INTERVAL": "soon"} {
		var cfg Config
		err := testkit.LoadConfig(&cfg, map[string]string{"CHAINS_FILE": good, env: value})
		if err == nil || !strings.Contains(err.Error(), env) {
			t.Errorf("%s=%s: error %v, want one naming %s", env, value, err, env)
		}
	}
}
