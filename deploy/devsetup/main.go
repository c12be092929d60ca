// Command devsetup prepares the compose stack's dev chain (geth --dev) before the services
// start; deploy/docker-compose.yml runs it as a one-shot step they all wait for:
//
//   - it deploys the test ERC-20 (shared/testkit/chaintest's TestToken, as "USDC" with 6
//     decimals) with the first transaction of a deployer key derived from DEV_MNEMONIC, so the
//     token lands at an address known in advance, the one deploy/chains.compose.yaml lists;
//   - it tops the sweeper's gas tank up to GAS_TANK_FUNDING_ETH.
//
// It is idempotent: a run that finds the token's code and a funded tank sends nothing and exits
// 0. The ETH comes from FUNDER_PRIVATE_KEY when set, else from the node's first unlocked
// account (eth_accounts[0], through eth_sendTransaction), which geth --dev creates, funds and
// unlocks.
//
// Environment:
//
//	RPC_URL               JSON-RPC endpoint of the dev chain (required)
//	CHAIN_ID              the chain id the node must serve (default 1337, geth --dev's)
//	DEV_MNEMONIC          mnemonic of the deployer, treasury and default gas tank, all below
//	                      m/44'/60'/1'/0 (default: the public abandon ... about test mnemonic)
//	GAS_TANK_ADDRESS      the tank to fund, else the address of GAS_TANK_PRIVATE_KEY, else
//	                      m/44'/60'/1'/0/2 of DEV_MNEMONIC
//	GAS_TANK_FUNDING_ETH  the tank's balance after the run, in ETH (default 100)
//	FUNDER_PRIVATE_KEY    hex key paying for the funding (default: eth_accounts[0] of the node)
//	RPC_WAIT              how long to wait for the node to answer (default 2m)
//	TX_TIMEOUT            how long to wait for each transaction to be mined (default 2m)
//
// Every key here is for a dev chain only.
package main

import (
	"context"
	"fmt"
	"math/big"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/crypto"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cfg, err := LoadConfig(os.Getenv)
	if err == nil {
		_, err = Run(ctx, cfg, os.Stdout)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "devsetup:", err)
		os.Exit(1)
	}
}

// Config is devsetup's environment (see the package comment).
type Config struct {
	RPCURL         string
	ChainID        int64
	Keys           DevKeys
	GasTank        common.Address
	GasTankFunding *big.Int
	// FunderKey is nil when the node's unlocked account pays.
	FunderKey *Key
	RPCWait   time.Duration
	TxTimeout time.Duration
}

// LoadConfig reads the environment through getenv. No message quotes a key.
func LoadConfig(getenv func(string) string) (Config, error) {
	get := func(name, def string) string {
		if v := strings.TrimSpace(getenv(name)); v != "" {
			return v
		}
		return def
	}
	cfg := Config{RPCURL: get("RPC_URL", "")}
	if cfg.RPCURL == "" {
		return Config{}, fmt.Errorf("RPC_URL is required: the dev chain's JSON-RPC endpoint")
	}
	var err error
	if cfg.ChainID, err = strconv.ParseInt(get("CHAIN_ID", "1337"), 10, 64); err != nil || cfg.ChainID <= 0 {
		return Config{}, fmt.Errorf("CHAIN_ID: want a positive integer")
	}
	if cfg.Keys, err = DeriveDevKeys(get("DEV_MNEMONIC", DevMnemonic)); err != nil {
		return Config{}, fmt.Errorf("DEV_MNEMONIC: %w", err)
	}
	switch addr, key := get("GAS_TANK_ADDRESS", ""), get("GAS_TANK_PRIVATE_KEY", ""); {
	case addr != "":
		if !common.IsHexAddress(addr) {
			return Config{}, fmt.Errorf("GAS_TANK_ADDRESS: not a hex address")
		}
		cfg.GasTank = common.HexToAddress(addr)
	case key != "":
		k, err := parseKey(key)
		if err != nil {
			return Config{}, fmt.Errorf("GAS_TANK_PRIVATE_KEY: %w", err)
		}
		cfg.GasTank = k.Address
	default:
		cfg.GasTank = cfg.Keys.GasTank.Address
	}
	if cfg.GasTankFunding, err = parseETH(get("GAS_TANK_FUNDING_ETH", "100")); err != nil {
		return Config{}, fmt.Errorf("GAS_TANK_FUNDING_ETH: %w", err)
	}
	if key := get("FUNDER_PRIVATE_KEY", ""); key != "" {
		k, err := parseKey(key)
		if err != nil {
			return Config{}, fmt.Errorf("FUNDER_PRIVATE_KEY: %w", err)
		}
		cfg.FunderKey = &k
	}
	for _, d := range []struct {
		name, def string
		dst       *time.Duration
	}{{"RPC_WAIT", "2m", &cfg.RPCWait}, {"TX_TIMEOUT", "2m", &cfg.TxTimeout}} {
		if *d.dst, err = time.ParseDuration(get(d.name, d.def)); err != nil || *d.dst <= 0 {
			return Config{}, fmt.Errorf("%s: want a positive duration such as 90s", d.name)
		}
	}
	return cfg, nil
}

// parseKey reads a hex secp256k1 private key, with or without 0x. Its error never quotes it.
func parseKey(s string) (Key, error) {
	k, err := crypto.HexToECDSA(strings.TrimPrefix(s, "0x"))
	if err != nil {
		return Key{}, fmt.Errorf("not a hex secp256k1 private key")
	}
	return Key{Private: k, Address: crypto.PubkeyToAddress(k.PublicKey)}, nil
}

// parseETH reads a non-negative amount of ETH ("100", "0.5") into wei.
func parseETH(s string) (*big.Int, error) {
	r, ok := new(big.Rat).SetString(s)
	if !ok || r.Sign() < 0 {
		return nil, fmt.Errorf("want a non-negative amount of ETH such as 100 or 0.5")
	}
	r.Mul(r, new(big.Rat).SetInt(big.NewInt(1e18)))
	if !r.IsInt() {
		return nil, fmt.Errorf("more than 18 decimals")
	}
	return new(big.Int).Set(r.Num()), nil
}
