package chains

import (
	"strings"
	"testing"
	"time"
)

const sample = `
chains:
  - id: 1337
    name: devnet
    rpc_url: http://127.0.0.1:8545
    confirmations: 3
    native: {symbol: ETH, decimals: 18}
    treasury: "0x00000000000000000000000000000000000000AA"
    tokens:
      - {symbol: USDC, contract: "0x00000000000000000000000000000000000000BB", decimals: 6}
`

func TestParseYAMLAndJSON(t *testing.T) {
	f, err := Parse([]byte(sample))
	if err != nil {
		t.Fatal(err)
	}
	c, ok := f.Chain(1337)
	if !ok || c.Confirmations != 3 || c.Treasury != "0x00000000000000000000000000000000000000aa" {
		t.Fatalf("chain %+v", c)
	}
	usdc, ok := c.Token("usdc")
	if !ok || usdc.Decimals != 6 || usdc.IsNative() || usdc.Contract != "0x00000000000000000000000000000000000000bb" {
		t.Fatalf("usdc %+v", usdc)
	}
	if eth, ok := c.Token("ETH"); !ok || !eth.IsNative() || eth.Decimals != 18 {
		t.Fatalf("eth %+v", eth)
	}
	if _, ok := c.TokenByContract("0x00000000000000000000000000000000000000Bb"); !ok {
		t.Fatal("token by contract")
	}
	j, err := Parse([]byte(`{"chains":[{"id":1,"name":"ethereum","rpc_url":"https://rpc","confirmations":12,"native":{"symbol":"ETH"}}]}`))
	if err != nil || j.Chains[0].Native.Decimals != 18 {
		t.Fatalf("json: %v %+v", err, j)
	}
}

func TestParseRejects(t *testing.T) {
	for name, doc := range map[string]string{
		"no chains":        `chains: []`,
		"unknown field":    strings.Replace(sample, "name: devnet", "name: devnet\n    colour: blue", 1),
		"zero confs":       strings.Replace(sample, "confirmations: 3", "confirmations: 0", 1),
		"bad contract":     strings.Replace(sample, `"0x00000000000000000000000000000000000000BB"`, `"0x12"`, 1),
		"duplicate symbol": strings.Replace(sample, "symbol: USDC", "symbol: eth", 1),
		"bad treasury":     strings.Replace(sample, `"0x00000000000000000000000000000000000000AA"`, `"me"`, 1),
	} {
		if _, err := Parse([]byte(doc)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// max_fee_gwei is optional (no bound), a positive decimal of gwei down to the wei, in YAML or JSON.
func TestMaxFeeGwei(t *testing.T) {
	f, err := Parse([]byte(sample))
	if err != nil || f.Chains[0].MaxFeeWei() != nil {
		t.Fatalf("unset max_fee_gwei: %v, bound %v", err, f.Chains[0].MaxFeeWei())
	}
	for doc, wantWei := range map[string]string{
		"max_fee_gwei: 500":             "500000000000",
		"max_fee_gwei: 1.5":             "1500000000",
		`max_fee_gwei: "0.000000001"`:   "1",
		"max_fee_gwei: 0.25":            "250000000",
		"max_fee_gwei: 123456789012345": "123456789012345000000000",
	} {
		f, err := Parse([]byte(strings.Replace(sample, "confirmations: 3", "confirmations: 3\n    "+doc, 1)))
		if err != nil {
			t.Errorf("%s: %v", doc, err)
			continue
		}
		if got := f.Chains[0].MaxFeeWei(); got == nil || got.String() != wantWei {
			t.Errorf("%s: %v wei, want %s", doc, got, wantWei)
		}
	}
	j, err := Parse([]byte(`{"chains":[{"id":1,"name":"ethereum","rpc_url":"https://rpc","confirmations":12,"native":{"symbol":"ETH"},"max_fee_gwei":300}]}`))
	if err != nil || j.Chains[0].MaxFeeGwei.String() != "300" {
		t.Fatalf("json: %v %+v", err, j)
	}
	if g, _ := ParseGwei("2.50"); g.String() != "2.5" {
		t.Errorf("String %s", g)
	}
	for _, bad := range []string{"0", "0.0", "-1", "1e3", "0.0000000001", "lots", "[1]", "1.", ".5"} {
		doc := strings.Replace(sample, "confirmations: 3", "confirmations: 3\n    max_fee_gwei: "+bad, 1)
		if _, err := Parse([]byte(doc)); err == nil {
			t.Errorf("max_fee_gwei %s accepted", bad)
		}
	}
}

// The CHAINS_FILE the Kubernetes deployment ships is a valid one.
func TestDeployedExampleParses(t *testing.T) {
	f, err := Load("../../deploy/k8s/base/chains.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Chains) == 0 || f.Chains[0].MaxFeeWei() == nil || f.Chains[0].MaxFeeWei().String() != "200000000000" {
		t.Fatalf("parsed %+v, want the example's max_fee_gwei 200 = 200000000000 wei", f.Chains)
	}
}

// max_head_age is a Go duration per chain, DefaultMaxHeadAge when unset; out of range, or not a
// duration, is refused with the chain named.
func TestMaxHeadAge(t *testing.T) {
	withAge := func(v string) string {
		return strings.Replace(sample, "confirmations: 3", "confirmations: 3\n    max_head_age: "+v, 1)
	}
	for _, tc := range []struct {
		name, doc string
		want      time.Duration
	}{
		{"unset", sample, DefaultMaxHeadAge},
		{"zero is unset", withAge("0s"), DefaultMaxHeadAge},
		{"minutes", withAge("2m"), 2 * time.Minute},
		{"quoted", withAge(`"90s"`), 90 * time.Second},
		{"the limit", withAge("24h"), 24 * time.Hour},
		{"json", `{"chains":[{"id":1,"name":"ethereum","rpc_url":"https://rpc","confirmations":12,"native":{"symbol":"ETH"},"max_head_age":"45s"}]}`, 45 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := Parse([]byte(tc.doc))
			if err != nil {
				t.Fatal(err)
			}
			if got := f.Chains[0].MaxHeadAge; got != tc.want {
				t.Fatalf("max_head_age %v, want %v", got, tc.want)
			}
		})
	}
	for _, tc := range []struct{ name, value, want string }{
		{"negative", "-1m", "chains file: chain 1337 (devnet): max_head_age -1m0s must be positive and at most 24h0m0s"},
		{"over a day", "25h", "chains file: chain 1337 (devnet): max_head_age 25h0m0s must be positive and at most 24h0m0s"},
		{"no unit", "60", "into time.Duration"},
		{"not a duration", "soon", "into time.Duration"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(withAge(tc.value)))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("max_head_age %s: %v, want an error containing %q", tc.value, err, tc.want)
			}
		})
	}
}

// The compose stack's example CHAINS_FILE parses and shows max_head_age.
func TestComposeExampleParses(t *testing.T) {
	f, err := Load("../../deploy/chains.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if got := f.Chains[0].MaxHeadAge; got != 10*time.Minute {
		t.Fatalf("example max_head_age %v, want the 10m it sets", got)
	}
}
