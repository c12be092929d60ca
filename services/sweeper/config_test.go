package main

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/ctrip-pay/pipeline/shared/config"
	"github.com/ctrip-pay/pipeline/shared/testkit"
)

const (
	testGasTankKey = "4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318"
	testXprv       = "xprv9s21ZrQH143K3QTDL4LXw2F7HEK3wJUD2nW2nRk4stbPy6cq3jPPqjiChkVvvNKmPGJxWUtg6LnF5kejMRNNU3TGtRBeJgk33yuGBxrMPHi"
)

func writeChains(t *testing.T, treasury string, tokens bool) string {
	t.Helper()
	tok := ""
	if tokens {
		tok = `, "tokens": [{"symbol": "USDC", "contract": "0x00000000000000000000000000000000000000c0", "decimals": 6}]`
	}
	doc := fmt.Sprintf(`{"chains": [{"id": 1337, "name": "devnet", "rpc_url": "http://127.0.0.1:8545", "confirmations": 3,
		"native": {"symbol": "ETH"}, "treasury": %q%s}]}`, treasury, tok)
	return testkit.TempFile(t, "chains.json", doc)
}

func TestConfigDefaults(t *testing.T) {
	var cfg Config
	env := map[string]string{"CHAINS_FILE": writeChains(t, "0x00000000000000000000000000000000000000aa", true),
		"WALLET_MNEMONIC": testkit.Mnemonic, "GAS_TANK_PRIVATE_KEY": "0x" + testGasTankKey}
	if err := testkit.LoadConfig(&cfg, env); err != nil {
		t.Fatal(err)
	}
	if cfg.ReceiptTimeout != 5*time.Minute || cfg.PollInterval != time.Second || cfg.Concurrency != 8 || cfg.RepriceAfter != 2*time.Minute || !cfg.StreamsProvision {
		t.Errorf("defaults %v", cfg)
	}
	env = map[string]string{"CHAINS_FILE": writeChains(t, "0x00000000000000000000000000000000000000aa", false), "WALLET_XPRV": testXprv}
	var xprvOnly Config
	if err := testkit.LoadConfig(&xprvOnly, env); err != nil {
		t.Fatalf("an xprv and no gas tank for a chain without tokens: %v", err)
	}
}

func TestConfigErrorsNameTheVariable(t *testing.T) {
	good := writeChains(t, "0x00000000000000000000000000000000000000aa", true)
	base := func(kv ...string) map[string]string {
		m := map[string]string{"CHAINS_FILE": good, "WALLET_MNEMONIC": testkit.Mnemonic, "GAS_TANK_PRIVATE_KEY": testGasTankKey}
		for i := 0; i < len(kv); i += 2 {
			if kv[i+1] == "" {
				delete(m, kv[i])
			} else {
				m[kv[i]] = kv[i+1]
			}
		}
		return m
	}
	badPhrase := strings.Replace(testkit.Mnemonic, "about", "abandon", 1)
	for name, tc := range map[string]struct {
		env     map[string]string
		wantVar string
	}{
		"no chains file":         {base("CHAINS_FILE", ""), "CHAINS_FILE"},
		"missing chains file":    {base("CHAINS_FILE", "/nonexistent/chains.yaml"), "CHAINS_FILE"},
		"chain without treasury": {base("CHAINS_FILE", writeChains(t, "", false)), "CHAINS_FILE"},
		"no wallet":              {base("WALLET_MNEMONIC", ""), "WALLET_MNEMONIC"},
		"two wallets":            {base("WALLET_XPRV", testXprv), "WALLET_MNEMONIC"},
		"bad mnemonic checksum":  {base("WALLET_MNEMONIC", badPhrase), "WALLET_MNEMONIC"},
		"bad xprv":               {base("WALLET_MNEMONIC", "", "WALLET_XPRV", "xprv"+testGasTankKey), "WALLET_XPRV"},
		"tokens and no gas tank": {base("GAS_TANK_PRIVATE_KEY", ""), "GAS_TANK_PRIVATE_KEY"},
		"gas tank not hex":       {base("GAS_TANK_PRIVATE_KEY", "zz"+testGasTankKey[2:]), "GAS_TANK_PRIVATE_KEY"},
		"zero receipt timeout":   {base("SWEEP_RECEIPT_TIMEOUT", "0s"), "SWEEP_RECEIPT_TIMEOUT"},
		"receipt timeout words":  {base("SWEEP_RECEIPT_TIMEOUT", "soon"), "SWEEP_RECEIPT_TIMEOUT"},
		"zero concurrency":       {base("SWEEP_CONCURRENCY", "0"), "SWEEP_CONCURRENCY"},
		"zero reprice delay":     {base("SWEEP_REPRICE_AFTER", "0s"), "SWEEP_REPRICE_AFTER"},
		"negative reprice delay": {base("SWEEP_REPRICE_AFTER", "-1m"), "SWEEP_REPRICE_AFTER"},
		"log level":              {base("LOG_LEVEL", "loud"), "LOG_LEVEL"},
	} {
		t.Run(name, func(t *testing.T) {
			var cfg Config
			err := testkit.LoadConfig(&cfg, tc.env)
			if err == nil || !strings.Contains(err.Error(), tc.wantVar) {
				t.Fatalf("error %v, want one naming %s", err, tc.wantVar)
			}
			for _, secret := range []string{tc.env["WALLET_MNEMONIC"], tc.env["WALLET_XPRV"], tc.env["GAS_TANK_PRIVATE_KEY"]} {
				if len(secret) > 20 && strings.Contains(err.Error(), secret[4:20]) {
					t.Errorf("error quotes a secret: %v", err)
				}
			}
		})
	}
}

func TestConfigNeverPrintsSecrets(t *testing.T) {
	cfg := Config{
		Base:           config.Base{DatabaseURL: "postgres://sweeper:hunter2@db:5432/ctrip", NATSURL: "nats://127.0.0.1:4222"},
		WalletMnemonic: testkit.Mnemonic, WalletXprv: testXprv, GasTankPrivateKey: testGasTankKey, ChainsFile: "chains.yaml",
	}
	var logged bytes.Buffer
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("start", "config", cfg)
	for _, out := range []string{fmt.Sprint(cfg), fmt.Sprintf("%+v %#v %s", cfg, cfg, cfg), cfg.String(), logged.String()} {
		for _, secret := range []string{"abandon", testXprv[:24], testGasTankKey[:24], "hunter2"} {
			if strings.Contains(out, secret) {
				t.Errorf("%q leaks %q", out, secret)
			}
		}
		if !strings.Contains(out, "redacted") || !strings.Contains(out, "chains.yaml") {
			t.Errorf("%q: want the settings with secrets redacted", out)
		}
	}
}
