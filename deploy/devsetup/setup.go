package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/url"
	"strings"
	"time"

	"github.com/ethereum/go-ethereum"
	"github.com/ethereum/go-ethereum/accounts/abi/bind"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/common/hexutil"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/ethclient"
	"github.com/ethereum/go-ethereum/rpc"

	"github.com/ctrip-pay/pipeline/shared/testkit/chaintest"
)

// The token devsetup deploys; deploy/chains.compose.yaml lists it with this symbol and decimals.
const (
	TokenName     = "Dev USDC"
	TokenSymbol   = "USDC"
	TokenDecimals = 6
)

// deployerFunding is what the deployer is topped up to before it deploys: far more than the
// deployment's gas at dev-chain prices.
var deployerFunding = new(big.Int).Mul(big.NewInt(1), big.NewInt(1e18))

// Result is the set-up chain.
type Result struct {
	ChainID  int64
	Token    common.Address
	Deployer common.Address
	Treasury common.Address
	GasTank  common.Address
	// GasTankBalance is the tank's balance once the run is done.
	GasTankBalance *big.Int
	// Sent lists the transactions this run sent, none when the chain was set up already.
	Sent []common.Hash
}

// Run sets up the chain at cfg.RPCURL (see the package comment) and reports to out.
func Run(ctx context.Context, cfg Config, out io.Writer) (*Result, error) {
	s := &setup{cfg: cfg, out: out}
	if err := s.dial(ctx); err != nil {
		return nil, err
	}
	defer s.client.Close()

	res := &Result{ChainID: cfg.ChainID, Token: cfg.Keys.TokenAddress(), Deployer: cfg.Keys.Deployer.Address,
		Treasury: cfg.Keys.Treasury.Address, GasTank: cfg.GasTank}
	if err := s.ensureToken(ctx, res.Token); err != nil {
		return nil, fmt.Errorf("token: %w", err)
	}
	if err := s.topUp(ctx, "gas tank", cfg.GasTank, cfg.GasTankFunding); err != nil {
		return nil, fmt.Errorf("gas tank %s: %w", cfg.GasTank.Hex(), err)
	}
	bal, err := s.client.BalanceAt(ctx, cfg.GasTank, nil)
	if err != nil {
		return nil, fmt.Errorf("gas tank balance: %w", err)
	}
	res.GasTankBalance, res.Sent = bal, s.sent

	s.logf("dev chain %d ready (%d transaction(s) sent); these keys are PUBLIC, for the dev chain only:", cfg.ChainID, len(s.sent))
	s.logf("  token     %s %s, %d decimals, deployed by %s (m/44'/60'/1'/0/0)", TokenSymbol, res.Token.Hex(), TokenDecimals, res.Deployer.Hex())
	s.logf("  treasury  %s (m/44'/60'/1'/0/1)", res.Treasury.Hex())
	s.logf("  gas tank  %s holds %s ETH", res.GasTank.Hex(), formatETH(bal))
	return res, nil
}

type setup struct {
	cfg     Config
	out     io.Writer
	rpc     *rpc.Client
	client  *ethclient.Client
	chainID *big.Int
	funder  funder
	sent    []common.Hash
}

func (s *setup) logf(format string, a ...any) { fmt.Fprintf(s.out, "devsetup: "+format+"\n", a...) }

