package main

import (
	"strings"
	"testing"
	"time"

	"github.com/ctrip-pay/pipeline/shared/testkit"
)

func TestConfigDefaultsAreTheContract(t *testing.T) {
	var cfg Config
	if err := testkit.LoadConfig(&cfg, nil); err != nil {
		t.Fatal(err)
	}
	if got := cfg.Backoff.String(); got != "5s,5m0s,30m0s,2h0m0s,5h0m0s,10h0m0s,10h0m0s" {
		t.Errorf("default WEBHOOK_BACKOFF = %s", got)
	}
	if cfg.Timeout != 10*time.Second || cfg.AllowHTTP || cfg.AllowPrivateNetworks || !cfg.MigrateOnStart || !cfg.StreamsProvision {
		t.Errorf("defaults %+v", cfg)
	}
}

// The URL policy is read from the same variables as the api's (both embed safehttp.Policy).
func TestConfigReadsTheURLPolicy(t *testing.T) {
	var cfg Config
	if err := testkit.LoadConfig(&cfg, map[string]string{"WEBHOOK_ALLOW_HTTP": "true", "WEBHOOK_ALLOW_PRIVATE_NETWORKS": "true",
		"WEBHOOK_URL": "http://127.0.0.1:9/hook", "WEBHOOK_SECRET": "s"}); err != nil {
		t.Fatal(err)
	}
	if !cfg.AllowHTTP || !cfg.AllowPrivateNetworks {
		t.Fatalf("policy %+v, want both allowed", cfg.Policy)
	}
}

func TestConfigErrorsNameTheVariable(t *testing.T) {
	for name, tc := range map[string]struct {
		env     map[string]string
		wantVar string
	}{
		"bad backoff":        {map[string]string{"WEBHOOK_BACKOFF": "5s,soon"}, "WEBHOOK_BACKOFF"},
		"negative backoff":   {map[string]string{"WEBHOOK_BACKOFF": "5s,-1s"}, "WEBHOOK_BACKOFF"},
		"zero timeout":       {map[string]string{"WEBHOOK_TIMEOUT": "0s"}, "WEBHOOK_TIMEOUT"},
		"zero concurrency":   {map[string]string{"WEBHOOK_CONCURRENCY": "0"}, "WEBHOOK_CONCURRENCY"},
		"not a number":       {map[string]string{"WEBHOOK_CONCURRENCY": "many"}, "WEBHOOK_CONCURRENCY"},
		"fan-out workers":    {map[string]string{"WEBHOOK_FANOUT_CONCURRENCY": "64"}, "WEBHOOK_FANOUT_CONCURRENCY"},
		"http url":           {map[string]string{"WEBHOOK_URL": "http://merchant.example/hook", "WEBHOOK_SECRET": "s"}, "WEBHOOK_URL"},
		"metadata url":       {map[string]string{"WEBHOOK_URL": "https://169.254.169.254/", "WEBHOOK_SECRET": "s"}, "WEBHOOK_URL"},
		"url without secret": {map[string]string{"WEBHOOK_URL": "https://merchant.example/hook"}, "WEBHOOK_SECRET"},
		"bad whsec":          {map[string]string{"WEBHOOK_URL": "https://merchant.example/hook", "WEBHOOK_SECRET": "whsec_***"}, "WEBHOOK_SECRET"},
		"log level":          {map[string]string{"LOG_LEVEL": "loud"}, "LOG_LEVEL"},
	} {
		t.Run(name, func(t *testing.T) {
			var cfg Config
			err := testkit.LoadConfig(&cfg, tc.env)
			if err == nil || !strings.Contains(err.Error(), tc.wantVar) {
				t.Fatalf("error %v, want one naming %s", err, tc.wantVar)
			}
		})
	}
	var cfg Config
	ok := map[string]string{"WEBHOOK_URL": "http://127.0.0.1:8080/hook", "WEBHOOK_SECRET": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
		"WEBHOOK_ALLOW_HTTP": "true", "WEBHOOK_ALLOW_PRIVATE_NETWORKS": "true", "WEBHOOK_BACKOFF": "10ms, 20ms"}
	if err := testkit.LoadConfig(&cfg, ok); err != nil {
		t.Fatalf("a local receiver allowed by both flags: %v", err)
	}
	if len(cfg.Backoff) != 2 || cfg.Backoff[1] != 20*time.Millisecond {
		t.Fatalf("backoff %v", cfg.Backoff)
	}
}
