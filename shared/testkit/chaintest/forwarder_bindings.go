// Code generated - DO NOT EDIT.
// This file is a generated binding and any manual changes will be lost.

package chaintest

import (
	"context"
	"errors"
	"math/big"
	"strings"
	"time"

	ethereum "github.com/ethereum/go-ethereum"
	"github.com/ethereum/go-ethereum/accounts/abi"
	"github.com/ethereum/go-ethereum/accounts/abi/bind"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/event"
)

// Reference imports to suppress errors if they are not otherwise used.
var (
	_ = errors.New
	_ = big.NewInt
	_ = strings.NewReader
	_ = ethereum.NotFound
	_ = bind.Bind
	_ = common.Big1
	_ = types.BloomLookup
	_ = event.NewSubscription
	_ = abi.ConvertType
	_ = time.Tick
	_ = context.Background
)

// ForwarderMetaData contains all meta data concerning the Forwarder contract.
var ForwarderMetaData = &bind.MetaData{
	ABI: "[{\"inputs\":[{\"internalType\":\"addresspayable\",\"name\":\"to\",\"type\":\"address\"}],\"name\":\"forward\",\"outputs\":[],\"stateMutability\":\"payable\",\"type\":\"function\"},{\"inputs\":[{\"internalType\":\"addresspayable[]\",\"name\":\"to\",\"type\":\"address[]\"},{\"internalType\":\"uint256[]\",\"name\":\"amounts\",\"type\":\"uint256[]\"}],\"name\":\"forwardMany\",\"outputs\":[],\"stateMutability\":\"payable\",\"type\":\"function\"},{\"inputs\":[{\"internalType\":\"addresspayable\",\"name\":\"to\",\"type\":\"address\"}],\"name\":\"forwardThenRevert\",\"outputs\":[],\"stateMutability\":\"payable\",\"type\":\"function\"},{\"inputs\":[{\"internalType\":\"contractForwarder\",\"name\":\"next\",\"type\":\"address\"},{\"internalType\":\"addresspayable\",\"name\":\"to\",\"type\":\"address\"}],\"name\":\"forwardVia\",\"outputs\":[],\"stateMutability\":\"payable\",\"type\":\"function\"},{\"inputs\":[{\"internalType\":\"addresspayable\",\"name\":\"to\",\"type\":\"address\"},{\"internalType\":\"uint256\",\"name\":\"amount\",\"type\":\"uint256\"}],\"name\":\"tryForward\",\"outputs\":[{\"internalType\":\"bool\",\"name\":\"ok\",\"type\":\"bool\"}],\"stateMutability\":\"payable\",\"type\":\"function\"},{\"stateMutability\":\"payable\",\"type\":\"receive\"}]",
	Bin: "0x6080604052348015600e575f5ffd5b506105538061001c5f395ff3fe60806040526004361061004c575f3560e01c8063101e89521461005757806344b46adb1461006c5780639ff8966c1461007f578063ccb03f1c146100a6578063dfe19793146100b9575f5ffd5b3661005357005b5f5ffd5b61006a6100653660046103d3565b6100cc565b005b61006a61007a36600461043d565b610148565b61009261008d3660046104a9565b610250565b604051901515815260200160405180910390f35b61006a6100b43660046104d3565b6102a8565b61006a6100c73660046103d3565b610305565b5f816001600160a01b0316346040515f6040518083038185875af1925050503d805f8114610115576040519150601f19603f3d011682016040523d82523d5f602084013e61011a565b606091505b50509050806101445760405162461bcd60e51b815260040161013b9061050a565b60405180910390fd5b5050565b8281146101895760405162461bcd60e51b815260206004820152600f60248201526e0d8cadccee8d040dad2e6dac2e8c6d608b1b604482015260640161013b565b5f5b83811015610249575f8585838181106101a6576101a6610532565b90506020020160208101906101bb91906103d3565b6001600160a01b03168484848181106101d6576101d6610532565b905060200201356040515f6040518083038185875af1925050503d805f811461021a576040519150601f19603f3d011682016040523d82523d5f602084013e61021f565b606091505b50509050806102405760405162461bcd60e51b815260040161013b9061050a565b5060010161018b565b5050505050565b5f826001600160a01b0316826040515f6040518083038185875af1925050503d805f8114610299576040519150601f19603f3d011682016040523d82523d5f602084013e61029e565b606091505b5090949350505050565b60405163080f44a960e11b81526001600160a01b03828116600483015283169063101e89529034906024015f604051808303818588803b1580156102ea575f5ffd5b505af11580156102fc573d5f5f3e3d5ffd5b50505050505050565b5f816001600160a01b0316346040515f6040518083038185875af1925050503d805f811461034e576040519150601f19603f3d011682016040523d82523d5f602084013e610353565b606091505b50509050806103745760405162461bcd60e51b815260040161013b9061050a565b60405162461bcd60e51b815260206004820152601960248201527f726576657274656420616674657220666f7277617264696e6700000000000000604482015260640161013b565b6001600160a01b03811681146103d0575f5ffd5b50565b5f602082840312156103e3575f5ffd5b81356103ee816103bc565b9392505050565b5f5f83601f840112610405575f5ffd5b50813567ffffffffffffffff81111561041c575f5ffd5b6020830191508360208260051b8501011115610436575f5ffd5b9250929050565b5f5f5f5f60408587031215610450575f5ffd5b843567ffffffffffffffff811115610466575f5ffd5b610472878288016103f5565b909550935050602085013567ffffffffffffffff811115610491575f5ffd5b61049d878288016103f5565b95989497509550505050565b5f5f604083850312156104ba575f5ffd5b82356104c5816103bc565b946020939093013593505050565b5f5f604083850312156104e4575f5ffd5b82356104ef816103bc565b915060208301356104ff816103bc565b809150509250929050565b6020808252600e908201526d199bdc9dd85c990819985a5b195960921b604082015260600190565b634e487b7160e01b5f52603260045260245ffdfea164736f6c6343000825000a",
}

