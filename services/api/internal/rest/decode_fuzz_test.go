package rest

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/ctrip-pay/pipeline/services/api/internal/amount"
	"github.com/ctrip-pay/pipeline/shared/chains"
	"github.com/ctrip-pay/pipeline/shared/safehttp"
)

const fuzzChains = `
chains:
  - id: 1337
    name: devnet
    rpc_url: http://127.0.0.1:8545
    confirmations: 3
    native: {symbol: ETH, decimals: 18}
    tokens:
      - {symbol: USDC, contract: "0x00000000000000000000000000000000000000bb", decimals: 6}
      - {symbol: WHOLE, contract: "0x00000000000000000000000000000000000000cc", decimals: 0}
`

// fuzzDecode runs the handlers' decode of one request body.
func fuzzDecode(body []byte, v any) *apiError {
	r, _ := http.NewRequest(http.MethodPost, "/", bytes.NewReader(body))
	return decode(httptest.NewRecorder(), r, v, false)
}

// checkRefusal: a refusal is a 4xx with a code, and names the field whenever it is about one.
func checkRefusal(t *testing.T, e *apiError, fields ...string) {
	t.Helper()
	if e.Status < 400 || e.Status > 499 || e.Code == "" || e.Message == "" {
		t.Fatalf("refusal %+v", e)
	}
	switch e.Code {
	case "invalid_json", "body_too_large":
		return
	case "unknown_field":
		if slices.Contains(fields, e.Field) {
			t.Fatalf("known field %q refused as unknown", e.Field)
		}
		if e.Field == "" && strings.Contains(e.Message, `""`) {
			return // the empty key: there is no name to start the message with
		}
	default:
		root, _, _ := strings.Cut(e.Field, ".")
		if !slices.Contains(fields, root) {
			t.Fatalf("refusal %+v names no field of the request (%v)", e, fields)
		}
	}
	if e.Field == "" || !strings.HasPrefix(e.Message, e.Field+" ") {
		t.Fatalf("refusal %+v: message does not start with the field", e)
	}
}

// FuzzCreatePaymentRequest: POST /v1/payments' body is refused with a 4xx naming the field, or
// becomes a payment the rest of the api can trust: a configured chain and token, a positive
// amount that fits uint256 and the token's decimals, a lifetime within bounds, and metadata
// that is a JSON object of at most 4 KiB that Postgres' jsonb accepts.
func FuzzCreatePaymentRequest(f *testing.F) {
	file, err := chains.Parse([]byte(fuzzChains))
	if err != nil {
		f.Fatal(err)
	}
	h := &Handler{cfg: Config{Chains: file, DefaultTTL: time.Hour}}
	for _, s := range []string{
		`{"chain_id":1337,"token":"USDC","amount":"12.5"}`,
		`{"chain_id":1337,"token":"eth","amount":"0.000000000000000001","expires_in_seconds":60,"metadata":{"order":"A-1","n":[1,2.5e3,null,true]}}`,
		`{"chain_id":1337,"token":"WHOLE","amount":"7","metadata":null}`,
		`{"chain_id":1,"token":"ETH","amount":"1"}`, `{"chain_id":"1337"}`, `{"chain_id":1337,"token":"DAI","amount":"1"}`,
		`{"chain_id":1337,"token":"USDC","amount":"1.0000001"}`, `{"chain_id":1337,"token":"USDC","amount":1}`,
		`{"chain_id":1337,"token":"USDC","amount":"-1"}`, `{"chain_id":1337,"token":"USDC","amount":"1e6"}`,
		`{"chain_id":1337,"token":"USDC","amount":"1","expires_in_seconds":59}`,
		`{"chain_id":1337,"token":"USDC","amount":"1","expires_in_seconds":604801}`,
		`{"chain_id":1337,"token":"USDC","amount":"1","metadata":[]}`,
		`{"chain_id":1337,"token":"USDC","amount":"1","metadata":{"a":"\u0000"}}`,
		`{"chain_id":1337,"token":"USDC","amount":"1","metadata":{"a":"\ud800"}}`,
		`{"chain_id":1337,"token":"USDC","amount":"1","metadata":{"a":1e1000000}}`,
		`{"chain_id":1337,"token":"USDC","amount":"1","metadata":{"\u0000":1}}`,
		`{"chain_id":1337,"token":"USDC","amount":"1","colour":"blue"}`,
		`{"chain_id":1e3}`, `{"chain_id":9223372036854775808}`, `{}`, ``, `{} {}`, `[]`, `null`,
	} {
		f.Add([]byte(s))
	}
	fields := []string{"chain_id", "token", "amount", "expires_in_seconds", "metadata"}
	f.Fuzz(func(t *testing.T, body []byte) {
		var req createPaymentRequest
		if e := fuzzDecode(body, &req); e != nil {
			checkRefusal(t, e, fields...)
			return
		}
		np, e := h.validatePayment(req)
		if e != nil {
			checkRefusal(t, e, fields...)
			return
		}
		if req.ChainID == nil || np.chain.ID != *req.ChainID || req.Token == nil || !strings.EqualFold(np.token.Symbol, *req.Token) {
			t.Fatalf("payment on %d %s from %s", np.chain.ID, np.token.Symbol, body)
		}
		if want, err := amount.Parse(*req.Amount, np.token.Decimals); err != nil || np.amount.Cmp(want) != 0 || np.amount.Sign() <= 0 ||
			np.amount.Cmp(amount.MaxBaseUnits) > 0 {
			t.Fatalf("amount %v from %q: %v", np.amount, *req.Amount, err)
		}
		if np.ttl < MinPaymentTTL || np.ttl > MaxPaymentTTL || len(np.hash) != 32 {
			t.Fatalf("ttl %v hash %x", np.ttl, np.hash)
		}
		var obj map[string]json.RawMessage
		if len(np.metadata) > maxMetadataBytes || json.Unmarshal(np.metadata, &obj) != nil || obj == nil {
			t.Fatalf("metadata %q kept", np.metadata)
		}
		if problem := jsonbProblem(np.metadata); problem != "" {
			t.Fatalf("metadata %q kept: %s", np.metadata, problem)
		}
	})
}

