package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/common/hexutil"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/crypto"

	"github.com/ctrip-pay/pipeline/shared/chains"
	"github.com/ctrip-pay/pipeline/shared/testkit"
	"github.com/ctrip-pay/pipeline/shared/testkit/chaintest"
)

// What the dev mnemonic derives: deploy/chains.compose.yaml and deploy/docker-compose.yml
// spell these out, and TestComposeFilesMatchTheDevKeys holds them to it.
const (
	wantDeployer   = "0x78839F6054d7ed13918bAe0473BA31b1Ca9D7265"
	wantToken      = "0x42efaCea21C44a65c78443a2967f501246A91912"
	wantTreasury   = "0x61C1a3DD47433e58033cc812E520C0fFd9007198"
	wantGasTank    = "0xa48FC6D3b37F5C5CA5CCAEabFB9B606Ae1535E5d"
	wantGasTankKey = "c277e3f89b6333789252112e2c442fff30292cc3ec84b536c119fa89757ed98f"
)

var ether = big.NewInt(1e18)

func eth(n int64) *big.Int { return new(big.Int).Mul(big.NewInt(n), ether) }

// newChain is a simulated chain 1337 served over HTTP that mines a block every 50ms, as geth
// --dev mines on its period.
func newChain(t *testing.T, opts ...chaintest.Option) *chaintest.Chain {
	return chaintest.New(t, append([]chaintest.Option{chaintest.WithHTTP(), chaintest.WithBlockInterval(50 * time.Millisecond)}, opts...)...)
}

