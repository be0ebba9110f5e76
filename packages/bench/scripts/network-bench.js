#!/usr/bin/env node
// Networks of brokers: throughput, latency and demand arrival with two real Keel broker processes
// (not run by CI). Needs the dist of @keel/cli, @keel/client and @keel/bench (`npx tsc -b tsconfig.json`), psql,
// and a Postgres where the user may CREATE/DROP DATABASE.
//
//   node packages/bench/scripts/network-bench.js [--pg postgres://postgres@127.0.0.1:55432]
//     [--runs 3] [--count 20000] [--size 1024] [--window 64] [--prefetch 1000]
//     [--demand-count 1000] [--probe-count 1000] [--base-port 62710] [--json out.json]
//     [--cases local,forwarded,demand,probe]
//
// Setup: broker A (cluster nbA, own database) and broker B (cluster nbB, own database) with one
// network connector on B: `static:(tcp://127.0.0.1:<A port>)` (defaults: prefetchSize 1000 ...).
// Cases, each run `--runs` times on a fresh queue:
//   local      producer and consumer on A: end-to-end msg/s and p50 latency
//   forwarded  producer on B, consumer on A (bridge B -> A): msg/s, p50, ratio to local, extra p50
//   probe      supplementary: `--probe-count` messages with ONE send in flight, local and
//              forwarded, for the latency of the hop itself without queueing
//   demand     `--demand-count` sent on B with no consumer anywhere (checked: depth on B, nothing
//              forwarded); then a consumer on A: time until all arrived
// Latency: performance.now() at send in a property `t`, read at receive (one process, one clock).
// local and forwarded runs also report `cpuUsPerMsg` (broker A, broker B, every postgres process,
// this client: /proc/PID/stat utime + stime; `machine`: busy time of the whole machine from
// /proc/stat) and `readsWritesPerMsg` ([read, write] syscalls per message from /proc/PID/io).
// The producer keeps `--window` sends in flight (each resolves on the broker's receipt, after the
// store commit). Every process started here is stopped by PID and both databases are dropped.
// `postgresOwn`: only the Postgres processes of this benchmark (its databases' backends and the
// server's background processes). `storePerMsg`: each broker's group commit per message (inserts,
// rounds, operations; /metrics). `monoUs`: the run's window on the monotonic clock, for
// `cpuprofile-top.js --from-us --to-us` on profiles taken with
// KEEL_BENCH_BROKER_NODE_ARGS='--cpu-prof --cpu-prof-dir=DIR' (`--cases forwarded` runs one case).
// KEEL_BENCH_CLI=path/to/cli/dist/main.js runs the brokers of another build (before/after).
// Issue #25.5's figure, per run and as medians (`forwardCost` in the JSON, src/forward-cost.ts):
// (broker A + broker B CPU per forwarded message) / (broker A CPU per local message), and the same
// with Postgres; the target is <= 1.5x.

const path = require('node:path');
const { spawn, execFileSync } = require('node:child_process');
const { performance } = require('node:perf_hooks');
const os = require('node:os');
const fs = require('node:fs');
const { connect } = require(path.resolve(__dirname, '../../client/dist'));
const { forwardCost, formatForwardCost, summarizeForwardCost } = require(
  path.resolve(__dirname, '../dist/forward-cost'),
);

// KEEL_BENCH_CLI: the brokers from another build (e.g. a worktree of the base revision, to compare).
const CLI = process.env.KEEL_BENCH_CLI ?? path.resolve(__dirname, '../../cli/dist/main.js');

function arg(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i === -1 ? fallback : process.argv[i + 1];
}

const PG = arg('pg', 'postgres://postgres@127.0.0.1:55432');
const RUNS = Number(arg('runs', '3'));
const COUNT = Number(arg('count', '20000'));
const SIZE = Number(arg('size', '1024'));
const WINDOW = Number(arg('window', '64'));
/** Supplementary unloaded latency probe: this many messages with one send in flight (0: skip). */
const PROBE_COUNT = Number(arg('probe-count', '1000'));
const PREFETCH = Number(arg('prefetch', '1000'));
const DEMAND_COUNT = Number(arg('demand-count', '1000'));
const BASE_PORT = Number(arg('base-port', '62710'));
const JSON_OUT = arg('json', null);
/** Which cases run (default all): e.g. `--cases forwarded` to profile the brokers on one path only. */
const CASES = new Set(arg('cases', 'local,forwarded,demand,probe').split(','));
/** Bound on any one phase (a run that stalls fails instead of hanging). */
const PHASE_TIMEOUT_MS = Number(arg('phase-timeout-ms', '180000'));