// jsonbProblem is what Postgres' jsonb refuses in the strings of valid JSON text: invalid
// UTF-8, \u0000, and a UTF-16 surrogate escape without its pair. (Numbers are left to
// checkJSONText's own tests.)
func jsonbProblem(data []byte) string {
	if !utf8.Valid(data) {
		return "invalid UTF-8"
	}
	hex := func(b []byte) (rune, bool) {
		if len(b) < 4 {
			return 0, false
		}
		var r rune
		for _, c := range b[:4] {
			switch {
			case '0' <= c && c <= '9':
				r = r<<4 | rune(c-'0')
			case 'a' <= c && c <= 'f':
				r = r<<4 | rune(c-'a'+10)
			case 'A' <= c && c <= 'F':
				r = r<<4 | rune(c-'A'+10)
			default:
				return 0, false
			}
		}
		return r, true
	}
	inString := false
	for i := 0; i < len(data); i++ {
		c := data[i]
		switch {
		case c == '"':
			inString = !inString
		case inString && c == '\\':
			i++
			if i >= len(data) || data[i] != 'u' {
				continue
			}
			r, ok := hex(data[i+1:])
			i += 4
			switch {
			case !ok:
				return "bad \\u escape"
			case r == 0:
				return "\\u0000"
			case 0xdc00 <= r && r <= 0xdfff:
				return "lone low surrogate"
			case 0xd800 <= r && r <= 0xdbff:
				if i+2 >= len(data) || data[i+1] != '\\' || data[i+2] != 'u' {
					return "lone high surrogate"
				}
				if lo, ok := hex(data[i+3:]); !ok || lo < 0xdc00 || lo > 0xdfff {
					return "high surrogate without low"
				}
				i += 6
			}
		}
	}
	return ""
}

// FuzzCreateEndpointRequest: POST /v1/endpoints' body is refused with a 4xx naming the field,
// or holds a URL of at most 2048 bytes that the sender's SSRF policy accepts too (https, no
// user info, no private, loopback, link-local or metadata IP literal, no numeric host) and
// known, de-duplicated event types.
func FuzzCreateEndpointRequest(f *testing.F) {
	for _, u := range []string{"https://example.com/hook", "http://example.com/", "https://127.0.0.1/", "https://[::ffff:10.0.0.1]/",
		"https://169.254.169.254/latest/meta-data", "http://2130706433/", "https://0x7f.1/", "https://good.com@127.0.0.1/",
		"https://localhost./", "https://[fd00:ec2::254]/", "https://example.com:99999/", "//example.com", "https://" + strings.Repeat("a", 2048)} {
		b, _ := json.Marshal(map[string]any{"url": u, "event_types": []string{"payment.confirmed", "payment.confirmed"}})
		f.Add(b, false)
		f.Add(b, true)
	}
	for _, s := range []string{`{"url":"https://example.com","event_types":["payment.nope"]}`, `{"url":"https://example.com","event_types":"x"}`,
		`{"url":"https://example.com","legacy_signature":"yes"}`, `{"event_types":[]}`, `{"url":null}`, `{"url":""}`, `{"url":"https://example.com","secret":"x"}`} {
		f.Add([]byte(s), false)
	}
	f.Fuzz(func(t *testing.T, body []byte, allowHTTP bool) {
		policy := safehttp.Policy{AllowHTTP: allowHTTP}
		h := &Handler{cfg: Config{URLPolicy: policy}}
		fields := []string{"url", "event_types", "legacy_signature"}
		var req createEndpointRequest
		if e := fuzzDecode(body, &req); e != nil {
			checkRefusal(t, e, fields...)
			return
		}
		if req.URL == nil {
			return // createEndpoint answers "url is required"
		}
		if e := h.validateURL(*req.URL); e != nil {
			checkRefusal(t, e, fields...)
			if e.Field != "url" || strings.Contains(e.Message, *req.URL) && len(*req.URL) > 8 {
				t.Fatalf("url refusal %+v repeats the URL or names another field", e)
			}
			return
		}
		if len(*req.URL) > maxURLLen || safehttp.ValidateURL(*req.URL, policy) != nil || safehttp.ValidateURL(*req.URL, safehttp.Policy{AllowHTTP: true}) != nil {
			t.Fatalf("url %q accepted", *req.URL)
		}
		types, e := validateEventTypes(req.EventTypes)
		if e != nil {
			checkRefusal(t, e, fields...)
			return
		}
		seen := map[string]bool{}
		for _, typ := range types {
			if seen[typ] || !slices.Contains(EventTypes, typ) {
				t.Fatalf("event types %q kept", types)
			}
			seen[typ] = true
		}
	})
}
