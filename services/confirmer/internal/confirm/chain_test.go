package confirm

import (
	"context"
	"errors"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"

	"github.com/ctrip-pay/pipeline/shared/event"
)

func chainHead(chainID int64, number uint64) event.ChainHead {
	return event.ChainHead{ChainID: chainID, Number: number}
}

// fakeNode answers from fixed data: the canonical header of one block and one receipt.
type fakeNode struct {
	header     *types.Header // canonical at its number
	receipt    *types.Receipt
	receiptErr error
}

func (f *fakeNode) BlockNumber(context.Context) (uint64, error) {
	return f.header.Number.Uint64() + 10, nil
}
func (f *fakeNode) HeaderByNumber(_ context.Context, n *big.Int) (*types.Header, error) {
	if n == nil || n.Sign() < 0 {
		return nil, errors.New("asked for a tag, not a number")
	}
	if n.Cmp(f.header.Number) != 0 {
		return nil, ethereum.NotFound
	}
	return f.header, nil
}
func (f *fakeNode) TransactionReceipt(context.Context, common.Hash) (*types.Receipt, error) {
	if f.receiptErr != nil {
		return nil, f.receiptErr
	}
	return f.receipt, nil
}

func TestVerify(t *testing.T) {
	hdr := &types.Header{Number: big.NewInt(100), Time: 1}
	block := hdr.Hash()
	token := common.HexToAddress("0x00000000000000000000000000000000000000aa")
	deposit := common.HexToAddress("0x00000000000000000000000000000000000000bb")
	tokenStr := strings.ToLower(token.Hex())
	value := big.NewInt(12_500_000)
	transferLog := func(mut func(*types.Log)) *types.Log {
		l := &types.Log{
			Address: token, Index: 3,
			Topics: []common.Hash{transferTopic, common.BytesToHash(common.HexToAddress("0x01").Bytes()), common.BytesToHash(deposit.Bytes())},
			Data:   common.LeftPadBytes(value.Bytes(), 32),
		}
		if mut != nil {
			mut(l)
		}
		return l
	}
	okReceipt := func(logs ...*types.Log) *types.Receipt {
		return &types.Receipt{Status: types.ReceiptStatusSuccessful, BlockHash: block, BlockNumber: big.NewInt(100), Logs: logs}
	}
	native := Transfer{TransferKey: TransferKey{ChainID: 1, TxHash: "0x01", LogIndex: -1}, Value: value, BlockNumber: 100,
		BlockHash: block.Hex(), Address: deposit.Hex()}
	erc20 := native
	erc20.LogIndex, erc20.TokenContract = 3, &tokenStr

	cases := []struct {
		name    string
		t       Transfer
		node    fakeNode
		want    outcome
		wantErr bool
	}{
		{"native verified", native, fakeNode{receipt: okReceipt()}, verified, false},
		{"block replaced", withBlock(native, 100, common.HexToHash("0xdead").Hex()), fakeNode{receipt: okReceipt()}, orphaned, false},
		{"chain now shorter", withBlock(native, 105, block.Hex()), fakeNode{receipt: okReceipt()}, orphaned, false},
		{"failed transaction", native, fakeNode{receipt: &types.Receipt{Status: 0, BlockHash: block}}, invalid, false},
		{"receipt not served yet", native, fakeNode{receiptErr: ethereum.NotFound}, 0, true},
		{"rpc error", native, fakeNode{receiptErr: errors.New("503")}, 0, true},
		{"receipt from another fork (node behind a balancer)", native,
			fakeNode{receipt: &types.Receipt{Status: 1, BlockHash: common.HexToHash("0xbeef")}}, 0, true},
		{"token verified", erc20, fakeNode{receipt: okReceipt(transferLog(nil))}, verified, false},
		{"token log missing", erc20, fakeNode{receipt: okReceipt()}, invalid, false},
		{"token log of another contract", erc20, fakeNode{receipt: okReceipt(transferLog(func(l *types.Log) { l.Address = deposit }))}, invalid, false},
		{"token log to someone else", erc20, fakeNode{receipt: okReceipt(transferLog(func(l *types.Log) { l.Topics[2] = common.Hash{} }))}, invalid, false},
		{"token log with another value", erc20, fakeNode{receipt: okReceipt(transferLog(func(l *types.Log) { l.Data = common.LeftPadBytes([]byte{1}, 32) }))}, invalid, false},
		{"token log not a Transfer", erc20, fakeNode{receipt: okReceipt(transferLog(func(l *types.Log) { l.Topics[0] = common.Hash{} }))}, invalid, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			node := tc.node
			node.header = hdr
			c := &Confirmer{rpcTimeout: time.Second}
			v, err := c.verify(context.Background(), Chain{RPC: &node}, tc.t)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, want error %v", err, tc.wantErr)
			}
			if err == nil && v.outcome != tc.want {
				t.Fatalf("outcome %d (%s), want %d", v.outcome, v.why, tc.want)
			}
		})
	}
}

func withBlock(t Transfer, number uint64, hash string) Transfer {
	t.BlockNumber, t.BlockHash = number, hash
	return t
}
