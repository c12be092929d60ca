package main

import (
	"time"

	"github.com/ctrip-pay/pipeline/shared/chains"
	"github.com/ctrip-pay/pipeline/shared/config"
	"github.com/ctrip-pay/pipeline/shared/retention"
)

// Config is the confirmer's environment (README, "Configuration").
type Config struct {
	config.Base

	// ChainsFile lists the chains: rpc_url and the confirmations each needs.
	ChainsFile string `env:"CHAINS_FILE"`
	// ExpiryInterval is how often payments past their deadline are expired.
	ExpiryInterval time.Duration `env:"CONFIRMER_EXPIRY_INTERVAL, default=5s"`
	// The retention of payment_status_changes and published outbox rows (RETENTION_AGE,
	// RETENTION_BATCH, RETENTION_INTERVAL, RETENTION_PAUSE).
	retention.Config
}

// ChainsPath makes it a service.ChainsConfig: service.Run loads CHAINS_FILE.
func (c Config) ChainsPath() string { return c.ChainsFile }

// Validate names the first unusable variable.
func (c Config) Validate() error {
	if err := c.Base.Validate(); err != nil {
		return err
	}
	if _, err := chains.Load(c.ChainsFile); err != nil {
		return err
	}
	if c.ExpiryInterval <= 0 {
		return &config.Error{Var: "CONFIRMER_EXPIRY_INTERVAL", Msg: "must be positive"}
	}
	return c.Config.Validate()
}
