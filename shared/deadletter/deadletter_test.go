package deadletter_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ctrip-pay/pipeline/shared/deadletter"
	"github.com/ctrip-pay/pipeline/shared/event"
	"github.com/ctrip-pay/pipeline/shared/fault"
	"github.com/ctrip-pay/pipeline/shared/natsbus"
	"github.com/ctrip-pay/pipeline/shared/testkit"
)

func TestMain(m *testing.M) { testkit.Main(m) }

const traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

// The replay message is a contract (the api's tests, scripts/dlq.sh's documentation): the
// original body and subject, the event type and trace context and nothing else of the
// original headers, Nats-Msg-Id "<original>.replay<k>" or "<stream>.<seq>.replay<k>", and
// Ctrip-Replay-Of.
func TestMessage(t *testing.T) {
	body := []byte(`{"id":"evt_1"}`)
	tests := []struct {
		name    string
		letter  deadletter.Letter
		headers map[string]string
	}{
		{"first replay", deadletter.Letter{ID: "dl_1", OriginStream: "WEBHOOKS", OriginSeq: 7, OriginSubject: "webhooks.deliver.ep_1",
			Headers: map[string]string{event.HeaderMsgID: "evt_1.ep_1", event.HeaderEventType: "payment.confirmed",
				"traceparent": traceparent, "tracestate": "a=b", "Dlq-Reason": "max_deliveries"}, Body: body},
			map[string]string{event.HeaderMsgID: "evt_1.ep_1.replay1", event.HeaderEventType: "payment.confirmed",
				"traceparent": traceparent, "tracestate": "a=b", deadletter.HeaderReplayOf: "dl_1"}},
		{"third replay", deadletter.Letter{ID: "dl_1", OriginStream: "WEBHOOKS", OriginSeq: 7, OriginSubject: "webhooks.deliver.ep_1",
			Headers: map[string]string{event.HeaderMsgID: "evt_1.ep_1"}, Body: body, ReplayCount: 2},
			map[string]string{event.HeaderMsgID: "evt_1.ep_1.replay3", deadletter.HeaderReplayOf: "dl_1"}},
		{"original without Nats-Msg-Id", deadletter.Letter{ID: "dl_2", OriginStream: "WEBHOOKS", OriginSeq: 6, OriginSubject: "webhooks.deliver.ep_1",
			Headers: map[string]string{event.HeaderEventType: "payment.created"}, Body: body},
			map[string]string{event.HeaderMsgID: "WEBHOOKS.6.replay1", event.HeaderEventType: "payment.created", deadletter.HeaderReplayOf: "dl_2"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := tc.letter.Message()
			if m.Subject != tc.letter.OriginSubject || string(m.Data) != string(body) {
				t.Fatalf("subject %q body %s", m.Subject, m.Data)
			}
			got := map[string]string{}
			for k := range m.Header {
				got[k] = m.Header.Get(k)
			}
			if !maps.Equal(got, tc.headers) {
				t.Fatalf("headers %v, want %v", got, tc.headers)
			}
			if tc.letter.MsgID() != tc.headers[event.HeaderMsgID] {
				t.Fatalf("MsgID %q", tc.letter.MsgID())
			}
		})
	}
}

type fakePublisher struct {
	err  error
	msgs []*nats.Msg
}

func (p *fakePublisher) PublishMsg(_ context.Context, m *nats.Msg, _ ...jetstream.PublishOpt) (*jetstream.PubAck, error) {
	p.msgs = append(p.msgs, m)
	if p.err != nil {
		return nil, p.err
	}
	return &jetstream.PubAck{Stream: "WEBHOOKS", Sequence: uint64(len(p.msgs))}, nil
}

type fakeMarker struct {
	err  error
	seen []int
}

func (m *fakeMarker) MarkReplayed(_ context.Context, _ string, seen int) (int, error) {
	m.seen = append(m.seen, seen)
	if m.err != nil {
		return 0, m.err
	}
	return seen + 1, nil
}