// ForwarderABI is the input ABI used to generate the binding from.
// Deprecated: Use ForwarderMetaData.ABI instead.
var ForwarderABI = ForwarderMetaData.ABI

// ForwarderBin is the compiled bytecode used for deploying new contracts.
// Deprecated: Use ForwarderMetaData.Bin instead.
var ForwarderBin = ForwarderMetaData.Bin

// DeployForwarder deploys a new Ethereum contract, binding an instance of Forwarder to it.
func DeployForwarder(auth *bind.TransactOpts, backend bind.ContractBackend) (common.Address, *types.Transaction, *Forwarder, error) {
	parsed, err := ForwarderMetaData.GetAbi()
	if err != nil {
		return common.Address{}, nil, nil, err
	}
	if parsed == nil {
		return common.Address{}, nil, nil, errors.New("GetABI returned nil")
	}

	address, tx, contract, err := bind.DeployContract(auth, *parsed, common.FromHex(ForwarderBin), backend)
	if err != nil {
		return common.Address{}, nil, nil, err
	}
	return address, tx, &Forwarder{ForwarderCaller: ForwarderCaller{contract: contract}, ForwarderTransactor: ForwarderTransactor{contract: contract}, ForwarderFilterer: ForwarderFilterer{contract: contract}}, nil
}

// Forwarder is an auto generated Go binding around an Ethereum contract.
type Forwarder struct {
	ForwarderCaller     // Read-only binding to the contract
	ForwarderTransactor // Write-only binding to the contract
	ForwarderFilterer   // Log filterer for contract events
}

// ForwarderCaller is an auto generated read-only Go binding around an Ethereum contract.
type ForwarderCaller struct {
	contract *bind.BoundContract // Generic contract wrapper for the low level calls
}

// ForwarderTransactor is an auto generated write-only Go binding around an Ethereum contract.
type ForwarderTransactor struct {
	contract *bind.BoundContract // Generic contract wrapper for the low level calls
}

// ForwarderFilterer is an auto generated log filtering Go binding around an Ethereum contract events.
type ForwarderFilterer struct {
	contract *bind.BoundContract // Generic contract wrapper for the low level calls
}

