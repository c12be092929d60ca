package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"

	"github.com/ctrip-pay/pipeline/services/api/internal/rest"
	"github.com/ctrip-pay/pipeline/shared/event"
)

// loadOpenAPI loads and validates the document the api serves. kin-openapi reads the
// "openapi": "3.1.0" field and validates 3.1 documents (type arrays, const, JSON Schema 2020-12
// for bodies) without any option.
func loadOpenAPI(tb testing.TB) *openapi3.T {
	tb.Helper()
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(rest.OpenAPIDocument())
	if err != nil {
		tb.Fatalf("load openapi.json: %v", err)
	}
	if !doc.IsOpenAPI31OrLater() || doc.IsOpenAPI32OrLater() {
		tb.Fatalf("openapi.json is OpenAPI %s, want 3.1", doc.OpenAPI)
	}
	if err := doc.Validate(loader.Context); err != nil {
		tb.Fatalf("openapi.json is not a valid OpenAPI 3.1 document: %v", err)
	}
	return doc
}

// Every route the handler registers is described, with the security it requires, and the
// document describes no route that is not registered.
func TestOpenAPIDescribesEveryRoute(t *testing.T) {
	h := newHarness(t)
	doc := loadOpenAPI(t)
	described := map[string]*openapi3.Operation{}
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			described[method+" "+path] = op
		}
	}
	registered := map[string]bool{}
	for _, rt := range h.registeredRoutes() {
		registered[rt.Pattern] = true
		op, ok := described[rt.Pattern]
		if !ok {
			t.Errorf("route %s is not in openapi.json", rt.Pattern)
			continue
		}
		want := map[string]string{rest.AuthAdmin: "adminToken", rest.AuthMerchant: "merchantKey", rest.AuthNone: ""}[rt.Auth]
		var got []string
		if op.Security != nil {
			for _, req := range *op.Security {
				for name := range req {
					got = append(got, name)
				}
			}
		}
		if (want == "" && len(got) != 0) || (want != "" && !slices.Equal(got, []string{want})) {
			t.Errorf("%s: security %v in openapi.json, want %q (%s route)", rt.Pattern, got, want, rt.Auth)
		}
		if rt.Auth != rest.AuthNone && op.Responses.Status(http.StatusUnauthorized) == nil {
			t.Errorf("%s: 401 is not documented", rt.Pattern)
		}
	}
	for pattern := range described {
		if !registered[pattern] {
			t.Errorf("openapi.json describes %s, which the api does not register", pattern)
		}
	}
}

// contract makes requests against the running api and validates every answer against the
// document: its status must be documented for the route and its body must match the schema.
type contract struct {
	t    *testing.T
	h    *harness
	doc  *openapi3.T
	seen map[string]map[int]bool // route pattern → statuses answered and validated
}

func (c *contract) check(pattern, path, token string, body any, want int, hdr ...string) response {
	c.t.Helper()
	var raw []byte
	switch b := body.(type) {
	case nil:
	case string:
		raw = []byte(b)
	default:
		var err error
		if raw, err = json.Marshal(b); err != nil {
			c.t.Fatal(err)
		}
	}
	method, tmpl, _ := strings.Cut(pattern, " ")
	var r response
	if raw == nil {
		r = c.h.call(method, path, token, nil, hdr...)
	} else {
		r = c.h.call(method, path, token, raw, hdr...)
	}
	if r.status != want {
		c.t.Fatalf("%s %s: %d %s, want %d", method, path, r.status, truncate(r.body), want)
	}

	item := c.doc.Paths.Value(tmpl)
	if item == nil || item.GetOperation(method) == nil {
		c.t.Fatalf("%s is not in openapi.json", pattern)
	}
	req, err := http.NewRequest(method, c.h.base+path, bytes.NewReader(raw))
	if err != nil {
		c.t.Fatal(err)
	}
	if raw != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Add(hdr[i], hdr[i+1])
	}
	in := &openapi3filter.RequestValidationInput{
		Request: req, PathParams: pathParams(tmpl, req.URL.Path),
		Route:   &routers.Route{Spec: c.doc, Path: tmpl, PathItem: item, Method: method, Operation: item.GetOperation(method)},
		Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc, IncludeResponseStatus: true},
	}
	ctx := context.Background()
	// A request the api accepted must be one the document allows.
	if r.status/100 == 2 {
		if err := openapi3filter.ValidateRequest(ctx, in); err != nil {
			c.t.Errorf("%s %s: the api accepted a request openapi.json refuses: %v", method, path, err)
		}
	}
	out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: r.status, Header: r.header,
		Options: in.Options}
	out.SetBodyBytes(r.body)
	if err := openapi3filter.ValidateResponse(ctx, out); err != nil {
		c.t.Errorf("%s %s → %d does not match openapi.json: %v\nbody: %s", method, path, r.status, err, truncate(r.body))
	}
	if c.seen[pattern] == nil {
		c.seen[pattern] = map[int]bool{}
	}
	c.seen[pattern][r.status] = true
	return r
}

