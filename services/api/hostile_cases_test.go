package main

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ctrip-pay/pipeline/services/api/internal/rest"
	"github.com/ctrip-pay/pipeline/shared/event"
)

// The cases of TestHostileRequests: for every route, what an attacker or a broken client can
// send it, and the 4xx each must get.

// hostileCase is one request and the refusal it must get.
type hostileCase struct {
	name   string
	method string
	path   string            // "" for the route's path with the caller's ids; "?..." for that path with a query
	swap   map[string]string // wildcards given another value than the caller's id
	auth   string            // the Authorization header; "" sends none
	body   []byte            // nil sends none
	hdr    []string
	status int
	code   string // "" when any code will do (the status and the field are still checked)
	field  string // the field the error must name; "" means it must name none
}

// hostileWorld is what the cases aim at: merchant a calls, merchant b is another merchant.
type hostileWorld struct {
	h          *harness
	a, b       createdMerchant
	revoked    string // a key revoked through the admin API
	payA, payB string
	payA2      string // a's second payment: its lists are "another list"
	epA, epB   string
	dlA, dlB   string
	// cursors[merchant][list] is a next_cursor the api handed out; lists are route patterns.
	cursors map[string]map[string]string
}

// The lists with a cursor, and the query parameters each takes besides limit and cursor.
var cursorLists = []string{
	"GET /v1/payments",
	"GET /v1/dead-letters",
	"GET /v1/payments/{id}/deliveries",
	"GET /v1/payments/{id}/events",
}

func newHostileWorld(t *testing.T) *hostileWorld {
	h := startHarness(t)
	w := &hostileWorld{h: h, cursors: map[string]map[string]string{}}
	w.a, w.b = createMerchant(t, h.base, "a"), createMerchant(t, h.base, "b")
	r := createMerchant(t, h.base, "revoked")
	if rr := h.call("DELETE", "/v1/merchants/"+r.ID+"/api-keys/"+r.APIKeyID, testAdminToken, nil); rr.status != http.StatusNoContent {
		t.Fatalf("revoke: %d %s", rr.status, rr.body)
	}
	w.revoked = r.APIKey
	for _, m := range []struct {
		who      createdMerchant
		pay, ep  *string
		dl       *string
		withPay2 bool
	}{{w.a, &w.payA, &w.epA, &w.dlA, true}, {w.b, &w.payB, &w.epB, &w.dlB, false}} {
		key := m.who.APIKey
		*m.pay = h.createPayment(key, `{"chain_id":1337,"token":"ETH","amount":"1"}`).ID
		pay2 := h.createPayment(key, `{"chain_id":1337,"token":"USDC","amount":"2.5"}`).ID
		if m.withPay2 {
			w.payA2 = pay2
		}
		*m.ep = h.endpointFor(key)
		for i := range 2 {
			code := 500
			h.attempt(*m.pay, *m.ep, i+1, &code, false)
			h.attempt(pay2, *m.ep, i+1, &code, false)
			id := h.deadLetter(*m.ep, m.who.ID, "webhooks.deliver."+*m.ep, map[string]string{event.HeaderMsgID: "evt_1." + *m.ep},
				[]byte(`{"id":"evt_1"}`), time.Now().Add(-time.Duration(i)*time.Minute))
			if i == 0 {
				*m.dl = id
			}
		}
		// A second event for each payment, so that its event list has a next page.
		for _, p := range []string{*m.pay, pay2} {
			h.paymentEvent(event.SubjectExpired, m.who.ID, p, p+".expired")
		}
	}
	h.published()
	for _, m := range []struct {
		name, key, pay string
	}{{"a", w.a.APIKey, w.payA}, {"a2", w.a.APIKey, w.payA2}, {"b", w.b.APIKey, w.payB}} {
		w.cursors[m.name] = map[string]string{}
		for _, list := range cursorLists {
			_, tmpl, _ := strings.Cut(list, " ")
			path := strings.Replace(tmpl, "{id}", m.pay, 1) + "?limit=1"
			rr := h.call("GET", path, m.key, nil)
			var page struct {
				NextCursor *string `json:"next_cursor"`
			}
			rr.json(t, &page)
			if rr.status != http.StatusOK || page.NextCursor == nil {
				t.Fatalf("%s for %s: %d %s, want a page with a next cursor", path, m.name, rr.status, truncate(rr.body))
			}
			w.cursors[m.name][list] = *page.NextCursor
		}
	}
	return w
}

// hostileRoute is what the suite knows of one route: the caller's ids for its wildcards, the
// other merchant's (empty where the route is not a merchant's), and a valid body (when it takes
// one) that the generic body cases are made from.
type hostileRoute struct {
	pattern string
	ids     map[string]string
	other   map[string]string
	body    string
	// cases are the route's own: its fields' rules and its query parameters.
	cases []hostileCase
}