func TestReplayOutcomes(t *testing.T) {
	ok := deadletter.Letter{ID: "dl_1", OriginStream: "WEBHOOKS", OriginSeq: 3, OriginSubject: "webhooks.deliver.ep_1",
		Headers: map[string]string{event.HeaderMsgID: "evt_1.ep_1"}, Body: []byte(`{}`), ReplayCount: 1}
	lost, noBody := ok, ok
	lost.OriginSubject = ""
	noBody.Body = nil
	down := errors.New("nats: connection closed")
	tests := []struct {
		name       string
		letter     deadletter.Letter
		publishErr error
		markErr    error
		wantErr    error
		kind       fault.Kind
		published  bool
		marked     bool
		count      int
	}{
		{"replayed", ok, nil, nil, nil, 0, true, true, 2},
		{"original lost", lost, nil, nil, deadletter.ErrOriginalLost, fault.KindConflict, false, false, 0},
		{"no body", noBody, nil, nil, deadletter.ErrOriginalLost, fault.KindConflict, false, false, 0},
		{"publish fails", ok, down, nil, deadletter.ErrNotPublished, fault.KindTransient, true, false, 0},
		{"raced", ok, nil, deadletter.ErrReplayRaced, deadletter.ErrReplayRaced, fault.KindConflict, true, true, 0},
		{"mark fails", ok, nil, down, down, fault.KindTransient, true, true, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			js, mark := &fakePublisher{err: tc.publishErr}, &fakeMarker{err: tc.markErr}
			got, err := deadletter.Replay(context.Background(), js, mark, tc.letter)
			if !errors.Is(err, tc.wantErr) || (err == nil) != (tc.wantErr == nil) {
				t.Fatalf("err %v, want %v", err, tc.wantErr)
			}
			if err != nil && fault.KindOf(err) != tc.kind {
				t.Errorf("kind %v, want %v", fault.KindOf(err), tc.kind)
			}
			if tc.publishErr != nil && !errors.Is(err, tc.publishErr) {
				t.Errorf("err %v does not wrap the publish error", err)
			}
			if (len(js.msgs) == 1) != tc.published || len(js.msgs) > 1 {
				t.Fatalf("%d publishes, want published = %v", len(js.msgs), tc.published)
			}
			if (len(mark.seen) == 1) != tc.marked || (tc.marked && !slices.Equal(mark.seen, []int{1})) {
				t.Fatalf("marked with seen %v, want marked = %v with seen 1", mark.seen, tc.marked)
			}
			if got.ReplayCount != tc.count {
				t.Errorf("ReplayCount %d, want %d", got.ReplayCount, tc.count)
			}
			// Once published, the caller learns what was sent even if it was not counted.
			if published := tc.published && tc.publishErr == nil; published != (got.Ack != nil) ||
				(published && got.MsgID != "evt_1.ep_1.replay2") {
				t.Errorf("result %+v", got)
			}
		})
	}
}

func insertLetter(t *testing.T, db *sqlx.DB, id string, seq int, subject string, body []byte) {
	t.Helper()
	_, err := db.Exec(`INSERT INTO webhook_dead_letters (id, origin_stream, origin_seq, origin_subject, endpoint_id,
		reason, deliveries, headers, body) VALUES ($1, 'WEBHOOKS', $2, $3, 'ep_1', 'max_deliveries', 4, $4, $5)`,
		id, seq, subject, `{"Nats-Msg-Id":"evt_1.ep_1","Ctrip-Event-Type":"payment.confirmed","traceparent":"`+traceparent+`"}`, body)
	if err != nil {
		t.Fatal(err)
	}
}