const tag = `${Date.now().toString(36)}_${process.pid}`;
const procs = [];
const conns = [];
const dbs = [];

function log(...a) {
  process.stderr.write(`${a.join(' ')}\n`);
}

function psql(sql) {
  execFileSync('psql', [`${PG}/postgres`, '-qAtc', sql], { stdio: ['ignore', 'pipe', 'pipe'] });
}

function createDb(name) {
  psql(`CREATE DATABASE ${name}`);
  dbs.push(name);
  return `${PG}/${name}`;
}

function dropDbs() {
  for (const name of dbs) {
    for (const n of [name, `${name}_lock`]) {
      try {
        psql(`DROP DATABASE IF EXISTS ${n} WITH (FORCE)`);
      } catch (err) {
        log(`drop ${n} failed: ${err.message}`);
      }
    }
  }
}

/** CPU time (µs) of a process so far, from /proc/PID/stat utime + stime (fields 14, 15). */
const CLK_TCK = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;
function procCpuUs(pid) {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return ((Number(f[11]) + Number(f[12])) * 1e6) / CLK_TCK;
  } catch {
    return 0;
  }
}

/** Read and write syscalls of a process so far (/proc/PID/io syscr, syscw; sockets included). */
function procSyscalls(pid) {
  try {
    const io = fs.readFileSync(`/proc/${pid}/io`, 'utf8');
    return [Number(/syscr: (\d+)/.exec(io)[1]), Number(/syscw: (\d+)/.exec(io)[1])];
  } catch {
    return [0, 0];
  }
}

/** The Postgres server's processes: every process whose command is postgres. */
function postgresPids() {
  const out = [];
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      if (fs.readFileSync(`/proc/${d}/comm`, 'utf8').trim() === 'postgres') out.push(Number(d));
    } catch {
      // gone
    }
  }
  return out;
}

/**
 * The Postgres processes working for this benchmark: backends of its databases (brokers' pools and
 * lock sessions) and the server's background processes (WAL writer, checkpointer, autovacuum …),
 * not other clients' backends on the same server.
 */
