package postgres

import (
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/ctrip-pay/pipeline/services/webhook-sender/internal/webhook"
	sharedpg "github.com/ctrip-pay/pipeline/shared/postgres"
	"github.com/ctrip-pay/pipeline/shared/testkit"
)

// BenchmarkRecordAttempts: one batch of attempt rows written with a plain INSERT and with COPY
// in a transaction, one batch at a time (as the attempt writer does when the rate is low).
// RecordAttempts takes the INSERT up to maxInsertRows.
func BenchmarkRecordAttempts(b *testing.B) {
	db, _ := testkit.MustDB(b)
	if _, err := sharedpg.Migrate(b.Context(), db, slog.New(slog.DiscardHandler)); err != nil {
		b.Fatal(err)
	}
	s := New(db)
	for _, n := range []int{1, maxInsertRows, 64} {
		rows := make([]webhook.Attempt, n)
		for i := range rows {
			rows[i] = webhook.Attempt{EventID: "evt_bench", EventType: "payment.confirmed", PaymentID: "pay_bench",
				EndpointID: "ep_bench", StreamSeq: uint64(i + 1), Attempt: 1, StatusCode: 200,
				Latency: 1500 * time.Microsecond, ResponseBody: "ok", Delivered: true}
		}
		for _, w := range []struct {
			name  string
			write func() error
		}{
			{"insert", func() error { return s.insertAttempts(b.Context(), rows) }},
			{"copy", func() error { return s.copyAttempts(b.Context(), rows) }},
		} {
			b.Run(fmt.Sprintf("%s/%d_rows", w.name, n), func(b *testing.B) {
				for b.Loop() {
					if err := w.write(); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*n), "µs/row")
			})
		}
	}
}
