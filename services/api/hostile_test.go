package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ctrip-pay/pipeline/shared/event"
	"github.com/ctrip-pay/pipeline/shared/testkit"
)

// The tests here send input that Go's JSON decoder and router accept but Postgres refuses, and
// check that the api answers it as a client error before any query, never with a 500.

// rowsDigest fingerprints every row a request could write, to check that a refused request
// changed nothing. Outbox rows are identified without published_at, which the relay sets on its
// own time.
func (h *harness) rowsDigest() string {
	h.t.Helper()
	var d string
	if err := h.db.Get(&d, `SELECT md5(coalesce(string_agg(r, E'\n' ORDER BY r), '')) FROM (
		SELECT 'merchants ' || t::text AS r FROM merchants t
		UNION ALL SELECT 'api_keys ' || t::text FROM api_keys t
		UNION ALL SELECT 'payments ' || t::text FROM payments t
		UNION ALL SELECT 'webhook_endpoints ' || t::text FROM webhook_endpoints t
		UNION ALL SELECT 'webhook_dead_letters ' || t::text FROM webhook_dead_letters t
		UNION ALL SELECT 'outbox ' || id || ' ' || msg_id || ' ' || md5(payload) FROM outbox) rows`); err != nil {
		h.t.Fatal(err)
	}
	return d
}

// hostilePathIDs are path segments, as sent on the wire, that the router hands to a handler
// as an {id} but that cannot be ids.
var hostilePathIDs = []struct{ name, segment string }{
	{"NUL", "%00"},
	{"NUL after a real prefix", "pay_01%00"},
	{"byte 0xff", "%ff"},
	{"bad continuation byte", "%c3%28"},
	{"overlong encoding", "%c0%af"},
	{"UTF-8 encoded surrogate", "%ed%a0%80"},
	{"truncated sequence", "x%e2%82"},
	{"newline", "%0a"},
	{"tab inside", "ep%09x"},
	{"DEL", "%7f"},
	{"C1 control U+0085", "%c2%85"},
	{"129 characters", strings.Repeat("a", 129)},
}

// idRoutes lists every registered route with a path wildcard (rest.Handler.Routes), so that
// TestHostilePathIDs notices a route added later.
func (h *harness) idRoutes() []string {
	h.t.Helper()
	var out []string
	for _, rt := range h.registeredRoutes() {
		if strings.Contains(rt.Pattern, "{") {
			out = append(out, rt.Pattern)
		}
	}
	if len(out) == 0 {
		h.t.Fatal("no route with a path id is registered: has registration changed?")
	}
	return out
}