// pathParams matches a request path to its template's wildcards.
func pathParams(tmpl, path string) map[string]string {
	out := map[string]string{}
	ts, ps := strings.Split(tmpl, "/"), strings.Split(path, "/")
	for i, seg := range ts {
		if strings.HasPrefix(seg, "{") && i < len(ps) {
			out[strings.Trim(seg, "{}")] = ps[i]
		}
	}
	return out
}

// TestOpenAPIContract runs real requests over every route — successes and every documented
// client error — and validates each answer against openapi.json. 500 and 503 share the Error
// schema of the 4xx answers and are not provoked here.
func TestOpenAPIContract(t *testing.T) {
	h := startHarness(t)
	c := &contract{t: t, h: h, doc: loadOpenAPI(t), seen: map[string]map[int]bool{}}
	m := createMerchant(t, h.base, "a")
	key := m.APIKey
	p := h.createPayment(key, `{"chain_id":1337,"token":"USDC","amount":"12.5","metadata":{"order":"42"}}`)
	ep := h.endpointFor(key)
	disabled := h.endpointFor(key)
	gone := h.endpointFor(key)
	if _, err := h.db.Exec(`UPDATE webhook_endpoints SET enabled = false, disabled_reason = '410 Gone', disabled_at = now() WHERE id = $1`, disabled); err != nil {
		t.Fatal(err)
	}
	confirmed := h.paymentEvent(event.SubjectConfirmed, m.ID, p.ID, p.ID+".confirmed")
	h.published()
	h.statusChange(p.ID, "pending", "detected", "value seen", "")
	h.statusChange(p.ID, "detected", "confirmed", "confirmed", confirmed)
	code := 500
	h.attempt(p.ID, ep, 1, &code, false)
	h.eventAttempt(confirmed, p.ID, ep, 1, 200, true)
	body := []byte(`{"id":"evt_1","type":"payment.created","timestamp":"2026-11-28T20:14:26Z","data":{"payment_id":"pay_1"}}`)
	dl := h.deadLetter(ep, m.ID, "webhooks.deliver."+ep, map[string]string{event.HeaderMsgID: "evt_1." + ep}, body, time.Now())
	lost := h.deadLetter(ep, m.ID, "", map[string]string{}, []byte{}, time.Now().Add(-time.Minute))
	since := fmt.Sprintf(`{"since":%q}`, time.Now().Add(-time.Hour).UTC().Format(time.RFC3339))

	// Each route with real ids and a valid body, for the generic cases: 401 without
	// credentials, 404 with every id unknown, 413 with a body over 64 KiB.
	routes := []struct {
		pattern string
		ids     map[string]string
		body    string
	}{
		{"POST /v1/merchants", nil, `{"name":"b"}`},
		{"POST /v1/merchants/{id}/api-keys", map[string]string{"id": m.ID}, ""},
		{"DELETE /v1/merchants/{id}/api-keys/{key_id}", map[string]string{"id": m.ID, "key_id": m.APIKeyID}, ""},
		{"POST /v1/payments", nil, `{"chain_id":1337,"token":"ETH","amount":"1"}`},
		{"GET /v1/payments", nil, ""},
		{"GET /v1/payments/{id}", map[string]string{"id": p.ID}, ""},
		{"GET /v1/payments/{id}/deliveries", map[string]string{"id": p.ID}, ""},
		{"GET /v1/payments/{id}/events", map[string]string{"id": p.ID}, ""},
		{"POST /v1/endpoints", nil, `{"url":"https://example.com/h"}`},
		{"GET /v1/endpoints", nil, ""},
		{"GET /v1/endpoints/{id}", map[string]string{"id": ep}, ""},
		{"PATCH /v1/endpoints/{id}", map[string]string{"id": ep}, `{"enabled":true}`},
		{"DELETE /v1/endpoints/{id}", map[string]string{"id": gone}, ""},
		{"POST /v1/endpoints/{id}/rotate-secret", map[string]string{"id": ep}, ""},
		{"POST /v1/endpoints/{id}/test", map[string]string{"id": ep}, ""},
		{"POST /v1/endpoints/{id}/replay", map[string]string{"id": ep}, since},
		{"GET /v1/dead-letters", nil, ""},
		{"GET /v1/dead-letters/{id}", map[string]string{"id": dl}, ""},
		{"POST /v1/dead-letters/{id}/replay", map[string]string{"id": dl}, ""},
		{"GET /v1/operator/overview", nil, ""},
		{"GET /openapi.json", nil, ""},
		{"GET /console/", nil, ""},
	}
	fill := func(tmpl string, ids map[string]string, missing bool) string {
		for name, id := range ids {
			if missing {
				id = "zz_missing"
			}
			tmpl = strings.Replace(tmpl, "{"+name+"}", id, 1)
		}
		return tmpl
	}
	tooLarge := `{"name":"` + strings.Repeat("a", 65<<10) + `"}`
	for _, rt := range routes {
		method, tmpl, _ := strings.Cut(rt.pattern, " ")
		op := c.doc.Paths.Value(tmpl).GetOperation(method)
		token := key
		if strings.HasPrefix(tmpl, "/v1/merchants") {
			token = testAdminToken
		}
		if op.Security != nil {
			c.check(rt.pattern, fill(tmpl, rt.ids, false), "", bodyOrNone(rt.body), http.StatusUnauthorized)
		}
		if len(rt.ids) > 0 {
			c.check(rt.pattern, fill(tmpl, rt.ids, true), token, bodyOrNone(rt.body), http.StatusNotFound)
		}
		if op.RequestBody != nil {
			c.check(rt.pattern, fill(tmpl, rt.ids, false), token, tooLarge, http.StatusRequestEntityTooLarge)
		}
	}
	if len(routes) != len(h.registeredRoutes()) {
		t.Fatalf("the contract walks %d routes, the api registers %d", len(routes), len(h.registeredRoutes()))
	}

	// Admin.
	c.check("POST /v1/merchants", "/v1/merchants", testAdminToken, `{"name":"b"}`, http.StatusCreated)
	c.check("POST /v1/merchants", "/v1/merchants", testAdminToken, `{}`, http.StatusBadRequest)
	var newKey struct {
		ID string `json:"id"`
	}
	c.check("POST /v1/merchants/{id}/api-keys", "/v1/merchants/"+m.ID+"/api-keys", testAdminToken, nil, http.StatusCreated).json(t, &newKey)
	c.check("POST /v1/merchants/{id}/api-keys", "/v1/merchants/"+m.ID+"/api-keys", testAdminToken, `{"x":1}`, http.StatusBadRequest)
	c.check("DELETE /v1/merchants/{id}/api-keys/{key_id}", "/v1/merchants/"+m.ID+"/api-keys/"+newKey.ID, testAdminToken, nil, http.StatusNoContent)

	// Payments.
	pay := `{"chain_id":1337,"token":"ETH","amount":"1.5","expires_in_seconds":600}`
	c.check("POST /v1/payments", "/v1/payments", key, pay, http.StatusCreated)
	c.check("POST /v1/payments", "/v1/payments", key, pay, http.StatusCreated, "Idempotency-Key", "order-1")
	if r := c.check("POST /v1/payments", "/v1/payments", key, pay, http.StatusCreated, "Idempotency-Key", "order-1"); r.header.Get("Idempotent-Replayed") != "true" {
		t.Error("a replayed create is not marked Idempotent-Replayed")
	}
	c.check("POST /v1/payments", "/v1/payments", key, `{"chain_id":1337,"token":"ETH","amount":"2"}`, http.StatusConflict, "Idempotency-Key", "order-1")
	c.check("POST /v1/payments", "/v1/payments", key, `{"chain_id":1337,"token":"ETH"}`, http.StatusBadRequest)
	c.check("GET /v1/payments", "/v1/payments?status=pending&limit=2", key, nil, http.StatusOK)
	c.check("GET /v1/payments", "/v1/payments?status=paid", key, nil, http.StatusBadRequest)
	c.check("GET /v1/payments/{id}", "/v1/payments/"+p.ID, key, nil, http.StatusOK)
	c.check("GET /v1/payments/{id}/deliveries", "/v1/payments/"+p.ID+"/deliveries", key, nil, http.StatusOK)
	c.check("GET /v1/payments/{id}/deliveries", "/v1/payments/"+p.ID+"/deliveries?limit=0", key, nil, http.StatusBadRequest)
	var evs paymentEvents
	c.check("GET /v1/payments/{id}/events", "/v1/payments/"+p.ID+"/events", key, nil, http.StatusOK).json(t, &evs)
	if len(evs.Data) != 2 || len(evs.StatusHistory) != 2 {
		t.Fatalf("the walk's payment has %d events and %d status changes, want 2 and 2", len(evs.Data), len(evs.StatusHistory))
	}
	c.check("GET /v1/payments/{id}/events", "/v1/payments/"+p.ID+"/events?limit=1", key, nil, http.StatusOK)
	c.check("GET /v1/payments/{id}/events", "/v1/payments/"+p.ID+"/events?cursor=x", key, nil, http.StatusBadRequest)

	// Endpoints.
	c.check("POST /v1/endpoints", "/v1/endpoints", key, `{"url":"https://example.com/h","event_types":["payment.confirmed"],"legacy_signature":true}`, http.StatusCreated)
	c.check("POST /v1/endpoints", "/v1/endpoints", key, `{"url":"http://example.com/h"}`, http.StatusBadRequest)
	c.check("GET /v1/endpoints", "/v1/endpoints", key, nil, http.StatusOK)
	c.check("GET /v1/endpoints", "/v1/endpoints?limit=1", key, nil, http.StatusBadRequest)
	c.check("GET /v1/endpoints/{id}", "/v1/endpoints/"+disabled, key, nil, http.StatusOK)
	c.check("PATCH /v1/endpoints/{id}", "/v1/endpoints/"+ep, key, `{"event_types":[],"enabled":true}`, http.StatusOK)
	c.check("PATCH /v1/endpoints/{id}", "/v1/endpoints/"+ep, key, `{"url":"ftp://example.com"}`, http.StatusBadRequest)
	c.check("POST /v1/endpoints/{id}/rotate-secret", "/v1/endpoints/"+ep+"/rotate-secret?grace_period_seconds=60", key, nil, http.StatusOK)
	c.check("POST /v1/endpoints/{id}/rotate-secret", "/v1/endpoints/"+ep+"/rotate-secret", key, `{"grace_period_seconds":-1}`, http.StatusBadRequest)
	c.check("POST /v1/endpoints/{id}/test", "/v1/endpoints/"+ep+"/test", key, nil, http.StatusAccepted)
	c.check("POST /v1/endpoints/{id}/test", "/v1/endpoints/"+ep+"/test", key, `{"x":1}`, http.StatusBadRequest)
	c.check("POST /v1/endpoints/{id}/test", "/v1/endpoints/"+disabled+"/test", key, nil, http.StatusConflict)
	c.check("POST /v1/endpoints/{id}/replay", "/v1/endpoints/"+ep+"/replay", key, since, http.StatusAccepted)
	c.check("POST /v1/endpoints/{id}/replay", "/v1/endpoints/"+ep+"/replay", key, `{"since":"yesterday"}`, http.StatusBadRequest)
	c.check("POST /v1/endpoints/{id}/replay", "/v1/endpoints/"+disabled+"/replay", key, since, http.StatusConflict)
	c.check("DELETE /v1/endpoints/{id}", "/v1/endpoints/"+gone, key, nil, http.StatusNoContent)

	// Dead letters.
	c.check("GET /v1/dead-letters", "/v1/dead-letters?limit=1", key, nil, http.StatusOK)
	c.check("GET /v1/dead-letters", "/v1/dead-letters?limit=x", key, nil, http.StatusBadRequest)
	c.check("GET /v1/dead-letters/{id}", "/v1/dead-letters/"+dl, key, nil, http.StatusOK)
	c.check("GET /v1/dead-letters/{id}", "/v1/dead-letters/"+lost, key, nil, http.StatusOK)
	c.check("POST /v1/dead-letters/{id}/replay", "/v1/dead-letters/"+dl+"/replay", key, nil, http.StatusAccepted)
	c.check("POST /v1/dead-letters/{id}/replay", "/v1/dead-letters/"+lost+"/replay", key, nil, http.StatusConflict)

	// The operator overview (console_test.go checks its figures) and the console's files.
	c.check("GET /v1/operator/overview", "/v1/operator/overview", testAdminToken, nil, http.StatusOK)
	c.check("GET /v1/operator/overview", "/v1/operator/overview?window=2h", testAdminToken, nil, http.StatusBadRequest)
	c.check("GET /console/", "/console/", "", nil, http.StatusOK)
	c.check("GET /console/", "/console/app.js", "", nil, http.StatusOK)
	c.check("GET /console/", "/console/no-such-file.js", "", nil, http.StatusNotFound)

	// The document itself, without credentials, exactly as embedded.
	r := c.check("GET /openapi.json", "/openapi.json", "", nil, http.StatusOK)
	if !bytes.Equal(r.body, rest.OpenAPIDocument()) || r.header.Get("Content-Type") != "application/json" {
		t.Errorf("GET /openapi.json: %s, %d bytes", r.header.Get("Content-Type"), len(r.body))
	}

	// Every documented answer of every route was seen and validated.
	for path, item := range c.doc.Paths.Map() {
		for method, op := range item.Operations() {
			pattern := method + " " + path
			for status := range op.Responses.Map() {
				if status == "500" || status == "503" {
					continue
				}
				var n int
				if _, err := fmt.Sscan(status, &n); err != nil {
					t.Errorf("%s: response %q is not a status code", pattern, status)
					continue
				}
				if !c.seen[pattern][n] {
					t.Errorf("%s: documented %d was never answered in the walk", pattern, n)
				}
			}
		}
	}
}

// The document parses as plain JSON too (what API explorers read).
func TestOpenAPIIsJSON(t *testing.T) {
	var v map[string]any
	dec := json.NewDecoder(bytes.NewReader(rest.OpenAPIDocument()))
	if err := dec.Decode(&v); err != nil || v["openapi"] != "3.1.0" {
		t.Fatalf("openapi.json: %v, openapi %v", err, v["openapi"])
	}
	if _, err := dec.Token(); err != io.EOF {
		t.Fatal("openapi.json has trailing data")
	}
}
