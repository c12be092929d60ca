package testkit

import (
	"context"
	"os"
	"strconv"
	"time"

	"github.com/sethvargo/go-envconfig"

	"github.com/ctrip-pay/pipeline/shared/config"
)

// BaseConfig is the config.Base of a service run by a test: against the given NATS server and
// database, logging errors only, its ops server on a free port, migrating and provisioning at
// start, and a shutdown short enough for a test's cleanup.
func BaseConfig(natsURL, databaseURL string) config.Base {
	return config.Base{
		NATSURL: natsURL, DatabaseURL: databaseURL, LogLevel: "error", OpsAddr: "127.0.0.1:0",
		MigrateOnStart: true, StreamsProvision: true, ShutdownTimeout: 5 * time.Second,
	}
}

// LoadConfig fills cfg from the variables in env alone, as config.Load does from the process
// environment in main, and validates it.
func LoadConfig(cfg config.Validator, env map[string]string) error {
	return config.LoadFrom(context.Background(), cfg, envconfig.MapLookuper(env))
}

// Mnemonic is the BIP-39 test mnemonic every wallet documents: the tests' deposit wallet. Its
// first Ethereum account on m/44'/60'/0'/0/0 is the published
// 0x9858EfFD232B4033E47d90003D41EC34EcaEda94.
const Mnemonic = "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about"

// EnvInt is the positive integer in the environment variable name (a benchmark's size, say),
// or def when it is unset or not one.
func EnvInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}
