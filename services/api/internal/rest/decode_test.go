package rest

import (
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
	at := time.Date(2026, 11, 28, 20, 14, 26, 123456000, time.UTC)
	for _, c := range []cursor{{At: &at, ID: "pay_1"}, {Seq: 42}} {
		got, ok := decodeCursor(c.encode())
		if !ok || got.ID != c.ID || got.Seq != c.Seq || (c.At != nil && !got.At.Equal(*c.At)) {
			t.Fatalf("round trip of %+v: %+v %v", c, got, ok)
		}
	}
	for _, bad := range []string{"%%%", "e30", "eyJ0IjoiMjAyNi0xMS0yOFQyMDoxNDoyNloifQ", strings.Repeat("A", maxCursorLen+1)} {
		if _, ok := decodeCursor(bad); ok {
			t.Errorf("cursor %q accepted", bad)
		}
	}
}
