package chaintest_test

import (
	"context"
	"math/big"
	"sync"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/accounts/abi/bind"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/ethclient"

	"github.com/ctrip-pay/pipeline/shared/testkit/chaintest"
)

// units is n * 10^decimals.
func units(n int64, decimals uint8) *big.Int {
	return new(big.Int).Mul(big.NewInt(n), new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(decimals)), nil))
}

// fee is what the receipt's transaction cost its sender in gas.
func fee(r *types.Receipt) *big.Int {
	return new(big.Int).Mul(new(big.Int).SetUint64(r.GasUsed), r.EffectiveGasPrice)
}

// blockOf says where a receipt is, for failure messages.
func blockOf(r *types.Receipt) string {
	if r == nil {
		return "none"
	}
	return r.BlockNumber.String() + " " + r.BlockHash.Hex()
}

func TestNewFundsAccounts(t *testing.T) {
	extra := chaintest.NewAccount("test/extra")
	c := chaintest.New(t, chaintest.WithAccounts(2), chaintest.WithGenesisBalance(extra.Address, big.NewInt(12345)))

	if got := c.ChainID(); got.Cmp(big.NewInt(1337)) != 0 {
		t.Errorf("chain id = %s, want 1337", got)
	}
	if len(c.Accounts) != 2 {
		t.Fatalf("accounts = %d, want 2", len(c.Accounts))
	}
	for _, a := range append([]*chaintest.Account{c.Funder}, c.Accounts...) {
		if got := c.BalanceAt(a.Address); got.Cmp(chaintest.GenesisBalance) != 0 {
			t.Errorf("balance of %s = %s, want %s", a.Address, got, chaintest.GenesisBalance)
		}
	}
	if got := c.BalanceAt(extra.Address); got.Cmp(big.NewInt(12345)) != 0 {
		t.Errorf("balance of extra = %s, want 12345", got)
	}
	if again := chaintest.New(t, chaintest.WithAccounts(2)); again.Accounts[1].Address != c.Accounts[1].Address {
		t.Errorf("accounts are not deterministic: %s vs %s", again.Accounts[1].Address, c.Accounts[1].Address)
	}
}

func TestSendETHTracksNonces(t *testing.T) {
	c := chaintest.New(t)
	from := c.Accounts[0]
	to := chaintest.NewAccount("test/eth-recipient").Address
	before := c.BalanceAt(from.Address)

	// Three sends before any block: each must get the next nonce although the node's pending
	// nonce is not trusted to have moved yet.
	amounts := []*big.Int{units(1, 18), units(2, 18), big.NewInt(7)}
	var txs []*types.Transaction
	for _, wei := range amounts {
		txs = append(txs, c.SendETH(from, to, wei))
	}
	block := c.Commit()

	spent, sent := new(big.Int), new(big.Int)
	for i, tx := range txs {
		if tx.Nonce() != uint64(i) {
			t.Errorf("tx %d nonce = %d, want %d", i, tx.Nonce(), i)
		}
		if tx.Type() != types.DynamicFeeTxType {
			t.Errorf("tx %d type = %d, want EIP-1559", i, tx.Type())
		}
		r := c.WaitMined(tx)
		if r.Status != types.ReceiptStatusSuccessful || r.BlockHash != block {
			t.Errorf("tx %d: status %d in block %s, want success in %s", i, r.Status, r.BlockHash, block)
		}
		spent.Add(spent, fee(r))
		sent.Add(sent, amounts[i])
	}
	if got := c.BalanceAt(to); got.Cmp(sent) != 0 {
		t.Errorf("recipient balance = %s, want %s", got, sent)
	}
	want := new(big.Int).Sub(before, new(big.Int).Add(sent, spent))
	if got := c.BalanceAt(from.Address); got.Cmp(want) != 0 {
		t.Errorf("sender balance = %s, want %s", got, want)
	}
}

