package testkit

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/nats-io/nats.go"
)

// AwaitTerminated reads MSG_TERMINATED advisories from sub (a subscription to
// $JS.EVENT.ADVISORY.CONSUMER.MSG_TERMINATED.<stream>.<durable>) until the one for stream
// sequence seq, within 10 s, and returns its reason; other messages on sub are skipped.
func AwaitTerminated(tb testing.TB, sub *nats.Subscription, seq uint64) string {
	tb.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		m, err := sub.NextMsg(time.Until(deadline))
		if err != nil {
			tb.Fatalf("no MSG_TERMINATED advisory for stream sequence %d: %v", seq, err)
		}
		var adv struct {
			StreamSeq uint64 `json:"stream_seq"`
			Reason    string `json:"reason"`
		}
		// The subscription may carry other messages too (a wildcard over advisories).
		if json.Unmarshal(m.Data, &adv) == nil && adv.StreamSeq == seq {
			return adv.Reason
		}
	}
}

// AssertReady fails the test unless the ops listener at opsAddr answers /readyz with 200.
func AssertReady(tb testing.TB, opsAddr string) {
	tb.Helper()
	resp, err := http.Get("http://" + opsAddr + "/readyz")
	if err != nil {
		tb.Fatalf("/readyz: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		tb.Fatalf("/readyz answered %d: %s", resp.StatusCode, body)
	}
}

// TableRows is every row of tables as text, one line per table: compare two readings to see
// that nothing changed.
func TableRows(tb testing.TB, db *sqlx.DB, tables ...string) string {
	tb.Helper()
	var out []string
	for _, table := range tables {
		var s string
		if err := db.Get(&s, `SELECT coalesce(string_agg(t::text, '|' ORDER BY t::text), '') FROM `+table+` t`); err != nil {
			tb.Fatal(err)
		}
		out = append(out, table+": "+s)
	}
	return strings.Join(out, "\n")
}
