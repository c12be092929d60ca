package outbox_test

import (
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ctrip-pay/pipeline/shared/outbox"
	"github.com/ctrip-pay/pipeline/shared/testkit/telemetrytest"
)

// The backlog is the unpublished rows and the age that of the oldest (here backdated by an
// hour); once the relay has published them both are 0.
func TestBacklogCountsUnpublishedRowsAndTheOldestAge(t *testing.T) {
	ctx, db, _, _, js, log := relayWorld(t)
	m := telemetrytest.NewMeter(t)
	if _, err := outbox.RegisterBacklog(m, db); err != nil {
		t.Fatal(err)
	}
	value := func(name string) float64 {
		t.Helper()
		v, ok := m.Value(t, name)
		if !ok {
			t.Fatalf("%s not reported", name)
		}
		return v
	}
	if b, age := value("ctrip.outbox.backlog"), value("ctrip.outbox.oldest.age"); b != 0 || age != 0 {
		t.Fatalf("empty outbox: backlog %v, oldest age %v", b, age)
	}
	for _, id := range []string{"pay_1.created", "pay_2.created"} {
		if err := outbox.Add(ctx, db, outbox.Message{Subject: "p.created", MsgID: id, Payload: []byte(`{}`)}); err != nil {
			t.Fatal(err)
		}
	}
	db.MustExec(`UPDATE outbox SET created_at = now() - interval '1 hour' WHERE msg_id = 'pay_1.created'`)
	if b, age := value("ctrip.outbox.backlog"), value("ctrip.outbox.oldest.age"); b != 2 || age < 3600 || age > 3600+60 {
		t.Fatalf("two rows, one an hour old: backlog %v, oldest age %v", b, age)
	}
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "P", Subjects: []string{"p.>"}}); err != nil {
		t.Fatal(err)
	}
	r := &outbox.Relay{DB: db, JS: js, Log: log}
	if n, err := r.Flush(ctx); err != nil || n != 2 {
		t.Fatalf("flush published %d (%v)", n, err)
	}
	if b, age := value("ctrip.outbox.backlog"), value("ctrip.outbox.oldest.age"); b != 0 || age != 0 {
		t.Fatalf("after publishing: backlog %v, oldest age %v", b, age)
	}
}
