package signature

import (
	"strings"
	"testing"
	"time"
)

// BenchmarkSign: the two signatures the sender computes per request for an endpoint with the
// legacy header on (Standard Webhooks header and X-Webhook-Signature), over a 700-byte body.
func BenchmarkSign(b *testing.B) {
	key, err := ParseSecret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	if err != nil {
		b.Fatal(err)
	}
	keys := []Secret{key}
	body := []byte(`{"id":"evt_01JDZK7M4N0000000000000000","data":"` + strings.Repeat("x", 640) + `"}`)
	now := time.Now()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			_ = Header(keys, "evt_01JDZK7M4N0000000000000000", now, body)
			_ = Legacy(key, body)
		}
	})
}
