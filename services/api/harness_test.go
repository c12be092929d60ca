package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ctrip-pay/pipeline/services/api/internal/postgres"
	"github.com/ctrip-pay/pipeline/services/api/internal/rest"
	"github.com/ctrip-pay/pipeline/services/api/internal/wallet"
	"github.com/ctrip-pay/pipeline/services/api/internal/wallet/wallettest"
	"github.com/ctrip-pay/pipeline/shared/chains"
	"github.com/ctrip-pay/pipeline/shared/natsbus"
	"github.com/ctrip-pay/pipeline/shared/testkit"
)

func TestMain(m *testing.M) { testkit.Main(m) }

const (
	testAdminToken = "admin-token-for-tests-0123456789"
	usdcContract   = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
)

const testChains = `
chains:
  - id: 1337
    name: devnet
    rpc_url: http://127.0.0.1:8545
    confirmations: 3
    native: {symbol: ETH, decimals: 18}
    tokens:
      - {symbol: USDC, contract: "` + usdcContract + `", decimals: 6}
      - {symbol: WHOLE, contract: "0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512", decimals: 0}
  - id: 137
    name: polygon
    rpc_url: http://127.0.0.1:8546
    confirmations: 64
    native: {symbol: POL, decimals: 18}
`

// harness is one test's world: embedded NATS, a fresh migrated database and, once started, the
// api running in-process through run().
type harness struct {
	t    testing.TB
	nats *testkit.NATS
	db   *sqlx.DB
	dsn  string
	nc   *nats.Conn
	js   jetstream.JetStream
	cfg  Config
	base string // http://127.0.0.1:port

	stopAPI func()
}

func newHarness(t testing.TB) *harness {
	t.Helper()
	h := &harness{t: t, nats: testkit.MustNATS(t)}
	h.db, h.dsn = testkit.MustDB(t)
	h.nc, h.js = testkit.MustJetStream(t, h.nats.URL())
	h.cfg = Config{
		Base:    testkit.BaseConfig(h.nats.URL(), h.dsn),
		APIAddr: testkit.FreeAddr(t), AdminToken: testAdminToken, WalletXPub: wallettest.XPub(t),
		PaymentExpiry: 30 * time.Minute, ChainsFile: testkit.TempFile(t, "chains.yaml", testChains),
		OutboxInterval: 100 * time.Millisecond,
	}
	h.base = "http://" + h.cfg.APIAddr
	return h
}

// startHarness is newHarness, started.
func startHarness(t testing.TB) *harness {
	t.Helper()
	h := newHarness(t)
	h.start()
	return h
}

// start runs the api in-process until the test ends or stopAPI is called.
func (h *harness) start() {
	h.t.Helper()
	h.stopAPI = testkit.StartReady(h.t, "api", h.cfg, run, testkit.Ready{What: "api listening", Holds: func() bool {
		resp, err := http.Get(h.base + "/v1/payments")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusUnauthorized
	}}).Stop
}

// response is one HTTP answer.
type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) json(tb testing.TB, v any) {
	tb.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		tb.Fatalf("decode %s: %v", r.body, err)
	}
}

func (r response) m(tb testing.TB) map[string]any {
	tb.Helper()
	var v map[string]any
	r.json(tb, &v)
	return v
}

type apiErrorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
		Field   string `json:"field"`
	} `json:"error"`
}

func (r response) apiError(tb testing.TB) apiErrorBody {
	tb.Helper()
	var e apiErrorBody
	r.json(tb, &e)
	return e
}