// routes returns a hostileRoute for every registered route except the public ones.
func (w *hostileWorld) routes() []hostileRoute {
	since := `"` + time.Now().Add(-time.Hour).UTC().Format(time.RFC3339) + `"`
	epIDs := map[string]string{"id": w.epA}
	epOther := map[string]string{"id": w.epB}
	payIDs := map[string]string{"id": w.payA}
	payOther := map[string]string{"id": w.payB}
	return []hostileRoute{
		{pattern: "POST /v1/merchants", body: `{"name":"Acme Shop"}`, cases: merchantCases()},
		{pattern: "POST /v1/merchants/{id}/api-keys", ids: map[string]string{"id": w.a.ID}, body: `{}`},
		{pattern: "DELETE /v1/merchants/{id}/api-keys/{key_id}", ids: map[string]string{"id": w.a.ID, "key_id": w.a.APIKeyID},
			other: map[string]string{"key_id": w.b.APIKeyID}},
		{pattern: "POST /v1/payments", body: `{"chain_id":1337,"token":"USDC","amount":"12.5","expires_in_seconds":3600,"metadata":{"order":"A-1"}}`,
			cases: paymentCases()},
		{pattern: "GET /v1/payments", cases: append(listCases(), queryCase("status=paid", 400, "invalid_status", "status"),
			queryCase("status=PENDING", 400, "invalid_status", "status"), queryCase("status=%ff", 400, "invalid_status", "status"),
			queryCase("status=pending%00", 400, "invalid_status", "status"),
			queryCase("status=pending&status=detected", 400, "duplicate_parameter", "status"))},
		{pattern: "GET /v1/payments/{id}", ids: payIDs, other: payOther},
		{pattern: "GET /v1/payments/{id}/deliveries", ids: payIDs, other: payOther, cases: listCases()},
		{pattern: "GET /v1/payments/{id}/events", ids: payIDs, other: payOther, cases: listCases()},
		{pattern: "POST /v1/endpoints", body: `{"url":"https://example.com/hook","event_types":["payment.created"],"legacy_signature":false}`,
			cases: endpointCases()},
		{pattern: "GET /v1/endpoints", cases: []hostileCase{queryCase("x=1", 400, "unknown_parameter", "x"),
			queryCase("limit=1", 400, "unknown_parameter", "limit")}},
		{pattern: "GET /v1/endpoints/{id}", ids: epIDs, other: epOther},
		{pattern: "PATCH /v1/endpoints/{id}", ids: epIDs, other: epOther, body: `{"enabled":false}`, cases: endpointCases()},
		{pattern: "DELETE /v1/endpoints/{id}", ids: epIDs, other: epOther},
		{pattern: "POST /v1/endpoints/{id}/rotate-secret", ids: epIDs, other: epOther, body: `{"grace_period_seconds":3600}`,
			cases: rotateCases()},
		{pattern: "POST /v1/endpoints/{id}/test", ids: epIDs, other: epOther, body: `{}`,
			cases: []hostileCase{queryCase("x=1", 400, "unknown_parameter", "x")}},
		{pattern: "POST /v1/endpoints/{id}/replay", ids: epIDs, other: epOther, body: `{"since":` + since + `,"limit":10}`,
			cases: replayCases()},
		{pattern: "GET /v1/dead-letters", cases: listCases()},
		{pattern: "GET /v1/dead-letters/{id}", ids: map[string]string{"id": w.dlA}, other: map[string]string{"id": w.dlB}},
		{pattern: "POST /v1/dead-letters/{id}/replay", ids: map[string]string{"id": w.dlA}, other: map[string]string{"id": w.dlB}},
		{pattern: "GET /v1/operator/overview", cases: []hostileCase{queryCase("x=1", 400, "unknown_parameter", "x"),
			queryCase("since=1", 400, "unknown_parameter", "since")}},
	}
}

// publicRoutes take no credentials, no body and no query: nothing to refuse.
var publicRoutes = []string{"GET /openapi.json", "GET /console/"}

// queryCase is a case of the route with query q (the rest as the route has it).
func queryCase(q string, status int, code, field string) hostileCase {
	return hostileCase{name: "query " + q, path: "?" + q, status: status, code: code, field: field}
}

// bodyCase is a case of the route with body b.
func bodyCase(name, b string, status int, code, field string, hdr ...string) hostileCase {
	return hostileCase{name: name, body: []byte(b), status: status, code: code, field: field, hdr: hdr}
}