function ownPostgresPids(dbs) {
  const names = dbs.flatMap((d) => [d, `${d}_lock`]).map((d) => `'${d}'`);
  const out = execFileSync(
    'psql',
    [
      `${PG}/postgres`,
      '-qAtc',
      `SELECT pid FROM pg_stat_activity WHERE datname IN (${names.join(',')}) OR backend_type <> 'client backend'`,
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  return new Set(String(out).split('\n').filter(Boolean).map(Number));
}

/** Busy and total CPU time of the machine (µs), from the first line of /proc/stat. */
function machineCpuUs() {
  const f = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  const total = f.reduce((a, b) => a + b, 0);
  const idle = f[3] + (f[4] ?? 0);
  return { busy: ((total - idle) * 1e6) / CLK_TCK, total: (total * 1e6) / CLK_TCK };
}

/**
 * CPU used by broker A, broker B, Postgres (every postgres process, including the ones of other
 * clusters on this machine) and this load generator: µs since `start()`.
 */
function cpuMeter(A, B) {
  const dbs = [A.db, B.db].map((u) => u.slice(u.lastIndexOf('/') + 1));
  const read = () => {
    const self = process.cpuUsage();
    return {
      own: ownPostgresPids(dbs),
      A: procCpuUs(A.child.pid),
      B: procCpuUs(B.child.pid),
      postgres: new Map(postgresPids().map((pid) => [pid, procCpuUs(pid)])),
      client: self.user + self.system,
      machine: machineCpuUs().busy,
      io: { A: procSyscalls(A.child.pid), B: procSyscalls(B.child.pid), client: procSyscalls('self') },
    };
  };
  const t0 = read();
  return (count) => {
    const t1 = read();
    const cpu = {};
    const own = new Set([...t0.own, ...t1.own]);
    let ownUs = 0;
    for (const [pid, us] of t1.postgres) if (own.has(pid)) ownUs += us - (t0.postgres.get(pid) ?? 0);
    cpu.postgresOwn = Math.round((10 * ownUs) / count) / 10;
    for (const k of Object.keys(t1)) {
      if (k === 'io' || k === 'own') continue;
      // Postgres: per backend, so one that exits meanwhile (another client's) takes nothing away;
      // one that started meanwhile counts whole.
      const used =
        k === 'postgres'
          ? [...t1.postgres].reduce((s, [pid, us]) => s + us - (t0.postgres.get(pid) ?? 0), 0)
          : t1[k] - t0[k];
      cpu[k] = Math.round((10 * used) / count) / 10;
    }
    const io = {};
    for (const k of Object.keys(t1.io)) {
      io[k] = t1.io[k].map((v, i) => +((v - t0.io[k][i]) / count).toFixed(2));
    }
    return { cpuUsPerMsg: cpu, readsWritesPerMsg: io };
  };
}

/** A Prometheus sample's value from a /metrics text (0 when absent). */
function metricValue(text, name) {
  const m = new RegExp(`^${name}(?:\\{[^}]*\\})? ([0-9.e+-]+)$`, 'm').exec(text);
  return m ? Number(m[1]) : 0;
}

/**
 * Group commit of broker A and B while the messages flowed, per message: messages inserted (a queue
 * message consumed before its round starts is never written: concurrent store and dispatch), rounds
 * (transactions) and store operations, from each broker's /metrics.
 */
async function storeMeter(A, B) {
  const read = async (b) => {
    const text = await (await fetch(`http://127.0.0.1:${b.adminPort}/metrics`)).text();
    return {
      inserts: metricValue(text, 'keel_store_commit_inserts_total'),
      rounds: metricValue(text, 'keel_store_commit_batch_operations_count'),
      operations: metricValue(text, 'keel_store_commit_batch_operations_sum'),
    };
  };
  const t0 = { A: await read(A), B: await read(B) };
  return async (count) => {
    const out = {};
    for (const [k, b] of [
      ['A', A],
      ['B', B],
    ]) {
      const t1 = await read(b);
      out[k] = {};
      for (const f of Object.keys(t1)) out[k][f] = +((t1[f] - t0[k][f]) / count).toFixed(3);
    }
    return out;
  };
}

function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

async function until(what, fn, timeoutMs = 30000, everyMs = 50) {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn().catch(() => undefined);
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(everyMs);
  }
}

function startBroker(b) {
  const args = [
    CLI,
    'broker',
    '--db',
    b.db,
    '--name',
    b.name,
    '--cluster',
    b.name,
    '--port',
    String(b.port),
    '--stomp-port',
    String(b.stompPort),
    '--admin-port',
    String(b.adminPort),
    ...(b.connector ? ['--network-connector', b.connector] : []),
    '--log-level',
    'warn',
  ];
  b.command = `node ${args.map((a) => (/[()?&]/.test(a) ? `'${a}'` : a)).join(' ')}`;
  // KEEL_BENCH_BROKER_NODE_ARGS: extra node flags for the brokers (e.g. `--cpu-prof --cpu-prof-dir=/tmp/p`).
  const nodeArgs = (process.env.KEEL_BENCH_BROKER_NODE_ARGS ?? '').split(' ').filter(Boolean);
  const child = spawn(process.execPath, [...nodeArgs, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout.on('data', (d) => b.out.push(String(d)));
  child.stderr.on('data', (d) => b.out.push(String(d)));
  child.on('exit', (code, sig) => {
    b.exited = { code, sig };
  });
  b.child = child;
  procs.push(child);
  return b;
}

async function stopProcs() {
  for (const child of procs) {
    if (child.exitCode !== null || child.signalCode !== null) continue;
    const gone = new Promise((r) => child.once('exit', r));
    process.kill(child.pid, 'SIGTERM');
    const t = setTimeout(() => {
      if (child.exitCode === null && child.signalCode === null) process.kill(child.pid, 'SIGKILL');
    }, 10000);
    await gone;
    clearTimeout(t);
  }
}

async function http(port, p) {
  const res = await fetch(`http://127.0.0.1:${port}${p}`);
  if (!res.ok) throw new Error(`${p}: HTTP ${res.status}`);
  return res.json();
}

async function client(b) {
  const c = await connect(`tcp://127.0.0.1:${b.port}`, { heartbeatMs: 5000 });
  c.on('error', (err) => log(`client error on ${b.name}: ${err.message}`));
  conns.push(c);
  return c;
}

async function waitMaster(b) {
  await until(
    `${b.name} to serve as master`,
    async () => {
      if (b.exited) throw new Error(`${b.name} exited ${JSON.stringify(b.exited)}: ${b.out.join('')}`);
      const c = await connect(`tcp://127.0.0.1:${b.port}`, { heartbeatMs: 0, connectTimeoutMs: 1000 });
      const role = c.broker?.role;
      await c.close();
      return role === 'master';
    },
    60000,
    200,
  ).catch((err) => {
    if (b.exited) throw new Error(`${b.name} exited ${JSON.stringify(b.exited)}: ${b.out.join('')}`);
    throw err;
  });
}

async function bridgeOf(b) {
  const r = await http(b.adminPort, '/api/bridges');
  return r.bridges[0];
}

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

function pct(sorted, p) {
  return sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))];
}