// load is LoadConfig over env, with short waits for a test.
func load(t *testing.T, env map[string]string) Config {
	t.Helper()
	full := map[string]string{"RPC_WAIT": "5s", "TX_TIMEOUT": "30s"}
	for k, v := range env {
		full[k] = v
	}
	cfg, err := LoadConfig(func(k string) string { return full[k] })
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func run(t *testing.T, cfg Config) (*Result, string) {
	t.Helper()
	var out bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res, err := Run(ctx, cfg, &out)
	if err != nil {
		t.Fatalf("devsetup: %v\n%s", err, out.String())
	}
	return res, out.String()
}

func keyHex(a *chaintest.Account) string { return common.Bytes2Hex(crypto.FromECDSA(a.Key)) }

// chainState is what a devsetup run may change.
type chainState struct {
	tokenCode                    []byte
	gasTank, deployer            *big.Int
	funderNonce, deployerNonce   uint64
	funderBalance, treasuryFunds *big.Int
}

func stateOf(t *testing.T, chain *chaintest.Chain, funder common.Address) chainState {
	t.Helper()
	ctx := context.Background()
	c := chain.Client()
	code, err := c.CodeAt(ctx, common.HexToAddress(wantToken), nil)
	if err != nil {
		t.Fatal(err)
	}
	nonce := func(a common.Address) uint64 {
		n, err := c.NonceAt(ctx, a, nil)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	return chainState{
		tokenCode:     code,
		gasTank:       chain.BalanceAt(common.HexToAddress(wantGasTank)),
		deployer:      chain.BalanceAt(common.HexToAddress(wantDeployer)),
		funderNonce:   nonce(funder),
		deployerNonce: nonce(common.HexToAddress(wantDeployer)),
		funderBalance: chain.BalanceAt(funder),
		treasuryFunds: chain.BalanceAt(common.HexToAddress(wantTreasury)),
	}
}

func (s chainState) equal(o chainState) bool {
	return bytes.Equal(s.tokenCode, o.tokenCode) && s.gasTank.Cmp(o.gasTank) == 0 && s.deployer.Cmp(o.deployer) == 0 &&
		s.funderNonce == o.funderNonce && s.deployerNonce == o.deployerNonce && s.funderBalance.Cmp(o.funderBalance) == 0 &&
		s.treasuryFunds.Cmp(o.treasuryFunds) == 0
}

// checkSetUp asserts what a first run leaves: the token at the predicted address, the tank
// holding exactly the funding.
func checkSetUp(t *testing.T, chain *chaintest.Chain, res *Result) {
	t.Helper()
	if res.Token != common.HexToAddress(wantToken) || res.GasTank != common.HexToAddress(wantGasTank) ||
		res.Deployer != common.HexToAddress(wantDeployer) || res.Treasury != common.HexToAddress(wantTreasury) {
		t.Fatalf("result %+v, want token %s, gas tank %s, deployer %s, treasury %s", res, wantToken, wantGasTank, wantDeployer, wantTreasury)
	}
	code, err := chain.Client().CodeAt(context.Background(), res.Token, nil)
	if err != nil || len(code) == 0 {
		t.Fatalf("no code at the predicted token address %s (err %v)", res.Token.Hex(), err)
	}
	token := chain.Token(res.Token)
	if sym, err := token.Symbol(nil); err != nil || sym != TokenSymbol {
		t.Errorf("token symbol %q (err %v), want %s", sym, err, TokenSymbol)
	}
	if dec, err := token.Decimals(nil); err != nil || dec != TokenDecimals {
		t.Errorf("token decimals %d (err %v), want %d", dec, err, TokenDecimals)
	}
	if got := chain.BalanceAt(res.GasTank); got.Cmp(eth(100)) != 0 || res.GasTankBalance.Cmp(eth(100)) != 0 {
		t.Errorf("gas tank holds %s wei (result says %s), want 100 ETH", got, res.GasTankBalance)
	}
	// Fund the deployer, deploy, fund the tank.
	if len(res.Sent) != 3 {
		t.Errorf("first run sent %d transactions, want 3", len(res.Sent))
	}
	for _, h := range res.Sent {
		if r := chain.Receipt(h); r.Status != types.ReceiptStatusSuccessful {
			t.Errorf("transaction %s failed", h.Hex())
		}
	}
}

func TestSetsUpTheChainOnceWithAFunderKey(t *testing.T) {
	chain := newChain(t)
	funder := chain.Accounts[0]
	cfg := load(t, map[string]string{"RPC_URL": chain.RPCURL(), "FUNDER_PRIVATE_KEY": "0x" + keyHex(funder)})

	res, out := run(t, cfg)
	t.Logf("first run:\n%s", out)
	checkSetUp(t, chain, res)
	if !strings.Contains(out, "PUBLIC") || !strings.Contains(out, wantToken) {
		t.Errorf("the summary does not name the token and warn the keys are public:\n%s", out)
	}

	// The second run finds everything in place and sends nothing.
	before := stateOf(t, chain, funder.Address)
	res2, out2 := run(t, cfg)
	t.Logf("second run:\n%s", out2)
	chain.Mine(3) // anything it sent would be mined now
	after := stateOf(t, chain, funder.Address)
	if len(res2.Sent) != 0 || !before.equal(after) {
		t.Errorf("second run sent %v; chain state %+v -> %+v\n%s", res2.Sent, before, after, out2)
	}
	if res2.Token != res.Token || res2.GasTankBalance.Cmp(eth(100)) != 0 {
		t.Errorf("second run reports token %s, gas tank %s wei", res2.Token.Hex(), res2.GasTankBalance)
	}
	if !strings.Contains(out2, "deployed already") || !strings.Contains(out2, "nothing to send") {
		t.Errorf("second run output:\n%s", out2)
	}

	// A tank the sweeper has spent from is topped up to the funding again, no more.
	cfg.GasTankFunding = eth(150)
	res3, _ := run(t, cfg)
	if len(res3.Sent) != 1 || chain.BalanceAt(res.GasTank).Cmp(eth(150)) != 0 {
		t.Errorf("top-up sent %d transactions, gas tank %s wei; want 1 and 150 ETH", len(res3.Sent), chain.BalanceAt(res.GasTank))
	}
}

// devNode stands in for geth --dev in front of the simulated chain: it has one unlocked
// account and signs eth_sendTransaction for it (filling in nonce, gas and fees, as geth does);
// every other call goes to the chain.
func devNode(t *testing.T, chain *chaintest.Chain, account *chaintest.Account) (rpcURL string, sendTxs *atomic.Int64) {
	target, err := url.Parse(chain.RPCURL())
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(target)
	sendTxs = new(atomic.Int64)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var req struct {
			ID     json.RawMessage   `json:"id"`
			Method string            `json:"method"`
			Params []json.RawMessage `json:"params"`
		}
		_ = json.Unmarshal(body, &req) // a batch fails to decode and is forwarded
		var result any
		switch req.Method {
		case "eth_accounts":
			result = []common.Address{account.Address}
		case "eth_sendTransaction":
			sendTxs.Add(1)
			hash, err := signAndSend(r.Context(), chain, account, req.Params[0])
			if err != nil {
				writeJSON(w, map[string]any{"jsonrpc": "2.0", "id": req.ID, "error": map[string]any{"code": -32000, "message": err.Error()}})
				return
			}
			result = hash
		default:
			r.Body = io.NopCloser(bytes.NewReader(body))
			proxy.ServeHTTP(w, r)
			return
		}
		writeJSON(w, map[string]any{"jsonrpc": "2.0", "id": req.ID, "result": result})
	}))
	t.Cleanup(srv.Close)
	return srv.URL, sendTxs
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

