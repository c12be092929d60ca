package chains

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

// FuzzParse: an accepted CHAINS_FILE holds only chains the services can use (the rules Parse
// enforces hold of its result, addresses are normalised), and writing the parsed file back out
// as JSON parses to the same chains.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		sample,
		`{"chains":[{"id":1,"name":"ethereum","rpc_url":"https://rpc","confirmations":12,"native":{"symbol":"ETH"}}]}`,
		`{"chains":[{"id":1,"name":"e","rpc_url":"https://rpc","confirmations":12,"native":{"symbol":"ETH"},"max_fee_gwei":300}]}`,
		`{"chains":[{"id":1,"name":"e","rpc_url":"u","confirmations":1,"native":{"symbol":"ETH"},"max_fee_gwei":"0.000000001","max_head_age":"2m"}]}`,
		strings.Replace(sample, "confirmations: 3", "confirmations: 3\n    max_head_age: 25h", 1),
		strings.Replace(sample, "confirmations: 3", "confirmations: 3\n    max_fee_gwei: 1.5", 1),
		`chains: []`, `chains: [{id: -1}]`, `chains: [{id: 1, name: a, rpc_url: u, confirmations: 1, native: {symbol: X, decimals: -5}}]`,
		`chains: [{id: 1, name: a, rpc_url: u, confirmations: 1, native: {symbol: X}}, {id: 1, name: b, rpc_url: u, confirmations: 1, native: {symbol: X}}]`,
		"a: &a [*a, *a]", "{", "chains:\n  - id: 9223372036854775808",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		if len(raw) > 64<<10 {
			return // a CHAINS_FILE is a few hundred bytes; keep each run fast
		}
		file, err := Parse(raw)
		if err != nil {
			if file != nil {
				t.Fatalf("file and error %v", err)
			}
			return
		}
		checkChains(t, file)
		again, err := Parse(reencode(t, file))
		if err != nil {
			t.Fatalf("re-encoded file refused: %v", err)
		}
		if a, b := summary(file), summary(again); a != b {
			t.Fatalf("round trip changed the chains:\n%s\n%s", a, b)
		}
	})
}

func checkChains(t *testing.T, file *File) {
	t.Helper()
	if len(file.Chains) == 0 {
		t.Fatal("no chains accepted")
	}
	ids := map[int64]bool{}
	for _, c := range file.Chains {
		if c.ID <= 0 || ids[c.ID] || c.Name == "" || c.RPCURL == "" || c.Confirmations == 0 {
			t.Fatalf("chain %+v accepted", c)
		}
		ids[c.ID] = true
		if got, ok := file.Chain(c.ID); !ok || got.Name != c.Name {
			t.Fatalf("Chain(%d) = %+v, %v", c.ID, got, ok)
		}
		if c.MaxHeadAge <= 0 || c.MaxHeadAge > maxHeadAgeLimit {
			t.Fatalf("chain %d: max_head_age %v", c.ID, c.MaxHeadAge)
		}
		if c.Treasury != "" && (!addressRE.MatchString(c.Treasury) || c.Treasury != strings.ToLower(c.Treasury)) {
			t.Fatalf("chain %d: treasury %q", c.ID, c.Treasury)
		}
		if c.MaxFeeGwei != nil && c.MaxFeeWei().Sign() <= 0 {
			t.Fatalf("chain %d: max fee %v", c.ID, c.MaxFeeWei())
		}
		if !c.Native.IsNative() || c.Native.Symbol == "" {
			t.Fatalf("chain %d: native %+v", c.ID, c.Native)
		}
		symbols := map[string]bool{}
		for _, tok := range append([]Token{c.Native}, c.Tokens...) {
			// amount.Parse and event.FormatUnits take 0..77 decimals: the native coin too.
			if tok.Decimals < 0 || tok.Decimals > 77 {
				t.Fatalf("chain %d: token %s has %d decimals", c.ID, tok.Symbol, tok.Decimals)
			}
			if symbols[strings.ToUpper(tok.Symbol)] {
				t.Fatalf("chain %d: duplicate symbol %s", c.ID, tok.Symbol)
			}
			symbols[strings.ToUpper(tok.Symbol)] = true
			if got, ok := c.Token(tok.Symbol); !ok || got != tok {
				t.Fatalf("chain %d: Token(%q) = %+v, %v", c.ID, tok.Symbol, got, ok)
			}
		}
		for _, tok := range c.Tokens {
			if tok.IsNative() || !addressRE.MatchString(tok.Contract) || tok.Contract != strings.ToLower(tok.Contract) {
				t.Fatalf("chain %d: token %+v", c.ID, tok)
			}
			if got, ok := c.TokenByContract(strings.ToUpper(tok.Contract)); !ok || got != tok {
				t.Fatalf("chain %d: TokenByContract(%q) = %+v, %v", c.ID, tok.Contract, got, ok)
			}
		}
	}
}

// reencode writes file as a CHAINS_FILE in JSON, with the documented field names.
func reencode(t *testing.T, file *File) []byte {
	t.Helper()
	type token struct {
		Symbol   string `json:"symbol"`
		Contract string `json:"contract,omitempty"`
		Decimals int    `json:"decimals"`
	}
	type chain struct {
		ID            int64   `json:"id"`
		Name          string  `json:"name"`
		RPCURL        string  `json:"rpc_url"`
		Confirmations uint64  `json:"confirmations"`
		Native        token   `json:"native"`
		Treasury      string  `json:"treasury,omitempty"`
		Tokens        []token `json:"tokens,omitempty"`
		MaxFeeGwei    string  `json:"max_fee_gwei,omitempty"`
		MaxHeadAge    string  `json:"max_head_age"`
	}
	var out struct {
		Chains []chain `json:"chains"`
	}
	for _, c := range file.Chains {
		oc := chain{ID: c.ID, Name: c.Name, RPCURL: c.RPCURL, Confirmations: c.Confirmations, Treasury: c.Treasury,
			Native: token(c.Native), MaxHeadAge: c.MaxHeadAge.String()}
		if c.MaxFeeGwei != nil {
			oc.MaxFeeGwei = c.MaxFeeGwei.String()
		}
		for _, tok := range c.Tokens {
			oc.Tokens = append(oc.Tokens, token(tok))
		}
		out.Chains = append(out.Chains, oc)
	}
	b, err := json.Marshal(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// summary is what the services read from a chain, in a comparable form; strings that JSON
// cannot carry unchanged (invalid UTF-8, unprintable runes) are compared by length only.
func summary(file *File) string {
	text := func(s string) string {
		if !utf8.ValidString(s) || strings.IndexFunc(s, func(r rune) bool { return !unicode.IsPrint(r) }) >= 0 {
			return fmt.Sprintf("<%d bytes>", len(s))
		}
		return s
	}
	var b strings.Builder
	for _, c := range file.Chains {
		fmt.Fprintf(&b, "%d|%s|%s|%d|%s|%s", c.ID, text(c.Name), text(c.RPCURL), c.Confirmations, c.Treasury, c.MaxHeadAge)
		if c.MaxFeeGwei != nil {
			fmt.Fprintf(&b, "|fee=%s", c.MaxFeeGwei)
		}
		for _, tok := range append([]Token{c.Native}, c.Tokens...) {
			fmt.Fprintf(&b, "|%s,%s,%d", text(tok.Symbol), tok.Contract, tok.Decimals)
		}
		b.WriteString(";\n")
	}
	return b.String()
}
