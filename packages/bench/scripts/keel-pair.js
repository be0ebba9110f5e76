#!/usr/bin/env node
// A Keel master/slave pair on Postgres for the bench (NOT run by CI). Needs `npx tsc -b packages/cli`.
//
//   node packages/bench/scripts/keel-pair.js [--pg URL] [--keep-db] [--log-level L] -- SCENARIO [bench options]
//   node packages/bench/scripts/keel-pair.js [--pg URL] --serve
//
// Creates a fresh database on the Postgres server (--pg, default postgres://postgres@127.0.0.1:55432),
// migrates it (`keel migrate`), starts node a (`keel broker`, cluster "benchpair") and waits until
// its admin API says master, then node b and waits until it says slave. Then it runs the bench
// (packages/bench/dist/main.js) with the options given after `--`, adding what it knows unless given:
//   failover:     --url failover:(tcp://a,tcp://b)?randomize=false&initialReconnectDelay=10&maxReconnectDelay=50
//                 (with --protocol stomp: --url stomp://a,stomp://b), --master-pid <a's pid>,
//                 --admin-url <a's and b's admin APIs>; --runs must be 1 (the master is gone after it);
//   other scenarios: --url tcp://a (or stomp://a) and --broker-pid <a's pid>.
// --serve starts the pair, prints its URLs and PIDs and waits for Ctrl-C (run benches by hand).
// At the end it stops the nodes it started (SIGTERM, SIGKILL after 10 s, by PID) and drops the
// databases (unless --keep-db). The nodes' logs stay in a temporary directory, printed at the start.

