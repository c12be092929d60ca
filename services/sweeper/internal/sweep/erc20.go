package sweep

import (
	"context"
	"fmt"
	"math/big"

	"github.com/ethereum/go-ethereum"
	"github.com/ethereum/go-ethereum/common"
)

// The two ERC-20 calls the sweeper makes, encoded by hand: selector + 32-byte words.
var (
	selectorBalanceOf = []byte{0x70, 0xa0, 0x82, 0x31} // balanceOf(address)
	selectorTransfer  = []byte{0xa9, 0x05, 0x9c, 0xbb} // transfer(address,uint256)
)

func transferCalldata(to common.Address, amount *big.Int) []byte {
	out := append([]byte{}, selectorTransfer...)
	out = append(out, common.LeftPadBytes(to.Bytes(), 32)...)
	return append(out, common.LeftPadBytes(amount.Bytes(), 32)...)
}

// tokenBalance calls balanceOf(owner) on contract at the latest block.
func tokenBalance(ctx context.Context, c ethereum.ContractCaller, contract, owner common.Address) (*big.Int, error) {
	data := append(append([]byte{}, selectorBalanceOf...), common.LeftPadBytes(owner.Bytes(), 32)...)
	out, err := c.CallContract(ctx, ethereum.CallMsg{To: &contract, Data: data}, nil)
	if err != nil {
		return nil, fmt.Errorf("balanceOf %s on %s: %w", owner.Hex(), contract.Hex(), err)
	}
	if len(out) != 32 {
		return nil, fmt.Errorf("balanceOf on %s returned %d bytes (not an ERC-20 contract?)", contract.Hex(), len(out))
	}
	return new(big.Int).SetBytes(out), nil
}
