// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

/// BalanceReader is never deployed. The scanner places its runtime code at an unused address
/// through eth_call's state override and calls it with deposit addresses packed 20 bytes each;
/// it answers their balances, 32 bytes each in the same order, all read from the state of the
/// block the call is made at — one call instead of one eth_getBalance per address.
contract BalanceReader {
    fallback(bytes calldata addrs) external returns (bytes memory balances) {
        uint256 n = addrs.length / 20;
        balances = new bytes(n * 32);
        for (uint256 i = 0; i < n; i++) {
            uint256 b = address(bytes20(addrs[i * 20:i * 20 + 20])).balance;
            assembly {
                mstore(add(balances, add(32, mul(i, 32))), b)
            }
        }
    }
}
