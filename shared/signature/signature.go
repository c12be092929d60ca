// Package signature implements Standard Webhooks 1.0 message signing
// (https://www.standardwebhooks.com/) plus the legacy body-only signature
// that the seed gateway sent as X-Webhook-Signature.
//
// The signed content is "<msg-id>.<unix-seconds>.<body>", which binds the
// body to a unique message id and a timestamp so a captured delivery cannot
// be replayed under a different id or long after it was sent.
package signature

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"
)

const (
	// SecretPrefix marks a Standard Webhooks secret whose remainder is the
	// standard-base64 encoding of the key bytes.
	SecretPrefix = "whsec_"

	// SecretSize is the number of random key bytes NewSecret generates.
	// 32 bytes matches the SHA-256 block-size guidance for HMAC keys.
	SecretSize = 32

	// DefaultTolerance is the replay window recommended by the spec.
	DefaultTolerance = 5 * time.Minute

	// maxTimestampDigits bounds the timestamp header so that parsing cannot
	// be fed arbitrarily long input; 19 digits covers every int64.
	maxTimestampDigits = 19

	versionV1 = "v1"
	redacted  = "[REDACTED]"
)

var (
	// ErrInvalidSecret is returned for empty or undecodable secrets, and by
	// Verify when given a zero Secret.
	ErrInvalidSecret = errors.New("signature: invalid secret")
	// ErrMissingHeader is returned when msg id, timestamp or signature is empty.
	ErrMissingHeader = errors.New("signature: missing header")
	// ErrInvalidTimestamp is returned when the timestamp header is not a
	// non-negative decimal integer of Unix seconds.
	ErrInvalidTimestamp = errors.New("signature: invalid timestamp")
	// ErrTimestampOutOfTolerance is returned when the timestamp is further
	// from now than the allowed tolerance, in either direction.
	ErrTimestampOutOfTolerance = errors.New("signature: timestamp outside tolerance")
	// ErrNoMatchingSignature is returned when no v1 signature in the header
	// matches the expected one.
	ErrNoMatchingSignature = errors.New("signature: no matching signature")
)

// Secret is an HMAC key. It never reveals its bytes through fmt, slog or
// encoding/json, so it is safe to embed in config structs that might get
// logged. The zero value is not a usable key.
//
// The key lives inside a closure because fmt falls back to reflection for
// unexported fields and for unsupported verbs, and reflection can print
// slices, arrays and pointed-to structs but only an address for a func. The
// func field also makes Secret incomparable, so nobody can compare secrets
// with a timing-leaky ==.
type Secret struct {
	key func() []byte
	// macs is a pool of HMAC-SHA256 states keyed with key, reset after use: a sender signs
	// every request with the same few keys, and keying a fresh HMAC costs two SHA-256 blocks
	// and a handful of allocations each time.
	macs func() *sync.Pool
}

// ParseSecret accepts either a Standard Webhooks secret ("whsec_" followed
// by standard base64) or, for secrets configured before the migration (for
// example "mysecret"), any other non-empty string whose bytes are used
// verbatim as the key. The input is not trimmed: whitespace would silently
// change a raw key, so it is the caller's job to supply the exact value.
func ParseSecret(s string) (Secret, error) {
	if s == "" {
		return Secret{}, fmt.Errorf("%w: empty", ErrInvalidSecret)
	}
	encoded, ok := strings.CutPrefix(s, SecretPrefix)
	if !ok {
		return newSecret([]byte(s)), nil
	}
	if encoded == "" {
		return Secret{}, fmt.Errorf("%w: empty key after %q prefix", ErrInvalidSecret, SecretPrefix)
	}
	b, err := base64.StdEncoding.DecodeString(encoded)
	if err != nil {
		// base64's error only carries an offset, never secret content.
		return Secret{}, fmt.Errorf("%w: %q prefix but bad base64: %v", ErrInvalidSecret, SecretPrefix, err)
	}
	if len(b) == 0 {
		return Secret{}, fmt.Errorf("%w: empty key after %q prefix", ErrInvalidSecret, SecretPrefix)
	}
	return newSecret(b), nil
}

func newSecret(b []byte) Secret {
	pool := &sync.Pool{New: func() any { return hmac.New(sha256.New, b) }}
	return Secret{key: func() []byte { return b }, macs: func() *sync.Pool { return pool }}
}

// hmacSum returns HMAC-SHA256 under the key of what write writes.
func (s Secret) hmacSum(write func(hash.Hash)) []byte {
	if s.macs == nil {
		m := hmac.New(sha256.New, s.bytes())
		write(m)
		return m.Sum(nil)
	}
	pool := s.macs()
	m := pool.Get().(hash.Hash)
	write(m)
	sum := m.Sum(make([]byte, 0, sha256.Size))
	m.Reset()
	pool.Put(m)
	return sum
}

// NewSecret generates a fresh Standard Webhooks secret in its "whsec_"
// string form, ready to be stored and later passed to ParseSecret.
func NewSecret() (string, error) {
	b := make([]byte, SecretSize)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("signature: generate secret: %w", err)
	}
	return SecretPrefix + base64.StdEncoding.EncodeToString(b), nil
}

// IsZero reports whether s holds no key, e.g. an unset config field.
func (s Secret) IsZero() bool {
	return len(s.bytes()) == 0
}

// bytes must not be exposed: callers could mutate or leak the key.
func (s Secret) bytes() []byte {
	if s.key == nil {
		return nil
	}
	return s.key()
}