// Letter is the whole row: Columns selects every column of the table, each lands in its own
// field, and the headers go in as the JSON object they come out as.
func TestLetterIsTheWholeRow(t *testing.T) {
	ctx := context.Background()
	db, _ := testkit.MustDB(t)
	var columns int
	if err := db.Get(&columns, `SELECT count(*) FROM information_schema.columns WHERE table_name = 'webhook_dead_letters'`); err != nil {
		t.Fatal(err)
	}
	if n := reflect.TypeFor[deadletter.Letter]().NumField(); n != columns {
		t.Fatalf("Letter has %d fields, webhook_dead_letters %d columns", n, columns)
	}
	str := func(s string) *string { return &s }
	seq := uint64(12)
	at := time.Date(2026, 11, 28, 20, 14, 26, 123456000, time.UTC)
	want := deadletter.Letter{ID: "dl_1", OriginStream: "WEBHOOKS", OriginSeq: 7, OriginSubject: "webhooks.deliver.ep_1",
		EndpointID: "ep_1", EventID: str("evt_1"), EventType: str("payment.confirmed"), PaymentID: str("pay_1"),
		MerchantID: str("mch_1"), Reason: "max_deliveries", Deliveries: 4, LastError: str("HTTP 500"),
		Headers: deadletter.Headers{event.HeaderMsgID: "evt_1.ep_1", "traceparent": traceparent}, Body: []byte(`{"id":"evt_1"}`),
		DLQSeq: &seq, PublishedAt: &at, ReplayCount: 2, LastReplayedAt: &at, CreatedAt: at}
	_, err := db.Exec(`INSERT INTO webhook_dead_letters (`+deadletter.Columns+`)
		VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18,$19)`,
		want.ID, want.OriginStream, int64(want.OriginSeq), want.OriginSubject, want.EndpointID, want.EventID, want.EventType,
		want.PaymentID, want.MerchantID, want.Reason, want.Deliveries, want.LastError, want.Headers, want.Body,
		int64(*want.DLQSeq), want.PublishedAt, want.ReplayCount, want.LastReplayedAt, want.CreatedAt)
	if err != nil {
		t.Fatal(err)
	}
	got, err := deadletter.Load(ctx, db, "dl_1")
	if err != nil {
		t.Fatal(err)
	}
	utc := func(t *time.Time) *time.Time { u := t.UTC(); return &u }
	got.PublishedAt, got.LastReplayedAt, got.CreatedAt = utc(got.PublishedAt), utc(got.LastReplayedAt), got.CreatedAt.UTC()
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("loaded\n%+v\nwant\n%+v", got, want)
	}
	var stored string
	if err := db.Get(&stored, `SELECT headers::text FROM webhook_dead_letters WHERE id = 'dl_1'`); err != nil {
		t.Fatal(err)
	}
	if stored != `{"Nats-Msg-Id": "evt_1.ep_1", "traceparent": "`+traceparent+`"}` {
		t.Fatalf("headers stored as %s", stored)
	}
}

// The count moves only from the value the replay saw: a second replay that saw the same count
// is refused, as is an unknown id.
func TestMarkReplayedIsOptimistic(t *testing.T) {
	ctx := context.Background()
	db, _ := testkit.MustDB(t)
	insertLetter(t, db, "dl_1", 1, "webhooks.deliver.ep_1", []byte(`{}`))
	if n, err := deadletter.MarkReplayed(ctx, db, "dl_1", 0); err != nil || n != 1 {
		t.Fatalf("first mark: %d, %v", n, err)
	}
	if _, err := deadletter.MarkReplayed(ctx, db, "dl_1", 0); !errors.Is(err, deadletter.ErrReplayRaced) {
		t.Fatalf("mark from a stale count: %v, want ErrReplayRaced", err)
	}
	if _, err := deadletter.MarkReplayed(ctx, db, "dl_missing", 0); !errors.Is(err, deadletter.ErrReplayRaced) {
		t.Fatalf("mark of an unknown id: %v", err)
	}
	var n int
	var at *time.Time
	if err := db.QueryRow(`SELECT replay_count, last_replayed_at FROM webhook_dead_letters WHERE id = 'dl_1'`).Scan(&n, &at); err != nil {
		t.Fatal(err)
	}
	if n != 1 || at == nil {
		t.Fatalf("replay_count %d last_replayed_at %v", n, at)
	}
	if _, err := deadletter.Load(ctx, db, "dl_missing"); !errors.Is(err, deadletter.ErrNotFound) || fault.KindOf(err) != fault.KindNotFound {
		t.Fatalf("load of an unknown id: %v", err)
	}
}