// listCases are every list's query cases: limit and unknown parameters. Cursors are the
// world's (cursorCases).
func listCases() []hostileCase {
	var out []hostileCase
	for _, v := range []string{"0", "-1", "101", "1e2", "0x10", "%201", "1%20", "1.5", "+1", "%ef%bc%91", "%ff",
		strings.Repeat("9", 400), "9223372036854775808"} {
		out = append(out, queryCase("limit="+v, 400, "invalid_limit", "limit"))
	}
	return append(out,
		queryCase("limit=1&limit=2", 400, "duplicate_parameter", "limit"),
		queryCase("limit=%zz", 400, "invalid_query", ""),
		queryCase("limit=1;x=2", 400, "invalid_query", ""),
		queryCase("x=1", 400, "unknown_parameter", "x"),
		queryCase("Limit=1", 400, "unknown_parameter", "Limit"),
		queryCase("cursor=x&cursor=y", 400, "duplicate_parameter", "cursor"),
		queryCase("cursor=%00", 400, "invalid_cursor", "cursor"),
		queryCase("cursor="+strings.Repeat("A", 600), 400, "invalid_cursor", "cursor"),
		queryCase("cursor="+base64.RawURLEncoding.EncodeToString([]byte(`{"t":"2026-01-01T00:00:00Z","i":"pay_1"}`)), 400, "invalid_cursor", "cursor"),
		queryCase("cursor="+base64.RawURLEncoding.EncodeToString([]byte(`{"s":1}`)), 400, "invalid_cursor", "cursor"),
	)
}

func merchantCases() []hostileCase {
	const f, c = "name", "invalid_name"
	return []hostileCase{
		bodyCase("name missing", `{}`, 400, c, f),
		bodyCase("name null", `{"name":null}`, 400, c, f),
		bodyCase("name empty", `{"name":""}`, 400, c, f),
		bodyCase("name blank", `{"name":" \t "}`, 400, c, f),
		bodyCase("name of 201 characters", `{"name":"`+strings.Repeat("é", 201)+`"}`, 400, c, f),
		bodyCase("name with a bell", `{"name":"a\u0007b"}`, 400, c, f),
		bodyCase("name with C1 control", `{"name":"a\u0085b"}`, 400, c, f),
		bodyCase("name with DEL", "{\"name\":\"a\x7fb\"}", 400, c, f),
	}
}

