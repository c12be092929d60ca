package main

import (
	"bytes"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ctrip-pay/pipeline/services/api/internal/wallet/wallettest"
	"github.com/ctrip-pay/pipeline/shared/testkit"
)

func TestConfigFromEnvironment(t *testing.T) {
	chainsFile := testkit.TempFile(t, "chains.yaml", testChains)
	xpub := wallettest.XPub(t)
	xprv := wallettest.Account(t).String()
	valid := map[string]string{"ADMIN_TOKEN": testAdminToken, "WALLET_XPUB": xpub, "CHAINS_FILE": chainsFile}
	with := func(k, v string) map[string]string {
		m := map[string]string{}
		for kk, vv := range valid {
			m[kk] = vv
		}
		if v == "" {
			delete(m, k)
		} else {
			m[k] = v
		}
		return m
	}
	tests := []struct {
		name    string
		env     map[string]string
		wantVar string
	}{
		{"valid", valid, ""},
		{"missing ADMIN_TOKEN", with("ADMIN_TOKEN", ""), "ADMIN_TOKEN"},
		{"short ADMIN_TOKEN", with("ADMIN_TOKEN", "short"), "ADMIN_TOKEN"},
		{"missing WALLET_XPUB", with("WALLET_XPUB", ""), "WALLET_XPUB"},
		{"xprv in WALLET_XPUB", with("WALLET_XPUB", xprv), "WALLET_XPUB"},
		{"garbage WALLET_XPUB", with("WALLET_XPUB", "xpub123"), "WALLET_XPUB"},
		{"missing CHAINS_FILE", with("CHAINS_FILE", ""), "CHAINS_FILE"},
		{"unreadable CHAINS_FILE", with("CHAINS_FILE", filepath.Join(t.TempDir(), "nope.yaml")), "CHAINS_FILE"},
		{"PAYMENT_EXPIRY too short", with("PAYMENT_EXPIRY", "30s"), "PAYMENT_EXPIRY"},
		{"PAYMENT_EXPIRY too long", with("PAYMENT_EXPIRY", "200h"), "PAYMENT_EXPIRY"},
		{"PAYMENT_EXPIRY not a duration", with("PAYMENT_EXPIRY", "soon"), "PAYMENT_EXPIRY"},
		{"API_ADDR unset takes the default", with("API_ADDR", ""), ""},
		{"bad LOG_LEVEL", with("LOG_LEVEL", "loud"), "LOG_LEVEL"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var cfg Config
			err := testkit.LoadConfig(&cfg, tc.env)
			if tc.wantVar == "" {
				if err != nil {
					t.Fatal(err)
				}
				if cfg.APIAddr != ":8080" || cfg.PaymentExpiry != 30*time.Minute || cfg.AllowHTTP || cfg.AllowPrivateNetworks {
					t.Fatalf("defaults: %+v", cfg)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantVar) {
				t.Fatalf("error %v, want one naming %s", err, tc.wantVar)
			}
			for _, secret := range []string{xprv, testAdminToken} {
				if strings.Contains(err.Error(), secret) {
					t.Fatal("the error repeats a secret")
				}
			}
		})
	}
}

// syncBuffer is a log sink safe for the handler's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Logs never carry the admin token, API keys or webhook secrets, even at debug level and when
// authentication fails.
func TestLogsCarryNoSecrets(t *testing.T) {
	h := newHarness(t)
	var logs syncBuffer
	srv := h.serveHandler(slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	key := createMerchant(t, srv.URL, "m").APIKey
	var secrets []string
	r := call(t, srv.URL, "POST", "/v1/endpoints", key, `{"url":"https://example.com/h"}`)
	var ep endpoint
	r.json(t, &ep)
	secrets = append(secrets, ep.Secret)
	r = call(t, srv.URL, "POST", "/v1/endpoints/"+ep.ID+"/rotate-secret", key, nil)
	var rot endpoint
	r.json(t, &rot)
	secrets = append(secrets, rot.Secret)
	call(t, srv.URL, "POST", "/v1/payments", key, `{"chain_id":1337,"token":"ETH","amount":"1"}`)
	call(t, srv.URL, "POST", "/v1/payments", key+"x", `{}`)
	call(t, srv.URL, "POST", "/v1/merchants", "", `{}`, "Authorization", "Bearer "+testAdminToken+"-wrong")
	call(t, srv.URL, "GET", "/v1/payments?cursor="+key, key, nil)

	out := logs.String()
	if !strings.Contains(out, "merchant created") || !strings.Contains(out, "endpoint secret rotated") || !strings.Contains(out, `"status":401`) {
		t.Fatalf("expected log lines missing:\n%s", out)
	}
	for _, s := range append(secrets, testAdminToken, key, strings.TrimPrefix(key, "sk_live_"), wallettest.XPub(t)) {
		if s == "" || strings.Contains(out, s) {
			t.Fatalf("a secret appears in the logs (or was empty):\n%s", out)
		}
		if strings.HasPrefix(s, "whsec_") && strings.Contains(out, strings.TrimPrefix(s, "whsec_")) {
			t.Fatal("a webhook key appears in the logs")
		}
	}
}
