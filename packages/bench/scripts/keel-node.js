#!/usr/bin/env node
// Start one Keel node for benchmarks (used by compare.sh; not run by CI). Needs `npx tsc -b packages/server`.
//   node packages/bench/scripts/keel-node.js --db postgres://... [--stomp-port 61811] [--port 61810] [--admin-port 8811]
// Prints "ready pid=<pid>" on stdout once the node serves, and stops on SIGINT/SIGTERM.

const path = require('node:path');
const { loadConfig, createLogger, startNode } = require(path.resolve(__dirname, '../../server/dist'));

function arg(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i === -1 ? fallback : process.argv[i + 1];
}

async function main() {
  const db = arg('db');
  if (!db) throw new Error('--db postgres://... is required');
  const cfg = loadConfig({
    argv: {
      db,
      name: arg('name', 'bench1'),
      cluster: arg('cluster', 'bench'),
      port: Number(arg('port', '61810')),
      stompPort: Number(arg('stomp-port', '61811')),
      adminPort: Number(arg('admin-port', '8811')),
    },
  });
  const node = await startNode(cfg, createLogger({ name: cfg.name, level: arg('log-level', 'warn') }));
  process.stdout.write(`ready pid=${process.pid}\n`);
  let stopping = false;
  const stop = async () => {
    if (stopping) process.exit(1);
    stopping = true;
    await node.stop();
    process.exit(0);
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}

main().catch((err) => {
  process.stderr.write(`${err.stack || err}\n`);
  process.exit(1);
});