// call sends a request; body is sent as-is when it is a string, as JSON otherwise. hdr holds
// header name/value pairs.
func call(tb testing.TB, base, method, path, token string, body any, hdr ...string) response {
	tb.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = bytes.NewBufferString(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			tb.Fatal(err)
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, base+path, rd)
	if err != nil {
		tb.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Add(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatal(err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}

// bodyOrNone is s as a request body for call, or no body at all for "".
func bodyOrNone(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func (h *harness) call(method, path, token string, body any, hdr ...string) response {
	h.t.Helper()
	return call(h.t, h.base, method, path, token, body, hdr...)
}

// merchant creates a merchant through the admin API and returns its id and API key.
func (h *harness) merchant(name string) (string, string) {
	h.t.Helper()
	m := createMerchant(h.t, h.base, name)
	return m.ID, m.APIKey
}

// createdMerchant is what creating a merchant answers: its id and its first API key.
type createdMerchant struct {
	ID       string `json:"id"`
	APIKey   string `json:"api_key"`
	APIKeyID string `json:"api_key_id"`
}

func createMerchant(tb testing.TB, base, name string) createdMerchant {
	tb.Helper()
	r := call(tb, base, "POST", "/v1/merchants", testAdminToken, map[string]string{"name": name})
	if r.status != http.StatusCreated {
		tb.Fatalf("create merchant: %d %s", r.status, r.body)
	}
	var m createdMerchant
	r.json(tb, &m)
	return m
}

// payment is the part of a payment response the tests look at.
type payment struct {
	ID                       string          `json:"id"`
	Status                   string          `json:"status"`
	ChainID                  int64           `json:"chain_id"`
	Chain                    string          `json:"chain"`
	Token                    string          `json:"token"`
	TokenContract            *string         `json:"token_contract"`
	Decimals                 int             `json:"decimals"`
	Address                  string          `json:"address"`
	Amount                   string          `json:"amount"`
	AmountBaseUnits          string          `json:"amount_base_units"`
	AmountReceivedBaseUnits  string          `json:"amount_received_base_units"`
	AmountConfirmedBaseUnits string          `json:"amount_confirmed_base_units"`
	AmountSweptBaseUnits     string          `json:"amount_swept_base_units"`
	ExpiresAt                time.Time       `json:"expires_at"`
	CreatedAt                time.Time       `json:"created_at"`
	Metadata                 json.RawMessage `json:"metadata"`
	Transfers                []struct {
		TxHash         string `json:"tx_hash"`
		LogIndex       *int64 `json:"log_index"`
		BlockNumber    int64  `json:"block_number"`
		ValueBaseUnits string `json:"value_base_units"`
		Status         string `json:"status"`
	} `json:"transfers"`
}

func (h *harness) createPayment(key string, body any, hdr ...string) payment {
	h.t.Helper()
	r := h.call("POST", "/v1/payments", key, body, hdr...)
	if r.status != http.StatusCreated {
		h.t.Fatalf("create payment: %d %s", r.status, r.body)
	}
	var p payment
	r.json(h.t, &p)
	return p
}

func (h *harness) count(query string, args ...any) int {
	h.t.Helper()
	return testkit.Count(h.t, h.db, query, args...)
}

// streamMsgs returns every message on stream with a subject matching filter.
func (h *harness) streamMsgs(stream, filter string) []jetstream.RawStreamMsg {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := h.js.Stream(ctx, stream)
	if err != nil {
		h.t.Fatalf("stream %s: %v", stream, err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		h.t.Fatal(err)
	}
	var out []jetstream.RawStreamMsg
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			continue // deleted
		}
		if filter == "" || m.Subject == filter {
			out = append(out, *m)
		}
	}
	return out
}

// serveHandler serves the REST handler alone — no outbox relay, no run() — on the harness's
// database and NATS, logging to log.
func (h *harness) serveHandler(log *slog.Logger) *httptest.Server {
	h.t.Helper()
	if _, err := provision(context.Background(), h.js, natsbus.Sizing{}); err != nil {
		h.t.Fatal(err)
	}
	d, err := wallet.ParseXPub(h.cfg.WalletXPub)
	if err != nil {
		h.t.Fatal(err)
	}
	cf, err := chains.Load(h.cfg.ChainsFile)
	if err != nil {
		h.t.Fatal(err)
	}
	handler, err := rest.New(rest.Config{
		Store: postgres.New(h.db), Chains: cf, Wallet: d, JS: h.js, AdminToken: h.cfg.AdminToken,
		DefaultTTL: h.cfg.PaymentExpiry, URLPolicy: h.cfg.Policy, Log: log,
	})
	if err != nil {
		h.t.Fatal(err)
	}
	srv := httptest.NewServer(handler)
	h.t.Cleanup(srv.Close)
	return srv
}

// registeredRoutes are the routes the api's handler registers.
func (h *harness) registeredRoutes() []rest.Route {
	h.t.Helper()
	d, err := wallet.ParseXPub(h.cfg.WalletXPub)
	if err != nil {
		h.t.Fatal(err)
	}
	cf, err := chains.Load(h.cfg.ChainsFile)
	if err != nil {
		h.t.Fatal(err)
	}
	handler, err := rest.New(rest.Config{Store: postgres.New(h.db), Chains: cf, Wallet: d, JS: h.js,
		AdminToken: h.cfg.AdminToken, DefaultTTL: h.cfg.PaymentExpiry, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		h.t.Fatal(err)
	}
	return handler.Routes()
}