func TestHostilePathIDs(t *testing.T) {
	h := startHarness(t)
	m := createMerchant(t, h.base, "m")
	p := h.createPayment(m.APIKey, `{"chain_id":1337,"token":"ETH","amount":"1"}`)
	ep := h.endpointFor(m.APIKey)
	dl := h.deadLetter(ep, m.ID, "webhooks.payment.created", map[string]string{event.HeaderMsgID: "evt_1.ep"},
		[]byte(`{"id":"evt_1"}`), time.Now())

	// Every route with a path id, with a real id for each wildcard: a case swaps one for a
	// hostile segment, so that the other ids reach the store as they would in an attack.
	routes := []struct {
		pattern string
		admin   bool
		ids     map[string]string
		body    string
	}{
		{"GET /v1/endpoints/{id}", false, map[string]string{"id": ep}, ""},
		{"PATCH /v1/endpoints/{id}", false, map[string]string{"id": ep}, `{"enabled":false}`},
		{"DELETE /v1/endpoints/{id}", false, map[string]string{"id": ep}, ""},
		{"POST /v1/endpoints/{id}/rotate-secret", false, map[string]string{"id": ep}, ""},
		{"GET /v1/payments/{id}", false, map[string]string{"id": p.ID}, ""},
		{"GET /v1/payments/{id}/deliveries", false, map[string]string{"id": p.ID}, ""},
		{"GET /v1/payments/{id}/events", false, map[string]string{"id": p.ID}, ""},
		{"POST /v1/endpoints/{id}/test", false, map[string]string{"id": ep}, ""},
		{"POST /v1/endpoints/{id}/replay", false, map[string]string{"id": ep}, `{"since":"` + time.Now().Add(-time.Hour).UTC().Format(time.RFC3339) + `"}`},
		{"GET /v1/dead-letters/{id}", false, map[string]string{"id": dl}, ""},
		{"POST /v1/dead-letters/{id}/replay", false, map[string]string{"id": dl}, ""},
		{"POST /v1/merchants/{id}/api-keys", true, map[string]string{"id": m.ID}, ""},
		{"DELETE /v1/merchants/{id}/api-keys/{key_id}", true, map[string]string{"id": m.ID, "key_id": m.APIKeyID}, ""},
	}
	var listed []string
	for _, rt := range routes {
		listed = append(listed, rt.pattern)
	}
	registered := h.idRoutes()
	slices.Sort(listed)
	slices.Sort(registered)
	if !slices.Equal(listed, registered) {
		t.Fatalf("the route table is not the api's routes with a path id:\nlisted     %q\nregistered %q", listed, registered)
	}

	before := h.rowsDigest()
	for _, rt := range routes {
		method, tmpl, _ := strings.Cut(rt.pattern, " ")
		token := m.APIKey
		if rt.admin {
			token = testAdminToken
		}
		for param := range rt.ids {
			cases := append([]struct{ name, segment string }{{"unknown id", "zz_unknown"}}, hostilePathIDs...)
			for _, tc := range cases {
				t.Run(rt.pattern+"/"+param+"/"+tc.name, func(t *testing.T) {
					path := tmpl
					for name, id := range rt.ids {
						if name == param {
							id = tc.segment
						}
						path = strings.Replace(path, "{"+name+"}", id, 1)
					}
					r := call(t, h.base, method, path, token, bodyOrNone(rt.body))
					if r.status != http.StatusNotFound {
						t.Fatalf("%s %s: got %d %s, want 404", method, path, r.status, truncate(r.body))
					}
					if e := r.apiError(t); e.Error.Code != "not_found" || e.Error.Field != "" || e.Error.Message == "" {
						t.Fatalf("%s %s: error %+v, want not_found without a field", method, path, e.Error)
					}
				})
			}
		}
	}
	if after := h.rowsDigest(); after != before {
		t.Fatal("requests with hostile path ids changed rows")
	}
	// The real ids still work: nothing above revoked the key or deleted the endpoint.
	if r := h.call("GET", "/v1/endpoints/"+ep, m.APIKey, nil); r.status != http.StatusOK {
		t.Fatalf("endpoint after the hostile requests: %d %s", r.status, r.body)
	}
}

