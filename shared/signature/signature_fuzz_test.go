package signature

import (
	"bytes"
	"crypto/hmac"
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"
)

// FuzzVerify: what Header signs, Verify accepts; a change of any one byte of the body, the id
// or the timestamp is refused; arbitrary header values never panic, and are accepted only when
// they carry the right v1 signature over a timestamp within tolerance.
func FuzzVerify(f *testing.F) {
	f.Add("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_p5jXN8AQM9LWM0D4loKWxJek", int64(1614265330),
		[]byte(`{"test": 2432232314}`), uint(0), byte(1), "1614265330", "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")
	f.Add("mysecret", "evt_1", int64(1795914123), []byte(`{"id":"evt_1","amount":1200}`), uint(5), byte(0x80), "", "")
	f.Add("whsec_", "x", int64(0), []byte{}, uint(0), byte(0), "0", "v1, v1,")
	f.Add("whsec_AAAA", "a.b", int64(-1), []byte("\x00\xff"), uint(1), byte(0xff), "-1", "v2,abc v1,=== v1,AAAA")
	f.Add("k", "id", int64(1<<62), []byte("x"), uint(7), byte(2), "9223372036854775807", strings.Repeat("v1,A ", 50))
	f.Add("k", "id", int64(1795914123), []byte("x"), uint(3), byte(4), "01795914123", "v1,"+strings.Repeat("A", 44))
	f.Fuzz(func(t *testing.T, secret, id string, unix int64, body []byte, pos uint, delta byte, tsHeader, sigHeader string) {
		key, err := ParseSecret(secret)
		if err != nil {
			if !errors.Is(err, ErrInvalidSecret) {
				t.Fatalf("ParseSecret error %v", err)
			}
			key = newSecret([]byte("fuzz"))
		}
		// A sender's clock is after 1970 (the header is unsigned decimal seconds) and before 36812.
		now := time.Unix(int64(uint64(unix)%(1<<40)), 0)
		const tol = DefaultTolerance

		// Arbitrary headers: no panic, and acceptance only with a genuine signature.
		if err := Verify(key, id, tsHeader, sigHeader, body, now, tol); err == nil {
			sec, perr := parseTimestamp(tsHeader)
			if perr != nil || id == "" {
				t.Fatalf("accepted id %q timestamp %q: %v", id, tsHeader, perr)
			}
			if d := now.Sub(time.Unix(sec, 0)); d > tol || d < -tol {
				t.Fatalf("accepted timestamp %q %v away from now", tsHeader, d)
			}
			if !carries(sigHeader, mac(key, id, tsHeader, body)) {
				t.Fatalf("accepted %q without the right signature", sigHeader)
			}
		}

		if id == "" {
			return
		}
		ts := strconv.FormatInt(now.Unix(), 10)
		sig := Header([]Secret{key}, id, now, body)
		if sig != Sign(key, id, now, body) {
			t.Fatalf("Header %q != Sign %q for one key", sig, Sign(key, id, now, body))
		}
		if err := Verify(key, id, ts, sig, body, now, tol); err != nil {
			t.Fatalf("own signature refused: %v", err)
		}
		if delta == 0 {
			delta = 1
		}
		if len(body) > 0 {
			changed := bytes.Clone(body)
			changed[pos%uint(len(body))] ^= delta
			if Verify(key, id, ts, sig, changed, now, tol) == nil {
				t.Fatalf("body changed at %d accepted", pos%uint(len(body)))
			}
		}
		changedID := []byte(id)
		changedID[pos%uint(len(id))] ^= delta
		if Verify(key, string(changedID), ts, sig, body, now, tol) == nil {
			t.Fatalf("id changed to %q accepted", changedID)
		}
		changedTS := []byte(ts)
		changedTS[pos%uint(len(ts))] ^= delta
		if Verify(key, id, string(changedTS), sig, body, now, tol) == nil {
			t.Fatalf("timestamp changed to %q accepted", changedTS)
		}
	})
}

// carries reports whether a webhook-signature header holds a v1 signature equal to want.
func carries(header string, want []byte) bool {
	for _, field := range strings.Fields(header) {
		version, encoded, ok := strings.Cut(field, ",")
		if !ok || version != versionV1 {
			continue
		}
		if got, err := base64.StdEncoding.DecodeString(encoded); err == nil && hmac.Equal(got, want) {
			return true
		}
	}
	return false
}