func signAndSend(ctx context.Context, chain *chaintest.Chain, from *chaintest.Account, raw json.RawMessage) (common.Hash, error) {
	var args struct {
		From  common.Address `json:"from"`
		To    common.Address `json:"to"`
		Value *hexutil.Big   `json:"value"`
	}
	if err := json.Unmarshal(raw, &args); err != nil {
		return common.Hash{}, err
	}
	if args.From != from.Address {
		return common.Hash{}, ethereum.NotFound
	}
	c := chain.Client()
	nonce, err := c.PendingNonceAt(ctx, from.Address)
	if err != nil {
		return common.Hash{}, err
	}
	tip, err := c.SuggestGasTipCap(ctx)
	if err != nil {
		return common.Hash{}, err
	}
	head, err := c.HeaderByNumber(ctx, nil)
	if err != nil {
		return common.Hash{}, err
	}
	tx, err := types.SignNewTx(from.Key, types.LatestSignerForChainID(chain.ChainID()), &types.DynamicFeeTx{
		ChainID: chain.ChainID(), Nonce: nonce, GasTipCap: tip, GasFeeCap: new(big.Int).Add(new(big.Int).Mul(head.BaseFee, big.NewInt(2)), tip),
		Gas: 21000, To: &args.To, Value: args.Value.ToInt(),
	})
	if err != nil {
		return common.Hash{}, err
	}
	return tx.Hash(), c.SendTransaction(ctx, tx)
}

// Without FUNDER_PRIVATE_KEY the node's unlocked account pays, as on geth --dev.
func TestFundsFromTheNodesUnlockedAccount(t *testing.T) {
	dev := chaintest.NewAccount("devsetup test: geth --dev account")
	chain := newChain(t, chaintest.WithGenesisBalance(dev.Address, eth(1000)))
	rpcURL, sendTxs := devNode(t, chain, dev)
	cfg := load(t, map[string]string{"RPC_URL": rpcURL})

	res, _ := run(t, cfg)
	checkSetUp(t, chain, res)
	if n := sendTxs.Load(); n != 2 {
		t.Errorf("%d eth_sendTransaction calls, want 2 (deployer and gas tank)", n)
	}
	before := stateOf(t, chain, dev.Address)
	res2, _ := run(t, cfg)
	chain.Mine(3)
	if after := stateOf(t, chain, dev.Address); len(res2.Sent) != 0 || sendTxs.Load() != 2 || !before.equal(after) {
		t.Errorf("second run sent %v (%d eth_sendTransaction in all); chain state %+v -> %+v", res2.Sent, sendTxs.Load(), before, after)
	}
}

