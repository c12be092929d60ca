package main

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ctrip-pay/pipeline/shared/testkit"
)

const goodChains = `chains:
  - {id: 1337, name: devnet, rpc_url: "http://127.0.0.1:8545", confirmations: 3, native: {symbol: ETH}}
`

func TestConfigDefaultsAndErrorsNameTheVariable(t *testing.T) {
	good := testkit.TempFile(t, "chains.yaml", goodChains)
	var cfg Config
	if err := testkit.LoadConfig(&cfg, map[string]string{"CHAINS_FILE": good}); err != nil {
		t.Fatal(err)
	}
	if cfg.ExpiryInterval != 5*time.Second || !cfg.MigrateOnStart || !cfg.StreamsProvision {
		t.Fatalf("defaults %+v", cfg)
	}
	noDepth := testkit.TempFile(t, "chains.yaml", strings.Replace(goodChains, "confirmations: 3", "confirmations: 0", 1))
	for name, tc := range map[string]struct {
		env     map[string]string
		wantVar string
	}{
		"no chains file":       {map[string]string{}, "CHAINS_FILE"},
		"missing chains file":  {map[string]string{"CHAINS_FILE": filepath.Join(t.TempDir(), "nope.yaml")}, "CHAINS_FILE"},
		"chain without depth":  {map[string]string{"CHAINS_FILE": noDepth}, "CHAINS_FILE"},
		"zero expiry interval": {map[string]string{"CHAINS_FILE": good, "CONFIRMER_EXPIRY_INTERVAL": "0s"}, "CONFIRMER_EXPIRY_INTERVAL"},
		"bad expiry interval":  {map[string]string{"CHAINS_FILE": good, "CONFIRMER_EXPIRY_INTERVAL": "often"}, "CONFIRMER_EXPIRY_INTERVAL"},
		"log level":            {map[string]string{"CHAINS_FILE": good, "LOG_LEVEL": "loud"}, "LOG_LEVEL"},
	} {
		t.Run(name, func(t *testing.T) {
			var cfg Config
			err := testkit.LoadConfig(&cfg, tc.env)
			if err == nil || !strings.Contains(err.Error(), tc.wantVar) {
				t.Fatalf("error %v, want one naming %s", err, tc.wantVar)
			}
		})
	}
}
