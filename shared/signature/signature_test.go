package signature

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Test vector from the Standard Webhooks specification.
const (
	specSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	specMsgID  = "msg_p5jXN8AQM9LWM0D4loKWxJek"
	specTS     = 1614265330
	specBody   = `{"test": 2432232314}`
	specSig    = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
)

func mustParse(t *testing.T, s string) Secret {
	t.Helper()
	k, err := ParseSecret(s)
	if err != nil {
		t.Fatalf("ParseSecret(%q): %v", s, err)
	}
	return k
}

func TestSignSpecVector(t *testing.T) {
	t.Parallel()
	key := mustParse(t, specSecret)
	got := Sign(key, specMsgID, time.Unix(specTS, 0), []byte(specBody))
	if got != specSig {
		t.Fatalf("Sign = %q, want %q", got, specSig)
	}
}

func TestSignIgnoresSubSecondAndZone(t *testing.T) {
	t.Parallel()
	key := mustParse(t, specSecret)
	loc := time.FixedZone("UTC+8", 8*3600)
	ts := time.Unix(specTS, 999_999_999).In(loc)
	if got := Sign(key, specMsgID, ts, []byte(specBody)); got != specSig {
		t.Fatalf("Sign = %q, want %q", got, specSig)
	}
}

func TestParseSecret(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		in      string
		wantKey []byte
		wantErr error
	}{
		{name: "whsec decodes base64", in: "whsec_" + base64.StdEncoding.EncodeToString([]byte("0123456789abcdef")), wantKey: []byte("0123456789abcdef")},
		{name: "spec secret", in: specSecret, wantKey: mustDecode(t, "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")},
		{name: "raw legacy secret", in: "mysecret", wantKey: []byte("mysecret")},
		{name: "raw secret that is valid base64 stays raw", in: "c2VjcmV0", wantKey: []byte("c2VjcmV0")},
		{name: "prefix is case sensitive", in: "WHSEC_abc", wantKey: []byte("WHSEC_abc")},
		{name: "empty", in: "", wantErr: ErrInvalidSecret},
		{name: "prefix only", in: "whsec_", wantErr: ErrInvalidSecret},
		{name: "bad base64", in: "whsec_not*base64!", wantErr: ErrInvalidSecret},
		{name: "url-safe alphabet rejected", in: "whsec_ab-_", wantErr: ErrInvalidSecret},
		{name: "unpadded length needs no padding", in: "whsec_YWJj", wantKey: []byte("abc")},
		{name: "missing padding rejected", in: "whsec_YWI", wantErr: ErrInvalidSecret},
		{name: "padding only decodes to nothing", in: "whsec_====", wantErr: ErrInvalidSecret},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := ParseSecret(tt.in)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				if !got.IsZero() {
					t.Fatal("failed parse returned a non-zero Secret")
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if !bytes.Equal(got.bytes(), tt.wantKey) {
				t.Fatalf("key = %q, want %q", got.bytes(), tt.wantKey)
			}
		})
	}
}

func TestParseSecretErrorDoesNotLeak(t *testing.T) {
	t.Parallel()
	const s = "whsec_SuperSecretValue*"
	_, err := ParseSecret(s)
	if err == nil {
		t.Fatal("expected error")
	}
	if strings.Contains(err.Error(), "SuperSecretValue") {
		t.Fatalf("error leaks secret: %v", err)
	}
}

