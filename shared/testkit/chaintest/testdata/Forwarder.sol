// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

/// @title Forwarder
/// @notice Pays ETH on through internal calls, the way a smart-contract wallet (Safe, Argent),
///         an exchange's batch payout or a payment router pays: the receiver is paid by a CALL
///         inside the transaction, not by the transaction itself. For tests only.
contract Forwarder {
    /// @notice Pays msg.value on to `to`.
    function forward(address payable to) external payable {
        (bool ok,) = to.call{value: msg.value}("");
        require(ok, "forward failed");
    }

    /// @notice Pays amounts[i] to to[i] (an exchange's batch payout), from msg.value and the
    ///         contract's own balance.
    function forwardMany(address payable[] calldata to, uint256[] calldata amounts) external payable {
        require(to.length == amounts.length, "length mismatch");
        for (uint256 i = 0; i < to.length; i++) {
            (bool ok,) = to[i].call{value: amounts[i]}("");
            require(ok, "forward failed");
        }
    }

    /// @notice Pays msg.value on to `to` through `next`: the payment is a call two levels down.
    function forwardVia(Forwarder next, address payable to) external payable {
        next.forward{value: msg.value}(to);
    }

    /// @notice Pays msg.value on to `to`, then reverts: the transaction fails and the payment
    ///         with it, although the inner call itself succeeded.
    function forwardThenRevert(address payable to) external payable {
        (bool ok,) = to.call{value: msg.value}("");
        require(ok, "forward failed");
        revert("reverted after forwarding");
    }

    /// @notice Tries to pay `amount` to `to` and succeeds whether or not that call did: with an
    ///         amount above the contract's balance the inner call fails, the transaction not.
    function tryForward(address payable to, uint256 amount) external payable returns (bool ok) {
        (ok,) = to.call{value: amount}("");
    }

    receive() external payable {}
}