const { spawn, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');

const ROOT = path.resolve(__dirname, '../../..');
const KEEL = path.join(ROOT, 'packages/cli/dist/main.js');
const BENCH = path.join(ROOT, 'packages/bench/dist/main.js');
const READY_TIMEOUT_MS = 60_000;

function usage(message) {
  if (message) process.stderr.write(`keel-pair: ${message}\n`);
  process.stderr.write(
    'usage: keel-pair.js [--pg URL] [--keep-db] [--log-level L] -- SCENARIO [bench options]\n       keel-pair.js [--pg URL] --serve\n',
  );
  process.exit(2);
}

function parseArgs(argv) {
  const sep = argv.indexOf('--');
  const own = sep === -1 ? argv : argv.slice(0, sep);
  const bench = sep === -1 ? [] : argv.slice(sep + 1);
  const o = {
    pg: 'postgres://postgres@127.0.0.1:55432',
    keepDb: false,
    serve: false,
    logLevel: 'info',
    bench,
  };
  for (let i = 0; i < own.length; i++) {
    const a = own[i];
    if (a === '--pg') o.pg = own[++i];
    else if (a === '--keep-db') o.keepDb = true;
    else if (a === '--serve') o.serve = true;
    else if (a === '--log-level') o.logLevel = own[++i];
    else usage(`unknown option ${a}`);
  }
  if (!o.pg || !/^postgres(ql)?:\/\//.test(o.pg)) usage('--pg needs a postgres:// URL');
  if (!o.serve && bench.length === 0) usage('give the bench scenario after --, or --serve');
  return o;
}

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function withDatabase(url, name) {
  const u = new URL(url);
  u.pathname = `/${name}`;
  return u.toString();
}

function psql(adminUrl, sql) {
  const r = spawnSync('psql', [withDatabase(adminUrl, 'postgres'), '-qAtc', sql], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`psql ${sql}: ${r.stderr || r.error}`);
}

async function role(adminPort) {
  try {
    const res = await fetch(`http://127.0.0.1:${adminPort}/api/broker`, {
      signal: AbortSignal.timeout(1000),
    });
    if (!res.ok) return null;
    return (await res.json()).role ?? null;
  } catch {
    return null;
  }
}

function has(args, name) {
  return args.some((a) => a === name || a.startsWith(`${name}=`));
}

function optionValue(args, name) {
  for (let i = 0; i < args.length; i++) {
    if (args[i] === name) return args[i + 1];
    if (args[i].startsWith(`${name}=`)) return args[i].slice(name.length + 1);
  }
  return undefined;
}

async function main() {
  const o = parseArgs(process.argv.slice(2));
  for (const f of [KEEL, BENCH]) if (!fs.existsSync(f)) usage(`${f} is missing: run npx tsc -b packages/cli`);
  const scenario = o.bench.find((a) => !a.startsWith('--'));
  const protocol = optionValue(o.bench, '--protocol') ?? 'stomp';
  if (scenario === 'failover' && (optionValue(o.bench, '--runs') ?? '1') !== '1') {
    usage('failover kills the master: one run per pair (--runs 1); run the script again for more');
  }

  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'keel-pair-'));
  const db = `keel_pair_${process.pid}_${Date.now().toString(36)}`;
  const dbUrl = withDatabase(o.pg, db);
  const nodes = [];
  let dbCreated = false;
  let stopping = false;

  const cleanup = async () => {
    if (stopping) return;
    stopping = true;
    for (const n of nodes) if (n.exitCode === null && n.signalCode === null) n.kill('SIGTERM');
    const deadline = Date.now() + 10_000;
    while (nodes.some((n) => n.exitCode === null && n.signalCode === null) && Date.now() < deadline)
      await sleep(100);
    for (const n of nodes) if (n.exitCode === null && n.signalCode === null) n.kill('SIGKILL');
    if (dbCreated && !o.keepDb) {
      try {
        psql(o.pg, `DROP DATABASE IF EXISTS ${db} WITH (FORCE)`);
        psql(o.pg, `DROP DATABASE IF EXISTS ${db}_lock WITH (FORCE)`);
      } catch (err) {
        process.stderr.write(`keel-pair: dropping ${db}: ${err.message}\n`);
      }
    }
  };
  process.on('SIGINT', () => cleanup().then(() => process.exit(130)));
  process.on('SIGTERM', () => cleanup().then(() => process.exit(143)));

  try {
    psql(o.pg, `CREATE DATABASE ${db}`);
    dbCreated = true;
    const env = { ...process.env, KEEL_DB: dbUrl };
    const m = spawnSync(process.execPath, [KEEL, 'migrate'], { env, encoding: 'utf8' });
    if (m.status !== 0) throw new Error(`keel migrate: ${m.stderr}`);

    const plan = [];
    for (const name of ['a', 'b']) {
      plan.push({ name, port: await freePort(), stompPort: await freePort(), adminPort: await freePort() });
    }
    process.stderr.write(`keel-pair: database ${db}, logs in ${tmp}\n`);
    for (const [i, p] of plan.entries()) {
      const log = fs.openSync(path.join(tmp, `${p.name}.log`), 'a');
      const child = spawn(
        process.execPath,
        [
          KEEL,
          'broker',
          '--name',
          `pair-${p.name}`,
          '--cluster',
          'benchpair',
          '--host',
          '127.0.0.1',
          '--port',
          String(p.port),
          '--stomp-port',
          String(p.stompPort),
          '--admin-port',
          String(p.adminPort),
          '--log-level',
          o.logLevel,
        ],
        { env, stdio: ['ignore', log, log] },
      );
      fs.closeSync(log);
      nodes.push(child);
      p.pid = child.pid;
      const want = i === 0 ? 'master' : 'slave';
      const deadline = Date.now() + READY_TIMEOUT_MS;
      for (;;) {
        if (child.exitCode !== null || child.signalCode !== null)
          throw new Error(`node ${p.name} exited; see ${tmp}/${p.name}.log`);
        if ((await role(p.adminPort)) === want) break;
        if (Date.now() > deadline)
          throw new Error(`node ${p.name} is not ${want} after ${READY_TIMEOUT_MS} ms`);
        await sleep(100);
      }
      process.stderr.write(
        `keel-pair: ${p.name} is ${want}: pid ${p.pid}, tcp://127.0.0.1:${p.port}, stomp://127.0.0.1:${p.stompPort}, admin http://127.0.0.1:${p.adminPort}\n`,
      );
    }
    const [a, b] = plan;

    if (o.serve) {
      process.stderr.write('keel-pair: serving; Ctrl-C stops the nodes and drops the database\n');
      await new Promise(() => {});
    }

    const args = [...o.bench];
    if (scenario === 'failover') {
      if (!has(args, '--url')) {
        args.push(
          '--url',
          protocol === 'native'
            ? `failover:(tcp://127.0.0.1:${a.port},tcp://127.0.0.1:${b.port})?randomize=false&initialReconnectDelay=10&maxReconnectDelay=50`
            : `stomp://127.0.0.1:${a.stompPort},stomp://127.0.0.1:${b.stompPort}`,
        );
      }
      if (!has(args, '--master-pid')) args.push('--master-pid', String(a.pid));
      if (!has(args, '--admin-url')) {
        args.push('--admin-url', `http://127.0.0.1:${a.adminPort},http://127.0.0.1:${b.adminPort}`);
      }
    } else {
      if (!has(args, '--url')) {
        args.push(
          '--url',
          protocol === 'native' ? `tcp://127.0.0.1:${a.port}` : `stomp://127.0.0.1:${a.stompPort}`,
        );
      }
      if (!has(args, '--broker-pid')) args.push('--broker-pid', String(a.pid));
    }
    process.stderr.write(`keel-pair: node ${path.relative(process.cwd(), BENCH)} ${args.join(' ')}\n`);
    const bench = spawn(process.execPath, [BENCH, ...args], { stdio: 'inherit' });
    const code = await new Promise((resolve) => bench.once('exit', (c, s) => resolve(c ?? (s ? 1 : 0))));
    process.exitCode = code;
  } finally {
    await cleanup();
  }
}

main().catch(async (err) => {
  process.stderr.write(`keel-pair: ${err.stack || err}\n`);
  process.exitCode = 1;
});