// Through a real stream: each counted replay is a new message, a retry of a replay that was
// published but not counted is dropped by the duplicate window, and the row counts.
func TestReplayByIDThroughTheStream(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	db, _ := testkit.MustDB(t)
	n := testkit.MustNATS(t)
	nc, js, err := natsbus.Connect(ctx, n.URL(), "t", slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	stream, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "WEBHOOKS", Subjects: []string{"webhooks.deliver.>"}, Duplicates: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	body := []byte(`{"id":"evt_1","type":"payment.confirmed"}`)
	insertLetter(t, db, "dl_1", 9, "webhooks.deliver.ep_1", body)
	insertLetter(t, db, "dl_lost", 10, "", []byte{})

	for k := 1; k <= 2; k++ {
		got, err := deadletter.ReplayByID(ctx, db, js, "dl_1")
		if err != nil || got.ReplayCount != k || got.Ack == nil || got.Ack.Duplicate {
			t.Fatalf("replay %d: %+v, %v", k, got, err)
		}
	}
	// A replay published but not counted (the marking failed) is retried with the same
	// Nats-Msg-Id, which the duplicate window drops; the retry counts it.
	l, err := deadletter.Load(ctx, db, "dl_1")
	if err != nil {
		t.Fatal(err)
	}
	if got, err := deadletter.Replay(ctx, js, refuse{}, l); err == nil || got.Ack == nil || got.Ack.Duplicate {
		t.Fatalf("replay not counted: %+v, %v", got, err)
	}
	if got, err := deadletter.ReplayByID(ctx, db, js, "dl_1"); err != nil || got.ReplayCount != 3 || !got.Ack.Duplicate {
		t.Fatalf("retried replay: %+v, %v", got, err)
	}
	if _, err := deadletter.ReplayByID(ctx, db, js, "dl_lost"); !errors.Is(err, deadletter.ErrOriginalLost) {
		t.Fatalf("replay of a lost original: %v", err)
	}
	if _, err := deadletter.ReplayByID(ctx, db, js, "dl_missing"); !errors.Is(err, deadletter.ErrNotFound) {
		t.Fatalf("replay of an unknown id: %v", err)
	}

	info, err := stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 3 {
		t.Fatalf("%d messages on WEBHOOKS, want 3 (the retry deduplicated)", info.State.Msgs)
	}
	for seq := uint64(1); seq <= 3; seq++ {
		m, err := stream.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]string{event.HeaderMsgID: fmt.Sprintf("evt_1.ep_1.replay%d", seq), event.HeaderEventType: "payment.confirmed",
			"traceparent": traceparent, deadletter.HeaderReplayOf: "dl_1"}
		for k, v := range want {
			if m.Header.Get(k) != v {
				t.Errorf("message %d: %s = %q, want %q", seq, k, m.Header.Get(k), v)
			}
		}
		if m.Subject != "webhooks.deliver.ep_1" || string(m.Data) != string(body) {
			t.Errorf("message %d: %s %s", seq, m.Subject, m.Data)
		}
	}
	var count int
	if err := db.Get(&count, `SELECT replay_count FROM webhook_dead_letters WHERE id = 'dl_1'`); err != nil || count != 3 {
		t.Fatalf("replay_count %d, %v", count, err)
	}
}

type refuse struct{}

func (refuse) MarkReplayed(context.Context, string, int) (int, error) {
	return 0, errors.New("database went away")
}
