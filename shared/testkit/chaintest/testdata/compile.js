// Compiles TestToken.sol with the npm solc package (no network, no native solc) and writes
// TestToken.abi and TestToken.bin beside this script. See README.md for the exact commands.
const fs = require('fs');
const path = require('path');
const solc = require('solc');

const dir = __dirname;
const source = fs.readFileSync(path.join(dir, 'TestToken.sol'), 'utf8');
const input = {
  language: 'Solidity',
  sources: { 'TestToken.sol': { content: source } },
  settings: {
    optimizer: { enabled: true, runs: 200 },
    evmVersion: 'cancun',
    metadata: { bytecodeHash: 'none' },
    outputSelection: { '*': { TestToken: ['abi', 'evm.bytecode.object'] } },
  },
};
const output = JSON.parse(solc.compile(JSON.stringify(input)));
const errors = (output.errors || []).filter((e) => e.severity === 'error');
for (const e of output.errors || []) console.error(e.formattedMessage);
if (errors.length > 0) process.exit(1);

const contract = output.contracts['TestToken.sol'].TestToken;
fs.writeFileSync(path.join(dir, 'TestToken.abi'), JSON.stringify(contract.abi, null, 2) + '\n');
fs.writeFileSync(path.join(dir, 'TestToken.bin'), contract.evm.bytecode.object + '\n');
console.log('solc ' + solc.version() + ': wrote TestToken.abi and TestToken.bin');
