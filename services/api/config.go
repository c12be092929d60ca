package main

import (
	"fmt"
	"time"

	"github.com/ctrip-pay/pipeline/services/api/internal/rest"
	"github.com/ctrip-pay/pipeline/services/api/internal/wallet"
	"github.com/ctrip-pay/pipeline/shared/chains"
	"github.com/ctrip-pay/pipeline/shared/config"
	"github.com/ctrip-pay/pipeline/shared/safehttp"
)

// Config is the api's environment (README, "Configuration").
type Config struct {
	config.Base

	APIAddr    string `env:"API_ADDR, default=:8080"`
	AdminToken string `env:"ADMIN_TOKEN"`
	// WalletXPub is the extended public key of m/44'/60'/0'/0; the api never holds a private key.
	WalletXPub    string        `env:"WALLET_XPUB"`
	PaymentExpiry time.Duration `env:"PAYMENT_EXPIRY, default=30m"`
	ChainsFile    string        `env:"CHAINS_FILE"`

	// The webhook sender's URL policy (WEBHOOK_ALLOW_HTTP, WEBHOOK_ALLOW_PRIVATE_NETWORKS): an
	// endpoint URL the sender would refuse is refused at registration.
	safehttp.Policy

	// OutboxInterval is how often the relay looks for unpublished events when not woken.
	OutboxInterval time.Duration `env:"OUTBOX_INTERVAL, default=500ms"`
}

// minAdminToken is the shortest ADMIN_TOKEN accepted: it guards merchant creation.
const minAdminToken = 16

// ChainsPath makes it a service.ChainsConfig: service.Run loads CHAINS_FILE.
func (c Config) ChainsPath() string { return c.ChainsFile }

// Validate names the first unusable variable. Messages never repeat a secret's value.
func (c Config) Validate() error {
	if err := c.Base.Validate(); err != nil {
		return err
	}
	bad := func(v, msg string) error { return &config.Error{Var: v, Msg: msg} }
	if c.APIAddr == "" {
		return bad("API_ADDR", "must not be empty")
	}
	if c.AdminToken == "" {
		return bad("ADMIN_TOKEN", "is required")
	}
	if len(c.AdminToken) < minAdminToken {
		return bad("ADMIN_TOKEN", fmt.Sprintf("must be at least %d characters", minAdminToken))
	}
	if _, err := wallet.ParseXPub(c.WalletXPub); err != nil {
		return bad("WALLET_XPUB", err.Error())
	}
	if c.PaymentExpiry < rest.MinPaymentTTL || c.PaymentExpiry > rest.MaxPaymentTTL {
		return bad("PAYMENT_EXPIRY", fmt.Sprintf("%v is outside %v..%v", c.PaymentExpiry, rest.MinPaymentTTL, rest.MaxPaymentTTL))
	}
	if _, err := chains.Load(c.ChainsFile); err != nil {
		return err
	}
	if c.OutboxInterval <= 0 {
		return bad("OUTBOX_INTERVAL", "must be positive")
	}
	return nil
}
