package outbox_test

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/ctrip-pay/pipeline/shared/natsbus"
	"github.com/ctrip-pay/pipeline/shared/outbox"
	"github.com/ctrip-pay/pipeline/shared/testkit"
)

func TestMain(m *testing.M) { testkit.Main(m) }

// relayWorld is a fresh migrated database and an embedded NATS with a connection; the context
// ends with the test (30 s at most).
func relayWorld(t *testing.T) (context.Context, *sqlx.DB, *testkit.NATS, *nats.Conn, jetstream.JetStream, *slog.Logger) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	db, _ := testkit.MustDB(t)
	n := testkit.MustNATS(t)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	nc, js, err := natsbus.Connect(ctx, n.URL(), "t", log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return ctx, db, n, nc, js, log
}

// Rows written in a transaction are published once committed, never if rolled back, and a
// row published before its mark was lost is deduplicated by the stream.
func TestRelayPublishesCommittedRowsOnce(t *testing.T) {
	ctx, db, _, _, js, log := relayWorld(t)
	s, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "P", Subjects: []string{"p.>"}, Duplicates: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	tx := db.MustBegin()
	if err := outbox.Add(ctx, tx, outbox.Message{Subject: "p.created", MsgID: "pay_1.created", Headers: map[string]string{"Ctrip-Event-Type": "payment.created"}, Payload: []byte(`{"a":1}`)}); err != nil {
		t.Fatal(err)
	}
	tx.Commit()
	rb := db.MustBegin()
	if err := outbox.Add(ctx, rb, outbox.Message{Subject: "p.created", MsgID: "pay_2.created", Payload: []byte(`{}`)}); err != nil {
		t.Fatal(err)
	}
	rb.Rollback()
	if err := outbox.Add(ctx, db, outbox.Message{Subject: "p.created", MsgID: "pay_1.created", Payload: []byte(`{"a":1}`)}); err != nil { // same id: ignored
		t.Fatal(err)
	}
	r := &outbox.Relay{DB: db, JS: js, Log: log}
	if got, err := r.Flush(ctx); err != nil || got != 1 {
		t.Fatalf("flush published %d (%v), want 1", got, err)
	}
	// Simulate a crash after publishing, before marking.
	if _, err := db.Exec(`UPDATE outbox SET published_at = NULL`); err != nil {
		t.Fatal(err)
	}
	if got, err := r.Flush(ctx); err != nil || got != 1 {
		t.Fatalf("second flush %d (%v)", got, err)
	}
	if n := streamMsgs(t, s); n != 1 {
		t.Fatalf("%d messages on the stream, want 1", n)
	}
	msg, err := s.GetMsg(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if msg.Header.Get("Nats-Msg-Id") != "pay_1.created" || msg.Header.Get("Ctrip-Event-Type") != "payment.created" || string(msg.Data) != `{"a":1}` {
		t.Fatalf("published %v %s", msg.Header, msg.Data)
	}
}

// A row the server can never take (larger than its max payload) sits between good ones: the good
// rows are published at once, the bad one is retried with backoff, then parked with its error
// and counted, and rows written after it keep flowing.
func TestPoisonRowIsRetriedThenParkedWhileTheOthersFlow(t *testing.T) {
	ctx, db, _, nc, js, log := relayWorld(t)
	s, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "P", Subjects: []string{"p.>"}, Duplicates: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	huge := make([]byte, nc.MaxPayload()+1)
	for i, r := range []struct {
		id      string
		payload []byte
	}{{"pay_1.created", []byte(`{"n":1}`)}, {"pay_2.created", huge}, {"pay_3.created", []byte(`{"n":3}`)}} {
		if err := outbox.Add(ctx, db, outbox.Message{Subject: "p.created", MsgID: r.id, Payload: r.payload}); err != nil {
			t.Fatalf("row %d: %v", i, err)
		}
	}
	reader := sdkmetric.NewManualReader()
	r := &outbox.Relay{DB: db, JS: js, Log: log, RetryBase: time.Minute, MaxAttempts: 3,
		Meter: sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)).Meter("test")}

	if got, err := r.Flush(ctx); err != nil || got != 2 {
		t.Fatalf("first flush published %d (%v), want the two good rows", got, err)
	}
	var bad struct {
		Attempts  int        `db:"attempts"`
		LastError *string    `db:"last_error"`
		Next      *time.Time `db:"next_attempt_at"`
		Parked    *time.Time `db:"parked_at"`
	}
	load := func() {
		t.Helper()
		if err := db.Get(&bad, `SELECT attempts, last_error, next_attempt_at, parked_at FROM outbox WHERE msg_id = 'pay_2.created'`); err != nil {
			t.Fatal(err)
		}
	}
	load()
	if bad.Attempts != 1 || bad.LastError == nil || !strings.Contains(*bad.LastError, "maximum payload") || bad.Next == nil || bad.Parked != nil {
		t.Fatalf("after one rejected publish: %+v", bad)
	}
	if wait := time.Until(*bad.Next); wait < 50*time.Second || wait > 70*time.Second {
		t.Fatalf("first retry in %v, want RetryBase (1m)", wait)
	}
	// Not due yet: a flush does not try it again.
	if got, err := r.Flush(ctx); err != nil || got != 0 {
		t.Fatalf("flush before the retry is due: %d (%v)", got, err)
	}
	if load(); bad.Attempts != 1 {
		t.Fatalf("retried before its backoff: %d attempts", bad.Attempts)
	}
	// Time passes: the retry falls due; the second is twice as far off.
	due := func() {
		t.Helper()
		if _, err := db.Exec(`UPDATE outbox SET next_attempt_at = now() WHERE msg_id = 'pay_2.created'`); err != nil {
			t.Fatal(err)
		}
	}
	due()
	if got, err := r.Flush(ctx); err != nil || got != 0 {
		t.Fatalf("second try: %d (%v)", got, err)
	}
	if load(); bad.Attempts != 2 || bad.Parked != nil || time.Until(*bad.Next) < 110*time.Second {
		t.Fatalf("after the second rejected publish: attempts %d, next in %v, parked %v", bad.Attempts, time.Until(*bad.Next), bad.Parked)
	}
	due()
	if got, err := r.Flush(ctx); err != nil || got != 0 {
		t.Fatalf("third try: %d (%v)", got, err)
	}
	if load(); bad.Attempts != 3 || bad.Parked == nil {
		t.Fatalf("after MaxAttempts rejected publishes: attempts %d, parked %v", bad.Attempts, bad.Parked)
	}
	if err := outbox.Add(ctx, db, outbox.Message{Subject: "p.created", MsgID: "pay_4.created", Payload: []byte(`{"n":4}`)}); err != nil {
		t.Fatal(err)
	}
	if got, err := r.Flush(ctx); err != nil || got != 1 {
		t.Fatalf("flush after parking published %d (%v), want the new row", got, err)
	}
	if n := streamMsgs(t, s); n != 3 {
		t.Fatalf("%d messages on the stream, want the three good rows", n)
	}
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(ctx, &rm); err != nil {
		t.Fatal(err)
	}
	counts := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if sum, ok := m.Data.(metricdata.Sum[int64]); ok {
				for _, dp := range sum.DataPoints {
					counts[m.Name] += dp.Value
				}
			}
		}
	}
	if counts["ctrip.outbox.parked_rows"] != 1 || counts["ctrip.outbox.publish_failures"] != 3 {
		t.Fatalf("metrics %v, want 1 parked row and 3 rejected publishes", counts)
	}
}

// NATS down is not the rows' fault: the pass stops and no row is charged an attempt.
func TestNATSOutageChargesNoRow(t *testing.T) {
	ctx, db, n, _, js, log := relayWorld(t)
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "P", Subjects: []string{"p.>"}}); err != nil {
		t.Fatal(err)
	}
	if err := outbox.Add(ctx, db, outbox.Message{Subject: "p.created", MsgID: "pay_1.created", Payload: []byte(`{}`)}); err != nil {
		t.Fatal(err)
	}
	n.Shutdown()
	r := &outbox.Relay{DB: db, JS: js, Log: log, MaxAttempts: 1}
	if _, err := r.Flush(ctx); err == nil {
		t.Fatal("flush with NATS down reported no error")
	}
	var attempts int
	var parked *time.Time
	if err := db.QueryRow(`SELECT attempts, parked_at FROM outbox`).Scan(&attempts, &parked); err != nil {
		t.Fatal(err)
	}
	if attempts != 0 || parked != nil {
		t.Fatalf("NATS outage charged the row: attempts %d parked %v", attempts, parked)
	}
}

// streamMsgs is how many messages the stream holds.
func streamMsgs(t *testing.T, s jetstream.Stream) uint64 {
	t.Helper()
	info, err := s.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}