func paymentCases() []hostileCase {
	body := func(fields string) string { return `{"chain_id":1337,"token":"USDC",` + fields + `}` }
	amountCase := func(name, v string) hostileCase {
		return bodyCase("amount "+name, body(`"amount":`+v), 400, "invalid_amount", "amount")
	}
	out := []hostileCase{
		// amount.Parse takes only digits with at most one dot and no more fractional digits than
		// the token's decimals; everything else is refused.
		amountCase("missing", `null`),
		amountCase("number", `12.5`),
		amountCase("integer number", `1`),
		amountCase("1e400 number", `1e400`),
		amountCase("exponent", `"1e400"`),
		amountCase("negative exponent", `"1e-400"`),
		amountCase("400 digits", `"`+strings.Repeat("9", 400)+`"`),
		amountCase("above uint256", `"1`+strings.Repeat("0", 72)+`"`),
		amountCase("negative", `"-1"`),
		amountCase("plus", `"+1"`),
		amountCase("zero", `"0"`),
		amountCase("zero with decimals", `"0.000000"`),
		amountCase("hex", `"0x10"`),
		amountCase("underscore", `"1_000"`),
		amountCase("comma", `"1,000"`),
		amountCase("leading space", `" 1"`),
		amountCase("trailing space", `"1 "`),
		amountCase("trailing dot", `"1."`),
		amountCase("leading dot", `".5"`),
		amountCase("two dots", `"1.2.3"`),
		amountCase("empty", `""`),
		amountCase("NaN", `"NaN"`),
		amountCase("Infinity", `"Infinity"`),
		amountCase("full-width digit", `"１"`),
		amountCase("Arabic-Indic digit", `"١"`),
		amountCase("7 decimals for USDC's 6", `"1.1234567"`),
		amountCase("trailing zero past the decimals", `"1.0000000"`),
		amountCase("NUL", `"1\u0000"`),
		amountCase("raw invalid UTF-8", "\"1\xff\""),
		amountCase("lone surrogate", `"1\ud800"`),
		bodyCase("19 decimals for ETH's 18", `{"chain_id":1337,"token":"ETH","amount":"0.0000000000000000001"}`, 400, "invalid_amount", "amount"),
		bodyCase("a fraction of WHOLE", `{"chain_id":1337,"token":"WHOLE","amount":"1.5"}`, 400, "invalid_amount", "amount"),

		bodyCase("chain_id missing", `{"token":"USDC","amount":"1"}`, 400, "invalid_chain_id", "chain_id"),
		bodyCase("unknown chain", `{"chain_id":1,"token":"ETH","amount":"1"}`, 400, "unsupported_chain", "chain_id"),
		bodyCase("chain 0", `{"chain_id":0,"token":"ETH","amount":"1"}`, 400, "unsupported_chain", "chain_id"),
		bodyCase("negative chain", `{"chain_id":-1337,"token":"ETH","amount":"1"}`, 400, "unsupported_chain", "chain_id"),
		bodyCase("chain_id past int64", `{"chain_id":9223372036854775808,"token":"ETH","amount":"1"}`, 400, "invalid_chain_id", "chain_id"),
		bodyCase("chain_id 1337.0", `{"chain_id":1337.0,"token":"ETH","amount":"1"}`, 400, "invalid_chain_id", "chain_id"),
		bodyCase("chain_id 1.337e3", `{"chain_id":1.337e3,"token":"ETH","amount":"1"}`, 400, "invalid_chain_id", "chain_id"),

		bodyCase("token missing", `{"chain_id":1337,"amount":"1"}`, 400, "invalid_token", "token"),
		bodyCase("token empty", `{"chain_id":1337,"token":"","amount":"1"}`, 400, "invalid_token", "token"),
		bodyCase("unknown token", `{"chain_id":1337,"token":"DAI","amount":"1"}`, 400, "unsupported_token", "token"),
		bodyCase("token of another chain", `{"chain_id":137,"token":"USDC","amount":"1"}`, 400, "unsupported_token", "token"),
		bodyCase("token with a space", `{"chain_id":1337,"token":"USDC ","amount":"1"}`, 400, "unsupported_token", "token"),
		bodyCase("token contract instead of symbol", `{"chain_id":1337,"token":"`+usdcContract+`","amount":"1"}`, 400, "unsupported_token", "token"),
		bodyCase("token of 10000 characters", `{"chain_id":1337,"token":"`+strings.Repeat("U", 10000)+`","amount":"1"}`, 400, "unsupported_token", "token"),
		bodyCase("token with NUL", `{"chain_id":1337,"token":"USDC\u0000","amount":"1"}`, 400, "invalid_token", "token"),

		bodyCase("expiry too short", body(`"amount":"1","expires_in_seconds":59`), 400, "invalid_expires_in_seconds", "expires_in_seconds"),
		bodyCase("expiry too long", body(`"amount":"1","expires_in_seconds":604801`), 400, "invalid_expires_in_seconds", "expires_in_seconds"),
		bodyCase("expiry zero", body(`"amount":"1","expires_in_seconds":0`), 400, "invalid_expires_in_seconds", "expires_in_seconds"),
		bodyCase("expiry negative", body(`"amount":"1","expires_in_seconds":-3600`), 400, "invalid_expires_in_seconds", "expires_in_seconds"),
		bodyCase("expiry past int64", body(`"amount":"1","expires_in_seconds":`+strings.Repeat("9", 400)), 400, "invalid_expires_in_seconds", "expires_in_seconds"),
		bodyCase("expiry 1e-400", body(`"amount":"1","expires_in_seconds":1e-400`), 400, "invalid_expires_in_seconds", "expires_in_seconds"),

		bodyCase("metadata a string", body(`"amount":"1","metadata":"x"`), 400, "invalid_metadata", "metadata"),
		bodyCase("metadata an array", body(`"amount":"1","metadata":[]`), 400, "invalid_metadata", "metadata"),
		bodyCase("metadata true", body(`"amount":"1","metadata":true`), 400, "invalid_metadata", "metadata"),
		bodyCase("metadata over 4 KiB", body(`"amount":"1","metadata":{"a":"`+strings.Repeat("x", 4096)+`"}`), 400, "invalid_metadata", "metadata"),
		// Metadata numbers up to 1e±1000 are stored as they are (TestHostileMetadata); past that, refused.
		bodyCase("metadata 1e1001", body(`"amount":"1","metadata":{"n":1e1001}`), 400, "invalid_metadata", "metadata.n"),
		bodyCase("metadata 1e-1001", body(`"amount":"1","metadata":{"n":1e-1001}`), 400, "invalid_metadata", "metadata.n"),
		bodyCase("metadata 400 digits", body(`"amount":"1","metadata":{"n":`+strings.Repeat("9", 400)+`}`), 400, "invalid_metadata", "metadata.n"),
		bodyCase("metadata nested 3000 deep", body(`"amount":"1","metadata":{"d":`+strings.Repeat("[", 3000)+strings.Repeat("]", 3000)+`}`), 400, "invalid_metadata", "metadata"),
		bodyCase("metadata NUL", body(`"amount":"1","metadata":{"s":"\u0000"}`), 400, "invalid_metadata", "metadata.s"),
		bodyCase("metadata duplicate key", body(`"amount":"1","metadata":{"order":"A-1","order":"A-2"}`), 400, "", "metadata.order"),

		bodyCase("Idempotency-Key too long", body(`"amount":"1"`), 400, "invalid_idempotency_key", "Idempotency-Key", "Idempotency-Key", strings.Repeat("k", 256)),
		bodyCase("Idempotency-Key with a space", body(`"amount":"1"`), 400, "invalid_idempotency_key", "Idempotency-Key", "Idempotency-Key", "a b"),
		bodyCase("Idempotency-Key non-ASCII", body(`"amount":"1"`), 400, "invalid_idempotency_key", "Idempotency-Key", "Idempotency-Key", "clé"),
		bodyCase("Idempotency-Key empty", body(`"amount":"1"`), 400, "invalid_idempotency_key", "Idempotency-Key", "Idempotency-Key", ""),
		bodyCase("Idempotency-Key twice", body(`"amount":"1"`), 400, "invalid_idempotency_key", "Idempotency-Key", "Idempotency-Key", "a", "Idempotency-Key", "b"),
	}
	return out
}