// The tank is GAS_TANK_PRIVATE_KEY's address when it is set: what the sweeper spends from.
func TestFundsTheGasTankOfTheSweepersKey(t *testing.T) {
	chain := newChain(t)
	tank := chaintest.NewAccount("devsetup test: own gas tank")
	cfg := load(t, map[string]string{"RPC_URL": chain.RPCURL(), "FUNDER_PRIVATE_KEY": keyHex(chain.Accounts[1]),
		"GAS_TANK_PRIVATE_KEY": keyHex(tank), "GAS_TANK_FUNDING_ETH": "2.5"})
	res, _ := run(t, cfg)
	want := new(big.Int).Div(eth(5), big.NewInt(2))
	if res.GasTank != tank.Address || chain.BalanceAt(tank.Address).Cmp(want) != 0 {
		t.Errorf("funded %s to %s wei, want %s to 2.5 ETH", res.GasTank.Hex(), chain.BalanceAt(tank.Address), tank.Address.Hex())
	}
	if b := chain.BalanceAt(common.HexToAddress(wantGasTank)); b.Sign() != 0 {
		t.Errorf("the default gas tank got %s wei too", b)
	}
}

func TestFailsClearly(t *testing.T) {
	chain := newChain(t)
	runErr := func(t *testing.T, cfg Config) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		res, err := Run(ctx, cfg, io.Discard)
		if err == nil {
			t.Fatalf("devsetup succeeded: %+v", res)
		}
		return err.Error()
	}
	t.Run("no funder", func(t *testing.T) {
		// The simulated node, unlike geth --dev, has no unlocked account.
		msg := runErr(t, load(t, map[string]string{"RPC_URL": chain.RPCURL()}))
		if !strings.Contains(msg, "FUNDER_PRIVATE_KEY is not set and the node has no unlocked account") {
			t.Errorf("error %q", msg)
		}
	})
	t.Run("wrong chain", func(t *testing.T) {
		msg := runErr(t, load(t, map[string]string{"RPC_URL": chain.RPCURL(), "CHAIN_ID": "1"}))
		if !strings.Contains(msg, "serves chain id 1337, want CHAIN_ID 1") {
			t.Errorf("error %q", msg)
		}
	})
	t.Run("no node", func(t *testing.T) {
		port, err := testkit.FreePort()
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		msg := runErr(t, load(t, map[string]string{"RPC_URL": "http://127.0.0.1:" + strconv.Itoa(port), "RPC_WAIT": "2s"}))
		if !strings.Contains(msg, "did not answer within RPC_WAIT (2s)") || time.Since(start) > 20*time.Second {
			t.Errorf("error %q after %s", msg, time.Since(start))
		}
	})
	t.Run("deployer nonce used", func(t *testing.T) {
		// The deployer's nonce 0 went to something else: the token can never be at the
		// predicted address on this chain.
		keys, err := DeriveDevKeys(DevMnemonic)
		if err != nil {
			t.Fatal(err)
		}
		deployer := &chaintest.Account{Key: keys.Deployer.Private, Address: keys.Deployer.Address}
		chain := newChain(t, chaintest.WithGenesisBalance(deployer.Address, eth(1)))
		chain.WaitMined(chain.SendETH(deployer, chain.Accounts[0].Address, big.NewInt(1)))
		msg := runErr(t, load(t, map[string]string{"RPC_URL": chain.RPCURL(), "FUNDER_PRIVATE_KEY": keyHex(chain.Accounts[0])}))
		if !strings.Contains(msg, "reset the dev chain") {
			t.Errorf("error %q", msg)
		}
	})
}

