#!/usr/bin/env node
// A selector consumer behind a deep queue (issue #21.6): how fast does it drain its share? Not run
// by CI. Needs the dist of @keel/cli and @keel/client (`npx tsc -b tsconfig.json`), psql, and a
// Postgres where the user may CREATE/DROP DATABASE.
//
//   node packages/bench/scripts/selector-drain.js [--pg postgres://postgres@127.0.0.1:55432]
//     [--runs 3] [--count 100000] [--buckets 10] [--size 1024] [--window 64] [--prefetch 1000]
//     [--base-port 62810] [--json out.json]
//
// One Keel broker (`keel broker`, its own database). Per run, on fresh queues:
//   1. preload: `--count` persistent messages, property `bucket` = i % `--buckets` (so one bucket is
//      10 % by default), `--window` sends in flight over one native connection. The queue is deeper
//      than the broker's memory window (64 MiB of 1 KiB bodies), so most of it waits in Postgres.
//   2. selector: one consumer with `bucket = 3` (auto-ack, `--prefetch`): time to its first message
//      and until its whole share (count / buckets) arrived; every message is checked to match, and
//      the queue's depth afterwards (admin API) must be count - share: nothing else was consumed.
//   3. reference: a plain consumer (no selector) drains a queue preloaded with just the share's
//      number of messages, the same way: what the same drain costs without a selector.
// Reports per run and as medians: matched msg/s, time to first, reference msg/s, the ratio, and
// the broker's CPU per matched message (/proc/PID/stat). Every process started here is stopped by
// PID and the database is dropped.

const path = require('node:path');
const { spawn, execFileSync } = require('node:child_process');
const { performance } = require('node:perf_hooks');
const fs = require('node:fs');
const os = require('node:os');
const { connect } = require(path.resolve(__dirname, '../../client/dist'));

const CLI = process.env.KEEL_BENCH_CLI ?? path.resolve(__dirname, '../../cli/dist/main.js');

function arg(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i === -1 ? fallback : process.argv[i + 1];
}

const PG = arg('pg', 'postgres://postgres@127.0.0.1:55432');
const RUNS = Number(arg('runs', '3'));
const COUNT = Number(arg('count', '100000'));
const BUCKETS = Number(arg('buckets', '10'));
const SIZE = Number(arg('size', '1024'));
const WINDOW = Number(arg('window', '64'));
const PREFETCH = Number(arg('prefetch', '1000'));
const BASE_PORT = Number(arg('base-port', '62810'));
const JSON_OUT = arg('json', null);
const PHASE_TIMEOUT_MS = Number(arg('phase-timeout-ms', '300000'));
const SELECTOR = 'bucket = 3';
const SHARE = Math.ceil((COUNT - 3) / BUCKETS);

const tag = `${Date.now().toString(36)}_${process.pid}`;
const db = `keel_seldrain_${tag}`;
const broker = {
  name: `sd${tag.slice(-6)}`,
  port: BASE_PORT,
  stompPort: BASE_PORT + 1,
  adminPort: BASE_PORT + 2,
  out: [],
  child: null,
  exited: null,
};
const conns = [];

function log(...a) {
  process.stderr.write(`${a.join(' ')}\n`);
}

function psql(sql) {
  execFileSync('psql', [`${PG}/postgres`, '-qAtc', sql], { stdio: ['ignore', 'pipe', 'pipe'] });
}

const CLK_TCK = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;
/** CPU time (µs) of a process so far, from /proc/PID/stat utime + stime (fields 14, 15). */
function procCpuUs(pid) {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(f[11]) + Number(f[12])) * 1e6) / CLK_TCK;
}

function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

async function until(what, fn, timeoutMs = 60000, everyMs = 100) {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn().catch(() => undefined);
    if (v) return v;
    if (broker.exited)
      throw new Error(`broker exited ${JSON.stringify(broker.exited)}: ${broker.out.join('')}`);
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(everyMs);
  }
}

function startBroker() {
  const args = [CLI, 'broker', '--db', `${PG}/${db}`, '--name', broker.name, '--cluster', broker.name];
  args.push('--port', String(broker.port), '--stomp-port', String(broker.stompPort));
  args.push('--admin-port', String(broker.adminPort), '--log-level', 'warn');
  broker.command = `node ${args.join(' ')}`;
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout.on('data', (d) => broker.out.push(String(d)));
  child.stderr.on('data', (d) => broker.out.push(String(d)));
  child.on('exit', (code, sig) => {
    broker.exited = { code, sig };
  });
  broker.child = child;
}

async function stopBroker() {
  const child = broker.child;
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const gone = new Promise((r) => child.once('exit', r));
  process.kill(child.pid, 'SIGTERM');
  const t = setTimeout(() => {
    if (child.exitCode === null && child.signalCode === null) process.kill(child.pid, 'SIGKILL');
  }, 10000);
  await gone;
  clearTimeout(t);
}

