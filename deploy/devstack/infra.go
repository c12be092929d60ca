package main

import (
	"context"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"

	"github.com/ctrip-pay/pipeline/shared/testkit"
	"github.com/ctrip-pay/pipeline/shared/testkit/chaintest"
)

// startNATS runs nats-server as a process of its own, the pinned release built from the
// workspace's module, as a deployment runs it (and outside the race-instrumented test binary):
// one node on port, or with nodes ≥ 3 a JetStream cluster of that many on free ports, which
// the services are configured with all at once (NATS_URL lists every node) and provision at
// R3 (STREAMS_REPLICAS=3). The caller shuts it down (stopNATS).
func (s *stack) startNATS(port, nodes int) error {
	if nodes >= 3 {
		ns, err := testkit.StartNATSCluster(nodes, filepath.Join(s.work, "nats"))
		if err != nil {
			return err
		}
		s.natsNodes = ns
		urls := make([]string, len(ns))
		for i, n := range ns {
			urls[i] = n.URL()
		}
		s.natsURL = strings.Join(urls, ",")
		s.log.Info("nats-server JetStream cluster ready", "nodes", nodes, "urls", s.natsURL, "version", testkit.NATSServerVersion)
		return nil
	}
	n, err := testkit.StartNATSProcess(port, filepath.Join(s.work, "nats"), filepath.Join(s.work, "nats-server.log"))
	if err != nil {
		return fmt.Errorf("nats-server on port %d (in use? try -nats-port): %w", port, err)
	}
	s.natsNodes, s.natsURL = []*testkit.NATSProcess{n}, n.URL()
	s.log.Info("nats-server (JetStream) ready", "url", s.natsURL, "version", testkit.NATSServerVersion)
	return nil
}

func (s *stack) stopNATS() {
	for _, n := range s.natsNodes {
		n.Shutdown()
	}
}

// startPostgres points the stack at DATABASE_URL or, when it is unset or own is set, at a
// private Postgres cluster (s.pg, which a run may restart) that stop removes (stop does nothing
// for DATABASE_URL).
func (s *stack) startPostgres(own bool) (stop func(), err error) {
	s.dbURL = os.Getenv("DATABASE_URL")
	if s.dbURL != "" && !own {
		return func() {}, nil
	}
	pg, err := testkit.StartPostgresCluster()
	if err != nil {
		return nil, fmt.Errorf("starting a private Postgres (set DATABASE_URL to use yours): %w", err)
	}
	s.pg, s.dbURL = pg, pg.URL
	s.log.Info("private Postgres cluster ready", "url", s.dbURL)
	return pg.Remove, nil
}

// setUpChain starts the chain with ETH for the customer and the gas tank (which pays for token
// sweeps), and deploys a 6-decimal token minted to the customer. The caller closes s.chain.
func (s *stack) setUpChain(ctx context.Context, customer, gasTank *chaintest.Account) (*chaintest.TestToken, error) {
	eth := new(big.Int).Exp(big.NewInt(10), big.NewInt(18), nil)
	chain, err := startChain(types.GenesisAlloc{
		customer.Address: {Balance: new(big.Int).Mul(big.NewInt(1000), eth)},
		gasTank.Address:  {Balance: new(big.Int).Mul(big.NewInt(100), eth)},
	}, time.Second)
	if err != nil {
		return nil, err
	}
	token, tt, err := mintedToken(ctx, chain, customer)
	if err != nil {
		chain.Close()
		return nil, err
	}
	s.chain, s.token = chain, token
	s.log.Info("simulated chain ready", "rpc_url", chain.rpcURL, "chain_id", 1337, "block_interval", "1s", "token", token.Hex())
	return tt, nil
}

// mintedToken deploys the devstack's USDC and mints it to the customer.
func mintedToken(ctx context.Context, chain *devChain, customer *chaintest.Account) (common.Address, *chaintest.TestToken, error) {
	token, tt, err := chain.deployToken(ctx, customer.Key, "USDC", 6)
	if err != nil {
		return common.Address{}, nil, fmt.Errorf("deploy token: %w", err)
	}
	tx, err := chain.tokenCall(ctx, customer.Key, func(o *bindOpts) (*types.Transaction, error) {
		return tt.Mint(o, customer.Address, big.NewInt(1_000_000_000_000))
	})
	if err != nil {
		return common.Address{}, nil, err
	}
	if _, err := chain.waitMined(ctx, tx); err != nil {
		return common.Address{}, nil, err
	}
	return token, tt, nil
}
