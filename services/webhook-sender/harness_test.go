package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ctrip-pay/pipeline/shared/event"
	"github.com/ctrip-pay/pipeline/shared/safehttp"
	"github.com/ctrip-pay/pipeline/shared/signature"
	"github.com/ctrip-pay/pipeline/shared/testkit"
)

func TestMain(m *testing.M) { testkit.Main(m) }

// harness is one test's world: NATS, a fresh migrated database, and a running sender.
type harness struct {
	t    testing.TB
	nats testkit.NATSServer
	db   *sqlx.DB
	dsn  string
	nc   *nats.Conn
	js   jetstream.JetStream
	cfg  Config

	stopSender func()
}

// newHarness runs against an embedded nats-server.
func newHarness(t testing.TB, backoff ...time.Duration) *harness {
	t.Helper()
	return newHarnessOn(t, testkit.MustNATS(t), backoff...)
}

// newProcessHarness runs against a nats-server process: for tests that run sender processes.
func newProcessHarness(t testing.TB, backoff ...time.Duration) *harness {
	t.Helper()
	return newHarnessOn(t, testkit.MustNATSProcess(t), backoff...)
}

func newHarnessOn(t testing.TB, ns testkit.NATSServer, backoff ...time.Duration) *harness {
	t.Helper()
	if len(backoff) == 0 {
		backoff = []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 300 * time.Millisecond}
	}
	h := &harness{t: t, nats: ns}
	h.db, h.dsn = testkit.MustDB(t)
	h.nc, h.js = testkit.MustJetStream(t, h.nats.URL())
	h.cfg = Config{
		Base:    testkit.BaseConfig(h.nats.URL(), h.dsn),
		Backoff: backoff, Timeout: 2 * time.Second, Concurrency: 8, EndpointConcurrency: 4,
		FanoutConcurrency: 4, MaxRetryAfter: 5 * time.Second, Policy: safehttp.Policy{AllowHTTP: true, AllowPrivateNetworks: true},
	}
	return h
}

// start runs the sender in-process until the test ends or stop is called.
func (h *harness) start() {
	h.t.Helper()
	h.stopSender = testkit.StartReady(h.t, "sender", h.cfg, run, testkit.ConsumersExist(h.js, "PAYMENTS/webhook-fanout")).Stop
}

func (h *harness) merchant(id string) {
	h.t.Helper()
	if _, err := h.db.Exec(`INSERT INTO merchants (id, name) VALUES ($1, $1) ON CONFLICT DO NOTHING`, id); err != nil {
		h.t.Fatal(err)
	}
}

// endpoint creates an endpoint for merchant and returns its id and secret.
func (h *harness) endpoint(merchantID, url string, eventTypes ...string) (string, string) {
	h.t.Helper()
	h.merchant(merchantID)
	secret, err := signature.NewSecret()
	if err != nil {
		h.t.Fatal(err)
	}
	id := event.NewID("ep")
	if eventTypes == nil {
		eventTypes = []string{}
	}
	if _, err := h.db.Exec(`INSERT INTO webhook_endpoints (id, merchant_id, url, secret, event_types, legacy_signature)
		VALUES ($1, $2, $3, $4, $5, true)`, id, merchantID, url, secret, pq.Array(eventTypes)); err != nil {
		h.t.Fatal(err)
	}
	return id, secret
}

// publish puts a payment event on PAYMENTS as the other services do.
func (h *harness) publish(subject, merchantID string) event.Envelope {
	h.t.Helper()
	env, err := newTestEnvelope(merchantID)
	env.Type = event.TypeForSubject(subject)
	if err != nil {
		h.t.Fatal(err)
	}
	body, _ := json.Marshal(env)
	m := nats.NewMsg(subject)
	m.Data = body
	m.Header.Set(event.HeaderMsgID, env.ID)
	m.Header.Set(event.HeaderEventType, env.Type)
	m.Header.Set("traceparent", "00-"+testTraceID+"-00f067aa0ba902b7-01")
	if _, err := h.js.PublishMsg(context.Background(), m); err != nil {
		h.t.Fatal(err)
	}
	return env
}

type attemptRow struct {
	Attempt    int     `db:"attempt"`
	StatusCode *int    `db:"status_code"`
	Error      *string `db:"error"`
	Body       *string `db:"response_body"`
	Delivered  bool    `db:"delivered"`
	LatencyMS  float64 `db:"latency_ms"`
}

func (h *harness) attempts(eventID, endpointID string) []attemptRow {
	h.t.Helper()
	var rows []attemptRow
	if err := h.db.Select(&rows, `SELECT attempt, status_code, error, response_body, delivered, latency_ms
		FROM webhook_attempts WHERE event_id = $1 AND endpoint_id = $2 ORDER BY id`, eventID, endpointID); err != nil {
		h.t.Fatal(err)
	}
	return rows
}

func (h *harness) count(query string, args ...any) int {
	h.t.Helper()
	return testkit.Count(h.t, h.db, query, args...)
}

// receiver is a merchant's webhook endpoint that records every request and answers from a script.
type receiver struct {
	srv *httptest.Server

	mu       sync.Mutex
	requests []received
	respond  func(n int, r *http.Request) (int, http.Header)
}

type received struct {
	at     time.Time
	header http.Header
	body   []byte
}

func newReceiver(t testing.TB, respond func(n int, r *http.Request) (int, http.Header)) *receiver {
	rc := &receiver{respond: respond}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		rc.requests = append(rc.requests, received{at: time.Now(), header: r.Header.Clone(), body: body})
		n := len(rc.requests)
		respond := rc.respond
		rc.mu.Unlock()
		code, hdr := http.StatusOK, http.Header(nil)
		if respond != nil {
			code, hdr = respond(n, r)
		}
		for k, v := range hdr {
			w.Header()[k] = v
		}
		w.WriteHeader(code)
		w.Write([]byte(`{"ok":` + map[bool]string{true: "true", false: "false"}[code/100 == 2] + `}`))
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *receiver) got() []received {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]received(nil), rc.requests...)
}

func (rc *receiver) setRespond(f func(n int, r *http.Request) (int, http.Header)) {
	rc.mu.Lock()
	rc.respond = f
	rc.mu.Unlock()
}

func status(code int) func(int, *http.Request) (int, http.Header) {
	return func(int, *http.Request) (int, http.Header) { return code, nil }
}

// failFirst answers the first n requests with 500, the later ones with 200.
func failFirst(n int) func(int, *http.Request) (int, http.Header) {
	return func(i int, _ *http.Request) (int, http.Header) {
		if i <= n {
			return http.StatusInternalServerError, nil
		}
		return http.StatusOK, nil
	}
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func newTestEnvelope(merchantID string) (event.Envelope, error) {
	return event.New("payment.confirmed", event.Payment{
		PaymentID: event.NewID("pay"), MerchantID: merchantID, Status: "confirmed", ChainID: 1337, Chain: "devnet",
		Address: "0x00000000000000000000000000000000000000aa", Token: "ETH", Amount: "12.5",
		AmountBaseUnits: "12500000000000000000", AmountReceivedBaseUnits: "12500000000000000000",
		Transactions: []event.Transaction{},
	})
}

// testTraceID is the trace every published test event belongs to.
const testTraceID = "4bf92f3577b34da6a3ce929d0e0e4736"