/**
 * Consumer first (on `consNode`), then `count` persistent messages from `prodNode` with `WINDOW`
 * sends in flight. Returns msg/s (first send to last receive), latency percentiles, duplicates.
 */
async function flow(prodNode, consNode, queue, count, waitDemand, window = WINDOW, cpu = null, store = null) {
  const body = Buffer.alloc(SIZE, 0x61);
  const cc = await client(consNode);
  const cs = await cc.createSession();
  const consumer = await cs.createConsumer(queue, { prefetch: PREFETCH });
  const lat = new Float64Array(count);
  const seen = new Uint8Array(count);
  let received = 0;
  let dup = 0;
  let lastAt = 0;
  let done;
  const allIn = new Promise((r) => {
    done = r;
  });
  consumer.onMessage((m) => {
    const now = performance.now();
    const i = Number(m.properties.i);
    if (seen[i]) {
      dup++;
      return;
    }
    seen[i] = 1;
    lat[received++] = now - Number(m.properties.t);
    lastAt = now;
    if (received === count) done();
  });
  if (waitDemand) await waitDemand();
  const pc = await client(prodNode);
  const ps = await pc.createSession();
  const producer = ps.createProducer(queue, { persistent: true });
  const storeUsed = store ? await store() : null;
  const t0 = performance.now();
  const monoStartUs = Number(process.hrtime.bigint() / 1000n);
  const cpuUsed = cpu?.();
  const inflight = new Set();
  for (let i = 0; i < count; i++) {
    const p = producer.send(body, { properties: { i, t: performance.now() } });
    inflight.add(p);
    p.finally(() => inflight.delete(p));
    if (inflight.size >= window) await Promise.race(inflight);
  }
  await Promise.all(inflight);
  const sentAt = performance.now();
  let timer;
  await Promise.race([
    allIn,
    new Promise((_, rej) => {
      timer = setTimeout(() => rej(new Error(`${queue}: ${received}/${count} received`)), PHASE_TIMEOUT_MS);
    }),
  ]);
  clearTimeout(timer);
  // CPU (µs) and read/write syscalls per message of each process while the messages flowed.
  const perMsg = cpuUsed?.(count);
  const storePerMsg = storeUsed ? await storeUsed(count) : undefined;
  // The run's window on the monotonic clock of a --cpu-prof profile (cpuprofile-top.js --from-us).
  const monoUs = [monoStartUs, Number(process.hrtime.bigint() / 1000n)];
  await cc.close();
  await pc.close();
  const sorted = Array.from(lat).sort((a, b) => a - b);
  return {
    count,
    ...perMsg,
    ...(storePerMsg ? { storePerMsg } : {}),
    msgPerSec: count / ((lastAt - t0) / 1000),
    sendPerSec: count / ((sentAt - t0) / 1000),
    p50Ms: pct(sorted, 50),
    p99Ms: pct(sorted, 99),
    duplicates: dup,
    monoUs,
  };
}

