package main

import (
	"errors"
	"testing"
	"time"

	"github.com/ctrip-pay/pipeline/shared/config"
	"github.com/ctrip-pay/pipeline/shared/testkit"
)

func TestConfigFromEnvironment(t *testing.T) {
	cases := []struct {
		name    string
		env     map[string]string
		wantVar string // the variable the error names; "" for success
		check   func(t *testing.T, c Config)
	}{
		{name: "defaults", env: map[string]string{"CHAINS_FILE": "chains.yaml"}, check: func(t *testing.T, c Config) {
			if c.PollInterval != time.Second || c.BatchBlocks != 100 || c.Prefetch != 4 || mustStart(t, c) != nil {
				t.Fatalf("defaults: %+v", c)
			}
		}},
		{name: "start block zero is set", env: map[string]string{"CHAINS_FILE": "c", "SCAN_START_BLOCK": "0"}, check: func(t *testing.T, c Config) {
			if p := mustStart(t, c); p == nil || *p != 0 {
				t.Fatalf("start block: %+v", c.StartBlock)
			}
		}},
		{name: "all set", env: map[string]string{"CHAINS_FILE": "c", "SCAN_POLL_INTERVAL": "250ms", "SCAN_BATCH_BLOCKS": "7", "SCAN_START_BLOCK": "123"}, check: func(t *testing.T, c Config) {
			if c.PollInterval != 250*time.Millisecond || c.BatchBlocks != 7 || *mustStart(t, c) != 123 {
				t.Fatalf("parsed: %+v", c)
			}
		}},
		{name: "chains file missing", env: map[string]string{}, wantVar: "CHAINS_FILE"},
		{name: "negative start block", env: map[string]string{"CHAINS_FILE": "c", "SCAN_START_BLOCK": "-1"}, wantVar: "SCAN_START_BLOCK"},
		{name: "zero batch", env: map[string]string{"CHAINS_FILE": "c", "SCAN_BATCH_BLOCKS": "0"}, wantVar: "SCAN_BATCH_BLOCKS"},
		{name: "zero poll", env: map[string]string{"CHAINS_FILE": "c", "SCAN_POLL_INTERVAL": "0s"}, wantVar: "SCAN_POLL_INTERVAL"},
		{name: "bad poll", env: map[string]string{"CHAINS_FILE": "c", "SCAN_POLL_INTERVAL": "soon"}, wantVar: "SCAN_POLL_INTERVAL"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var cfg Config
			err := testkit.LoadConfig(&cfg, c.env)
			if c.wantVar == "" {
				if err != nil {
					t.Fatal(err)
				}
				c.check(t, cfg)
				return
			}
			var ce *config.Error
			if !errors.As(err, &ce) || ce.Var != c.wantVar {
				t.Fatalf("error %v, want one naming %s", err, c.wantVar)
			}
		})
	}
}

func mustStart(t *testing.T, c Config) *uint64 {
	t.Helper()
	n, err := c.StartBlockNumber()
	if err != nil {
		t.Fatal(err)
	}
	return n
}