func TestHostileMetadata(t *testing.T) {
	h := startHarness(t)
	_, key := h.merchant("m")
	body := func(meta string) string {
		return `{"chain_id":1337,"token":"ETH","amount":"1","metadata":` + meta + `}`
	}
	tests := []struct {
		name, meta, field string
	}{
		{"NUL in a value", `{"order":"a\u0000b"}`, "metadata.order"},
		{"NUL alone", `{"order":"\u0000"}`, "metadata.order"},
		{"NUL in a key", `{"or\u0000der":"1"}`, "metadata"},
		{"NUL deep in an array", `{"items":[{"name":"ok"},{"name":"x\u0000"}]}`, "metadata.items.1.name"},
		{"NUL in a nested key", `{"items":[{"\u0000":1}]}`, "metadata.items.0"},
		{"lone high surrogate at the end", `{"s":"\ud800"}`, "metadata.s"},
		{"lone high surrogate, upper case", `{"s":"\uDBFF"}`, "metadata.s"},
		{"lone low surrogate", `{"s":"\udc00"}`, "metadata.s"},
		{"high surrogate then a letter", `{"s":"\ud800x"}`, "metadata.s"},
		{"high surrogate then another escape", `{"s":"\ud800\u0041"}`, "metadata.s"},
		{"high surrogate then a high surrogate", `{"s":"\ud800\ud800"}`, "metadata.s"},
		{"high surrogate then an escaped newline", `{"s":"\ud83d\n"}`, "metadata.s"},
		{"valid pair then a lone low surrogate", `{"s":"\ud83d\ude00\ude00"}`, "metadata.s"},
		{"lone surrogate in a key", `{"\udfff":1}`, "metadata"},
		{"raw byte 0xff", "{\"s\":\"\xff\"}", "metadata.s"},
		{"raw bad continuation", "{\"s\":\"\xc3\x28\"}", "metadata.s"},
		{"raw overlong encoding", "{\"s\":\"\xc0\xaf\"}", "metadata.s"},
		{"raw encoded surrogate", "{\"s\":\"\xed\xa0\x80\"}", "metadata.s"},
		{"raw truncated sequence", "{\"a\":{\"s\":\"\xe2\x82\"}}", "metadata.a.s"},
		{"raw invalid key", "{\"\xfe\":1}", "metadata"},
		{"exponent 1000000", `{"n":1e1000000}`, "metadata.n"},
		{"negative, exponent 999999", `{"n":-1e999999}`, "metadata.n"},
		{"exponent -20000", `{"n":1e-20000}`, "metadata.n"},
		{"zero with exponent -20000", `{"n":0e-20000}`, "metadata.n"},
		{"exponent 1001", `{"n":1E+1001}`, "metadata.n"},
		{"exponent -1001", `{"n":1e-1001}`, "metadata.n"},
		{"normalised past 1000", `{"n":10e1000}`, "metadata.n"},
		{"normalised below -1000", `{"n":0.01e-999}`, "metadata.n"},
		{"exponent with 30 digits", `{"n":1e100000000000000000000000000000}`, "metadata.n"},
		{"101 significant digits", `{"n":1.` + strings.Repeat("1", 100) + `}`, "metadata.n"},
		{"huge number in an array", `{"a":[1,2,[3,1e5000]]}`, "metadata.a.2.1"},
		{"first offence is reported", `{"a":"\u0000","b":1e9999}`, "metadata.a"},
	}
	before := h.rowsDigest()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := h.call("POST", "/v1/payments", key, body(tc.meta))
			e := r.apiError(t)
			if r.status != http.StatusBadRequest || e.Error.Code != "invalid_metadata" || e.Error.Field != tc.field {
				t.Fatalf("got %d %s\nwant 400 invalid_metadata field %q", r.status, truncate(r.body), tc.field)
			}
			if !strings.HasPrefix(e.Error.Message, tc.field+" ") {
				t.Errorf("message %q does not start with the field", e.Error.Message)
			}
		})
	}
	if h.rowsDigest() != before {
		t.Fatal("refused metadata wrote rows")
	}

	// What Postgres can store is accepted and comes back as sent (jsonb normalises only
	// spacing, key order and the spelling of numbers).
	valid := []struct{ name, meta string }{
		{"raw non-ASCII", `{"name":"café","emoji":"😀","cjk":"支付"}`},
		{"escaped surrogate pair", `{"emoji":"\ud83d\ude00","upper":"\uD83D\uDE00"}`},
		{"pair after text", `{"s":"a\ud83d\ude00b"}`},
		{"escaped BMP characters", `{"s":"\u00e9\u20ac\uffff\ufffd"}`},
		{"control escapes other than NUL", `{"s":"\u0001\t\n\"\\\/\u001f"}`},
		{"non-ASCII key", `{"clé":1}`},
		{"numbers", `{"int":42,"neg":-7,"frac":12.50,"tiny":0.000001,"zero":0,"negzero":-0,"float":1.5e300}`},
		{"exponent 1000", `{"n":1e1000,"m":-9.99E+1000}`},
		{"exponent -1000", `{"n":1e-1000,"m":0.001e-997}`},
		{"zero with exponent 1000", `{"n":0e1000}`},
		{"100 significant digits", `{"n":` + strings.Repeat("9", 100) + `,"m":0.` + strings.Repeat("0", 50) + strings.Repeat("1", 100) + `}`},
		{"exponent with leading zeros", `{"n":1e0000000000000000000000000001}`},
		{"nesting", `{"a":{"b":[1,[2,[3,{"c":null,"d":true,"e":false}]]],"f":{}},"g":[]}`},
		{"deep nesting", `{"d":` + strings.Repeat("[", 1000) + strings.Repeat("]", 1000) + `}`},
		{"spacing", "{ \"a\" : [ 1 , 2 ] ,\n\t\"b\" : \"x\" }"},
	}
	for _, tc := range valid {
		t.Run(tc.name, func(t *testing.T) {
			r := h.call("POST", "/v1/payments", key, body(tc.meta))
			if r.status != http.StatusCreated {
				t.Fatalf("got %d %s, want 201", r.status, truncate(r.body))
			}
			var p payment
			r.json(t, &p)
			// Postgres's own reading of what was sent equals what it stored...
			if n := h.count(`SELECT count(*) FROM payments WHERE id = $1 AND metadata = $2::jsonb`, p.ID, tc.meta); n != 1 {
				t.Fatalf("stored metadata differs from the request's: %s", h.storedMetadata(p.ID))
			}
			// ...and so does Go's, through the API.
			got := h.call("GET", "/v1/payments/"+p.ID, key, nil)
			var back payment
			got.json(t, &back)
			if !sameJSON(t, []byte(tc.meta), back.Metadata) {
				t.Fatalf("GET metadata %s\nwant the same as %s", truncate(back.Metadata), truncate([]byte(tc.meta)))
			}
		})
	}
}

