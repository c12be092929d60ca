package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sethvargo/go-envconfig"

	"github.com/ctrip-pay/pipeline/shared/config"
)

func writeChains(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "chains.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

const goodChains = `chains:
  - {id: 1337, name: devnet, rpc_url: "http://127.0.0.1:8545", confirmations: 3, native: {symbol: ETH}}
`

func TestConfigDefaultsAndErrorsNameTheVariable(t *testing.T) {
	good := writeChains(t, goodChains)
	var cfg Config
	if err := config.LoadFrom(context.Background(), &cfg, envconfig.MapLookuper(map[string]string{"CHAINS_FILE": good})); err != nil {
		t.Fatal(err)
	}
	if cfg.ExpiryInterval != 5*time.Second || !cfg.MigrateOnStart || !cfg.StreamsProvision {
		t.Fatalf("defaults %+v", cfg)
	}
	for name, tc := range map[string]struct {
		env     map[string]string
		wantVar string
	}{
		"no chains file":       {map[string]string{}, "CHAINS_FILE"},
		"missing chains file":  {map[string]string{"CHAINS_FILE": filepath.Join(t.TempDir(), "nope.yaml")}, "CHAINS_FILE"},
		"chain without depth":  {map[string]string{"CHAINS_FILE": writeChains(t, strings.Replace(goodChains, "confirmations: 3", "confirmations: 0", 1))}, "CHAINS_FILE"},
		"zero expiry interval": {map[string]string{"CHAINS_FILE": good, "CONFIRMER_EXPIRY_INTERVAL": "0s"}, "CONFIRMER_EXPIRY_INTERVAL"},
		"bad expiry interval":  {map[string]string{"CHAINS_FILE": good, "CONFIRMER_EXPIRY_INTERVAL": "often"}, "CONFIRMER_EXPIRY_INTERVAL"},
		"log level":            {map[string]string{"CHAINS_FILE": good, "LOG_LEVEL": "loud"}, "LOG_LEVEL"},
	} {
		t.Run(name, func(t *testing.T) {
			var cfg Config
			err := config.LoadFrom(context.Background(), &cfg, envconfig.MapLookuper(tc.env))
			if err == nil || !strings.Contains(err.Error(), tc.wantVar) {
				t.Fatalf("error %v, want one naming %s", err, tc.wantVar)
			}
		})
	}
}
