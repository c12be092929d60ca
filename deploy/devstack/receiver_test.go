package main

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ctrip-pay/pipeline/shared/signature"
)

// The demo merchant takes a webhook only with a valid Standard Webhooks signature from its
// endpoint's secret, sent within the tolerance; any other is answered 401 and not recorded.
func TestReceiverVerifiesSignatures(t *testing.T) {
	secret, err := signature.NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	other, err := signature.NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	body := `{"type":"payment.created","data":{"payment_id":"pay_1","status":"pending"}}`
	tests := []struct {
		name     string
		signWith string
		sentAt   time.Duration // before now
		header   func(h http.Header)
		want     int
	}{
		{name: "valid", signWith: secret, want: http.StatusOK},
		{name: "another endpoint's secret", signWith: other, want: http.StatusUnauthorized},
		{name: "older than the tolerance", signWith: secret, sentAt: signature.DefaultTolerance + time.Minute, want: http.StatusUnauthorized},
		{name: "signed for another message id", signWith: secret, header: func(h http.Header) { h.Set("webhook-id", "msg_other") }, want: http.StatusUnauthorized},
		{name: "no signature", signWith: secret, header: func(h http.Header) { h.Del("webhook-signature") }, want: http.StatusUnauthorized},
		{name: "no timestamp", signWith: secret, header: func(h http.Header) { h.Del("webhook-timestamp") }, want: http.StatusUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &receiver{log: slog.New(slog.NewTextHandler(io.Discard, nil)), events: map[string][]string{}}
			if err := r.setSecret(secret); err != nil {
				t.Fatal(err)
			}
			key, err := signature.ParseSecret(tt.signWith)
			if err != nil {
				t.Fatal(err)
			}
			ts := time.Now().Add(-tt.sentAt)
			req := httptest.NewRequest("POST", "/webhooks", strings.NewReader(body))
			req.Header.Set("webhook-id", "msg_1")
			req.Header.Set("webhook-timestamp", strconv.FormatInt(ts.Unix(), 10))
			req.Header.Set("webhook-signature", signature.Sign(key, "msg_1", ts, []byte(body)))
			if tt.header != nil {
				tt.header(req.Header)
			}
			w := httptest.NewRecorder()
			r.ServeHTTP(w, req)
			if w.Code != tt.want {
				t.Fatalf("status %d, want %d", w.Code, tt.want)
			}
			recorded := r.allHave([]string{"pay_1"}, "payment.created")
			if recorded != (tt.want == http.StatusOK) {
				t.Errorf("recorded = %v with status %d", recorded, w.Code)
			}
		})
	}
}