async function demandCase(A, B, queue, count) {
  const body = Buffer.alloc(SIZE, 0x61);
  const before = (await bridgeOf(B)).forwarded;
  const pc = await client(B);
  const ps = await pc.createSession();
  const producer = ps.createProducer(queue, { persistent: true });
  const inflight = new Set();
  for (let i = 0; i < count; i++) {
    const p = producer.send(body, { properties: { i } });
    inflight.add(p);
    p.finally(() => inflight.delete(p));
    if (inflight.size >= WINDOW) await Promise.race(inflight);
  }
  await Promise.all(inflight);
  await pc.close();
  // They stay on B: depth there, nothing forwarded.
  await sleep(500);
  const qB = await http(B.adminPort, `/api/queues/${encodeURIComponent(queue.replace('queue://', ''))}`);
  const br = await bridgeOf(B);
  if (qB.depth !== count || br.forwarded !== before) {
    throw new Error(`before the consumer: depth on B ${qB.depth}, forwarded ${br.forwarded - before}`);
  }
  const cc = await client(A);
  const cs = await cc.createSession();
  const seen = new Uint8Array(count);
  let received = 0;
  let dup = 0;
  let done;
  const allIn = new Promise((r) => {
    done = r;
  });
  let firstAt = 0;
  const t0 = performance.now();
  const consumer = await cs.createConsumer(queue, { prefetch: PREFETCH });
  const subscribedAt = performance.now();
  consumer.onMessage((m) => {
    const i = Number(m.properties.i);
    if (seen[i]) {
      dup++;
      return;
    }
    seen[i] = 1;
    if (received++ === 0) firstAt = performance.now();
    if (received === count) done();
  });
  let timer;
  await Promise.race([
    allIn,
    new Promise((_, rej) => {
      timer = setTimeout(() => rej(new Error(`${queue}: ${received}/${count} arrived`)), PHASE_TIMEOUT_MS);
    }),
  ]);
  const allAt = performance.now();
  clearTimeout(timer);
  await cc.close();
  return {
    count,
    allArrivedMs: allAt - t0,
    subscribeMs: subscribedAt - t0,
    firstMs: firstAt - t0,
    depthOnBBefore: qB.depth,
    duplicates: dup,
  };
}

