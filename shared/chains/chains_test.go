package chains

import (
	"strings"
	"testing"
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