func (h *harness) storedMetadata(id string) string {
	h.t.Helper()
	var s string
	if err := h.db.Get(&s, `SELECT metadata::text FROM payments WHERE id = $1`, id); err != nil {
		h.t.Fatal(err)
	}
	return truncate([]byte(s))
}

// sameJSON compares two JSON values, numbers by exact value (Postgres writes 1e2 as 100).
func sameJSON(tb testing.TB, a, b []byte) bool {
	tb.Helper()
	decode := func(raw []byte) any {
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		var v any
		if err := dec.Decode(&v); err != nil {
			tb.Fatalf("decode %s: %v", truncate(raw), err)
		}
		return v
	}
	var same func(x, y any) bool
	same = func(x, y any) bool {
		switch x := x.(type) {
		case json.Number:
			y, ok := y.(json.Number)
			rx, okx := new(big.Rat).SetString(string(x))
			ry, oky := new(big.Rat).SetString(string(y))
			return ok && okx && oky && rx.Cmp(ry) == 0
		case map[string]any:
			y, ok := y.(map[string]any)
			if !ok || len(x) != len(y) {
				return false
			}
			for k, v := range x {
				if w, ok := y[k]; !ok || !same(v, w) {
					return false
				}
			}
			return true
		case []any:
			y, ok := y.([]any)
			if !ok || len(x) != len(y) {
				return false
			}
			for i := range x {
				if !same(x[i], y[i]) {
					return false
				}
			}
			return true
		}
		return reflect.DeepEqual(x, y)
	}
	return same(decode(a), decode(b))
}