func TestTokenDeployMintTransfer(t *testing.T) {
	tests := []struct {
		name     string
		decimals uint8
	}{
		{name: "6 decimals", decimals: 6},
		{name: "18 decimals", decimals: 18},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := chaintest.New(t)
			addr, token := c.DeployToken(tt.decimals)

			call := &bind.CallOpts{Context: context.Background()}
			if got, err := token.Decimals(call); err != nil || got != tt.decimals {
				t.Fatalf("decimals = %d, %v; want %d", got, err, tt.decimals)
			}
			if got, err := token.Symbol(call); err != nil || got == "" {
				t.Errorf("symbol = %q, %v", got, err)
			}

			holder := c.Accounts[0]
			recipient := chaintest.NewAccount("test/token-recipient").Address
			minted := units(1000, tt.decimals)
			mint := c.MintToken(addr, holder.Address, minted)
			if len(mint.Logs) != 1 {
				t.Fatalf("mint logs = %d, want 1 Transfer", len(mint.Logs))
			}
			if ev, err := token.ParseTransfer(*mint.Logs[0]); err != nil || ev.From != (common.Address{}) || ev.To != holder.Address || ev.Value.Cmp(minted) != 0 {
				t.Errorf("mint event = %+v, %v", ev, err)
			}

			// 250.5 tokens: a fractional amount in the token's own base units.
			amount := new(big.Int).Add(units(250, tt.decimals), units(5, tt.decimals-1))
			ethBefore := c.BalanceAt(holder.Address)
			tx := c.TransferToken(holder, addr, recipient, amount)
			c.Commit()
			r := c.WaitMined(tx)
			if r.Status != types.ReceiptStatusSuccessful {
				t.Fatalf("transfer reverted")
			}
			// A cold transfer (new recipient slot) costs well above the textbook 65k; the gas
			// limit came from estimation, so it must cover what was used.
			if r.GasUsed <= 21000 || tx.Gas() < r.GasUsed {
				t.Errorf("gas used %d with limit %d", r.GasUsed, tx.Gas())
			}
			t.Logf("cold transfer gas used: %d (limit %d)", r.GasUsed, tx.Gas())
			ev, err := token.ParseTransfer(*r.Logs[0])
			if err != nil || ev.From != holder.Address || ev.To != recipient || ev.Value.Cmp(amount) != 0 {
				t.Errorf("transfer event = %+v, %v", ev, err)
			}

			if got := c.TokenBalance(addr, recipient); got.Cmp(amount) != 0 {
				t.Errorf("recipient tokens = %s, want %s", got, amount)
			}
			if got, want := c.TokenBalance(addr, holder.Address), new(big.Int).Sub(minted, amount); got.Cmp(want) != 0 {
				t.Errorf("holder tokens = %s, want %s", got, want)
			}
			if got, want := c.BalanceAt(holder.Address), new(big.Int).Sub(ethBefore, fee(r)); got.Cmp(want) != 0 {
				t.Errorf("holder ETH = %s, want %s (only the fee spent)", got, want)
			}
		})
	}
}

func TestHTTPEndpoint(t *testing.T) {
	c := chaintest.New(t, chaintest.WithHTTP())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	client, err := ethclient.DialContext(ctx, c.RPCURL())
	if err != nil {
		t.Fatalf("dial %s: %v", c.RPCURL(), err)
	}
	defer client.Close()

	id, err := client.ChainID(ctx)
	if err != nil || id.Cmp(c.ChainID()) != 0 {
		t.Fatalf("eth_chainId = %v, %v; want %s", id, err, c.ChainID())
	}
	c.Mine(2)
	if n, err := client.BlockNumber(ctx); err != nil || n != 2 {
		t.Fatalf("eth_blockNumber = %d, %v; want 2", n, err)
	}
	// A transaction sent in-process is visible over HTTP.
	to := chaintest.NewAccount("test/http-recipient").Address
	tx := c.SendETH(c.Accounts[0], to, big.NewInt(42))
	c.Commit()
	if r, err := client.TransactionReceipt(ctx, tx.Hash()); err != nil || r.BlockNumber.Uint64() != 3 {
		t.Fatalf("receipt over HTTP in block %s, %v; want block 3", blockOf(r), err)
	}
	if bal, err := client.BalanceAt(ctx, to, nil); err != nil || bal.Int64() != 42 {
		t.Errorf("balance over HTTP = %v, %v; want 42", bal, err)
	}
}