// dial connects to RPC_URL and waits up to RPC_WAIT for it to answer eth_chainId, which must
// be CHAIN_ID: the chain may still be starting when this runs.
func (s *setup) dial(ctx context.Context) error {
	where := redactURL(s.cfg.RPCURL)
	c, err := rpc.DialContext(ctx, s.cfg.RPCURL)
	if err != nil {
		return fmt.Errorf("RPC_URL %s: %w", where, err)
	}
	s.rpc, s.client = c, ethclient.NewClient(c)
	deadline := time.Now().Add(s.cfg.RPCWait)
	for waiting := false; ; waiting = true {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		id, err := s.client.ChainID(cctx)
		cancel()
		if err == nil {
			if id.Cmp(big.NewInt(s.cfg.ChainID)) != 0 {
				s.client.Close()
				return fmt.Errorf("RPC_URL %s serves chain id %s, want CHAIN_ID %d", where, id, s.cfg.ChainID)
			}
			s.chainID = id
			s.logf("connected to chain %s at %s", id, where)
			return nil
		}
		if !waiting {
			s.logf("waiting up to %s (RPC_WAIT) for the node at %s: %v", s.cfg.RPCWait, where, err)
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			s.client.Close()
			return fmt.Errorf("RPC_URL %s did not answer within RPC_WAIT (%s): %w", where, s.cfg.RPCWait, err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

// ensureToken deploys the token at addr, the deployer's nonce-0 address, unless it is there.
func (s *setup) ensureToken(ctx context.Context, addr common.Address) error {
	deployer := s.cfg.Keys.Deployer
	code, err := s.client.CodeAt(ctx, addr, nil)
	if err != nil {
		return err
	}
	if len(code) > 0 {
		s.logf("token %s: deployed already", addr.Hex())
		return s.checkToken(ctx, addr)
	}
	mined, err := s.client.NonceAt(ctx, deployer.Address, nil)
	if err != nil {
		return err
	}
	if mined > 0 {
		return fmt.Errorf("no code at %s, but the deployer %s has sent %d transaction(s) already, so its nonce-0 "+
			"deployment failed or this is not the chain devsetup set up: reset the dev chain (docker compose down -v)",
			addr.Hex(), deployer.Address.Hex(), mined)
	}
	pending, err := s.client.PendingNonceAt(ctx, deployer.Address)
	if err != nil {
		return err
	}
	if pending > 0 {
		// An earlier run broadcast the deployment and was stopped before it was mined.
		s.logf("token %s: the deployment is pending; waiting for it", addr.Hex())
		if err := s.waitForCode(ctx, addr); err != nil {
			return err
		}
		return s.checkToken(ctx, addr)
	}

	if err := s.topUp(ctx, "deployer", deployer.Address, deployerFunding); err != nil {
		return fmt.Errorf("fund the deployer %s: %w", deployer.Address.Hex(), err)
	}
	auth, err := bind.NewKeyedTransactorWithChainID(deployer.Private, s.chainID)
	if err != nil {
		return err
	}
	auth.Nonce, auth.Context = big.NewInt(0), ctx
	got, tx, _, err := chaintest.DeployTestToken(auth, s.client, TokenName, TokenSymbol, TokenDecimals)
	if err != nil {
		return fmt.Errorf("deploy: %w", err)
	}
	s.sent = append(s.sent, tx.Hash())
	if got != addr {
		return fmt.Errorf("deployed at %s, not at the predicted %s", got.Hex(), addr.Hex())
	}
	s.logf("token %s: deploying in %s", addr.Hex(), tx.Hash().Hex())
	if err := s.waitMined(ctx, tx.Hash(), "deploy the token"); err != nil {
		return err
	}
	if err := s.waitForCode(ctx, addr); err != nil {
		return err
	}
	return s.checkToken(ctx, addr)
}

// checkToken makes sure the contract at addr is devsetup's token.
func (s *setup) checkToken(ctx context.Context, addr common.Address) error {
	token, err := chaintest.NewTestToken(addr, s.client)
	if err != nil {
		return err
	}
	opts := &bind.CallOpts{Context: ctx}
	symbol, err := token.Symbol(opts)
	if err != nil {
		return fmt.Errorf("%s: symbol(): %w", addr.Hex(), err)
	}
	decimals, err := token.Decimals(opts)
	if err != nil {
		return fmt.Errorf("%s: decimals(): %w", addr.Hex(), err)
	}
	if symbol != TokenSymbol || decimals != TokenDecimals {
		return fmt.Errorf("the contract at %s is %q with %d decimals, not devsetup's %s with %d", addr.Hex(), symbol, decimals, TokenSymbol, TokenDecimals)
	}
	return nil
}

// topUp sends target minus the balance of addr when it holds less than target.
func (s *setup) topUp(ctx context.Context, what string, addr common.Address, target *big.Int) error {
	bal, err := s.client.BalanceAt(ctx, addr, nil)
	if err != nil {
		return err
	}
	if bal.Cmp(target) >= 0 {
		s.logf("%s %s holds %s ETH (want %s): nothing to send", what, addr.Hex(), formatETH(bal), formatETH(target))
		return nil
	}
	f, err := s.getFunder(ctx)
	if err != nil {
		return err
	}
	amount := new(big.Int).Sub(target, bal)
	hash, err := f.send(ctx, addr, amount)
	if err != nil {
		return fmt.Errorf("send %s ETH from %s: %w", formatETH(amount), f.address().Hex(), err)
	}
	s.sent = append(s.sent, hash)
	s.logf("%s %s: sending %s ETH from %s in %s", what, addr.Hex(), formatETH(amount), f.address().Hex(), hash.Hex())
	return s.waitMined(ctx, hash, "fund the "+what)
}

// getFunder picks who pays, on first use only: a run with nothing to fund needs nobody.
func (s *setup) getFunder(ctx context.Context) (funder, error) {
	if s.funder != nil {
		return s.funder, nil
	}
	if k := s.cfg.FunderKey; k != nil {
		s.funder = &keyFunder{key: *k, client: s.client, chainID: s.chainID}
		return s.funder, nil
	}
	var accounts []common.Address
	if err := s.rpc.CallContext(ctx, &accounts, "eth_accounts"); err != nil {
		return nil, fmt.Errorf("FUNDER_PRIVATE_KEY is not set and eth_accounts failed: %w", err)
	}
	if len(accounts) == 0 {
		return nil, errors.New("FUNDER_PRIVATE_KEY is not set and the node has no unlocked account (eth_accounts is empty; " +
			"geth --dev has one): set FUNDER_PRIVATE_KEY to the hex key of a funded account")
	}
	s.funder = &nodeFunder{from: accounts[0], rpc: s.rpc}
	return s.funder, nil
}

// waitMined waits up to TX_TIMEOUT for the receipt of hash and checks that it succeeded.
func (s *setup) waitMined(ctx context.Context, hash common.Hash, what string) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.TxTimeout)
	defer cancel()
	var last error
	for {
		r, err := s.client.TransactionReceipt(ctx, hash)
		if err == nil {
			if r.Status != types.ReceiptStatusSuccessful {
				return fmt.Errorf("%s: transaction %s reverted", what, hash.Hex())
			}
			return nil
		}
		if !errors.Is(err, ethereum.NotFound) {
			last = err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: transaction %s not mined within TX_TIMEOUT (%s); is the chain producing blocks? (last error: %v)",
				what, hash.Hex(), s.cfg.TxTimeout, last)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// waitForCode waits up to TX_TIMEOUT for code at addr.
func (s *setup) waitForCode(ctx context.Context, addr common.Address) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.TxTimeout)
	defer cancel()
	for {
		code, err := s.client.CodeAt(ctx, addr, nil)
		if err == nil && len(code) > 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("no code at %s within TX_TIMEOUT (%s) (last error: %v)", addr.Hex(), s.cfg.TxTimeout, err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// funder pays for the deployer's gas and the gas tank.
type funder interface {
	address() common.Address
	send(ctx context.Context, to common.Address, wei *big.Int) (common.Hash, error)
}

// keyFunder signs with FUNDER_PRIVATE_KEY.
type keyFunder struct {
	key     Key
	client  *ethclient.Client
	chainID *big.Int
}

func (f *keyFunder) address() common.Address { return f.key.Address }

func (f *keyFunder) send(ctx context.Context, to common.Address, wei *big.Int) (common.Hash, error) {
	nonce, err := f.client.PendingNonceAt(ctx, f.key.Address)
	if err != nil {
		return common.Hash{}, fmt.Errorf("nonce: %w", err)
	}
	gas, err := f.client.EstimateGas(ctx, ethereum.CallMsg{From: f.key.Address, To: &to, Value: wei})
	if err != nil {
		return common.Hash{}, fmt.Errorf("estimate gas: %w", err)
	}
	tip, err := f.client.SuggestGasTipCap(ctx)
	if err != nil {
		return common.Hash{}, fmt.Errorf("suggest tip: %w", err)
	}
	head, err := f.client.HeaderByNumber(ctx, nil)
	if err != nil {
		return common.Hash{}, fmt.Errorf("head: %w", err)
	}
	// Twice the base fee plus the tip stays valid while the base fee rises for a few blocks.
	feeCap := new(big.Int).Add(new(big.Int).Mul(head.BaseFee, big.NewInt(2)), tip)
	tx, err := types.SignNewTx(f.key.Private, types.LatestSignerForChainID(f.chainID), &types.DynamicFeeTx{
		ChainID: f.chainID, Nonce: nonce, GasTipCap: tip, GasFeeCap: feeCap, Gas: gas, To: &to, Value: wei,
	})
	if err != nil {
		return common.Hash{}, fmt.Errorf("sign: %w", err)
	}
	return tx.Hash(), f.client.SendTransaction(ctx, tx)
}

// nodeFunder has the node sign for its unlocked account (eth_sendTransaction); the node fills
// in the nonce, gas and fees.
type nodeFunder struct {
	from common.Address
	rpc  *rpc.Client
}

func (f *nodeFunder) address() common.Address { return f.from }

func (f *nodeFunder) send(ctx context.Context, to common.Address, wei *big.Int) (common.Hash, error) {
	var hash common.Hash
	err := f.rpc.CallContext(ctx, &hash, "eth_sendTransaction", map[string]any{
		"from": f.from, "to": to, "value": (*hexutil.Big)(wei),
	})
	return hash, err
}

// formatETH prints wei as ETH without trailing zeros: 100, 0.5.
func formatETH(wei *big.Int) string {
	s := new(big.Rat).SetFrac(wei, big.NewInt(1e18)).FloatString(18)
	s = strings.TrimRight(s, "0")
	return strings.TrimSuffix(s, ".")
}

// redactURL hides a password in the URL (an RPC URL may carry an API key as user info).
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparseable URL)"
	}
	return u.Redacted()
}
