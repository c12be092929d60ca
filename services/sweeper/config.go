package main

import (
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/ethereum/go-ethereum/crypto"

	"github.com/ctrip-pay/pipeline/services/sweeper/internal/wallet"
	"github.com/ctrip-pay/pipeline/shared/chains"
	"github.com/ctrip-pay/pipeline/shared/config"
)

// Config is the sweeper's environment (README, "Configuration"). It holds key material: its
// String and LogValue redact the secrets, so printing or logging it is safe.
type Config struct {
	config.Base

	// ChainsFile lists the chains, each with its rpc_url and treasury.
	ChainsFile string `env:"CHAINS_FILE"`

	// WalletMnemonic or WalletXprv (exactly one): the account m/44'/60'/0'/0 whose xpub is the
	// api's WALLET_XPUB. Deposit address i is its child i.
	WalletMnemonic string `env:"WALLET_MNEMONIC"`
	WalletXprv     string `env:"WALLET_XPRV"`

	// GasTankPrivateKey (hex) funds the gas of token sweeps. Required when a chain lists tokens.
	GasTankPrivateKey string `env:"GAS_TANK_PRIVATE_KEY"`

	ReceiptTimeout time.Duration `env:"SWEEP_RECEIPT_TIMEOUT, default=5m"`
	PollInterval   time.Duration `env:"SWEEP_POLL_INTERVAL, default=1s"`
	Concurrency    int           `env:"SWEEP_CONCURRENCY, default=8"`
	// RepriceAfter: a broadcast sweep transaction without a receipt for this long is replaced
	// by one with the same nonce and higher fees, up to the chain's max_fee_gwei.
	RepriceAfter time.Duration `env:"SWEEP_REPRICE_AFTER, default=2m"`
	// LeftoverInterval is how often value left at deposit addresses (expired short, paid late,
	// paid after the sweep) is looked for and, once confirmed, swept.
	LeftoverInterval time.Duration `env:"SWEEP_LEFTOVER_INTERVAL, default=30s"`
}

// ChainsPath makes it a service.ChainsConfig: service.Run loads CHAINS_FILE.
func (c Config) ChainsPath() string { return c.ChainsFile }

// Validate names the first unusable variable. It reads CHAINS_FILE and derives the wallet, so a
// typo in a mnemonic stops start-up instead of failing every sweep.
func (c Config) Validate() error {
	if err := c.Base.Validate(); err != nil {
		return err
	}
	bad := func(v, msg string) error { return &config.Error{Var: v, Msg: msg} }
	f, err := chains.Load(c.ChainsFile)
	if err != nil {
		return err
	}
	tokens := false
	for _, ch := range f.Chains {
		if ch.Treasury == "" {
			return bad("CHAINS_FILE", fmt.Sprintf("chain %d (%s) has no treasury to sweep to", ch.ID, ch.Name))
		}
		tokens = tokens || len(ch.Tokens) > 0
	}
	switch {
	case c.WalletMnemonic == "" && c.WalletXprv == "":
		return bad("WALLET_MNEMONIC", "WALLET_MNEMONIC or WALLET_XPRV is required")
	case c.WalletMnemonic != "" && c.WalletXprv != "":
		return bad("WALLET_MNEMONIC", "set WALLET_MNEMONIC or WALLET_XPRV, not both")
	}
	if _, err := c.Wallet(); err != nil {
		v := "WALLET_MNEMONIC"
		if c.WalletXprv != "" {
			v = "WALLET_XPRV"
		}
		return bad(v, err.Error())
	}
	if c.GasTankPrivateKey == "" && tokens {
		return bad("GAS_TANK_PRIVATE_KEY", "required: CHAINS_FILE lists tokens, whose sweeps need gas")
	}
	if c.GasTankPrivateKey != "" {
		if _, err := crypto.HexToECDSA(strings.TrimPrefix(c.GasTankPrivateKey, "0x")); err != nil {
			// Not err itself: it may quote the key.
			return bad("GAS_TANK_PRIVATE_KEY", "not a hex secp256k1 private key")
		}
	}
	if c.ReceiptTimeout <= 0 {
		return bad("SWEEP_RECEIPT_TIMEOUT", "must be positive")
	}
	if c.PollInterval <= 0 {
		return bad("SWEEP_POLL_INTERVAL", "must be positive")
	}
	if c.Concurrency < 1 {
		return bad("SWEEP_CONCURRENCY", "must be at least 1")
	}
	if c.RepriceAfter <= 0 {
		return bad("SWEEP_REPRICE_AFTER", "must be positive")
	}
	if c.LeftoverInterval <= 0 {
		return bad("SWEEP_LEFTOVER_INTERVAL", "must be positive")
	}
	return nil
}

// Wallet derives the deposit account from WALLET_MNEMONIC or WALLET_XPRV.
func (c Config) Wallet() (*wallet.Wallet, error) {
	if c.WalletXprv != "" {
		return wallet.FromXprv(c.WalletXprv)
	}
	return wallet.FromMnemonic(c.WalletMnemonic)
}

func redact(secret string) string {
	if secret == "" {
		return ""
	}
	return "[redacted]"
}

func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "[unparseable]"
	}
	return u.Redacted()
}

// LogValue is what slog prints for the config: every setting, no secret.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("nats_url", redactURL(c.NATSURL)),
		slog.String("database_url", redactURL(c.DatabaseURL)),
		slog.String("chains_file", c.ChainsFile),
		slog.String("wallet_mnemonic", redact(c.WalletMnemonic)),
		slog.String("wallet_xprv", redact(c.WalletXprv)),
		slog.String("gas_tank_private_key", redact(c.GasTankPrivateKey)),
		slog.Duration("receipt_timeout", c.ReceiptTimeout),
		slog.Duration("poll_interval", c.PollInterval),
		slog.Int("concurrency", c.Concurrency),
		slog.Duration("reprice_after", c.RepriceAfter),
		slog.Duration("leftover_interval", c.LeftoverInterval),
		slog.Bool("migrate_on_start", c.MigrateOnStart),
		slog.Bool("streams_provision", c.StreamsProvision),
	)
}

// String is LogValue as text, so fmt never prints a secret either.
func (c Config) String() string { return c.LogValue().String() }

// Format makes every verb (%v, %+v, %#v) print the redacted form.
func (c Config) Format(f fmt.State, _ rune) { fmt.Fprint(f, c.String()) }