func TestHostileCursor(t *testing.T) {
	h := startHarness(t)
	_, key := h.merchant("m")
	p := h.createPayment(key, `{"chain_id":1337,"token":"ETH","amount":"1"}`)
	lists := []string{"/v1/payments", "/v1/dead-letters", "/v1/payments/" + p.ID + "/deliveries"}
	cur := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
	const at = `"t":"2026-01-01T00:00:00Z"`
	tests := []struct{ name, json string }{
		{"year 0", `{"t":"0000-01-01T00:00:00Z","i":"pay_1"}`},
		{"year 0 through a zone offset", `{"t":"0001-01-01T00:00:00+01:00","i":"pay_1"}`},
		{"year 1", `{"t":"0001-06-01T00:00:00Z","i":"pay_1"}`},
		{"before 1970", `{"t":"1969-12-31T23:59:59Z","i":"pay_1"}`},
		{"year 10000 through a zone offset", `{"t":"9999-12-31T23:00:00-05:00","i":"pay_1"}`},
		{"id with NUL", `{` + at + `,"i":"pay_\u0000"}`},
		{"id with a newline", `{` + at + `,"i":"pay\n1"}`},
		{"id with DEL", `{` + at + `,"i":"pay` + "\x7f" + `"}`},
		{"id with raw invalid UTF-8", `{` + at + `,"i":"pay_` + "\xff\xfe" + `"}`},
		{"id with a lone surrogate escape", `{` + at + `,"i":"pay_\ud800"}`},
		{"id of 129 characters", `{` + at + `,"i":"` + strings.Repeat("p", 129) + `"}`},
		{"negative seq", `{"s":-1}`},
	}
	before := h.rowsDigest()
	for _, list := range lists {
		for _, tc := range tests {
			t.Run(list+"/"+tc.name, func(t *testing.T) {
				r := h.call("GET", list+"?cursor="+cur(tc.json), key, nil)
				e := r.apiError(t)
				if r.status != http.StatusBadRequest || e.Error.Code != "invalid_cursor" || e.Error.Field != "cursor" {
					t.Fatalf("got %d %s, want 400 invalid_cursor field cursor", r.status, truncate(r.body))
				}
			})
		}
		// In-range positions, forged or not, are fine: the boundaries are accepted.
		for _, ok := range []string{`{"t":"1970-01-01T00:00:00Z","i":"pay_1"}`, `{"t":"9999-12-31T23:59:59Z","i":"` + strings.Repeat("p", 128) + `"}`, `{"s":1}`} {
			if r := h.call("GET", list+"?cursor="+cur(ok), key, nil); r.status != http.StatusOK {
				t.Errorf("%s cursor %s: %d %s", list, ok, r.status, truncate(r.body))
			}
		}
	}
	if h.rowsDigest() != before {
		t.Fatal("list calls changed rows")
	}
}

// newHarnessOn is newHarness with the api — and h.db — on the database at databaseURL, migrated,
// instead of one on the cluster the whole test binary shares.
func newHarnessOn(t *testing.T, databaseURL string) *harness {
	t.Helper()
	h := newHarness(t)
	h.db, h.dsn, h.cfg.DatabaseURL = testkit.MustOpenDB(t, databaseURL), databaseURL, databaseURL
	return h
}

// TestDatabaseOutageIs503 stops Postgres under a running api: requests must get 503 with
// Retry-After — the request was fine, retry it — not 500, and 200 again once it is back.
func TestDatabaseOutageIs503(t *testing.T) {
	pg := testkit.MustPostgresCluster(t) // its own: stopping the shared one would break other tests
	h := newHarnessOn(t, pg.URL)
	h.start()
	_, key := h.merchant("m")
	if r := h.call("GET", "/v1/payments", key, nil); r.status != http.StatusOK {
		t.Fatalf("before the outage: %d %s", r.status, r.body)
	}
	if err := pg.Stop(); err != nil {
		t.Fatal(err)
	}
	// Several calls: the first ones find the pool's connections cut, later ones cannot dial.
	requests := []struct {
		name, method, path, body string
	}{
		{"list payments", "GET", "/v1/payments", ""},
		{"list payments again", "GET", "/v1/payments", ""},
		{"get a payment", "GET", "/v1/payments/pay_1", ""},
		{"create a payment", "POST", "/v1/payments", `{"chain_id":1337,"token":"ETH","amount":"1"}`},
		{"list endpoints", "GET", "/v1/endpoints", ""},
		{"list payments once more", "GET", "/v1/payments", ""},
	}
	for _, tc := range requests {
		t.Run(tc.name, func(t *testing.T) {
			r := h.call(tc.method, tc.path, key, bodyOrNone(tc.body))
			if r.status != http.StatusServiceUnavailable {
				t.Fatalf("during the outage: %d %s, want 503", r.status, truncate(r.body))
			}
			if got := r.header.Get("Retry-After"); got != "5" {
				t.Errorf("Retry-After %q, want 5", got)
			}
			if ct := r.header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
			if e := r.apiError(t); e.Error.Code != "unavailable" || !strings.Contains(e.Error.Message, "retry") {
				t.Errorf("error %+v, want code unavailable and a message to retry", e.Error)
			}
		})
	}
	if err := pg.Start(); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 30*time.Second, "200 once Postgres is back", func() bool {
		return h.call("GET", "/v1/payments", key, nil).status == http.StatusOK
	})
}