async function client() {
  const c = await connect(`tcp://127.0.0.1:${broker.port}`, { heartbeatMs: 5000 });
  c.on('error', (err) => log(`client error: ${err.message}`));
  conns.push(c);
  return c;
}

async function depth(queue) {
  const res = await fetch(`http://127.0.0.1:${broker.adminPort}/api/queues/${encodeURIComponent(queue)}`);
  if (!res.ok) throw new Error(`queue ${queue}: HTTP ${res.status}`);
  return (await res.json()).depth;
}

/** `count` persistent messages, `bucket` = i % BUCKETS, WINDOW sends in flight; msg/s. */
async function preload(queue, count, buckets) {
  const c = await client();
  const producer = (await c.createSession()).createProducer(`queue://${queue}`, { persistent: true });
  const body = Buffer.alloc(SIZE, 0x61);
  const inflight = new Set();
  const t0 = performance.now();
  let next = t0 + 5000;
  for (let i = 0; i < count; i++) {
    const p = producer.send(body, { properties: { i, bucket: i % buckets } });
    inflight.add(p);
    p.finally(() => inflight.delete(p));
    if (inflight.size >= WINDOW) await Promise.race(inflight);
    if (performance.now() > next) {
      log(`  preload ${queue}: ${i + 1}/${count}`);
      next += 5000;
    }
  }
  await Promise.all(inflight);
  const ms = performance.now() - t0;
  await c.close();
  await until(`${queue} at depth ${count}`, async () => (await depth(queue)) === count);
  return count / (ms / 1000);
}

/** One consumer (auto-ack) until `expect` messages arrived; checks each against `matches`. */
async function drain(queue, selector, expect, matches) {
  const c = await client();
  const session = await c.createSession({ ackMode: 'auto' });
  const seen = new Set();
  let firstMs = null;
  let wrong = 0;
  let duplicates = 0;
  let done;
  const all = new Promise((r) => {
    done = r;
  });
  const cpu0 = procCpuUs(broker.child.pid);
  const t0 = performance.now();
  const consumer = await session.createConsumer(`queue://${queue}`, {
    prefetch: PREFETCH,
    ...(selector ? { selector } : {}),
  });
  consumer.onMessage((m) => {
    if (firstMs === null) firstMs = performance.now() - t0;
    const i = Number(m.properties.i);
    if (!matches(m.properties)) wrong++;
    if (seen.has(i)) duplicates++;
    seen.add(i);
    if (seen.size === expect) done();
  });
  let timer;
  await Promise.race([
    all,
    new Promise((_, rej) => {
      timer = setTimeout(() => rej(new Error(`${queue}: ${seen.size}/${expect} received`)), PHASE_TIMEOUT_MS);
    }),
  ]);
  clearTimeout(timer);
  const ms = performance.now() - t0;
  const cpuUs = procCpuUs(broker.child.pid) - cpu0;
  await c.close();
  return {
    received: seen.size,
    wrong,
    duplicates,
    firstMs,
    drainMs: ms,
    msgPerSec: seen.size / (ms / 1000),
    brokerCpuUsPerMsg: cpuUs / seen.size,
  };
}

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? null : s[Math.floor((s.length - 1) / 2)];
}

function fmt(n, digits = 0) {
  return n === null || n === undefined ? '-' : n.toLocaleString('en-US', { maximumFractionDigits: digits });
}

