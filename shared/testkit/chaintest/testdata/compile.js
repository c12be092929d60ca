// Compiles the test contracts (TestToken.sol, Forwarder.sol) with the npm solc package (no
// network, no native solc) and writes <Contract>.abi and <Contract>.bin beside this script.
// Each source is compiled on its own, so adding a contract changes no other's output. See
// README.md for the exact commands.
const fs = require('fs');
const path = require('path');
const solc = require('solc');

const dir = __dirname;
const contracts = ['TestToken', 'Forwarder'];

for (const name of contracts) {
  const file = name + '.sol';
  const source = fs.readFileSync(path.join(dir, file), 'utf8');
  const input = {
    language: 'Solidity',
    sources: { [file]: { content: source } },
    settings: {
      optimizer: { enabled: true, runs: 200 },
      evmVersion: 'cancun',
      metadata: { bytecodeHash: 'none' },
      outputSelection: { '*': { [name]: ['abi', 'evm.bytecode.object'] } },
    },
  };
  const output = JSON.parse(solc.compile(JSON.stringify(input)));
  const errors = (output.errors || []).filter((e) => e.severity === 'error');
  for (const e of output.errors || []) console.error(e.formattedMessage);
  if (errors.length > 0) process.exit(1);

  const contract = output.contracts[file][name];
  fs.writeFileSync(path.join(dir, name + '.abi'), JSON.stringify(contract.abi, null, 2) + '\n');
  fs.writeFileSync(path.join(dir, name + '.bin'), contract.evm.bytecode.object + '\n');
  console.log('solc ' + solc.version() + ': wrote ' + name + '.abi and ' + name + '.bin');
}