func endpointCases() []hostileCase {
	const f, c = "url", "invalid_url"
	var out []hostileCase
	for _, u := range []struct{ name, v string }{
		{"empty", `""`}, {"relative", `"/hook"`}, {"plain http", `"http://example.com/hook"`}, {"javascript", `"javascript:alert(1)"`},
		{"file", `"file:///etc/passwd"`}, {"loopback", `"https://127.0.0.1/hook"`}, {"IPv6 loopback", `"https://[::1]/hook"`},
		{"private", `"https://10.1.2.3/hook"`}, {"cloud metadata", `"https://169.254.169.254/latest/meta-data"`},
		{"credentials", `"https://user:pass@example.com/hook"`}, {"space in host", `"https://exa mple.com/hook"`},
		{"NUL", `"https://example.com/\u0000"`}, {"newline", `"https://example.com/\nx"`},
		{"raw invalid UTF-8", "\"https://example.com/\xff\""}, {"lone surrogate", `"https://example.com/\udc00"`},
		{"2049 characters", `"https://example.com/` + strings.Repeat("a", 2049-len("https://example.com/")) + `"`},
	} {
		out = append(out, bodyCase("url "+u.name, `{"url":`+u.v+`}`, 400, c, f))
	}
	for _, et := range []struct{ name, v string }{
		{"unknown", `["payment.paid"]`}, {"a subject", `["payments.created"]`}, {"empty string", `[""]`},
		{"case", `["Payment.Created"]`}, {"not an array", `"payment.created"`}, {"numbers", `[1]`},
		{"nested array", `[["payment.created"]]`},
	} {
		out = append(out, bodyCase("event_types "+et.name, `{"url":"https://example.com/h","event_types":`+et.v+`}`, 400, "invalid_event_types", "event_types"))
	}
	return append(out,
		bodyCase("event_types with NUL", `{"url":"https://example.com/h","event_types":["payment.created\u0000"]}`, 400, "invalid_event_types", "event_types.0"),
		bodyCase("event_types with raw invalid UTF-8", "{\"url\":\"https://example.com/h\",\"event_types\":[\"payment.created\xff\"]}", 400, "invalid_event_types", "event_types.0"),
		bodyCase("legacy_signature a string", `{"url":"https://example.com/h","legacy_signature":"true"}`, 400, "invalid_legacy_signature", "legacy_signature"),
		bodyCase("secret is not a field", `{"url":"https://example.com/h","secret":"whsec_x"}`, 400, "unknown_field", "secret"),
		queryCase("url=https://example.com/h", 400, "unknown_parameter", "url"),
	)
}