func TestBlockIntervalAdvancesHead(t *testing.T) {
	c := chaintest.New(t, chaintest.WithBlockInterval(20*time.Millisecond))
	deadline := time.Now().Add(10 * time.Second)
	for c.Head().Number.Uint64() < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("head still at %d after 10s with a 20ms block timer", c.Head().Number)
		}
		time.Sleep(10 * time.Millisecond)
	}

	// Senders on several goroutines and manual commits race the timer; every transaction
	// must be mined exactly once with its own nonce.
	const perSender = 5
	to := chaintest.NewAccount("test/timer-recipient").Address
	var (
		wg  sync.WaitGroup
		mu  sync.Mutex
		txs []*types.Transaction
	)
	for _, from := range c.Accounts[:2] {
		wg.Go(func() {
			for range perSender {
				tx := c.SendETH(from, to, big.NewInt(1))
				mu.Lock()
				txs = append(txs, tx)
				mu.Unlock()
			}
		})
	}
	wg.Go(func() {
		for range 3 {
			c.Commit()
		}
	})
	wg.Wait()

	for _, tx := range txs {
		if r := c.WaitMined(tx); r.Status != types.ReceiptStatusSuccessful {
			t.Errorf("tx %s reverted", tx.Hash())
		}
	}
	if got := c.BalanceAt(to); got.Int64() != 2*perSender {
		t.Errorf("recipient balance = %s, want %d", got, 2*perSender)
	}
}

func TestReorg(t *testing.T) {
	tests := []struct {
		name  string
		depth int
		// after mining the original tx, mine this many more blocks before the reorg
		blocksAfter int
		// resend puts the original transaction back instead of replacing it
		resend bool
	}{
		{name: "depth 1 replaces the tx with a same-nonce payment elsewhere", depth: 1},
		{name: "depth 3 with the tx in the deepest orphaned block", depth: 3, blocksAfter: 2},
		{name: "resent tx lands in a different block", depth: 2, blocksAfter: 1, resend: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := chaintest.New(t)
			ctx := context.Background()
			client := c.Client()
			from := c.Accounts[0]
			paid := chaintest.NewAccount("test/reorg-paid").Address
			other := chaintest.NewAccount("test/reorg-other").Address
			amount := big.NewInt(1e15)

			c.Mine(2)
			original := c.SendETH(from, paid, amount)
			c.Commit()
			orig := c.WaitMined(original)
			c.Mine(tt.blocksAfter)
			oldHead := c.Head()

			var replacement *types.Transaction
			orphaned := c.Reorg(tt.depth, func() {
				if tt.resend {
					c.Resend(original)
					return
				}
				replacement = c.SendETH(from, other, amount)
			})

			if len(orphaned) != tt.depth || orphaned[0] != orig.BlockHash || orphaned[tt.depth-1] != oldHead.Hash() {
				t.Errorf("orphaned = %v, want %d blocks from %s to %s", orphaned, tt.depth, orig.BlockHash, oldHead.Hash())
			}
			newHead := c.Head()
			if newHead.Number.Uint64() != oldHead.Number.Uint64()+1 {
				t.Errorf("new head %d, want old head %d + 1", newHead.Number, oldHead.Number)
			}
			atOldHeight, err := client.HeaderByNumber(ctx, oldHead.Number)
			if err != nil || atOldHeight.Hash() == oldHead.Hash() {
				t.Errorf("block %d = %v, %v; want a different hash than the orphaned %s", oldHead.Number, atOldHeight, err, oldHead.Hash())
			}

			r := c.Receipt(original.Hash())
			if tt.resend {
				firstNew := oldHead.Number.Uint64() - uint64(tt.depth) + 1
				if r == nil || r.BlockHash == orig.BlockHash || r.BlockNumber.Uint64() != firstNew {
					t.Fatalf("resent tx: receipt in block %s; want block %d, not %s", blockOf(r), firstNew, orig.BlockHash)
				}
				if got := c.BalanceAt(paid); got.Cmp(amount) != 0 {
					t.Errorf("paid balance = %s, want %s", got, amount)
				}
				return
			}
			if r != nil {
				t.Fatalf("orphaned tx: receipt in block %s, want none", blockOf(r))
			}
			if replacement.Nonce() != original.Nonce() {
				t.Errorf("replacement nonce %d, want the orphaned %d", replacement.Nonce(), original.Nonce())
			}
			if r := c.WaitMined(replacement); r.Status != types.ReceiptStatusSuccessful {
				t.Errorf("replacement reverted")
			}
			if got := c.BalanceAt(paid); got.Sign() != 0 {
				t.Errorf("orphaned payee balance = %s, want 0", got)
			}
			if got := c.BalanceAt(other); got.Cmp(amount) != 0 {
				t.Errorf("replacement payee balance = %s, want %s", got, amount)
			}
			// Nonces carry on from the new branch.
			next := c.SendETH(from, paid, big.NewInt(1))
			c.Commit()
			if r := c.WaitMined(next); next.Nonce() != original.Nonce()+1 || r.Status != types.ReceiptStatusSuccessful {
				t.Errorf("send after reorg: nonce %d status %d, want nonce %d mined", next.Nonce(), r.Status, original.Nonce()+1)
			}
		})
	}
}

