package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/ctrip-pay/pipeline/services/api/internal/rest"
	"github.com/ctrip-pay/pipeline/shared/event"
	"github.com/ctrip-pay/pipeline/shared/testkit"
	"github.com/ctrip-pay/pipeline/streams"
)

// The tests here send input that Go's JSON decoder and router accept but Postgres refuses, and
// check that the api answers it as a client error before any query, never with a 500.

// rowsDigest fingerprints every row a request could write, to check that a refused request
// changed nothing. Outbox rows are identified without published_at, which the relay sets on its
// own time; the address sequence is in it too (a refused payment must not take an index).
func (h *harness) rowsDigest() string {
	h.t.Helper()
	var d string
	if err := h.db.Get(&d, `SELECT md5(coalesce(string_agg(r, E'\n' ORDER BY r), '')) FROM (
		SELECT 'merchants ' || t::text AS r FROM merchants t
		UNION ALL SELECT 'api_keys ' || t::text FROM api_keys t
		UNION ALL SELECT 'payments ' || t::text FROM payments t
		UNION ALL SELECT 'webhook_endpoints ' || t::text FROM webhook_endpoints t
		UNION ALL SELECT 'webhook_dead_letters ' || t::text FROM webhook_dead_letters t
		UNION ALL SELECT 'outbox ' || id || ' ' || msg_id || ' ' || md5(payload) FROM outbox
		UNION ALL SELECT 'deposit_address_index ' || last_value || ' ' || is_called FROM deposit_address_index) rows`); err != nil {
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

// sealedCursor is a cursor as the api seals one (rest's cursorMAC: HMAC-SHA256 under the admin
// token of the merchant, the list's path and the JSON, each followed by a zero byte; 16 bytes),
// so that forged positions reach the api's checks of a cursor's contents.
func sealedCursor(merchantID, path, payload string) string {
	m := hmac.New(sha256.New, []byte(testAdminToken))
	for _, part := range []string{"ctrip-pay list cursor v1", merchantID, path, payload} {
		m.Write([]byte(part))
		m.Write([]byte{0})
	}
	return base64.RawURLEncoding.EncodeToString(append([]byte(payload), m.Sum(nil)[:16]...))
}

func TestHostileCursor(t *testing.T) {
	h := startHarness(t)
	id, key := h.merchant("m")
	p := h.createPayment(key, `{"chain_id":1337,"token":"ETH","amount":"1"}`)
	lists := []struct{ path, ok string }{
		{"/v1/payments", `{"t":"2026-01-01T00:00:00Z","i":"pay_1"}`},
		{"/v1/dead-letters", `{"t":"2026-01-01T00:00:00Z","i":"dl_1"}`},
		{"/v1/payments/" + p.ID + "/deliveries", `{"s":1}`},
	}
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
		{"a key twice", `{` + at + `,"i":"pay_1","i":"pay_2"}`},
		{"unknown key", `{` + at + `,"i":"pay_1","m":"mch_1"}`},
		{"not an object", `[1]`},
	}
	before := h.rowsDigest()
	for _, list := range lists {
		for _, tc := range tests {
			t.Run(list.path+"/"+tc.name, func(t *testing.T) {
				r := call(t, h.base, "GET", list.path+"?cursor="+sealedCursor(id, list.path, tc.json), key, nil)
				e := r.apiError(t)
				if r.status != http.StatusBadRequest || e.Error.Code != "invalid_cursor" || e.Error.Field != "cursor" {
					t.Fatalf("got %d %s, want 400 invalid_cursor field cursor", r.status, truncate(r.body))
				}
			})
		}
		// In-range positions sealed for the merchant and the list are fine, the boundaries too;
		// the same positions unsealed, or sealed for another list or merchant, are not.
		oks := []string{list.ok}
		if strings.Contains(list.ok, `"t"`) {
			oks = append(oks, `{"t":"1970-01-01T00:00:00Z","i":"pay_1"}`, `{"t":"9999-12-31T23:59:59Z","i":"`+strings.Repeat("p", 128)+`"}`)
		}
		for _, ok := range oks {
			if r := h.call("GET", list.path+"?cursor="+sealedCursor(id, list.path, ok), key, nil); r.status != http.StatusOK {
				t.Errorf("%s cursor %s: %d %s", list.path, ok, r.status, truncate(r.body))
			}
			for name, cur := range map[string]string{
				"unsealed":                    base64.RawURLEncoding.EncodeToString([]byte(ok)),
				"sealed for another list":     sealedCursor(id, list.path+"x", ok),
				"sealed for another merchant": sealedCursor("mch_other", list.path, ok),
			} {
				if r := h.call("GET", list.path+"?cursor="+cur, key, nil); r.status != http.StatusBadRequest {
					t.Errorf("%s cursor %s %s: %d %s, want 400", list.path, ok, name, r.status, truncate(r.body))
				}
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

// TestHostileRequests sends every route of the api — taken from rest.Handler.Routes(), so that a
// route added later fails here until it has cases — what the issue calls hostile: malformed,
// truncated and oversized bodies, deep nesting, wrong types, unknown and duplicate fields, huge
// numbers, bad amounts, unknown chains and tokens, invalid UTF-8, missing, malformed, revoked and
// wrong credentials, another merchant's ids and tampered cursors. Every request must get the
// 4xx its case names, documented for the route in openapi.json, with a JSON error in the API's
// shape naming the field at fault; and none may change a row or put a message on a stream.
func TestHostileRequests(t *testing.T) {
	w := newHostileWorld(t)
	h := w.h
	ops := openAPIOps(t)
	routes := w.routes()

	// Every registered route has cases, and the cases follow openapi.json: a route that takes a
	// body has body cases, one with query parameters has query cases, one with a merchant's ids
	// has another merchant's ids.
	listed := map[string]hostileRoute{}
	for _, rt := range routes {
		listed[rt.pattern] = rt
	}
	registered := map[string]bool{}
	authOf := map[string]string{}
	for _, reg := range h.registeredRoutes() {
		registered[reg.Pattern], authOf[reg.Pattern] = true, reg.Auth
		if slices.Contains(publicRoutes, reg.Pattern) {
			if reg.Auth != rest.AuthNone {
				t.Errorf("%s is listed as public but needs %s credentials", reg.Pattern, reg.Auth)
			}
			continue
		}
		rt, ok := listed[reg.Pattern]
		if !ok {
			t.Errorf("%s has no hostile cases: add it to hostileWorld.routes", reg.Pattern)
			continue
		}
		op, ok := ops[reg.Pattern]
		if !ok {
			t.Errorf("%s is not in openapi.json", reg.Pattern)
			continue
		}
		if op.body != (rt.body != "") {
			t.Errorf("%s: openapi.json says it takes a body: %v; the suite has a valid body: %q", reg.Pattern, op.body, rt.body)
		}
		queryCases := 0
		for _, c := range rt.cases {
			if strings.HasPrefix(c.path, "?") {
				queryCases++
			}
		}
		if len(op.query) > 0 && queryCases == 0 {
			t.Errorf("%s takes query parameters %v but has no query cases", reg.Pattern, op.query)
		}
		if reg.Auth == rest.AuthMerchant && strings.Contains(reg.Pattern, "{") && len(rt.other) == 0 {
			t.Errorf("%s takes a merchant's ids but has no other merchant's ids", reg.Pattern)
		}
	}
	for _, rt := range routes {
		if !registered[rt.pattern] {
			t.Errorf("%s has cases but is not a registered route", rt.pattern)
		}
	}
	if t.Failed() {
		t.FailNow()
	}

	start, before := time.Now(), w.state()
	var stateTime time.Duration
	requests := 0
	perRoute := map[string]int{}
	for _, rt := range routes {
		auth := authOf[rt.pattern]
		op := ops[rt.pattern]
		cases := w.authCases(auth)
		cases = append(cases, crossCases(rt)...)
		if rt.body != "" {
			cases = append(cases, bodyCases(rt.body, op.required, op.fields)...)
		}
		cases = append(cases, rt.cases...)
		if slices.Contains(cursorLists, rt.pattern) {
			cases = append(cases, w.cursorCases(rt.pattern)...)
		}
		for _, c := range cases {
			c.method, _, _ = strings.Cut(rt.pattern, " ")
			if c.auth == "" && !strings.HasPrefix(c.name, "auth ") {
				c.auth = "Bearer " + w.a.APIKey
				if auth == rest.AuthAdmin {
					c.auth = "Bearer " + testAdminToken
				}
			}
			if c.body == nil && (strings.HasPrefix(c.name, "auth ") || c.swap != nil) && rt.body != "" {
				c.body = []byte(rt.body) // only the credential or the id is wrong
			}
			path := w.path(rt, c.swap) + c.path
			r := w.send(c, path)
			requests++
			perRoute[rt.pattern]++
			where := fmt.Sprintf("%s %s (%s)", c.method, truncate([]byte(path)), c.name)
			for _, problem := range refusalProblems(c, r, op.statuses) {
				t.Errorf("%s: %s\n\tgot %d %s", where, problem, r.status, truncate(r.body))
			}
			if c.swap != nil {
				// Another merchant's id answers exactly what an id that does not exist answers.
				missing := map[string]string{}
				for k := range c.swap {
					missing[k] = "zz_missing"
				}
				r2 := w.send(c, w.path(rt, missing)+c.path)
				requests++
				if r2.status != r.status || !bytes.Equal(r2.body, r.body) {
					t.Errorf("%s: another merchant's id (%d %s) is told apart from a missing one (%d %s)", where, r.status, r.body, r2.status, r2.body)
				}
			}
			t0 := time.Now()
			after := w.state()
			stateTime += time.Since(t0)
			if after != before {
				t.Errorf("%s changed the database or a stream:\n\tbefore %s\n\tafter  %s", where, before, after)
				before = after // so that the next request is judged on its own
			}
		}
		if perRoute[rt.pattern] == 0 {
			t.Errorf("%s: no request sent", rt.pattern)
		}
	}
	// A path that is not in its clean form is no route's, whatever route it cleans to: 404
	// route_not_found, not ServeMux's HTML redirect (which a client would follow, method and
	// body included for a 307).
	for _, rt := range routes {
		method, _, _ := strings.Cut(rt.pattern, " ")
		token := "Bearer " + w.a.APIKey
		if authOf[rt.pattern] == rest.AuthAdmin {
			token = "Bearer " + testAdminToken
		}
		clean := w.path(rt, nil)
		for _, p := range []string{
			strings.Replace(clean, "/v1/", "/v1//", 1), strings.Replace(clean, "/v1/", "/v1/./", 1),
			strings.Replace(clean, "/v1/", "/v1/x/../", 1), strings.Replace(clean, "/v1/", "/v1/%2e%2e/v1/", 1),
			"/" + clean, clean + "/.", clean + "/..",
		} {
			c := hostileCase{name: "non-canonical path", method: method, auth: token, status: 404, code: "route_not_found"}
			if rt.body != "" {
				c.body = []byte(rt.body)
			}
			r := w.send(c, p)
			requests++
			for _, problem := range refusalProblems(c, r, map[int]bool{404: true}) {
				t.Errorf("%s %s (%s): %s\n\tgot %d %s", method, p, rt.pattern, problem, r.status, truncate(r.body))
			}
			if after := w.state(); after != before {
				t.Errorf("%s %s changed the database or a stream:\n\tbefore %s\n\tafter  %s", method, p, before, after)
				before = after
			}
		}
	}
	t.Logf("%d hostile requests over %d routes in %v (state checks %v)", requests, len(routes),
		time.Since(start).Round(time.Millisecond), stateTime.Round(time.Millisecond))
	for _, rt := range routes {
		t.Logf("%5d %s", perRoute[rt.pattern], rt.pattern)
	}

	// The credentials and ids the cases were made from are good: every refusal above was for
	// what the case changed.
	for _, rt := range routes {
		if !strings.HasPrefix(rt.pattern, "GET ") {
			continue
		}
		token := w.a.APIKey
		if authOf[rt.pattern] == rest.AuthAdmin {
			token = testAdminToken
		}
		if r := h.call("GET", w.path(rt, nil), token, nil); r.status != http.StatusOK {
			t.Errorf("%s with the caller's own ids: %d %s", rt.pattern, r.status, truncate(r.body))
		}
	}
	for _, list := range cursorLists {
		rt := listed[list]
		if r := h.call("GET", w.path(rt, nil)+"?limit=1&cursor="+w.cursors["a"][list], w.a.APIKey, nil); r.status != http.StatusOK {
			t.Errorf("%s with its own cursor: %d %s", list, r.status, truncate(r.body))
		}
	}
}

// noRedirects is a client that shows a redirect rather than following it.
var noRedirects = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// path is the route's path with the caller's ids, except those swap replaces.
func (w *hostileWorld) path(rt hostileRoute, swap map[string]string) string {
	_, tmpl, _ := strings.Cut(rt.pattern, " ")
	for name, id := range rt.ids {
		if v, ok := swap[name]; ok {
			id = v
		}
		tmpl = strings.Replace(tmpl, "{"+name+"}", id, 1)
	}
	return strings.TrimSuffix(tmpl, "/")
}

// send makes the case's request exactly as the case has it: its Authorization header (or none),
// its body bytes, a JSON Content-Type unless the case sets another.
func (w *hostileWorld) send(c hostileCase, path string) response {
	w.h.t.Helper()
	var rd io.Reader
	if c.body != nil {
		rd = bytes.NewReader(c.body)
	}
	req, err := http.NewRequest(c.method, w.h.base+path, rd)
	if err != nil {
		w.h.t.Fatalf("%s %s: %v", c.method, path, err)
	}
	if c.auth != "" {
		req.Header.Set("Authorization", c.auth)
	}
	if c.body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(c.hdr); i += 2 {
		if c.hdr[i] == "Content-Type" {
			req.Header.Del("Content-Type")
		}
		req.Header.Add(c.hdr[i], c.hdr[i+1])
	}
	resp, err := noRedirects.Do(req)
	if err != nil {
		w.h.t.Fatalf("%s %s: %v", c.method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		w.h.t.Fatal(err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}

// state fingerprints everything a request could change: every row, and the last sequence and
// message count of every stream (one JetStream call for all of them, while Postgres computes
// the digest).
func (w *hostileWorld) state() string {
	w.h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	type result struct {
		s   string
		err error
	}
	streamState := make(chan result, 1)
	go func() {
		var out []string
		l := w.h.js.ListStreams(ctx)
		for info := range l.Info() {
			out = append(out, fmt.Sprintf("%s last seq %d (%d messages)", info.Config.Name, info.State.LastSeq, info.State.Msgs))
		}
		slices.Sort(out)
		streamState <- result{strings.Join(out, ", "), l.Err()}
	}()
	rows := w.h.rowsDigest()
	st := <-streamState
	if st.err != nil || !strings.Contains(st.s, streams.Payments+" ") || !strings.Contains(st.s, streams.Webhooks+" ") {
		w.h.t.Fatalf("streams: %q %v", st.s, st.err)
	}
	return "rows " + rows + ", " + st.s
}

// refusalProblems says what is wrong with r as the answer to c: the status, the error's shape,
// its code and the field it names.
func refusalProblems(c hostileCase, r response, documented map[int]bool) []string {
	var out []string
	if r.status != c.status {
		out = append(out, fmt.Sprintf("status %d, want %d", r.status, c.status))
	}
	if r.status < 400 || r.status > 499 {
		out = append(out, "not a 4xx")
	}
	if !documented[r.status] {
		out = append(out, fmt.Sprintf("%d is not documented for the route in openapi.json", r.status))
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		out = append(out, fmt.Sprintf("Content-Type %q", ct))
	}
	var e struct {
		Error *struct {
			Code    string  `json:"code"`
			Message string  `json:"message"`
			Field   *string `json:"field"`
		} `json:"error"`
	}
	dec := json.NewDecoder(bytes.NewReader(r.body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil || e.Error == nil || dec.More() {
		return append(out, fmt.Sprintf("the body is not the API's JSON error (%v)", err))
	}
	field := ""
	if e.Error.Field != nil {
		field = *e.Error.Field
		if field == "" {
			out = append(out, `"field" is there but empty`)
		}
	}
	if e.Error.Code == "" || e.Error.Message == "" || !utf8.ValidString(e.Error.Message) {
		out = append(out, "the error has no code or no message")
	}
	if c.code != "" && e.Error.Code != c.code {
		out = append(out, fmt.Sprintf("code %q, want %q", e.Error.Code, c.code))
	}
	if field != c.field {
		out = append(out, fmt.Sprintf("field %q, want %q", field, c.field))
	}
	if field != "" && !strings.HasPrefix(e.Error.Message, field+" ") {
		out = append(out, fmt.Sprintf("message %q does not start with the field", e.Error.Message))
	}
	if r.status == http.StatusUnauthorized && r.header.Get("WWW-Authenticate") == "" {
		out = append(out, "401 without WWW-Authenticate")
	}
	return out
}

// openAPIOp is what openapi.json says of one operation.
type openAPIOp struct {
	body, required bool
	fields         map[string]string // body property → JSON type
	query          []string
	statuses       map[int]bool
}

// openAPIOps reads openapi.json into openAPIOps by route pattern ("POST /v1/payments").
func openAPIOps(t *testing.T) map[string]openAPIOp {
	t.Helper()
	type schema struct {
		Ref        string `json:"$ref"`
		Type       any    `json:"type"`
		Properties map[string]struct {
			Type any `json:"type"`
		} `json:"properties"`
	}
	type param struct {
		Ref  string `json:"$ref"`
		Name string `json:"name"`
		In   string `json:"in"`
	}
	type operation struct {
		RequestBody *struct {
			Required bool `json:"required"`
			Content  map[string]struct {
				Schema schema `json:"schema"`
			} `json:"content"`
		} `json:"requestBody"`
		Parameters []param                    `json:"parameters"`
		Responses  map[string]json.RawMessage `json:"responses"`
	}
	var doc struct {
		Paths      map[string]map[string]json.RawMessage `json:"paths"`
		Components struct {
			Schemas    map[string]schema `json:"schemas"`
			Parameters map[string]param  `json:"parameters"`
		} `json:"components"`
	}
	if err := json.Unmarshal(rest.OpenAPIDocument(), &doc); err != nil {
		t.Fatal(err)
	}
	typeOf := func(v any) string {
		switch v := v.(type) {
		case string:
			return v
		case []any: // ["object","null"]
			for _, x := range v {
				if s, ok := x.(string); ok && s != "null" {
					return s
				}
			}
		}
		return ""
	}
	out := map[string]openAPIOp{}
	for path, item := range doc.Paths {
		for method, raw := range item {
			if method == "parameters" || method == "summary" || method == "description" {
				continue
			}
			var op operation
			if err := json.Unmarshal(raw, &op); err != nil {
				t.Fatalf("%s %s: %v", method, path, err)
			}
			o := openAPIOp{fields: map[string]string{}, statuses: map[int]bool{}}
			if op.RequestBody != nil {
				o.body, o.required = true, op.RequestBody.Required
				s := op.RequestBody.Content["application/json"].Schema
				if s.Ref != "" {
					s = doc.Components.Schemas[strings.TrimPrefix(s.Ref, "#/components/schemas/")]
				}
				for name, p := range s.Properties {
					o.fields[name] = typeOf(p.Type)
				}
			}
			for _, p := range op.Parameters {
				if p.Ref != "" {
					p = doc.Components.Parameters[strings.TrimPrefix(p.Ref, "#/components/parameters/")]
				}
				if p.In == "query" {
					o.query = append(o.query, p.Name)
				}
			}
			for status := range op.Responses {
				n, err := strconv.Atoi(status)
				if err != nil {
					t.Fatalf("%s %s: response %q", method, path, status)
				}
				o.statuses[n] = true
			}
			out[strings.ToUpper(method)+" "+path] = o
		}
	}
	return out
}