func rotateCases() []hostileCase {
	const f, c = "grace_period_seconds", "invalid_grace_period_seconds"
	out := []hostileCase{
		bodyCase("grace negative", `{"grace_period_seconds":-1}`, 400, c, f),
		bodyCase("grace over 7 days", `{"grace_period_seconds":604801}`, 400, c, f),
		bodyCase("grace 1e400", `{"grace_period_seconds":1e400}`, 400, c, f),
		bodyCase("grace fractional", `{"grace_period_seconds":1.5}`, 400, c, f),
		{name: "grace in the query and the body", path: "?grace_period_seconds=60", body: []byte(`{"grace_period_seconds":60}`), status: 400, code: c, field: f},
	}
	for _, v := range []string{"abc", "-1", "604801", "1e3", "1.5", "%201", "0x10", strings.Repeat("9", 400)} {
		out = append(out, hostileCase{name: "query grace " + v, path: "?grace_period_seconds=" + v, status: 400, code: c, field: f})
	}
	return append(out,
		hostileCase{name: "query grace twice", path: "?grace_period_seconds=1&grace_period_seconds=2", status: 400, code: "duplicate_parameter", field: f},
		hostileCase{name: "query unknown", path: "?grace=1", status: 400, code: "unknown_parameter", field: "grace"})
}

