// Compiles BalanceReader.sol with the npm solc package (no network, no native solc) and writes
// its runtime code to BalanceReader.bin-runtime beside this script:
//
//   mkdir -p /tmp/solc && (cd /tmp/solc && npm init -y >/dev/null && npm install solc@0.8.37)
//   NODE_PATH=/tmp/solc/node_modules node compile.js
//
// Optimizer on (200 runs), evmVersion cancun, metadata hash off: the output is byte-for-byte
// reproducible, so running it on the unchanged source rewrites the committed file unchanged.
const fs = require('fs');
const path = require('path');
const solc = require('solc');

const name = 'BalanceReader';
const file = name + '.sol';
const input = {
  language: 'Solidity',
  sources: { [file]: { content: fs.readFileSync(path.join(__dirname, file), 'utf8') } },
  settings: {
    optimizer: { enabled: true, runs: 200 },
    evmVersion: 'cancun',
    metadata: { bytecodeHash: 'none' },
    outputSelection: { '*': { [name]: ['evm.deployedBytecode.object'] } },
  },
};
const output = JSON.parse(solc.compile(JSON.stringify(input)));
for (const e of output.errors || []) console.error(e.formattedMessage);
if ((output.errors || []).some((e) => e.severity === 'error')) process.exit(1);
const code = output.contracts[file][name].evm.deployedBytecode.object;
fs.writeFileSync(path.join(__dirname, name + '.bin-runtime'), code + '\n');
console.log('solc ' + solc.version() + ': wrote ' + name + '.bin-runtime (' + code.length / 2 + ' bytes)');