func mustDecode(t *testing.T, s string) []byte {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestNewSecret(t *testing.T) {
	t.Parallel()
	seen := make(map[string]bool)
	for range 8 {
		s, err := NewSecret()
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(s, SecretPrefix) {
			t.Fatalf("%q lacks %q prefix", s, SecretPrefix)
		}
		if seen[s] {
			t.Fatalf("duplicate secret %q", s)
		}
		seen[s] = true
		key := mustParse(t, s)
		if n := len(key.bytes()); n != SecretSize {
			t.Fatalf("decoded key is %d bytes, want %d", n, SecretSize)
		}
	}
}

func TestHeader(t *testing.T) {
	t.Parallel()
	spec := mustParse(t, specSecret)
	other := mustParse(t, "mysecret")
	ts := time.Unix(specTS, 0)
	body := []byte(specBody)
	otherSig := Sign(other, specMsgID, ts, body)

	tests := []struct {
		name string
		keys []Secret
		want string
	}{
		{name: "no keys", keys: nil, want: ""},
		{name: "one key", keys: []Secret{spec}, want: specSig},
		{name: "rotation keeps order", keys: []Secret{spec, other}, want: specSig + " " + otherSig},
		{name: "rotation reversed", keys: []Secret{other, spec}, want: otherSig + " " + specSig},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := Header(tt.keys, specMsgID, ts, body); got != tt.want {
				t.Fatalf("Header = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestLegacy(t *testing.T) {
	t.Parallel()
	// Expected values computed independently (Python hmac) so that a change
	// in algorithm or key handling breaks this test rather than merchants.
	tests := []struct {
		name   string
		secret string
		body   string
		want   string
	}{
		{name: "raw secret uses string bytes", secret: "mysecret", body: "hello",
			want: "f09399f0c446d84b31a080e57ec483392d41e6f512f3e7ada5027abbcd358c2a"},
		{name: "whsec secret uses decoded bytes", secret: specSecret, body: specBody,
			want: "e2cb4f5251572539d458bfb8a7adb533b08801e6a794467e06f771debbb0818b"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := Legacy(mustParse(t, tt.secret), []byte(tt.body)); got != tt.want {
				t.Fatalf("Legacy = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestVerify(t *testing.T) {
	t.Parallel()
	key := mustParse(t, specSecret)
	oldKey := mustParse(t, "whsec_"+base64.StdEncoding.EncodeToString([]byte("previous-secret-bytes")))
	unrelated := mustParse(t, "mysecret")
	body := []byte(specBody)
	ts := time.Unix(specTS, 0)
	tsHeader := strconv.FormatInt(specTS, 10)
	now := ts.Add(30 * time.Second)
	tol := DefaultTolerance

	tests := []struct {
		name      string
		secret    Secret
		msgID     string
		tsHeader  string
		sigHeader string
		body      []byte
		now       time.Time
		tolerance time.Duration
		wantErr   error
	}{
		{name: "spec vector", secret: key, msgID: specMsgID, tsHeader: tsHeader, sigHeader: specSig, body: body, now: now, tolerance: tol},
		{name: "exactly at tolerance edge", secret: key, msgID: specMsgID, tsHeader: tsHeader, sigHeader: specSig, body: body, now: ts.Add(tol), tolerance: tol},
		{name: "exactly at future edge", secret: key, msgID: specMsgID, tsHeader: tsHeader, sigHeader: specSig, body: body, now: ts.Add(-tol), tolerance: tol},
		{name: "rotation: second signature matches", secret: key, msgID: specMsgID, tsHeader: tsHeader,
			sigHeader: Sign(oldKey, specMsgID, ts, body) + " " + specSig, body: body, now: now, tolerance: tol},
		{name: "rotation: first signature matches", secret: oldKey, msgID: specMsgID, tsHeader: tsHeader,
			sigHeader: Header([]Secret{oldKey, key}, specMsgID, ts, body), body: body, now: now, tolerance: tol},
		{name: "unknown versions and garbage are skipped", secret: key, msgID: specMsgID, tsHeader: tsHeader,
			sigHeader: "v1a,abcd v2,xyz nocomma v1,!!!notbase64 " + specSig, body: body, now: now, tolerance: tol},
		{name: "extra whitespace tolerated", secret: key, msgID: specMsgID, tsHeader: tsHeader,
			sigHeader: "  " + specSig + "  ", body: body, now: now, tolerance: tol},

		{name: "tampered body", secret: key, msgID: specMsgID, tsHeader: tsHeader, sigHeader: specSig,
			body: []byte(`{"test": 2432232315}`), now: now, tolerance: tol, wantErr: ErrNoMatchingSignature},
		{name: "empty body", secret: key, msgID: specMsgID, tsHeader: tsHeader, sigHeader: specSig,
			body: nil, now: now, tolerance: tol, wantErr: ErrNoMatchingSignature},
		{name: "wrong msg id", secret: key, msgID: "msg_other", tsHeader: tsHeader, sigHeader: specSig,
			body: body, now: now, tolerance: tol, wantErr: ErrNoMatchingSignature},
		{name: "timestamp header altered within tolerance", secret: key, msgID: specMsgID, tsHeader: strconv.FormatInt(specTS+1, 10), sigHeader: specSig,
			body: body, now: now, tolerance: tol, wantErr: ErrNoMatchingSignature},
		{name: "leading zero timestamp does not match", secret: key, msgID: specMsgID, tsHeader: "0" + tsHeader, sigHeader: specSig,
			body: body, now: now, tolerance: tol, wantErr: ErrNoMatchingSignature},
		{name: "wrong secret", secret: unrelated, msgID: specMsgID, tsHeader: tsHeader, sigHeader: specSig,
			body: body, now: now, tolerance: tol, wantErr: ErrNoMatchingSignature},
		{name: "rotation: neither signature matches", secret: unrelated, msgID: specMsgID, tsHeader: tsHeader,
			sigHeader: Header([]Secret{oldKey, key}, specMsgID, ts, body), body: body, now: now, tolerance: tol, wantErr: ErrNoMatchingSignature},
		{name: "signature without version", secret: key, msgID: specMsgID, tsHeader: tsHeader,
			sigHeader: strings.TrimPrefix(specSig, "v1,"), body: body, now: now, tolerance: tol, wantErr: ErrNoMatchingSignature},
		{name: "truncated signature", secret: key, msgID: specMsgID, tsHeader: tsHeader,
			sigHeader: "v1," + base64.StdEncoding.EncodeToString(mustDecode(t, strings.TrimPrefix(specSig, "v1,"))[:16]), body: body, now: now, tolerance: tol, wantErr: ErrNoMatchingSignature},

		{name: "stale timestamp", secret: key, msgID: specMsgID, tsHeader: tsHeader, sigHeader: specSig,
			body: body, now: ts.Add(tol + time.Second), tolerance: tol, wantErr: ErrTimestampOutOfTolerance},
		{name: "future timestamp", secret: key, msgID: specMsgID, tsHeader: tsHeader, sigHeader: specSig,
			body: body, now: ts.Add(-tol - time.Second), tolerance: tol, wantErr: ErrTimestampOutOfTolerance},
		{name: "negative tolerance treated as zero", secret: key, msgID: specMsgID, tsHeader: tsHeader, sigHeader: specSig,
			body: body, now: ts.Add(time.Second), tolerance: -time.Hour, wantErr: ErrTimestampOutOfTolerance},
		{name: "huge timestamp does not overflow into range", secret: key, msgID: specMsgID, tsHeader: "9223372036854775807", sigHeader: specSig,
			body: body, now: now, tolerance: tol, wantErr: ErrTimestampOutOfTolerance},

		{name: "non-numeric timestamp", secret: key, msgID: specMsgID, tsHeader: "yesterday", sigHeader: specSig,
			body: body, now: now, tolerance: tol, wantErr: ErrInvalidTimestamp},
		{name: "signed timestamp", secret: key, msgID: specMsgID, tsHeader: "+" + tsHeader, sigHeader: specSig,
			body: body, now: now, tolerance: tol, wantErr: ErrInvalidTimestamp},
		{name: "negative timestamp", secret: key, msgID: specMsgID, tsHeader: "-1", sigHeader: specSig,
			body: body, now: now, tolerance: tol, wantErr: ErrInvalidTimestamp},
		{name: "fractional timestamp", secret: key, msgID: specMsgID, tsHeader: tsHeader + ".5", sigHeader: specSig,
			body: body, now: now, tolerance: tol, wantErr: ErrInvalidTimestamp},
		{name: "overflowing timestamp", secret: key, msgID: specMsgID, tsHeader: "9999999999999999999", sigHeader: specSig,
			body: body, now: now, tolerance: tol, wantErr: ErrInvalidTimestamp},
		{name: "overlong timestamp", secret: key, msgID: specMsgID, tsHeader: strings.Repeat("1", 100), sigHeader: specSig,
			body: body, now: now, tolerance: tol, wantErr: ErrInvalidTimestamp},

		{name: "missing msg id", secret: key, msgID: "", tsHeader: tsHeader, sigHeader: specSig,
			body: body, now: now, tolerance: tol, wantErr: ErrMissingHeader},
		{name: "missing timestamp", secret: key, msgID: specMsgID, tsHeader: "", sigHeader: specSig,
			body: body, now: now, tolerance: tol, wantErr: ErrMissingHeader},
		{name: "missing signature", secret: key, msgID: specMsgID, tsHeader: tsHeader, sigHeader: " ",
			body: body, now: now, tolerance: tol, wantErr: ErrMissingHeader},
		{name: "zero secret", secret: Secret{}, msgID: specMsgID, tsHeader: tsHeader, sigHeader: specSig,
			body: body, now: now, tolerance: tol, wantErr: ErrInvalidSecret},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := Verify(tt.secret, tt.msgID, tt.tsHeader, tt.sigHeader, tt.body, tt.now, tt.tolerance)
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("Verify: unexpected error: %v", err)
				}
				return
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Verify error = %v, want %v", err, tt.wantErr)
			}
		})
	}
}

func TestSignVerifyRoundTrip(t *testing.T) {
	t.Parallel()
	raw, err := NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	key := mustParse(t, raw)
	ts := time.Now()
	body := []byte(`{"id":"evt_1","amount":1200}`)
	sig := Header([]Secret{key}, "msg_1", ts, body)
	if err := Verify(key, "msg_1", strconv.FormatInt(ts.Unix(), 10), sig, body, ts, DefaultTolerance); err != nil {
		t.Fatalf("round trip failed: %v", err)
	}
}

func TestSecretRedaction(t *testing.T) {
	t.Parallel()
	const raw = "mysecret-do-not-log"
	key := mustParse(t, raw)
	keyBytes := key.bytes()

	type config struct {
		Public  Secret
		private Secret
	}
	cfg := config{Public: key, private: key}

	outputs := map[string]string{
		"String":   key.String(),
		"GoString": key.GoString(),
	}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%o", "%b", "%c", "%U", "%10.3s"} {
		outputs["Sprintf "+verb] = fmt.Sprintf(verb, key)
		outputs["Sprintf pointer "+verb] = fmt.Sprintf(verb, &key)
		outputs["Sprintf struct "+verb] = fmt.Sprintf(verb, cfg)
		outputs["Sprintf slice "+verb] = fmt.Sprintf(verb, []Secret{key})
	}
	outputs["Sprint"] = fmt.Sprint(key)
	outputs["Sprintln"] = fmt.Sprintln(key)

	var logBuf bytes.Buffer
	jsonLog := slog.New(slog.NewJSONHandler(&logBuf, nil))
	jsonLog.Info("cfg", "secret", key, "cfg", cfg)
	textLog := slog.New(slog.NewTextHandler(&logBuf, nil))
	textLog.Info("cfg", "secret", key, "cfg", cfg, slog.Any("any", key))
	outputs["slog"] = logBuf.String()

	js, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	outputs["json"] = string(js)

	leaks := []string{
		raw,
		hex.EncodeToString(keyBytes),
		strings.ToUpper(hex.EncodeToString(keyBytes)),
		fmt.Sprint(keyBytes), // [109 121 ...]
		fmt.Sprintf("%o", keyBytes[:4]),
		strings.Trim(fmt.Sprint(keyBytes[:4]), "[]"),
	}
	for name, out := range outputs {
		for _, leak := range leaks {
			if strings.Contains(out, leak) {
				t.Errorf("%s leaks key material %q: %s", name, leak, out)
			}
		}
	}
	if !strings.Contains(outputs["slog"], redacted) {
		t.Errorf("slog output lacks redaction marker: %s", outputs["slog"])
	}
	if got := key.LogValue(); got.Kind() != slog.KindString || got.String() != redacted {
		t.Errorf("LogValue = %v", got)
	}
}
