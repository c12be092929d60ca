package rest

import (
	"bytes"
	"encoding/base64"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestDecodeErrorsNameTheField(t *testing.T) {
	type req struct {
		Amount  *string  `json:"amount"`
		ChainID *int64   `json:"chain_id"`
		Types   []string `json:"event_types"`
		Enabled *bool    `json:"enabled"`
	}
	tests := []struct {
		name, body, code, field string
		status                  int
	}{
		{"ok", `{"amount":"1"}`, "", "", 0},
		{"empty", ``, "invalid_json", "", 400},
		{"syntax", `{"amount":}`, "invalid_json", "", 400},
		{"truncated", `{"amount":"1"`, "invalid_json", "", 400},
		{"not an object", `"x"`, "invalid_json", "", 400},
		{"trailing object", `{}{}`, "invalid_json", "", 400},
		{"trailing garbage", `{} x`, "invalid_json", "", 400},
		{"unknown field", `{"amt":"1"}`, "unknown_field", "amt", 400},
		{"string for int", `{"chain_id":"1"}`, "invalid_chain_id", "chain_id", 400},
		{"number for string", `{"amount":1}`, "invalid_amount", "amount", 400},
		{"number in string array", `{"event_types":[1]}`, "invalid_event_types", "event_types", 400},
		{"string for bool", `{"enabled":"yes"}`, "invalid_enabled", "enabled", 400},
		{"too large", `{"amount":"` + strings.Repeat("1", maxBody) + `"}`, "body_too_large", "", 413},
		{"null", `null`, "invalid_json", "", 400},
		{"null after spaces", " \n null", "invalid_json", "", 400},
		{"field twice", `{"amount":"1","amount":"2"}`, "duplicate_field", "amount", 400},
		{"field twice, once escaped", `{"amount":"1","\u0061mount":"1"}`, "duplicate_field", "amount", 400},
		{"field in another case", `{"AMOUNT":"1"}`, "unknown_field", "AMOUNT", 400},
		{"field in mixed case", `{"Chain_Id":1}`, "unknown_field", "Chain_Id", 400},
		{"raw invalid UTF-8", "{\"amount\":\"1\xff\"}", "invalid_amount", "amount", 400},
		{"lone surrogate", `{"amount":"\ud800"}`, "invalid_amount", "amount", 400},
		{"NUL", `{"amount":"1\u0000"}`, "invalid_amount", "amount", 400},
		{"invalid UTF-8 in an array", "{\"event_types\":[\"a\",\"\xff\"]}", "invalid_event_types", "event_types.1", 400},
		{"spaces past the limit", strings.Repeat(" ", maxBody) + `{}`, "body_too_large", "", 413},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var v req
			w := httptest.NewRecorder()
			e := decode(w, httptest.NewRequest("POST", "/", strings.NewReader(tc.body)), &v, false)
			if tc.code == "" {
				if e != nil {
					t.Fatalf("unexpected %v", e)
				}
				return
			}
			if e == nil || e.Code != tc.code || e.Field != tc.field || e.Status != tc.status {
				t.Fatalf("got %+v, want %d %s field %q", e, tc.status, tc.code, tc.field)
			}
		})
	}
}

func TestCursorRoundTrip(t *testing.T) {
	h := &Handler{cfg: Config{AdminToken: "admin-token-0123456789"}}
	list := httptest.NewRequest("GET", "/v1/payments?limit=2", nil)
	at := time.Date(2026, 11, 28, 20, 14, 26, 123456000, time.UTC)
	for _, c := range []cursor{{At: &at, ID: "pay_1"}, {Seq: 42}} {
		s := h.sealCursor(list, "mch_1", c)
		got, ok := h.openCursor(list, "mch_1", s)
		if !ok || got.ID != c.ID || got.Seq != c.Seq || (c.At != nil && !got.At.Equal(*c.At)) {
			t.Fatalf("round trip of %+v: %+v %v", c, got, ok)
		}
		// Only the merchant and the list it was handed out for can use it, and only as it is.
		other := &Handler{cfg: Config{AdminToken: "another-admin-token-0123"}}
		deliveries := httptest.NewRequest("GET", "/v1/payments/pay_1/deliveries", nil)
		if _, ok := h.openCursor(list, "mch_2", s); ok {
			t.Error("another merchant's cursor accepted")
		}
		if _, ok := h.openCursor(deliveries, "mch_1", s); ok {
			t.Error("another list's cursor accepted")
		}
		if _, ok := other.openCursor(list, "mch_1", s); ok {
			t.Error("a cursor sealed under another admin token accepted")
		}
		raw, _ := base64.RawURLEncoding.DecodeString(s)
		for i := range raw {
			flipped := bytes.Clone(raw)
			flipped[i] ^= 0x10
			if _, ok := h.openCursor(list, "mch_1", base64.RawURLEncoding.EncodeToString(flipped)); ok {
				t.Errorf("cursor with byte %d flipped accepted", i)
			}
		}
		for n := range len(s) {
			if _, ok := h.openCursor(list, "mch_1", s[:n]); ok {
				t.Errorf("cursor cut to %d characters accepted", n)
			}
		}
	}
	unsealed := base64.RawURLEncoding.EncodeToString([]byte(`{"t":"2026-11-28T20:14:26Z","i":"pay_1"}`))
	for _, bad := range []string{"%%%", "e30", unsealed, strings.Repeat("A", maxCursorLen+1)} {
		if _, ok := h.openCursor(list, "mch_1", bad); ok {
			t.Errorf("cursor %q accepted", bad)
		}
	}
}