// String redacts the key.
func (s Secret) String() string { return redacted }

// GoString redacts the key for %#v.
func (s Secret) GoString() string { return redacted }

// Format redacts the key for every verb; without it, verbs such as %d or %x
// would make fmt walk the struct and print the raw bytes.
func (s Secret) Format(f fmt.State, _ rune) {
	_, _ = io.WriteString(f, redacted)
}

// LogValue redacts the key in structured logs.
func (s Secret) LogValue() slog.Value { return slog.StringValue(redacted) }

// Sign returns the Standard Webhooks v1 signature "v1,<base64 HMAC-SHA256>"
// over "<msgID>.<unix seconds of ts>.<body>". A zero Secret signs with an
// empty key, which anyone could forge, so keys must come from ParseSecret.
func Sign(key Secret, msgID string, ts time.Time, body []byte) string {
	return signTimestamp(key, msgID, strconv.FormatInt(ts.Unix(), 10), body)
}

// Header returns the webhook-signature header value: one v1 signature per
// key, space separated. During a rotation the sender signs with both the old
// and new secret so that receivers holding either one can verify.
func Header(keys []Secret, msgID string, ts time.Time, body []byte) string {
	tsStr := strconv.FormatInt(ts.Unix(), 10)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(signTimestamp(k, msgID, tsStr, body))
	}
	return b.String()
}

// Legacy returns the seed gateway's X-Webhook-Signature value: lowercase
// hex HMAC-SHA256 of the body alone. Receivers must use the same key bytes
// the Secret holds: for a "whsec_" secret that is the base64-decoded key,
// not the "whsec_..." string; for a raw secret such as "mysecret" it is the
// string's bytes, which is what the seed gateway used. Because the body-only
// MAC has no id or timestamp it does not protect against replay; it exists
// only so existing merchant integrations keep working.
func Legacy(key Secret, body []byte) string {
	return hex.EncodeToString(key.hmacSum(func(m hash.Hash) { m.Write(body) }))
}

// Verify checks a Standard Webhooks delivery. tsHeader and sigHeader are the
// raw webhook-timestamp and webhook-signature header values. The timestamp
// must be within tolerance of now in either direction (a negative tolerance
// is treated as zero); future timestamps are rejected too because a clock far
// ahead would otherwise extend the replay window. Any one matching v1
// signature is sufficient, so verification keeps working while the sender
// is signing with both the old and new secret during a rotation.
func Verify(secret Secret, msgID, tsHeader, sigHeader string, body []byte, now time.Time, tolerance time.Duration) error {
	if secret.IsZero() {
		return fmt.Errorf("%w: empty", ErrInvalidSecret)
	}
	switch {
	case msgID == "":
		return fmt.Errorf("%w: webhook-id", ErrMissingHeader)
	case tsHeader == "":
		return fmt.Errorf("%w: webhook-timestamp", ErrMissingHeader)
	case strings.TrimSpace(sigHeader) == "":
		return fmt.Errorf("%w: webhook-signature", ErrMissingHeader)
	}

	sec, err := parseTimestamp(tsHeader)
	if err != nil {
		return err
	}
	tolerance = max(tolerance, 0)
	// time.Time.Sub saturates instead of overflowing, so absurd timestamps
	// land outside any tolerance rather than wrapping around into it.
	switch d := now.Sub(time.Unix(sec, 0)); {
	case d > tolerance:
		return fmt.Errorf("%w: %s old", ErrTimestampOutOfTolerance, d.Truncate(time.Second))
	case d < -tolerance:
		return fmt.Errorf("%w: %s in the future", ErrTimestampOutOfTolerance, (-d).Truncate(time.Second))
	}

	// Sign over the header exactly as received, per the spec, rather than a
	// re-formatted integer.
	expected := mac(secret, msgID, tsHeader, body)
	for _, field := range strings.Fields(sigHeader) {
		version, encoded, ok := strings.Cut(field, ",")
		if !ok || version != versionV1 {
			// Unknown versions (e.g. v1a asymmetric) are skipped so that a
			// sender can add new schemes without breaking old receivers.
			continue
		}
		got, err := base64.StdEncoding.DecodeString(encoded)
		if err != nil {
			continue
		}
		if hmac.Equal(got, expected) {
			return nil
		}
	}
	return ErrNoMatchingSignature
}

// parseTimestamp accepts only plain decimal digits: strconv.ParseInt would
// also accept signs, which the spec does not allow.
func parseTimestamp(s string) (int64, error) {
	if len(s) > maxTimestampDigits {
		return 0, fmt.Errorf("%w: too long", ErrInvalidTimestamp)
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, fmt.Errorf("%w: %q is not decimal seconds", ErrInvalidTimestamp, s)
		}
	}
	sec, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: %v", ErrInvalidTimestamp, err)
	}
	return sec, nil
}

func signTimestamp(key Secret, msgID, ts string, body []byte) string {
	return versionV1 + "," + base64.StdEncoding.EncodeToString(mac(key, msgID, ts, body))
}

func mac(key Secret, msgID, ts string, body []byte) []byte {
	// Writing the parts separately avoids copying the body just to build
	// the signed content.
	return key.hmacSum(func(m hash.Hash) {
		writeString(m, msgID)
		writeString(m, ".")
		writeString(m, ts)
		writeString(m, ".")
		m.Write(body)
	})
}

func writeString(h hash.Hash, s string) {
	_, _ = io.WriteString(h, s)
}