async function main() {
  const A = {
    name: 'nbA',
    port: BASE_PORT,
    stompPort: BASE_PORT + 1,
    adminPort: BASE_PORT + 2,
    out: [],
    exited: null,
  };
  const B = {
    name: 'nbB',
    port: BASE_PORT + 10,
    stompPort: BASE_PORT + 11,
    adminPort: BASE_PORT + 12,
    out: [],
    exited: null,
  };
  A.db = createDb(`keel_nb_a_${tag}`);
  B.db = createDb(`keel_nb_b_${tag}`);
  B.connector = `static:(tcp://127.0.0.1:${A.port})`;
  startBroker(A);
  startBroker(B);
  log(`A: ${A.command}`);
  log(`B: ${B.command}`);
  await Promise.all([waitMaster(A), waitMaster(B)]);
  await until('bridge B -> A connected', async () => (await bridgeOf(B))?.state === 'connected', 30000);
  log('brokers up, bridge B -> A connected');

  const forwardDemand = (queue) => () =>
    until(
      `bridge forwarding ${queue}`,
      async () => (await bridgeOf(B)).forwarding.includes(queue),
      30000,
      20,
    );

  // Warm-up (not counted): both paths, 2000 messages each.
  await flow(A, A, `queue://nb.warm.local.${tag}`, 2000);
  const wq = `queue://nb.warm.fwd.${tag}`;
  await flow(B, A, wq, 2000, forwardDemand(wq));
  log('warm-up done');

  const results = { local: [], forwarded: [], demand: [], probeLocal: [], probeForwarded: [] };
  for (let r = 1; r <= RUNS; r++) {
    const meter = () => cpuMeter(A, B);
    const storeMeterAB = () => storeMeter(A, B);
    let l;
    if (CASES.has('local')) {
      const lq = `queue://nb.local.${tag}.${r}`;
      l = await flow(A, A, lq, COUNT, undefined, WINDOW, meter, storeMeterAB);
      results.local.push(l);
      log(`run ${r} local: ${JSON.stringify(l)}`);
    }
    if (CASES.has('forwarded')) {
      const fq = `queue://nb.fwd.${tag}.${r}`;
      const f = await flow(B, A, fq, COUNT, forwardDemand(fq), WINDOW, meter, storeMeterAB);
      results.forwarded.push(f);
      log(`run ${r} forwarded: ${JSON.stringify(f)}`);
      if (l)
        log(
          `run ${r} cost per forwarded message: ${formatForwardCost(forwardCost(l.cpuUsPerMsg, f.cpuUsPerMsg))}`,
        );
    }
    if (CASES.has('demand')) {
      const dq = `queue://nb.demand.${tag}.${r}`;
      const d = await demandCase(A, B, dq, DEMAND_COUNT);
      results.demand.push(d);
      log(`run ${r} demand: ${JSON.stringify(d)}`);
    }
    if (PROBE_COUNT > 0 && CASES.has('probe')) {
      const pl = await flow(A, A, `queue://nb.probe.local.${tag}.${r}`, PROBE_COUNT, undefined, 1);
      results.probeLocal.push(pl);
      log(`run ${r} probe local (window 1): ${JSON.stringify(pl)}`);
      const pq = `queue://nb.probe.fwd.${tag}.${r}`;
      const pf = await flow(B, A, pq, PROBE_COUNT, forwardDemand(pq), 1);
      results.probeForwarded.push(pf);
      log(`run ${r} probe forwarded (window 1): ${JSON.stringify(pf)}`);
    }
  }

  const m = (k, f) => median(results[k].map((x) => x[f]));
  const cost =
    results.local.length > 0 && results.local.length === results.forwarded.length
      ? summarizeForwardCost(
          results.local.map((x) => x.cpuUsPerMsg),
          results.forwarded.map((x) => x.cpuUsPerMsg),
        )
      : null;
  if (cost)
    log(`cost per forwarded message, median of ${RUNS}: ${formatForwardCost(cost.median, cost.target)}`);
  const summary = {
    date: new Date().toISOString(),
    machine: {
      nproc: os.cpus().length,
      cpu: os.cpus()[0]?.model,
      memGiB: +(os.totalmem() / 2 ** 30).toFixed(1),
      node: process.version,
      platform: `${os.type()} ${os.release()}`,
    },
    setup: {
      count: COUNT,
      size: SIZE,
      window: WINDOW,
      prefetch: PREFETCH,
      demandCount: DEMAND_COUNT,
      probeCount: PROBE_COUNT,
      runs: RUNS,
      cases: [...CASES],
    },
    commands: { A: A.command, B: B.command },
    medians: {
      localMsgPerSec: m('local', 'msgPerSec'),
      localP50Ms: m('local', 'p50Ms'),
      forwardedMsgPerSec: m('forwarded', 'msgPerSec'),
      forwardedP50Ms: m('forwarded', 'p50Ms'),
      ratio: m('forwarded', 'msgPerSec') / m('local', 'msgPerSec'),
      extraP50Ms: m('forwarded', 'p50Ms') - m('local', 'p50Ms'),
      demandAllArrivedMs: m('demand', 'allArrivedMs'),
      demandFirstMs: m('demand', 'firstMs'),
      ...(PROBE_COUNT > 0
        ? {
            probeLocalP50Ms: m('probeLocal', 'p50Ms'),
            probeForwardedP50Ms: m('probeForwarded', 'p50Ms'),
            probeExtraP50Ms: m('probeForwarded', 'p50Ms') - m('probeLocal', 'p50Ms'),
          }
        : {}),
    },
    forwardCost: cost,
    runs: results,
    bridgeAfter: await bridgeOf(B),
  };
  const text = JSON.stringify(summary, null, 2);
  process.stdout.write(`${text}\n`);
  if (JSON_OUT) fs.writeFileSync(JSON_OUT, text);
}

let failed = false;
main()
  .catch((err) => {
    failed = true;
    log(`FAILED: ${err.stack || err}`);
  })
  .finally(async () => {
    await Promise.all(conns.map((c) => c.close().catch(() => {})));
    await stopProcs();
    dropDbs();
    process.exit(failed ? 1 : 0);
  });