func replayCases() []hostileCase {
	const f, c = "since", "invalid_since"
	now := time.Now().UTC()
	out := []hostileCase{bodyCase("since missing", `{}`, 400, c, f), bodyCase("since null", `{"since":null}`, 400, c, f)}
	for _, v := range []string{"", "yesterday", "2026-13-01T00:00:00Z", "2026-02-30T00:00:00Z", "2026-01-01", "1700000000",
		"0000-01-01T00:00:00Z", now.Add(time.Hour).Format(time.RFC3339), now.Add(-40 * 24 * time.Hour).Format(time.RFC3339),
		now.Format(time.RFC3339) + "\u0000", "9999-12-31T23:59:59Z", "2026-01-01T00:00:00+99:00"} {
		out = append(out, bodyCase("since "+v, `{"since":`+jsonString(v)+`}`, 400, c, f))
	}
	since := jsonString(now.Add(-time.Hour).Format(time.RFC3339))
	for _, v := range []string{"0", "-1", "1001", "1e400", "1.5", `"10"`} {
		out = append(out, bodyCase("limit "+v, `{"since":`+since+`,"limit":`+v+`}`, 400, "invalid_limit", "limit"))
	}
	return append(out, queryCase("since=2026-01-01T00:00:00Z", 400, "unknown_parameter", "since"))
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// authCases: every way to present no credentials, broken ones or someone else's, on a route
// that needs them. Each is a 401 naming the Authorization header.
func (w *hostileWorld) authCases(auth string) []hostileCase {
	own, other := "Bearer "+w.a.APIKey, "Bearer "+testAdminToken
	if auth == rest.AuthAdmin {
		own, other = other, own
	}
	token := strings.TrimPrefix(own, "Bearer ")
	cases := []struct{ name, auth string }{
		{"no Authorization", ""},
		{"scheme only", "Bearer"},
		{"empty token", "Bearer    "},
		{"Basic scheme", "Basic " + base64.StdEncoding.EncodeToString([]byte(token+":"))},
		{"token without a scheme", token},
		{"Token scheme", "Token " + token},
		{"truncated", "Bearer " + token[:len(token)-1]},
		{"one character more", "Bearer " + token + "a"},
		{"upper-cased", "Bearer " + strings.ToUpper(token)},
		{"no sk_live_ prefix", "Bearer " + strings.TrimPrefix(w.a.APIKey, rest.APIKeyPrefix)},
		{"unknown key of the right shape", "Bearer " + rest.APIKeyPrefix + strings.Repeat("a", 52)},
		{"257 characters", "Bearer " + rest.APIKeyPrefix + strings.Repeat("a", 257-len(rest.APIKeyPrefix))},
		{"4 KiB", "Bearer " + rest.APIKeyPrefix + strings.Repeat("a", 4096)},
		{"non-ASCII", "Bearer " + rest.APIKeyPrefix + strings.Repeat("é", 26)},
		{"revoked key", "Bearer " + w.revoked},
		{"the other role's credential", other},
		{"two tokens", own + " " + token},
	}
	var out []hostileCase
	for _, c := range cases {
		out = append(out, hostileCase{name: "auth " + c.name, auth: c.auth, status: 401, code: "unauthorized", field: "Authorization"})
	}
	return out
}

// bodyCases are the generic cases of a route that takes a JSON body, made from a valid body
// and the fields openapi.json gives it (name → JSON type).
func bodyCases(valid string, required bool, fields map[string]string) []hostileCase {
	syntax := func(name, b string) hostileCase { return bodyCase(name, b, 400, "invalid_json", "") }
	out := []hostileCase{}
	// Every prefix of a valid body is invalid JSON.
	for n := 1; n < len(valid); n++ {
		out = append(out, syntax("truncated to "+strconv.Itoa(n)+" bytes", valid[:n]))
	}
	for _, g := range []struct{ name, b string }{
		{"trailing x", valid + "x"}, {"trailing object", valid + "{}"}, {"trailing bracket", valid + "]"},
		{"trailing comma", valid + ","}, {"trailing NUL", valid + "\x00"}, {"trailing number", valid + " 1"},
		{"two bodies", valid + valid},
		{"lone brace", "{"}, {"closing brace", "}"}, {"single quotes", `{'a':1}`}, {"bare key", `{a:1}`},
		{"trailing comma inside", valid[:len(valid)-1] + ",}"}, {"comment", "/* */" + valid}, {"nul", "nul"}, {"NaN", "NaN"},
		{"byte order mark", "\xef\xbb\xbf" + valid}, {"raw control character in a string", "{\"a\":\"\x01\"}"},
		{"bad escape", `{"a":"\x"}`}, {"short unicode escape", `{"a":"\u12"}`}, {"leading zero", `{"a":01}`},
		{"hex number", `{"a":0x10}`}, {"form encoded", "a=1&b=2"}, {"raw invalid UTF-8 outside strings", "{\xff}"},
		{"10000 unclosed [", strings.Repeat("[", 10000)},
		{"10000 nested [", strings.Repeat("[", 10000) + strings.Repeat("]", 10000)},
		{"10001 nested {", strings.Repeat(`{"a":`, 10001) + "1" + strings.Repeat("}", 10001)},
		{"10001 nested [", strings.Repeat("[", 10001) + strings.Repeat("]", 10001)},
		{"not an object: array", `[]`}, {"not an object: array of the body", "[" + valid + "]"}, {"not an object: string", `"x"`},
		{"not an object: number", `1`}, {"not an object: true", `true`}, {"not an object: null", `null`},
	} {
		out = append(out, syntax(g.name, g.b))
	}
	if required {
		// Where the body is optional an empty one is fine; where it is not, it is refused.
		out = append(out, syntax("empty body", ""), syntax("only spaces", " \r\n\t "))
	}
	big := func(name, b string) hostileCase { return bodyCase(name, b, 413, "body_too_large", "") }
	out = append(out,
		big("64 KiB and one byte of spaces", strings.Repeat(" ", 64<<10-1)+valid),
		big("a 70000-byte string", `{"x":"`+strings.Repeat("x", 70000)+`"}`),
		big("1 MiB", `{"x":"`+strings.Repeat("x", 1<<20)+`"}`),
		big("10000 nested [ past the limit", `{"x":`+strings.Repeat("[", 70000)),
		// 10000 levels is as deep as the decoder goes: the body is JSON, with a field that is not the route's.
		bodyCase("10000 nested {", strings.Repeat(`{"a":`, 10000)+"1"+strings.Repeat("}", 10000), 400, "unknown_field", "a"),
		bodyCase("unknown field", valid[:len(valid)-1]+sep(valid)+`"x":1}`, 400, "unknown_field", "x"),
		bodyCase("unknown field first", `{"zz":1`+sep(valid)+valid[1:], 400, "unknown_field", "zz"),
		bodyCase("unknown field named like a Go field", `{"MerchantID":"mch_x"}`, 400, "unknown_field", "MerchantID"),
		bodyCase("unknown field merchant_id", `{"merchant_id":"mch_x"}`, 400, "unknown_field", "merchant_id"),
		bodyCase("empty key", `{"":1}`, 400, "unknown_field", ""),
		bodyCase("key of raw invalid UTF-8", "{\"\xff\":1}", 400, "unknown_field", "\ufffd"),
		bodyCase("key with a lone surrogate", `{"\ud800":1}`, 400, "unknown_field", "\ufffd"),
		// The wrong Content-Type changes nothing: the body is refused for what it is.
		bodyCase("form Content-Type", "{", 400, "invalid_json", "", "Content-Type", "application/x-www-form-urlencoded"),
		bodyCase("text/plain", `[]`, 400, "invalid_json", "", "Content-Type", "text/plain"),
	)
	names := make([]string, 0, len(fields))
	for f := range fields {
		names = append(names, f)
	}
	slices.Sort(names)
	wrong := map[string][]string{
		"string":  {`1`, `-1.5`, `true`, `{}`, `[]`, `["x"]`, `1e400`},
		"integer": {`"1"`, `1.5`, `true`, `{}`, `[]`, `[1]`, `1e400`, `-1e400`, `1e-400`, strings.Repeat("9", 400), `9223372036854775808`},
		"boolean": {`"true"`, `1`, `0`, `{}`, `[]`, `[true]`},
		"array":   {`"x"`, `1`, `true`, `{}`, `[1]`, `[true]`, `[{}]`, `[[]]`},
		"object":  {`"x"`, `1`, `true`, `[]`, `[{}]`},
	}
	for _, f := range names {
		kind := fields[f]
		vals, ok := wrong[kind]
		if !ok {
			panic("field " + f + " of JSON type " + kind + ": the suite has no wrong values for that type")
		}
		code := "invalid_" + f
		for _, v := range vals {
			out = append(out, bodyCase(f+" "+v, withField(valid, f, v), 400, code, f))
		}
		out = append(out, bodyCase(f+" twice", `{"`+f+`":`+example(kind)+`,"`+f+`":`+example(kind)+`}`, 400, "duplicate_field", f))
		if up := strings.ToUpper(f); up != f {
			out = append(out, bodyCase(f+" in upper case", `{"`+up+`":`+example(kind)+`}`, 400, "unknown_field", up))
		}
		switch kind {
		case "string":
			for _, s := range []struct{ name, v string }{
				{"NUL", `"a\u0000"`}, {"raw 0xff", "\"a\xff\""}, {"raw bad continuation", "\"\xc3\x28\""},
				{"raw overlong", "\"\xc0\xaf\""}, {"raw surrogate", "\"\xed\xa0\x80\""}, {"lone high surrogate", `"\ud800"`},
				{"lone low surrogate", `"a\udfff"`}, {"high surrogate then a letter", `"\ud83dx"`},
			} {
				out = append(out, bodyCase(f+" "+s.name, withField(valid, f, s.v), 400, code, f))
			}
		case "object":
			out = append(out, bodyCase(f+" holding a lone surrogate", withField(valid, f, `{"k":"\ud800"}`), 400, code, f+".k"))
		}
	}
	return out
}

func sep(valid string) string {
	if valid == "{}" {
		return ""
	}
	return ","
}

// example is a well-typed value of a JSON type, for the duplicate and case cases.
func example(kind string) string {
	switch kind {
	case "string":
		return `"x"`
	case "integer":
		return `1`
	case "boolean":
		return `true`
	case "array":
		return `[]`
	}
	return `{}`
}

// withField is the valid body with field f set to the raw JSON v, keys in order.
func withField(valid, f, v string) string {
	var m map[string]json.RawMessage
	if err := json.Unmarshal([]byte(valid), &m); err != nil {
		panic("the valid body is not a JSON object: " + valid)
	}
	keys := []string{f}
	for k := range m {
		if k != f {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	var b strings.Builder
	b.WriteString("{")
	for i, k := range keys {
		if i > 0 {
			b.WriteString(",")
		}
		val := string(m[k])
		if k == f {
			val = v
		}
		b.WriteString(jsonString(k) + ":" + val)
	}
	return b.String() + "}"
}

// crossCases: another merchant's id, one wildcard at a time, must look exactly like a missing
// one: 404 not_found, no field.
func crossCases(rt hostileRoute) []hostileCase {
	var out []hostileCase
	names := make([]string, 0, len(rt.other))
	for n := range rt.other {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		out = append(out, hostileCase{name: "another merchant's " + n, swap: map[string]string{n: rt.other[n]}, status: 404, code: "not_found"})
	}
	return out
}

// cursorCases: cursors the api did not hand out for this list and this caller — the other
// merchant's, another list's, and the caller's own with a bit flipped or cut short.
func (w *hostileWorld) cursorCases(list string) []hostileCase {
	bad := func(name, cur string) hostileCase {
		return hostileCase{name: "cursor " + name, path: "?cursor=" + url.QueryEscape(cur), status: 400, code: "invalid_cursor", field: "cursor"}
	}
	own := w.cursors["a"][list]
	out := []hostileCase{bad("of the other merchant", w.cursors["b"][list])}
	for _, l := range cursorLists {
		if l != list {
			out = append(out, bad("of "+l, w.cursors["a"][l]))
		}
	}
	if strings.Contains(list, "{id}") {
		out = append(out, bad("of another payment's list", w.cursors["a2"][list]))
	}
	raw, err := base64.RawURLEncoding.DecodeString(own)
	if err != nil {
		panic("the api handed out a cursor that is not base64url: " + own)
	}
	for i := range raw {
		flipped := slices.Clone(raw)
		flipped[i] ^= 1 << (i % 8)
		out = append(out, bad("with bit "+strconv.Itoa(i%8)+" of byte "+strconv.Itoa(i)+" flipped", base64.RawURLEncoding.EncodeToString(flipped)))
	}
	for n := 1; n < len(own); n++ {
		out = append(out, bad("cut to "+strconv.Itoa(n)+" characters", own[:n]))
	}
	return append(out, bad("with a character more", own+"A"), bad("with padding", own+"=="),
		bad("doubled", own+own))
}