// ForwarderSession is an auto generated Go binding around an Ethereum contract,
// with pre-set call and transact options.
type ForwarderSession struct {
	Contract     *Forwarder        // Generic contract binding to set the session for
	CallOpts     bind.CallOpts     // Call options to use throughout this session
	TransactOpts bind.TransactOpts // Transaction auth options to use throughout this session
}

// ForwarderCallerSession is an auto generated read-only Go binding around an Ethereum contract,
// with pre-set call options.
type ForwarderCallerSession struct {
	Contract *ForwarderCaller // Generic contract caller binding to set the session for
	CallOpts bind.CallOpts    // Call options to use throughout this session
}

// ForwarderTransactorSession is an auto generated write-only Go binding around an Ethereum contract,
// with pre-set transact options.
type ForwarderTransactorSession struct {
	Contract     *ForwarderTransactor // Generic contract transactor binding to set the session for
	TransactOpts bind.TransactOpts    // Transaction auth options to use throughout this session
}

// ForwarderRaw is an auto generated low-level Go binding around an Ethereum contract.
type ForwarderRaw struct {
	Contract *Forwarder // Generic contract binding to access the raw methods on
}

// ForwarderCallerRaw is an auto generated low-level read-only Go binding around an Ethereum contract.
type ForwarderCallerRaw struct {
	Contract *ForwarderCaller // Generic read-only contract binding to access the raw methods on
}

// ForwarderTransactorRaw is an auto generated low-level write-only Go binding around an Ethereum contract.
type ForwarderTransactorRaw struct {
	Contract *ForwarderTransactor // Generic write-only contract binding to access the raw methods on
}

// NewForwarder creates a new instance of Forwarder, bound to a specific deployed contract.
func NewForwarder(address common.Address, backend bind.ContractBackend) (*Forwarder, error) {
	contract, err := bindForwarder(address, backend, backend, backend)
	if err != nil {
		return nil, err
	}
	return &Forwarder{ForwarderCaller: ForwarderCaller{contract: contract}, ForwarderTransactor: ForwarderTransactor{contract: contract}, ForwarderFilterer: ForwarderFilterer{contract: contract}}, nil
}

// NewForwarderCaller creates a new read-only instance of Forwarder, bound to a specific deployed contract.
func NewForwarderCaller(address common.Address, caller bind.ContractCaller) (*ForwarderCaller, error) {
	contract, err := bindForwarder(address, caller, nil, nil)
	if err != nil {
		return nil, err
	}
	return &ForwarderCaller{contract: contract}, nil
}

// NewForwarderTransactor creates a new write-only instance of Forwarder, bound to a specific deployed contract.
func NewForwarderTransactor(address common.Address, transactor bind.ContractTransactor) (*ForwarderTransactor, error) {
	contract, err := bindForwarder(address, nil, transactor, nil)
	if err != nil {
		return nil, err
	}
	return &ForwarderTransactor{contract: contract}, nil
}

// NewForwarderFilterer creates a new log filterer instance of Forwarder, bound to a specific deployed contract.
func NewForwarderFilterer(address common.Address, filterer bind.ContractFilterer) (*ForwarderFilterer, error) {
	contract, err := bindForwarder(address, nil, nil, filterer)
	if err != nil {
		return nil, err
	}
	return &ForwarderFilterer{contract: contract}, nil
}

// bindForwarder binds a generic wrapper to an already deployed contract.
func bindForwarder(address common.Address, caller bind.ContractCaller, transactor bind.ContractTransactor, filterer bind.ContractFilterer) (*bind.BoundContract, error) {
	parsed, err := ForwarderMetaData.GetAbi()
	if err != nil {
		return nil, err
	}
	return bind.NewBoundContract(address, *parsed, caller, transactor, filterer), nil
}

// Call invokes the (constant) contract method with params as input values and
// sets the output to result. The result type might be a single field for simple
// returns, a slice of interfaces for anonymous returns and a struct for named
// returns.
func (_Forwarder *ForwarderRaw) Call(opts *bind.CallOpts, result *[]interface{}, method string, params ...interface{}) error {
	return _Forwarder.Contract.ForwarderCaller.contract.Call(opts, result, method, params...)
}