func TestLoadConfig(t *testing.T) {
	cfg, err := LoadConfig(func(k string) string { return map[string]string{"RPC_URL": "http://chain:8545"}[k] })
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ChainID != 1337 || cfg.GasTank != common.HexToAddress(wantGasTank) || cfg.GasTankFunding.Cmp(eth(100)) != 0 ||
		cfg.FunderKey != nil || cfg.RPCWait != 2*time.Minute || cfg.TxTimeout != 2*time.Minute {
		t.Errorf("defaults %+v", cfg)
	}
	secret := "4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318"
	for name, c := range map[string]struct {
		env  map[string]string
		want string
	}{
		"no rpc":         {map[string]string{}, "RPC_URL is required"},
		"bad tank key":   {map[string]string{"GAS_TANK_PRIVATE_KEY": secret + "zz"}, "GAS_TANK_PRIVATE_KEY: not a hex secp256k1 private key"},
		"bad funder key": {map[string]string{"FUNDER_PRIVATE_KEY": secret[:40]}, "FUNDER_PRIVATE_KEY: not a hex secp256k1 private key"},
		"bad address":    {map[string]string{"GAS_TANK_ADDRESS": "0x12"}, "GAS_TANK_ADDRESS: not a hex address"},
		"bad funding":    {map[string]string{"GAS_TANK_FUNDING_ETH": "-1"}, "GAS_TANK_FUNDING_ETH"},
		"tiny funding":   {map[string]string{"GAS_TANK_FUNDING_ETH": "0.0000000000000000001"}, "more than 18 decimals"},
		"bad mnemonic":   {map[string]string{"DEV_MNEMONIC": "abandon abandon"}, "DEV_MNEMONIC: invalid mnemonic"},
		"bad chain id":   {map[string]string{"CHAIN_ID": "x"}, "CHAIN_ID"},
		"bad wait":       {map[string]string{"RPC_WAIT": "0s"}, "RPC_WAIT"},
	} {
		t.Run(name, func(t *testing.T) {
			env := map[string]string{"RPC_URL": "http://chain:8545"}
			if name == "no rpc" {
				env = map[string]string{}
			}
			for k, v := range c.env {
				env[k] = v
			}
			_, err := LoadConfig(func(k string) string { return env[k] })
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want one saying %q", err, c.want)
			}
			if strings.Contains(err.Error(), secret[:16]) {
				t.Errorf("error quotes the key: %v", err)
			}
		})
	}
}

// deploy/chains.compose.yaml and the compose file's default GAS_TANK_PRIVATE_KEY are what
// devsetup derives: the services look for the token where devsetup puts it, and the sweeper
// spends from the tank devsetup funds.
func TestComposeFilesMatchTheDevKeys(t *testing.T) {
	keys, err := DeriveDevKeys(DevMnemonic)
	if err != nil {
		t.Fatal(err)
	}
	if keys.Deployer.Address.Hex() != wantDeployer || keys.TokenAddress().Hex() != wantToken ||
		keys.Treasury.Address.Hex() != wantTreasury || keys.GasTank.Address.Hex() != wantGasTank || keys.GasTank.Hex() != wantGasTankKey {
		t.Fatalf("derived deployer %s, token %s, treasury %s, gas tank %s", keys.Deployer.Address.Hex(), keys.TokenAddress().Hex(),
			keys.Treasury.Address.Hex(), keys.GasTank.Address.Hex())
	}

	f, err := chains.Load("../chains.compose.yaml")
	if err != nil {
		t.Fatal(err)
	}
	ch, ok := f.Chain(1337)
	if !ok || len(f.Chains) != 1 {
		t.Fatalf("chains.compose.yaml: %+v, want the one dev chain 1337", f.Chains)
	}
	if ch.RPCURL != "http://chain:8545" || ch.Treasury != strings.ToLower(wantTreasury) {
		t.Errorf("chains.compose.yaml: rpc_url %s, treasury %s; want http://chain:8545 and %s", ch.RPCURL, ch.Treasury, wantTreasury)
	}
	tok, ok := ch.Token(TokenSymbol)
	if !ok || tok.Contract != strings.ToLower(wantToken) || tok.Decimals != TokenDecimals || len(ch.Tokens) != 1 {
		t.Errorf("chains.compose.yaml: tokens %+v, want %s at %s with %d decimals", ch.Tokens, TokenSymbol, wantToken, TokenDecimals)
	}

	compose, err := os.ReadFile("../docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	if want := "GAS_TANK_PRIVATE_KEY: ${GAS_TANK_PRIVATE_KEY:-" + wantGasTankKey + "}"; !bytes.Contains(compose, []byte(want)) {
		t.Errorf("docker-compose.yml has no %q", want)
	}
}
