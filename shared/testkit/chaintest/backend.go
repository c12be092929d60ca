package chaintest

import (
	"errors"
	"maps"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core"
	"github.com/ethereum/go-ethereum/core/rawdb"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/eth"
	"github.com/ethereum/go-ethereum/eth/catalyst"
	"github.com/ethereum/go-ethereum/eth/ethconfig"
	"github.com/ethereum/go-ethereum/eth/filters"
	"github.com/ethereum/go-ethereum/eth/tracers"
	"github.com/ethereum/go-ethereum/ethclient"
	"github.com/ethereum/go-ethereum/ethclient/simulated"
	"github.com/ethereum/go-ethereum/node"
	"github.com/ethereum/go-ethereum/p2p"
	"github.com/ethereum/go-ethereum/params"
	"github.com/ethereum/go-ethereum/rpc"

	// The native tracers (callTracer, prestateTracer, ...) register themselves on import;
	// without them debug_trace* knows only the JavaScript-free struct logger.
	_ "github.com/ethereum/go-ethereum/eth/tracers/native"
)

// backend is go-ethereum's simulated backend (ethclient/simulated) assembled the same way —
// an in-memory node on every fork, sealed on demand by the simulated beacon — with one
// addition: the node also serves the tracing API (debug_traceBlockByHash,
// debug_traceBlockByNumber, debug_traceTransaction, ...) with the native tracers, as a geth
// node started with --http.api debug does. simulated.NewBackend registers only eth and the
// log filters, and hides the node, so the API cannot be added to one it built.
type backend struct {
	node   *node.Node
	beacon *catalyst.SimulatedBeacon
	client *ethclient.Client
}

// newBackend starts a node as simulated.NewBackend does (same genesis, system contracts and
// configuration), applying opt to the configurations first.
func newBackend(alloc types.GenesisAlloc, opt func(*node.Config, *ethconfig.Config)) (*backend, error) {
	nodeConf := node.DefaultConfig
	nodeConf.DataDir = ""
	nodeConf.P2P = p2p.Config{NoDiscovery: true}

	genesisAlloc := core.SystemContractAllocs()
	maps.Copy(genesisAlloc, alloc)
	ethConf := ethconfig.Defaults
	ethConf.Genesis = &core.Genesis{
		Config:   params.AllDevChainProtocolChanges,
		GasLimit: ethconfig.Defaults.Miner.GasCeil,
		Alloc:    genesisAlloc,
	}
	ethConf.SyncMode = ethconfig.FullSync
	ethConf.TxPool.NoLocals = true
	ethConf.LogNoHistory = true
	// An archive node: the state of every block stays readable (eth_getBalance at a block,
	// tracing an old block), as on the archive nodes RPC providers run. A pruning node keeps
	// only the last 128 states, and tests that catch up on hundreds of blocks would hit
	// "historical state is not available".
	ethConf.NoPruning = true
	ethConf.StateScheme = rawdb.HashScheme
	if opt != nil {
		opt(&nodeConf, &ethConf)
	}

	stack, err := node.New(&nodeConf)
	if err != nil {
		return nil, err
	}
	b, err := startOn(stack, &ethConf)
	if err != nil {
		return nil, errors.Join(err, stack.Close())
	}
	return b, nil
}

func startOn(stack *node.Node, conf *ethconfig.Config) (*backend, error) {
	ethereum, err := eth.New(stack, conf)
	if err != nil {
		return nil, err
	}
	filterSystem := filters.NewFilterSystem(ethereum.APIBackend, filters.Config{})
	stack.RegisterAPIs([]rpc.API{{Namespace: "eth", Service: filters.NewFilterAPI(filterSystem)}})
	stack.RegisterAPIs(tracers.APIs(ethereum.APIBackend))
	if err := stack.Start(); err != nil {
		return nil, err
	}
	beacon, err := catalyst.NewSimulatedBeacon(0, common.Address{}, ethereum)
	if err != nil {
		return nil, err
	}
	if err := beacon.Fork(ethereum.BlockChain().GetCanonicalHash(0)); err != nil {
		return nil, errors.Join(err, beacon.Stop())
	}
	return &backend{node: stack, beacon: beacon, client: ethclient.NewClient(stack.Attach())}, nil
}

// Client is the in-process RPC client.
func (b *backend) Client() simulated.Client { return b.client }

// Commit seals a block holding the pending transactions and returns the head's hash.
func (b *backend) Commit() common.Hash { return b.beacon.Commit() }

// Rollback drops the pending transactions.
func (b *backend) Rollback() { b.beacon.Rollback() }

// Fork makes parent the head; blocks committed next build a side chain on it.
func (b *backend) Fork(parent common.Hash) error { return b.beacon.Fork(parent) }

// Close stops the node; the backend cannot be used afterwards.
func (b *backend) Close() error {
	b.client.Close()
	return errors.Join(b.beacon.Stop(), b.node.Close())
}
