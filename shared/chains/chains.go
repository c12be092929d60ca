// Package chains loads CHAINS_FILE: the EVM chains the pipeline follows and their tokens.
// The file is YAML or JSON (JSON is YAML, so one parser reads both).
package chains

import (
	"fmt"
	"math/big"
	"os"
	"regexp"
	"strings"
	"time"

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
	// MaxFeeGwei bounds the fee cap (max fee per gas) of every transaction the sweeper signs on
	// the chain, re-priced replacements included. Optional: nil means no bound (the fee then
	// follows the base fee, and a stuck sweep's replacements rise by the node's minimum step).
	MaxFeeGwei *Gwei `yaml:"max_fee_gwei"`
	// MaxHeadAge is how long the chain's head may stay at the same block before the scanner
	// stops reporting ready (HeadWatch): a Go duration such as "2m". Unset (or 0):
	// DefaultMaxHeadAge, since the chain's block time is not known here.
	MaxHeadAge time.Duration `yaml:"max_head_age"`
}

// DefaultMaxHeadAge is the MaxHeadAge of a chain that sets none.
const DefaultMaxHeadAge = 5 * time.Minute

// maxHeadAgeLimit bounds max_head_age: a head that has not moved for a day is a dead node,
// whatever the chain's block time.
const maxHeadAgeLimit = 24 * time.Hour

// Gwei is a positive amount per gas written in gwei, with up to 9 decimals (1 wei = 0.000000001
// gwei): 500, 1.5, "0.25".
type Gwei struct {
	wei *big.Int
}

var gweiRE = regexp.MustCompile(`^[0-9]+(\.[0-9]{1,9})?$`)

// ParseGwei reads a decimal amount of gwei.
func ParseGwei(s string) (*Gwei, error) {
	if !gweiRE.MatchString(s) {
		return nil, fmt.Errorf("%q is not an amount of gwei (digits, at most 9 decimals)", s)
	}
	whole, frac, _ := strings.Cut(s, ".")
	wei, _ := new(big.Int).SetString(whole+frac+strings.Repeat("0", 9-len(frac)), 10)
	if wei.Sign() <= 0 {
		return nil, fmt.Errorf("%q gwei: must be positive", s)
	}
	return &Gwei{wei: wei}, nil
}

// UnmarshalYAML reads a YAML or JSON number or string.
func (g *Gwei) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: max_fee_gwei must be a number", n.Line)
	}
	v, err := ParseGwei(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: max_fee_gwei: %w", n.Line, err)
	}
	*g = *v
	return nil
}

// Wei is the amount in wei (a copy).
func (g *Gwei) Wei() *big.Int { return new(big.Int).Set(g.wei) }

func (g *Gwei) String() string {
	q, r := new(big.Int).QuoRem(g.wei, big.NewInt(1e9), new(big.Int))
	if r.Sign() == 0 {
		return q.String()
	}
	return strings.TrimRight(fmt.Sprintf("%s.%09d", q, r), "0")
}

// MaxFeeWei is MaxFeeGwei in wei, nil when the chain sets no bound.
func (c Chain) MaxFeeWei() *big.Int {
	if c.MaxFeeGwei == nil {
		return nil
	}
	return c.MaxFeeGwei.Wei()
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

// Load reads and validates the CHAINS_FILE at path; its errors are *config.Error naming
// CHAINS_FILE, "is required" when path is empty.
func Load(path string) (*File, error) {
	if path == "" {
		return nil, &config.Error{Var: "CHAINS_FILE", Msg: "is required"}
	}
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
		case c.Native.Decimals < 0 || c.Native.Decimals > 77:
			return nil, fmt.Errorf("%s: native %s: decimals %d out of range", where, c.Native.Symbol, c.Native.Decimals)
		case c.Treasury != "" && !addressRE.MatchString(c.Treasury):
			return nil, fmt.Errorf("%s: treasury %q is not an address", where, c.Treasury)
		case c.MaxHeadAge < 0 || c.MaxHeadAge > maxHeadAgeLimit:
			return nil, fmt.Errorf("%s: max_head_age %v must be positive and at most %v", where, c.MaxHeadAge, maxHeadAgeLimit)
		}
		if c.MaxHeadAge == 0 {
			c.MaxHeadAge = DefaultMaxHeadAge
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
