package outbox_test

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ctrip-pay/pipeline/shared/natsbus"
	"github.com/ctrip-pay/pipeline/shared/outbox"
	"github.com/ctrip-pay/pipeline/shared/testkit"
)

func TestMain(m *testing.M) { testkit.Main(m) }

// Rows written in a transaction are published once committed, never if rolled back, and a
// row published before its mark was lost is deduplicated by the stream.
func TestRelayPublishesCommittedRowsOnce(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	db, _ := testkit.MustDB(t)
	n := testkit.MustNATS(t)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	nc, js, err := natsbus.Connect(ctx, n.URL(), "t", log)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	s, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "P", Subjects: []string{"p.>"}, Duplicates: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	tx := db.MustBegin()
	if err := outbox.Add(ctx, tx, "p.created", "pay_1.created", map[string]string{"Ctrip-Event-Type": "payment.created"}, []byte(`{"a":1}`)); err != nil {
		t.Fatal(err)
	}
	tx.Commit()
	rb := db.MustBegin()
	if err := outbox.Add(ctx, rb, "p.created", "pay_2.created", nil, []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	rb.Rollback()
	if err := outbox.Add(ctx, db, "p.created", "pay_1.created", nil, []byte(`{"a":1}`)); err != nil { // same id: ignored
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
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 1 {
		t.Fatalf("%d messages on the stream, want 1", info.State.Msgs)
	}
	msg, err := s.GetMsg(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if msg.Header.Get("Nats-Msg-Id") != "pay_1.created" || msg.Header.Get("Ctrip-Event-Type") != "payment.created" || string(msg.Data) != `{"a":1}` {
		t.Fatalf("published %v %s", msg.Header, msg.Data)
	}
}