// Transfer initiates a plain transaction to move funds to the contract, calling
// its default method if one is available.
func (_Forwarder *ForwarderRaw) Transfer(opts *bind.TransactOpts) (*types.Transaction, error) {
	return _Forwarder.Contract.ForwarderTransactor.contract.Transfer(opts)
}

// Transact invokes the (paid) contract method with params as input values.
func (_Forwarder *ForwarderRaw) Transact(opts *bind.TransactOpts, method string, params ...interface{}) (*types.Transaction, error) {
	return _Forwarder.Contract.ForwarderTransactor.contract.Transact(opts, method, params...)
}

// Call invokes the (constant) contract method with params as input values and
// sets the output to result. The result type might be a single field for simple
// returns, a slice of interfaces for anonymous returns and a struct for named
// returns.
func (_Forwarder *ForwarderCallerRaw) Call(opts *bind.CallOpts, result *[]interface{}, method string, params ...interface{}) error {
	return _Forwarder.Contract.contract.Call(opts, result, method, params...)
}

// Transfer initiates a plain transaction to move funds to the contract, calling
// its default method if one is available.
func (_Forwarder *ForwarderTransactorRaw) Transfer(opts *bind.TransactOpts) (*types.Transaction, error) {
	return _Forwarder.Contract.contract.Transfer(opts)
}

// Transact invokes the (paid) contract method with params as input values.
func (_Forwarder *ForwarderTransactorRaw) Transact(opts *bind.TransactOpts, method string, params ...interface{}) (*types.Transaction, error) {
	return _Forwarder.Contract.contract.Transact(opts, method, params...)
}

// Forward is a paid mutator transaction binding the contract method 0x101e8952.
//
// Solidity: function forward(address to) payable returns()
func (_Forwarder *ForwarderTransactor) Forward(opts *bind.TransactOpts, to common.Address) (*types.Transaction, error) {
	return _Forwarder.contract.Transact(opts, "forward", to)
}

// Forward is a paid mutator transaction binding the contract method 0x101e8952.
//
// Solidity: function forward(address to) payable returns()
func (_Forwarder *ForwarderSession) Forward(to common.Address) (*types.Transaction, error) {
	return _Forwarder.Contract.Forward(&_Forwarder.TransactOpts, to)
}

// Forward is a paid mutator transaction binding the contract method 0x101e8952.
//
// Solidity: function forward(address to) payable returns()
func (_Forwarder *ForwarderTransactorSession) Forward(to common.Address) (*types.Transaction, error) {
	return _Forwarder.Contract.Forward(&_Forwarder.TransactOpts, to)
}

// ForwardMany is a paid mutator transaction binding the contract method 0x44b46adb.
//
// Solidity: function forwardMany(address[] to, uint256[] amounts) payable returns()
func (_Forwarder *ForwarderTransactor) ForwardMany(opts *bind.TransactOpts, to []common.Address, amounts []*big.Int) (*types.Transaction, error) {
	return _Forwarder.contract.Transact(opts, "forwardMany", to, amounts)
}

// ForwardMany is a paid mutator transaction binding the contract method 0x44b46adb.
//
// Solidity: function forwardMany(address[] to, uint256[] amounts) payable returns()
func (_Forwarder *ForwarderSession) ForwardMany(to []common.Address, amounts []*big.Int) (*types.Transaction, error) {
	return _Forwarder.Contract.ForwardMany(&_Forwarder.TransactOpts, to, amounts)
}

// ForwardMany is a paid mutator transaction binding the contract method 0x44b46adb.
//
// Solidity: function forwardMany(address[] to, uint256[] amounts) payable returns()
func (_Forwarder *ForwarderTransactorSession) ForwardMany(to []common.Address, amounts []*big.Int) (*types.Transaction, error) {
	return _Forwarder.Contract.ForwardMany(&_Forwarder.TransactOpts, to, amounts)
}

// ForwardThenRevert is a paid mutator transaction binding the contract method 0xdfe19793.
//
// Solidity: function forwardThenRevert(address to) payable returns()
func (_Forwarder *ForwarderTransactor) ForwardThenRevert(opts *bind.TransactOpts, to common.Address) (*types.Transaction, error) {
	return _Forwarder.contract.Transact(opts, "forwardThenRevert", to)
}

