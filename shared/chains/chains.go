// Package chains loads CHAINS_FILE: the EVM chains the pipeline follows and their tokens.
// The file is YAML or JSON (JSON is YAML, so one parser reads both).
package chains

import (
	"fmt"
	"os"
	"regexp"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/ctrip-pay/pipeline/shared/config"
)

// File is the whole CHAINS_FILE.
type File struct {
	Chains []Chain `yaml:"chains"`
}

// Chain is one EVM chain.
type Chain struct {
	ID            int64   `yaml:"id"`
	Name          string  `yaml:"name"`
	RPCURL        string  `yaml:"rpc_url"`
	Confirmations uint64  `yaml:"confirmations"`
	Native        Token   `yaml:"native"`
	Treasury      string  `yaml:"treasury"`
	Tokens        []Token `yaml:"tokens"`
}

// Token is the native coin (Contract empty) or an ERC-20.
type Token struct {
	Symbol   string `yaml:"symbol"`
	Contract string `yaml:"contract"`
	Decimals int    `yaml:"decimals"`
}

// IsNative reports whether t is the chain's own coin.
func (t Token) IsNative() bool { return t.Contract == "" }

var addressRE = regexp.MustCompile(`^0x[0-9a-fA-F]{40}$`)

// Load reads and validates path.
func Load(path string) (*File, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, &config.Error{Var: "CHAINS_FILE", Msg: fmt.Sprintf("chains file: %v", err)}
	}
	f, err := Parse(raw)
	if err != nil {
		return nil, &config.Error{Var: "CHAINS_FILE", Msg: err.Error()}
	}
	return f, nil
}

// Parse reads and validates a CHAINS_FILE document. Addresses are normalised to lower case.
func Parse(raw []byte) (*File, error) {
	var f File
	dec := yaml.NewDecoder(strings.NewReader(string(raw)))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("chains file: %w", err)
	}
	if len(f.Chains) == 0 {
		return nil, fmt.Errorf("chains file: no chains")
	}
	seen := map[int64]bool{}
	for i := range f.Chains {
		c := &f.Chains[i]
		where := fmt.Sprintf("chains file: chain %d (%s)", c.ID, c.Name)
		switch {
		case c.ID <= 0:
			return nil, fmt.Errorf("chains file: chain #%d: id must be positive", i+1)
		case seen[c.ID]:
			return nil, fmt.Errorf("%s: duplicate id", where)
		case c.Name == "":
			return nil, fmt.Errorf("%s: name is required", where)
		case c.RPCURL == "":
			return nil, fmt.Errorf("%s: rpc_url is required", where)
		case c.Confirmations == 0:
			return nil, fmt.Errorf("%s: confirmations must be at least 1", where)
		case c.Native.Symbol == "" || c.Native.Contract != "":
			return nil, fmt.Errorf("%s: native needs a symbol and no contract", where)
		case c.Treasury != "" && !addressRE.MatchString(c.Treasury):
			return nil, fmt.Errorf("%s: treasury %q is not an address", where, c.Treasury)
		}
		if c.Native.Decimals == 0 {
			c.Native.Decimals = 18
		}
		seen[c.ID] = true
		c.Treasury = strings.ToLower(c.Treasury)
		symbols := map[string]bool{strings.ToUpper(c.Native.Symbol): true}
		for j := range c.Tokens {
			t := &c.Tokens[j]
			switch {
			case t.Symbol == "":
				return nil, fmt.Errorf("%s: token #%d: symbol is required", where, j+1)
			case symbols[strings.ToUpper(t.Symbol)]:
				return nil, fmt.Errorf("%s: token %s: duplicate symbol", where, t.Symbol)
			case !addressRE.MatchString(t.Contract):
				return nil, fmt.Errorf("%s: token %s: contract %q is not an address", where, t.Symbol, t.Contract)
			case t.Decimals < 0 || t.Decimals > 77:
				return nil, fmt.Errorf("%s: token %s: decimals %d out of range", where, t.Symbol, t.Decimals)
			}
			symbols[strings.ToUpper(t.Symbol)] = true
			t.Contract = strings.ToLower(t.Contract)
		}
	}
	return &f, nil
}

// Chain returns the chain with id.
func (f *File) Chain(id int64) (Chain, bool) {
	for _, c := range f.Chains {
		if c.ID == id {
			return c, true
		}
	}
	return Chain{}, false
}

// Token returns the native coin or a configured token by symbol (case-insensitive).
func (c Chain) Token(symbol string) (Token, bool) {
	if strings.EqualFold(symbol, c.Native.Symbol) {
		return c.Native, true
	}
	for _, t := range c.Tokens {
		if strings.EqualFold(symbol, t.Symbol) {
			return t, true
		}
	}
	return Token{}, false
}

// TokenByContract returns the configured token at contract (any case).
func (c Chain) TokenByContract(contract string) (Token, bool) {
	for _, t := range c.Tokens {
		if strings.EqualFold(contract, t.Contract) {
			return t, true
		}
	}
	return Token{}, false
}