async function main() {
  psql(`CREATE DATABASE ${db}`);
  startBroker();
  await until('the broker to serve', async () => {
    const c = await connect(`tcp://127.0.0.1:${broker.port}`, { heartbeatMs: 0, connectTimeoutMs: 1000 });
    const role = c.broker?.role;
    await c.close();
    return role === 'master';
  });
  const runs = [];
  for (let run = 1; run <= RUNS; run++) {
    const queue = `seldrain.${tag}.${run}`;
    const ref = `${queue}.ref`;
    log(`run ${run}/${RUNS}: preload ${COUNT} to ${queue} (${BUCKETS} buckets)`);
    const preloadPerSec = await preload(queue, COUNT, BUCKETS);
    log(`run ${run}/${RUNS}: selector '${SELECTOR}' drains its ${SHARE}`);
    const sel = await drain(queue, SELECTOR, SHARE, (p) => Number(p.bucket) === 3);
    let last = null;
    const left = await until(`${queue} at depth ${COUNT - SHARE}`, async () => {
      last = await depth(queue);
      return last === COUNT - SHARE ? last : undefined;
    }).catch((err) => {
      throw new Error(`${err.message}; last depth read: ${last}`);
    });
    log(`run ${run}/${RUNS}: reference, a plain consumer drains ${SHARE} from ${ref}`);
    await preload(ref, SHARE, 1);
    const plain = await drain(ref, null, SHARE, () => true);
    const r = {
      run,
      preloadPerSec,
      selector: sel,
      leftAfterSelector: left,
      reference: plain,
      ratio: sel.msgPerSec / plain.msgPerSec,
    };
    runs.push(r);
    log(
      `run ${run}: selector ${fmt(sel.msgPerSec)} msg/s (first after ${fmt(sel.firstMs, 1)} ms, ` +
        `${fmt(sel.brokerCpuUsPerMsg, 1)} µs broker CPU/msg), reference ${fmt(plain.msgPerSec)} msg/s, ` +
        `ratio ${fmt(r.ratio, 2)}; wrong ${sel.wrong}, duplicates ${sel.duplicates + plain.duplicates}, left ${left}`,
    );
  }
  const summary = {
    selectorMsgPerSec: median(runs.map((r) => r.selector.msgPerSec)),
    selectorFirstMs: median(runs.map((r) => r.selector.firstMs)),
    selectorDrainMs: median(runs.map((r) => r.selector.drainMs)),
    selectorBrokerCpuUsPerMsg: median(runs.map((r) => r.selector.brokerCpuUsPerMsg)),
    referenceMsgPerSec: median(runs.map((r) => r.reference.msgPerSec)),
    referenceBrokerCpuUsPerMsg: median(runs.map((r) => r.reference.brokerCpuUsPerMsg)),
    ratio: median(runs.map((r) => r.ratio)),
    wrong: runs.reduce((n, r) => n + r.selector.wrong, 0),
    duplicates: runs.reduce((n, r) => n + r.selector.duplicates + r.reference.duplicates, 0),
    othersKept: runs.every((r) => r.leftAfterSelector === COUNT - SHARE),
  };
  const out = {
    command: `node packages/bench/scripts/selector-drain.js ${process.argv.slice(2).join(' ')}`.trim(),
    setup: {
      count: COUNT,
      buckets: BUCKETS,
      share: SHARE,
      selector: SELECTOR,
      size: SIZE,
      window: WINDOW,
      prefetch: PREFETCH,
      broker: broker.command,
      postgres: execFileSync('psql', [`${PG}/postgres`, '-qAtc', 'SHOW server_version'])
        .toString()
        .trim(),
      machine: `${os.cpus().length} CPUs, ${os.cpus()[0]?.model}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, Node ${process.version}`,
      loadBefore: os.loadavg(),
      at: new Date().toISOString(),
    },
    runs,
    summary,
  };
  console.log(
    '| run | preload msg/s | selector: first ms | selector: drain s | selector msg/s | broker µs/msg | reference msg/s | broker µs/msg | ratio |',
  );
  console.log('| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
  for (const r of runs) {
    console.log(
      `| ${r.run} | ${fmt(r.preloadPerSec)} | ${fmt(r.selector.firstMs, 1)} | ${fmt(r.selector.drainMs / 1000, 2)} | ` +
        `${fmt(r.selector.msgPerSec)} | ${fmt(r.selector.brokerCpuUsPerMsg, 1)} | ${fmt(r.reference.msgPerSec)} | ` +
        `${fmt(r.reference.brokerCpuUsPerMsg, 1)} | ${fmt(r.ratio, 2)} |`,
    );
  }
  const s = summary;
  console.log(
    `| median | | ${fmt(s.selectorFirstMs, 1)} | ${fmt(s.selectorDrainMs / 1000, 2)} | ${fmt(s.selectorMsgPerSec)} | ` +
      `${fmt(s.selectorBrokerCpuUsPerMsg, 1)} | ${fmt(s.referenceMsgPerSec)} | ${fmt(s.referenceBrokerCpuUsPerMsg, 1)} | ${fmt(s.ratio, 2)} |`,
  );
  console.log(
    `wrong ${s.wrong}, duplicates ${s.duplicates}, the other messages kept: ${s.othersKept ? 'yes' : 'NO'}`,
  );
  if (JSON_OUT) fs.writeFileSync(JSON_OUT, `${JSON.stringify(out, null, 2)}\n`);
  if (s.wrong > 0 || s.duplicates > 0 || !s.othersKept) process.exitCode = 1;
}

main()
  .catch((err) => {
    log(`FAILED: ${err.stack || err}`);
    process.exitCode = 1;
  })
  .finally(async () => {
    for (const c of conns) await c.close().catch(() => {});
    await stopBroker();
    for (const n of [db, `${db}_lock`]) {
      try {
        psql(`DROP DATABASE IF EXISTS ${n} WITH (FORCE)`);
      } catch (err) {
        log(`drop ${n} failed: ${err.message}`);
      }
    }
  });
