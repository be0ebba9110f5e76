#!/usr/bin/env node
// Start one Keel node for benchmarks (used by compare.sh; not run by CI). Needs `npx tsc -b packages/server`.
//   node packages/bench/scripts/keel-node.js --db postgres://... [--stomp-port 61811] [--port 61810] [--admin-port 8811]
// Prints "ready pid=<pid>" on stdout once the node serves, and stops on SIGINT/SIGTERM.
// With KEEL_PROFILE_DIR set, SIGUSR1 starts a CPU profile and SIGUSR2 writes it there
// (<dir>/keel-<pid>-<n>.cpuprofile): one phase of a run (say, only a backlog's drain) profiled alone.

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
  if (process.env.KEEL_PROFILE_DIR) profileOnSignals(process.env.KEEL_PROFILE_DIR);
}

function profileOnSignals(dir) {
  const inspector = require('node:inspector');
  const fs = require('node:fs');
  const session = new inspector.Session();
  session.connect();
  let n = 0;
  process.on('SIGUSR1', () => {
    session.post('Profiler.enable', () => session.post('Profiler.start'));
  });
  process.on('SIGUSR2', () => {
    session.post('Profiler.stop', (err, res) => {
      if (err) return process.stderr.write(`profile: ${err.message}\n`);
      const file = path.join(dir, `keel-${process.pid}-${++n}.cpuprofile`);
      fs.writeFileSync(file, JSON.stringify(res.profile));
      process.stderr.write(`profile written: ${file}\n`);
    });
  });
}

main().catch((err) => {
  process.stderr.write(`${err.stack || err}\n`);
  process.exit(1);
});