// ForwardThenRevert is a paid mutator transaction binding the contract method 0xdfe19793.
//
// Solidity: function forwardThenRevert(address to) payable returns()
func (_Forwarder *ForwarderSession) ForwardThenRevert(to common.Address) (*types.Transaction, error) {
	return _Forwarder.Contract.ForwardThenRevert(&_Forwarder.TransactOpts, to)
}

// ForwardThenRevert is a paid mutator transaction binding the contract method 0xdfe19793.
//
// Solidity: function forwardThenRevert(address to) payable returns()
func (_Forwarder *ForwarderTransactorSession) ForwardThenRevert(to common.Address) (*types.Transaction, error) {
	return _Forwarder.Contract.ForwardThenRevert(&_Forwarder.TransactOpts, to)
}

// ForwardVia is a paid mutator transaction binding the contract method 0xccb03f1c.
//
// Solidity: function forwardVia(address next, address to) payable returns()
func (_Forwarder *ForwarderTransactor) ForwardVia(opts *bind.TransactOpts, next common.Address, to common.Address) (*types.Transaction, error) {
	return _Forwarder.contract.Transact(opts, "forwardVia", next, to)
}

// ForwardVia is a paid mutator transaction binding the contract method 0xccb03f1c.
//
// Solidity: function forwardVia(address next, address to) payable returns()
func (_Forwarder *ForwarderSession) ForwardVia(next common.Address, to common.Address) (*types.Transaction, error) {
	return _Forwarder.Contract.ForwardVia(&_Forwarder.TransactOpts, next, to)
}

// ForwardVia is a paid mutator transaction binding the contract method 0xccb03f1c.
//
// Solidity: function forwardVia(address next, address to) payable returns()
func (_Forwarder *ForwarderTransactorSession) ForwardVia(next common.Address, to common.Address) (*types.Transaction, error) {
	return _Forwarder.Contract.ForwardVia(&_Forwarder.TransactOpts, next, to)
}

// TryForward is a paid mutator transaction binding the contract method 0x9ff8966c.
//
// Solidity: function tryForward(address to, uint256 amount) payable returns(bool ok)
func (_Forwarder *ForwarderTransactor) TryForward(opts *bind.TransactOpts, to common.Address, amount *big.Int) (*types.Transaction, error) {
	return _Forwarder.contract.Transact(opts, "tryForward", to, amount)
}

// TryForward is a paid mutator transaction binding the contract method 0x9ff8966c.
//
// Solidity: function tryForward(address to, uint256 amount) payable returns(bool ok)
func (_Forwarder *ForwarderSession) TryForward(to common.Address, amount *big.Int) (*types.Transaction, error) {
	return _Forwarder.Contract.TryForward(&_Forwarder.TransactOpts, to, amount)
}

// TryForward is a paid mutator transaction binding the contract method 0x9ff8966c.
//
// Solidity: function tryForward(address to, uint256 amount) payable returns(bool ok)
func (_Forwarder *ForwarderTransactorSession) TryForward(to common.Address, amount *big.Int) (*types.Transaction, error) {
	return _Forwarder.Contract.TryForward(&_Forwarder.TransactOpts, to, amount)
}

// Receive is a paid mutator transaction binding the contract receive function.
//
// Solidity: receive() payable returns()
func (_Forwarder *ForwarderTransactor) Receive(opts *bind.TransactOpts) (*types.Transaction, error) {
	return _Forwarder.contract.RawTransact(opts, nil) // calldata is disallowed for receive function
}

// Receive is a paid mutator transaction binding the contract receive function.
//
// Solidity: receive() payable returns()
func (_Forwarder *ForwarderSession) Receive() (*types.Transaction, error) {
	return _Forwarder.Contract.Receive(&_Forwarder.TransactOpts)
}

// Receive is a paid mutator transaction binding the contract receive function.
//
// Solidity: receive() payable returns()
func (_Forwarder *ForwarderTransactorSession) Receive() (*types.Transaction, error) {
	return _Forwarder.Contract.Receive(&_Forwarder.TransactOpts)
}