func TestReorgMinesPendingFirst(t *testing.T) {
	c := chaintest.New(t)
	c.Mine(3)
	pending := c.SendETH(c.Accounts[0], chaintest.NewAccount("test/pending").Address, big.NewInt(1))

	orphaned := c.Reorg(1, nil)

	// The pending tx went into block 4, which the reorg orphaned; nil replacement leaves the new
	// branch empty, so the tx is gone.
	if len(orphaned) != 1 {
		t.Fatalf("orphaned = %v, want 1 block", orphaned)
	}
	if got := c.Head().Number.Uint64(); got != 5 {
		t.Errorf("head = %d, want 5", got)
	}
	if r := c.Receipt(pending.Hash()); r != nil {
		t.Errorf("orphaned pending tx: receipt in block %s, want none", blockOf(r))
	}
}

func TestReorgWithBlockTimer(t *testing.T) {
	c := chaintest.New(t, chaintest.WithBlockInterval(20*time.Millisecond))
	from := c.Accounts[0]
	paid := chaintest.NewAccount("test/timer-reorg-paid").Address
	other := chaintest.NewAccount("test/timer-reorg-other").Address

	original := c.SendETH(from, paid, big.NewInt(1000))
	orig := c.WaitMined(original)
	// The timer keeps mining above the tx's block; ReorgFrom orphans all of it.
	var replacement *types.Transaction
	orphaned := c.ReorgFrom(orig.BlockNumber.Uint64(), func() {
		replacement = c.SendETH(from, other, big.NewInt(1000))
	})
	if len(orphaned) == 0 || orphaned[0] != orig.BlockHash {
		t.Fatalf("orphaned %v, want it to start with the tx's block %s", orphaned, orig.BlockHash)
	}
	if r := c.Receipt(original.Hash()); r != nil {
		t.Fatalf("orphaned tx: receipt in block %s, want none", blockOf(r))
	}
	if r := c.WaitMined(replacement); r.Status != types.ReceiptStatusSuccessful || replacement.Nonce() != original.Nonce() {
		t.Errorf("replacement: status %d nonce %d, want success with nonce %d", r.Status, replacement.Nonce(), original.Nonce())
	}
	if got := c.BalanceAt(paid); got.Sign() != 0 {
		t.Errorf("orphaned payee balance = %s, want 0", got)
	}
}
