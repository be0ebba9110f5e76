/**
 * `keel drill`: a failover drill on this machine, no Docker needed.
 *
 * 1. a private PostgreSQL in a temporary directory (the same starter as `keel start`), or the
 *    server given with --pg-url (a database of its own there, dropped afterwards);
 * 2. N `keel broker` nodes of one cluster as child processes (in db-cut mode each reaches Postgres
 *    through a TCP proxy of the drill's, drill-proxy.ts);
 * 3. a steady persistent load through failover clients: a producer paced to --rate that waits for
 *    each receipt, and a consumer that acknowledges each message (individual acks);
 * 4. --kills rounds: find the master (GET /api/broker on every node), fault it (SIGKILL; SIGSTOP
 *    then SIGCONT after the takeover; or cut it from Postgres and heal), wait for the new master's
 *    `role changed` line, bring the old node back as a slave, let the load settle;
 * 5. stop the producer, drain the consumer, and count per round: takeover time (fault → the new
 *    master's `role changed` line), the client-visible pause (the longest gap between receipts
 *    around the fault), receipted, delivered, lost (receipted, never delivered) and duplicated;
 * 6. a table on stdout, the timeline as an SVG chart, optionally everything as JSON.
 *
 * Every process and the temporary directory are cleaned up at the end, on an error and on
 * Ctrl-C (a second Ctrl-C kills everything at once).
 */
import { randomBytes } from 'node:crypto';
import {
  chmodSync,
  copyFileSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { type Connection, connect } from '@keel/client';
import { InvalidArgumentError, KeelError } from '@keel/protocol';
import { recordedPostmasterPid, SHARED_STORE_DATA_DIR } from '@keel/server';
import { ensureLockDatabase, migrate } from '@keel/store-pg';
import { Client } from 'pg';
import { startLocalPostgres } from '../local-postgres';
import type { Output } from '../output';
import { freePort } from '../ports';
import { AdminClient, type BrokerReply, type QueueListReply } from './admin-client';
import { renderDrillChart } from './drill-chart';
import { DrillNode, type DrillNodePlan } from './drill-node';
import { DrillProxy } from './drill-proxy';
import { bucketCounts, countBetween, maxGapAround } from './drill-timeline';
import { integerOption, rateOption, sleep, withInterrupt } from './load-options';
import { sendLoop } from './produce';
import { parseSequence, SequenceTracker } from './sequence-body';

export const DRILL_MODES = ['kill', 'stop', 'db-cut', 'pg-kill'] as const;
export type DrillMode = (typeof DRILL_MODES)[number];
export const DRILL_LOCKERS = ['row', 'lease', 'file'] as const;
export type DrillLocker = (typeof DRILL_LOCKERS)[number];
/** db: one Postgres for all nodes (--db); shared: the master's own Postgres on the shared directory (--store-dir). */
export const DRILL_STORES = ['db', 'shared'] as const;
export type DrillStore = (typeof DRILL_STORES)[number];

export const DEFAULT_DRILL_KILLS = 3;
export const DEFAULT_DRILL_NODES = 3;
export const MAX_DRILL_NODES = 9;
export const DEFAULT_DRILL_RATE_PER_S = 200;
export const DEFAULT_DRILL_CHART = 'keel-drill.svg';
/** Chart resolution. */
export const DRILL_BUCKET_MS = 100;
/** Steady load before the first fault and after each recovery. */
export const DRILL_SETTLE_MS = 3_000;
export const DRILL_BODY_BYTES = 256;
export const DRILL_SEND_WINDOW = 64;
/** How long a node may take to report its role, and the cluster to elect a new master. */
export const DRILL_NODE_READY_TIMEOUT_MS = 60_000;
export const DRILL_TAKEOVER_TIMEOUT_MS = 90_000;
/** db-cut: how long the old master stays cut off at most, waiting for it to step down. */
export const DRILL_CUT_HOLD_MAX_MS = 10_000;
/** Client settings: find the new master quickly, notice a frozen one in 3 heartbeats. */
export const DRILL_CLIENT_HEARTBEAT_MS = 1_000;
export const DRILL_CLIENT_MAX_RECONNECT_DELAY_MS = 500;
export const DRILL_CLIENT_TIMEOUT_MS = 120_000;
/** --locker file: a waiting node's retry interval, the master's lock-file check, stop mode's lease. */
export const DRILL_FILE_LOCK_ACQUIRE_SLEEP_INTERVAL_MS = 200;
export const DRILL_FILE_LOCK_KEEP_ALIVE_PERIOD_MS = 500;
export const DRILL_FILE_LEASE_DURATION_MS = 3_000;
/** --backlog is sent with this many sends in flight. */
export const DRILL_BACKLOG_WINDOW = 500;
/** The drain ends when every receipted message came, or nothing came for this long. */
export const DRILL_DRAIN_IDLE_MS = 10_000;
const POLL_MS = 50;
const CLUSTER = 'drill';
const DATABASE = 'keel_drill';

export interface DrillOptions {
  kills?: string;
  mode?: string;
  nodes?: string;
  rate?: string;
  chart?: string;
  json?: string;
  pgUrl?: string;
  locker?: string;
  store?: string;
  backlog?: string;
}

export interface DrillSettings {
  kills: number;
  mode: DrillMode;
  nodes: number;
  ratePerS: number;
  chartFile: string;
  jsonFile?: string;
  pgUrl?: string;
  locker: DrillLocker;
  store: DrillStore;
  /** Persistent messages stored in a queue of their own before the load (they stay stored). */
  backlog: number;
}

export interface DrillRound {
  round: number;
  mode: DrillMode;
  oldMaster: string;
  newMaster: string;
  /** Fault → the new master's `role changed` line. */
  takeoverMs: number;
  /** Longest gap between receipts (deliveries) around the fault. */
  pauseMs: number;
  deliveryPauseMs: number;
  /** Fault → the old node reported slave again. */
  rejoinMs: number | null;
  /** Fault → the old master's own first non-master role line (stop, db-cut; null after SIGKILL). */
  stepDownMs: number | null;
  receipted: number;
  delivered: number;
  lost: number;
  duplicated: number;
  /** ms since the load started. */
  faultAtMs: number;
  newMasterAtMs: number;
}

export interface DrillTotals {
  sent: number;
  receipted: number;
  failed: number;
  delivered: number;
  lost: number;
  duplicated: number;
  /** Delivered although their send failed or had no receipt (in doubt, not an error). */
  deliveredWithoutReceipt: number;
}

export interface DrillResult {
  settings: DrillSettings;
  startedAt: string;
  loadMs: number;
  rounds: DrillRound[];
  totals: DrillTotals;
  clientEvents: { atMs: number; client: string; event: string; detail: string }[];
  chartFile: string;
  jsonFile?: string;
  timeline: { bucketMs: number; receipts: number[]; deliveries: number[] };
  /** --backlog: messages stored before the load, and the queue's depth the last master reports. */
  backlog?: { queue: string; stored: number; afterRounds: number | null };
}

export function drillSettings(options: DrillOptions): DrillSettings {
  const kills = integerOption(options.kills, '--kills', 1, 1000) ?? DEFAULT_DRILL_KILLS;
  const mode = (options.mode ?? 'kill') as DrillMode;
  if (!DRILL_MODES.includes(mode)) {
    throw new InvalidArgumentError(
      `--mode must be one of ${DRILL_MODES.join(', ')} (got ${JSON.stringify(options.mode)})`,
    );
  }
  const locker = (options.locker ?? 'row') as DrillLocker;
  if (!DRILL_LOCKERS.includes(locker)) {
    throw new InvalidArgumentError(
      `--locker must be one of ${DRILL_LOCKERS.join(', ')} (got ${JSON.stringify(options.locker)})`,
    );
  }
  const store = (options.store ?? 'db') as DrillStore;
  if (!DRILL_STORES.includes(store)) {
    throw new InvalidArgumentError(
      `--store must be one of ${DRILL_STORES.join(', ')} (got ${JSON.stringify(options.store)})`,
    );
  }
  if (store === 'shared' && locker !== 'file') {
    throw new InvalidArgumentError(
      '--store shared needs --locker file (the lock file decides who runs Postgres)',
    );
  }
  if (store === 'shared' && options.pgUrl !== undefined) {
    throw new InvalidArgumentError(
      '--store shared runs its own Postgres on the shared directory: drop --pg-url',
    );
  }
  if (mode === 'pg-kill' && store !== 'shared') {
    throw new InvalidArgumentError("--mode pg-kill kills the master's own Postgres: it needs --store shared");
  }
  if (mode === 'db-cut' && (locker === 'file' || store === 'shared')) {
    throw new InvalidArgumentError(
      '--mode db-cut needs --locker row or lease (a file-locker master keeps its lock when cut from Postgres)',
    );
  }
  const backlog = integerOption(options.backlog, '--backlog', 0, 10_000_000) ?? 0;
  const nodes = integerOption(options.nodes, '--nodes', 2, MAX_DRILL_NODES) ?? DEFAULT_DRILL_NODES;
  const ratePerS = rateOption(options.rate, '--rate') ?? DEFAULT_DRILL_RATE_PER_S;
  const chartFile = options.chart ?? DEFAULT_DRILL_CHART;
  if (chartFile.trim() === '') throw new InvalidArgumentError('--chart needs a file name');
  if (options.json !== undefined && options.json.trim() === '')
    throw new InvalidArgumentError('--json needs a file name');
  if (options.pgUrl !== undefined && !/^postgres(ql)?:\/\//.test(options.pgUrl)) {
    throw new InvalidArgumentError(
      `--pg-url must be a postgres:// URL (got ${JSON.stringify(options.pgUrl)})`,
    );
  }
  return {
    kills,
    mode,
    nodes,
    ratePerS,
    chartFile,
    ...(options.json !== undefined ? { jsonFile: options.json } : {}),
    ...(options.pgUrl !== undefined ? { pgUrl: options.pgUrl } : {}),
    locker,
    store,
    backlog,
  };
}

export class DrillInterruptedError extends KeelError {
  constructor() {
    super('INTERRUPTED', 'drill interrupted');
  }
}

function withDatabase(url: string, name: string): string {
  const u = new URL(url);
  u.pathname = `/${encodeURIComponent(name)}`;
  return u.toString();
}

function withPort(url: string, port: number): string {
  const u = new URL(url);
  u.hostname = '127.0.0.1';
  u.port = String(port);
  return u.toString();
}

async function adminQuery(adminUrl: string, sql: string): Promise<void> {
  const client = new Client({ connectionString: adminUrl });
  client.on('error', () => {});
  await client.connect();
  try {
    await client.query(sql);
  } finally {
    await client.end();
  }
}

const quote = (name: string) => `"${name.replace(/"/g, '""')}"`;

/** A fixed-width text table, two spaces between columns, numbers right-aligned. */
export function formatTable(rows: string[][]): string {
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length))) ?? [];
  return rows
    .map((r) =>
      r
        .map((cell, i) =>
          /^-?[\d.]+( ms)?$/.test(cell) ? cell.padStart(widths[i] ?? 0) : cell.padEnd(widths[i] ?? 0),
        )
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

export function drillTable(rounds: readonly DrillRound[], totals: DrillTotals): string {
  const header = [
    'ROUND',
    'MODE',
    'OLD MASTER',
    'NEW MASTER',
    'TAKEOVER',
    'PAUSE',
    'RECEIPTED',
    'DELIVERED',
    'LOST',
    'DUPLICATED',
  ];
  const rows = rounds.map((r) => [
    String(r.round),
    r.mode,
    r.oldMaster,
    r.newMaster,
    `${r.takeoverMs} ms`,
    `${r.pauseMs} ms`,
    String(r.receipted),
    String(r.delivered),
    String(r.lost),
    String(r.duplicated),
  ]);
  const max = (f: (r: DrillRound) => number) => (rounds.length ? Math.max(...rounds.map(f)) : 0);
  rows.push([
    'total',
    '',
    '',
    'max:',
    `${max((r) => r.takeoverMs)} ms`,
    `${max((r) => r.pauseMs)} ms`,
    String(totals.receipted),
    String(totals.delivered),
    String(totals.lost),
    String(totals.duplicated),
  ]);
  return formatTable([header, ...rows]);
}

export async function runDrill(
  options: DrillOptions,
  output: Output,
  run: { signal?: AbortSignal } = {},
): Promise<DrillResult> {
  const settings = drillSettings(options);
  const signal = run.signal;
  const t00 = Date.now();
  const log = (line: string) =>
    output.err(`[${((Date.now() - t00) / 1000).toFixed(1).padStart(6)}s] ${line}\n`);
  const checkAbort = () => {
    if (signal?.aborted) throw new DrillInterruptedError();
  };
  /** Polls until check() gives a value; throws on timeout (with why()) and on Ctrl-C. */
  const waitFor = async <T>(
    check: () => T | undefined | null | false,
    timeoutMs: number,
    why: () => string,
  ): Promise<T> => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      checkAbort();
      const value = check();
      if (value !== undefined && value !== null && value !== false) return value;
      if (Date.now() >= deadline) throw new Error(why());
      await sleep(POLL_MS, signal);
    }
  };

  const cleanups: { what: string; fn: () => Promise<void> | void }[] = [];
  const nodes: DrillNode[] = [];
  let postmasterPidFile: string | null = null;
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'keel-drill-'));
  // Postgres runs as the `postgres` user when we are root: it must be able to enter the directory.
  chmodSync(tmp, 0o755);
  const killEverythingNow = () => {
    for (const n of nodes) n.killNow();
    if (postmasterPidFile) {
      try {
        const pid = Number(readFileSync(postmasterPidFile, 'utf8').split('\n')[0]);
        if (pid > 0) process.kill(pid, 'SIGQUIT'); // Postgres's immediate shutdown
      } catch {
        // not running
      }
    }
    rmSync(tmp, { recursive: true, force: true });
  };
  process.once('exit', killEverythingNow);
  cleanups.push({ what: 'temporary directory', fn: () => rmSync(tmp, { recursive: true, force: true }) });

  let statusTimer: NodeJS.Timeout | undefined;
  try {
    // ----- Postgres --------------------------------------------------------------------------------
    // --locker file: the lock directory (and with --store shared the store) in one shared directory.
    const sharedDir = settings.locker === 'file' ? path.join(tmp, 'shared') : null;
    const lockDir = sharedDir ? path.join(sharedDir, 'lock') : null;
    const storeDir = sharedDir && settings.store === 'shared' ? path.join(sharedDir, 'store') : null;
    if (lockDir) {
      mkdirSync(lockDir, { recursive: true, mode: 0o755 });
      chmodSync(sharedDir as string, 0o755);
    }
    let adminUrl = '';
    let db = '';
    let lockDb = '';
    let dbName = DATABASE;
    if (storeDir) {
      log(`shared directory ${sharedDir}: the lock in lock/, the master's Postgres data in store/`);
    } else if (settings.pgUrl) {
      adminUrl = settings.pgUrl;
      dbName = `keel_drill_${process.pid}_${randomBytes(3).toString('hex')}`;
      log(`using Postgres ${new URL(adminUrl).host}, database ${dbName}`);
      const dropped = dbName;
      cleanups.push({
        what: `databases ${dropped}, ${dropped}_lock`,
        fn: async () => {
          await adminQuery(adminUrl, `DROP DATABASE IF EXISTS ${quote(dropped)} WITH (FORCE)`);
          await adminQuery(adminUrl, `DROP DATABASE IF EXISTS ${quote(`${dropped}_lock`)} WITH (FORCE)`);
        },
      });
    } else {
      log(`starting a private Postgres in ${tmp}...`);
      const pg = await startLocalPostgres({ dir: tmp, logFile: path.join(tmp, 'postgres.log') });
      postmasterPidFile = path.join(pg.dataDir, 'postmaster.pid');
      cleanups.push({
        what: 'Postgres',
        fn: async () => {
          await pg.stop('fast').catch(() => pg.stop('immediate'));
          postmasterPidFile = null;
        },
      });
      adminUrl = pg.adminUrl;
      log(`Postgres ready on 127.0.0.1:${pg.port}`);
    }
    checkAbort();
    if (!storeDir) {
      await adminQuery(adminUrl, `CREATE DATABASE ${quote(dbName)}`);
      db = withDatabase(adminUrl, dbName);
      await migrate({ connectionString: db });
      lockDb = await ensureLockDatabase(db);
      log(`database ${dbName} migrated, lock database ${new URL(lockDb).pathname.slice(1)}`);
    }

    // ----- nodes -----------------------------------------------------------------------------------
    const ports: number[] = [];
    while (ports.length < settings.nodes * 2) {
      const p = await freePort();
      if (!ports.includes(p)) ports.push(p);
    }
    const proxies: (DrillProxy | null)[] = [];
    for (let i = 0; i < settings.nodes; i++) {
      if (settings.mode === 'db-cut') {
        const pgTarget = new URL(adminUrl);
        const proxy = await DrillProxy.start(pgTarget.hostname, Number(pgTarget.port || 5432));
        proxies.push(proxy);
        cleanups.push({ what: `proxy ${i + 1}`, fn: () => proxy.close() });
      } else {
        proxies.push(null);
      }
    }
    const plans: DrillNodePlan[] = Array.from({ length: settings.nodes }, (_, i) => {
      const proxy = proxies[i];
      return {
        name: `n${i + 1}`,
        cluster: CLUSTER,
        port: ports[i * 2] as number,
        adminPort: ports[i * 2 + 1] as number,
        db: proxy ? withPort(db, proxy.port) : db,
        lockDb: proxy ? withPort(lockDb, proxy.port) : lockDb,
        logFile: path.join(tmp, `n${i + 1}.log`),
        ...drillLockerWiring(settings, lockDir, storeDir),
      };
    });
    const mainJs = path.resolve(__dirname, '..', 'main.js');
    cleanups.push({
      what: 'broker nodes',
      fn: async () => {
        await Promise.all(nodes.map((n) => n.stop(10_000)));
      },
    });
    const launch = (i: number): DrillNode => {
      const node = new DrillNode(plans[i] as DrillNodePlan, mainJs);
      nodes[i] = node;
      return node;
    };
    const waitForRole = (node: DrillNode, roles: string[], sinceMs = 0) =>
      waitFor(
        () => {
          if (node.exited) {
            throw new Error(
              `${node.plan.name} exited (${node.exitDescription}); last lines:\n    ${node.lastLines()}`,
            );
          }
          const change = [...node.roleChanges].reverse().find((c) => c.atMs >= sinceMs);
          return change && roles.includes(change.role) && node.role === change.role ? change : undefined;
        },
        DRILL_NODE_READY_TIMEOUT_MS,
        () =>
          `${node.plan.name} did not become ${roles.join(' or ')} within ${DRILL_NODE_READY_TIMEOUT_MS} ms (role: ${node.role ?? 'none'}); last lines:\n    ${node.lastLines()}`,
      );
    for (let i = 0; i < settings.nodes; i++) {
      const node = launch(i);
      log(
        `${node.plan.name} starting (tcp://127.0.0.1:${node.plan.port}, admin ${node.plan.adminPort}, pid ${node.pid})`,
      );
      const change = await waitForRole(node, i === 0 ? ['master'] : ['slave']);
      log(`${node.plan.name} is ${change.role}`);
    }

    // ----- load ------------------------------------------------------------------------------------
    const failoverUrl = `failover:(${plans.map((p) => `tcp://127.0.0.1:${p.port}`).join(',')})?randomize=false&maxReconnectDelay=${DRILL_CLIENT_MAX_RECONNECT_DELAY_MS}&timeout=${DRILL_CLIENT_TIMEOUT_MS}`;
    const clientEvents: DrillResult['clientEvents'] = [];
    const connections: Connection[] = [];
    cleanups.push({
      what: 'client connections',
      fn: async () => {
        await Promise.all(connections.map((c) => c.close().catch(() => {})));
      },
    });
    const open = async (name: string): Promise<Connection> => {
      const conn = await connect(failoverUrl, { heartbeatMs: DRILL_CLIENT_HEARTBEAT_MS });
      connections.push(conn);
      conn.on('interrupted', ({ url, error }) => {
        clientEvents.push({
          atMs: Date.now(),
          client: name,
          event: 'interrupted',
          detail: `${url}: ${error.message}`,
        });
        log(`${name}: lost ${url} (${error.message})`);
      });
      conn.on('resumed', ({ url }) => {
        clientEvents.push({ atMs: Date.now(), client: name, event: 'resumed', detail: url });
        log(`${name}: resumed on ${url}`);
      });
      conn.on('error', (err) => {
        clientEvents.push({ atMs: Date.now(), client: name, event: 'error', detail: err.message });
        log(`${name}: ${err.message}`);
      });
      conn.on('close', ({ error }) => {
        if (error) log(`${name}: closed: ${error.message}`);
      });
      return conn;
    };
    const consumerConn = await open('consumer');
    const producerConn = await open('producer');
    log(`clients connected: ${failoverUrl}`);
    const backlogQueue =
      settings.backlog > 0 ? await storeBacklog(producerConn, settings.backlog, log, signal) : null;

    const receiptTimes: number[] = [];
    const receiptAt = new Map<number, number>();
    const deliveryTimes: number[] = []; // first deliveries
    const duplicateTimes: number[] = [];
    const allDeliveryTimes: number[] = [];
    const tracker = new SequenceTracker();
    const missing = new Set<number>(); // receipted, not delivered (yet)
    let sent = 0;
    let failed = 0;
    let lastSendError: Error | null = null;

    const queue = `queue://keel-drill-${randomBytes(3).toString('hex')}`;
    const consumerSession = await consumerConn.createSession({ ackMode: 'individual' });
    const consumer = await consumerSession.createConsumer(queue, { prefetch: 200 });
    consumer.on('error', (err) => log(`consumer: ${err.message}`));
    consumer.on('message', (m) => {
      const now = Date.now();
      allDeliveryTimes.push(now);
      const seq = parseSequence(m.body);
      const kind = tracker.add(seq);
      if (kind === 'duplicate') duplicateTimes.push(now);
      else if (kind === 'new') {
        deliveryTimes.push(now);
        missing.delete(seq as number);
      }
      m.ack().catch(() => {});
    });
    const producerSession = await producerConn.createSession();
    const producer = producerSession.createProducer(queue, { persistent: true });
    const stopLoad = new AbortController();
    const loadStart = Date.now();
    const sending = sendLoop({
      producer,
      sizeBytes: DRILL_BODY_BYTES,
      ratePerS: settings.ratePerS,
      window: DRILL_SEND_WINDOW,
      signal: stopLoad.signal,
      shouldStop: () => producerConn.status === 'closed',
      onSent: () => {
        sent++;
      },
      onReceipt: (seq, at) => {
        receiptTimes.push(at);
        receiptAt.set(seq, at);
        if (!tracker.has(seq)) missing.add(seq);
      },
      onFailure: (_seq, err) => {
        failed++;
        lastSendError = err;
      },
    });
    cleanups.push({
      what: 'load',
      fn: async () => {
        stopLoad.abort();
      },
    });
    log(`load: ${settings.ratePerS} persistent messages/s of ${DRILL_BODY_BYTES} bytes to ${queue}`);
    statusTimer = setInterval(() => {
      const now = Date.now();
      log(
        `load: ${countBetween(receiptTimes, now - 1000, now)} receipts/s, ${countBetween(allDeliveryTimes, now - 1000, now)} deliveries/s; sent ${sent}, receipted ${receiptTimes.length}, delivered ${deliveryTimes.length}, failed ${failed}`,
      );
    }, 5_000);
    statusTimer.unref();
    await waitFor(
      () => receiptTimes.length > 0 && deliveryTimes.length > 0,
      30_000,
      () =>
        `the load did not start within 30 s (sent ${sent}, receipted ${receiptTimes.length}, failed ${failed})`,
    );
    await sleep(DRILL_SETTLE_MS, signal);

    // ----- rounds ----------------------------------------------------------------------------------
    const masterNow = async (): Promise<number[]> => {
      const replies = await Promise.all(
        nodes.map(async (n, i) => {
          if (n.exited || n.paused) return null;
          try {
            const client = new AdminClient({
              admin: `http://127.0.0.1:${n.plan.adminPort}`,
              timeoutMs: 2_000,
              env: {},
            });
            const reply = await client.get<BrokerReply>('/api/broker');
            return reply.role === 'master' ? i : null;
          } catch {
            return null;
          }
        }),
      );
      return replies.filter((i): i is number => i !== null);
    };
    interface RawRound {
      round: number;
      oldIndex: number;
      oldMaster: string;
      newMaster: string;
      faultAt: number;
      newMasterAt: number;
      rejoinedAt: number | null;
      stepDownAt: number | null;
      endAt: number;
    }
    const raw: RawRound[] = [];
    for (let round = 1; round <= settings.kills; round++) {
      let masters: number[] = [];
      const deadline = Date.now() + DRILL_TAKEOVER_TIMEOUT_MS;
      while (masters.length !== 1) {
        checkAbort();
        masters = await masterNow();
        if (masters.length === 1) break;
        if (Date.now() > deadline) {
          throw new Error(`round ${round}: expected one master, the admin APIs report ${masters.length}`);
        }
        await sleep(200, signal);
      }
      const oldIndex = masters[0] as number;
      const old = nodes[oldIndex] as DrillNode;
      const faultAt = Date.now();
      const verb = {
        kill: 'SIGKILL',
        stop: 'SIGSTOP',
        'db-cut': 'cutting from Postgres',
        'pg-kill': 'SIGKILL of the Postgres of',
      }[settings.mode];
      log(`round ${round}: ${verb} ${old.plan.name} (master, pid ${old.pid})`);
      if (settings.mode === 'kill') old.signal('SIGKILL');
      else if (settings.mode === 'stop') old.signal('SIGSTOP');
      else if (settings.mode === 'pg-kill') killSharedPostgres(storeDir as string, log);
      else proxies[oldIndex]?.cut();

      const took = await waitFor(
        () => {
          for (const [i, n] of nodes.entries()) {
            if (i === oldIndex) continue;
            const change = n.roleSince('master', faultAt);
            if (change) return { index: i, atMs: change.atMs };
          }
          return undefined;
        },
        DRILL_TAKEOVER_TIMEOUT_MS,
        () => `round ${round}: no new master within ${DRILL_TAKEOVER_TIMEOUT_MS} ms after the fault`,
      );
      const newNode = nodes[took.index] as DrillNode;
      log(`round ${round}: ${newNode.plan.name} is master after ${took.atMs - faultAt} ms`);

      // Bring the old node back; it must rejoin as a slave.
      let rejoinedAt: number | null = null;
      const restart = async (why: string) => {
        log(`round ${round}: restarting ${old.plan.name} (${why})`);
        if (!old.exited) {
          old.killNow();
        }
        await old.exitPromise;
        const again = launch(oldIndex);
        const change = await waitForRole(again, ['slave'], faultAt);
        return change.atMs;
      };
      if (settings.mode === 'stop' && settings.locker === 'file') {
        // The new master fenced the frozen one before it took over: SIGKILL of its pid (same host).
        await Promise.race([old.exitPromise, sleep(1_000, signal)]);
      }
      if (settings.mode === 'kill') {
        rejoinedAt = await restart('killed');
      } else if (settings.mode === 'stop' && old.exited) {
        rejoinedAt = await restart(`fenced by the new master (${old.exitDescription})`);
      } else {
        if (settings.mode === 'stop') {
          log(`round ${round}: SIGCONT ${old.plan.name}`);
          old.signal('SIGCONT');
        } else if (settings.mode === 'pg-kill') {
          log(`round ${round}: ${old.plan.name} lost its Postgres; it must step down and wait as slave`);
        } else {
          // A partition outlasts the takeover: keep the old master cut off until it steps down by
          // itself (self-fencing), so that is measured too, then heal.
          const down = await waitFor(
            () => old.exited || old.roleChanges.some((c) => c.role !== 'master' && c.atMs >= faultAt),
            DRILL_CUT_HOLD_MAX_MS,
            () => '',
          ).catch((err: unknown) => {
            if (err instanceof DrillInterruptedError) throw err;
            return false;
          });
          if (!down)
            log(
              `round ${round}: ${old.plan.name} still claims master ${DRILL_CUT_HOLD_MAX_MS} ms after the cut`,
            );
          log(`round ${round}: healing ${old.plan.name}'s link to Postgres`);
          proxies[oldIndex]?.heal();
        }
        try {
          rejoinedAt = (await waitForRole(old, ['slave'], faultAt)).atMs;
        } catch (err) {
          if (err instanceof DrillInterruptedError) throw err;
          log(`round ${round}: ${old.plan.name} did not rejoin by itself: ${(err as Error).message}`);
          if (old.exited) {
            // Keep its log: the temporary directory goes at the end.
            const kept = path.resolve(`keel-drill-${old.plan.name}-round-${round}.log`);
            copyFileSync(old.plan.logFile, kept);
            log(`round ${round}: ${old.plan.name}'s log kept in ${kept}`);
          }
          rejoinedAt = await restart('did not rejoin');
        }
      }
      const stepDown = old.roleChanges.find((c) => c.role !== 'master' && c.atMs >= faultAt);
      if (stepDown)
        log(
          `round ${round}: ${old.plan.name} stepped down (${stepDown.role}) ${stepDown.atMs - faultAt} ms after the fault`,
        );
      log(`round ${round}: ${old.plan.name} is slave again`);
      const resumed = await waitFor(
        () => {
          const r = receiptTimes[receiptTimes.length - 1] ?? 0;
          const d = allDeliveryTimes[allDeliveryTimes.length - 1] ?? 0;
          return r > took.atMs && d > took.atMs ? Math.max(r, d) : undefined;
        },
        DRILL_TAKEOVER_TIMEOUT_MS,
        () =>
          `round ${round}: the load did not resume within ${DRILL_TAKEOVER_TIMEOUT_MS} ms of the new master`,
      ).catch((err: unknown) => {
        if (err instanceof DrillInterruptedError) throw err;
        log((err as Error).message);
        return null;
      });
      if (resumed) log(`round ${round}: the load resumed`);
      await sleep(DRILL_SETTLE_MS, signal);
      checkAbort();
      raw.push({
        round,
        oldIndex,
        oldMaster: old.plan.name,
        newMaster: newNode.plan.name,
        faultAt,
        newMasterAt: took.atMs,
        rejoinedAt,
        stepDownAt: stepDown?.atMs ?? null,
        endAt: Date.now(),
      });
    }

    // The backlog survived every takeover: its depth on the last master (it is never consumed).
    let backlogAfterRounds: number | null = null;
    if (backlogQueue) {
      const [m] = await masterNow();
      const master = m === undefined ? undefined : nodes[m];
      const reply = master
        ? await new AdminClient({
            admin: `http://127.0.0.1:${master.plan.adminPort}`,
            timeoutMs: 5_000,
            env: {},
          })
            .get<QueueListReply>('/api/queues')
            .catch(() => null)
        : null;
      backlogAfterRounds = reply?.queues.find((q) => q.name === backlogQueue)?.depth ?? null;
      log(
        `backlog: ${settings.backlog} stored before the rounds, ${backlogAfterRounds ?? 'unknown'} on the last master`,
      );
    }

    // ----- drain -----------------------------------------------------------------------------------
    log('stopping the producer, draining the consumer...');
    stopLoad.abort();
    await sending;
    const drainStart = Date.now();
    let lastCount = allDeliveryTimes.length;
    let lastChange = Date.now();
    await waitFor(
      () => {
        if (allDeliveryTimes.length !== lastCount) {
          lastCount = allDeliveryTimes.length;
          lastChange = Date.now();
        }
        return missing.size === 0 || Date.now() - lastChange > DRILL_DRAIN_IDLE_MS;
      },
      DRILL_TAKEOVER_TIMEOUT_MS,
      () => 'the drain did not end',
    );
    // Redeliveries of messages acknowledged just now would come within a moment: give them one.
    await sleep(500, signal);
    const loadEnd = Date.now();
    clearInterval(statusTimer);
    log(`drained in ${loadEnd - drainStart} ms; ${missing.size} receipted messages never delivered`);
    await Promise.all(connections.map((c) => c.close().catch(() => {})));

    // ----- results ---------------------------------------------------------------------------------
    const sortedReceipts = [...receiptTimes].sort((a, b) => a - b);
    const sortedDeliveries = [...allDeliveryTimes].sort((a, b) => a - b);
    const rounds: DrillRound[] = raw.map((r, i) => {
      const from = i === 0 ? loadStart - 1 : (raw[i - 1] as RawRound).endAt;
      const to = i === raw.length - 1 ? Number.POSITIVE_INFINITY : r.endAt;
      let lost = 0;
      for (const seq of missing) {
        const at = receiptAt.get(seq) ?? 0;
        if (at > from && at <= to) lost++;
      }
      return {
        round: r.round,
        mode: settings.mode,
        oldMaster: r.oldMaster,
        newMaster: r.newMaster,
        takeoverMs: r.newMasterAt - r.faultAt,
        pauseMs: maxGapAround(sortedReceipts, r.faultAt, r.endAt),
        deliveryPauseMs: maxGapAround(sortedDeliveries, r.faultAt, r.endAt),
        rejoinMs: r.rejoinedAt === null ? null : r.rejoinedAt - r.faultAt,
        stepDownMs: r.stepDownAt === null ? null : r.stepDownAt - r.faultAt,
        receipted: countBetween(sortedReceipts, from, to),
        delivered: countBetween(deliveryTimes, from, to),
        lost,
        duplicated: countBetween(duplicateTimes, from, to),
        faultAtMs: r.faultAt - loadStart,
        newMasterAtMs: r.newMasterAt - loadStart,
      };
    });
    let deliveredWithoutReceipt = 0;
    const counts = tracker.counts();
    const deliveredUnique = counts.received - counts.duplicates - counts.unnumbered;
    deliveredWithoutReceipt = deliveredUnique - (receiptAt.size - missing.size);
    const totals: DrillTotals = {
      sent,
      receipted: receiptTimes.length,
      failed,
      delivered: deliveredUnique,
      lost: missing.size,
      duplicated: counts.duplicates,
      deliveredWithoutReceipt,
    };
    const sendError = lastSendError as Error | null;
    if (failed > 0 && sendError) log(`${failed} sends failed; last error: ${sendError.message}`);

    const timeline = {
      bucketMs: DRILL_BUCKET_MS,
      receipts: bucketCounts(receiptTimes, loadStart, loadEnd, DRILL_BUCKET_MS),
      deliveries: bucketCounts(allDeliveryTimes, loadStart, loadEnd, DRILL_BUCKET_MS),
    };
    const chartFile = path.resolve(settings.chartFile);
    writeFileSync(
      chartFile,
      renderDrillChart({
        title: `keel drill: ${settings.kills} × ${settings.mode}, ${settings.nodes} nodes, locker ${settings.locker}${settings.store === 'shared' ? ', shared store' : ''}, ${settings.ratePerS} msg/s${settings.backlog ? `, backlog ${settings.backlog}` : ''}`,
        subtitle: `${new Date(loadStart).toISOString()} · receipted ${totals.receipted}, delivered ${totals.delivered}, lost ${totals.lost}, duplicated ${totals.duplicated} · takeover = fault → new master's "role changed"`,
        bucketMs: DRILL_BUCKET_MS,
        receipts: timeline.receipts,
        deliveries: timeline.deliveries,
        markers: rounds.map((r) => ({
          atMs: r.faultAtMs,
          untilMs: r.newMasterAtMs,
          label: `${r.round}: ${r.mode} ${r.oldMaster} → ${r.newMaster} ${(r.takeoverMs / 1000).toFixed(2)} s`,
        })),
      }),
    );
    const result: DrillResult = {
      settings,
      startedAt: new Date(t00).toISOString(),
      loadMs: loadEnd - loadStart,
      rounds,
      totals,
      clientEvents: clientEvents.map((e) => ({ ...e, atMs: e.atMs - loadStart })),
      chartFile,
      timeline,
      ...(backlogQueue
        ? { backlog: { queue: backlogQueue, stored: settings.backlog, afterRounds: backlogAfterRounds } }
        : {}),
    };
    if (settings.jsonFile) {
      result.jsonFile = path.resolve(settings.jsonFile);
      writeFileSync(result.jsonFile, `${JSON.stringify(result, null, 2)}\n`);
    }
    output.out(`${drillTable(rounds, totals)}\n\n`);
    output.out(
      `sent ${totals.sent}, receipted ${totals.receipted}, failed ${totals.failed}, delivered ${totals.delivered}, lost ${totals.lost}, duplicated ${totals.duplicated}${totals.deliveredWithoutReceipt ? `, delivered without receipt ${totals.deliveredWithoutReceipt}` : ''}\n`,
    );
    if (result.backlog) {
      output.out(
        `backlog: ${result.backlog.stored} stored, ${result.backlog.afterRounds ?? 'unknown'} after the rounds\n`,
      );
    }
    output.out(`chart: ${chartFile}\n`);
    if (result.jsonFile) output.out(`json: ${result.jsonFile}\n`);
    return result;
  } finally {
    clearInterval(statusTimer);
    log('cleaning up...');
    for (const { what, fn } of cleanups.reverse()) {
      try {
        await fn();
      } catch (err) {
        output.err(`keel drill: cleaning up ${what}: ${(err as Error).message}\n`);
      }
    }
    process.off('exit', killEverythingNow);
  }
}

/**
 * How the drill's nodes are wired to their locker. row/lease: KEEL_LOCKER. file: the lock directory
 * (and the shared store), a short lockAcquireSleepInterval so a waiting node retries often, and in
 * stop mode a lease, without which a frozen master keeps its kernel lock for ever (as in ActiveMQ).
 */
export function drillLockerWiring(
  settings: Pick<DrillSettings, 'locker' | 'store' | 'mode'>,
  lockDir: string | null,
  storeDir: string | null,
): Pick<DrillNodePlan, 'args' | 'env'> {
  if (settings.locker !== 'file' || !lockDir) return { env: { KEEL_LOCKER: settings.locker } };
  const args = ['--locker', 'file', '--lock-dir', lockDir];
  if (storeDir) args.push('--store-dir', storeDir);
  const env: Record<string, string> = {
    KEEL_LOCK_ACQUIRE_SLEEP_INTERVAL: String(DRILL_FILE_LOCK_ACQUIRE_SLEEP_INTERVAL_MS),
    KEEL_LOCK_KEEP_ALIVE_PERIOD: String(DRILL_FILE_LOCK_KEEP_ALIVE_PERIOD_MS),
  };
  if (settings.mode === 'stop') env.KEEL_LEASE_DURATION = String(DRILL_FILE_LEASE_DURATION_MS);
  return { args, env };
}

/** pg-kill: SIGKILL of the postmaster running on the shared store (the master's, by postmaster.pid). */
function killSharedPostgres(storeDir: string, log: (line: string) => void): void {
  const dataDir = path.join(storeDir, SHARED_STORE_DATA_DIR);
  const pid = recordedPostmasterPid(dataDir);
  if (pid === null) throw new Error(`no postmaster.pid in ${dataDir}: the master's Postgres is not running`);
  log(`SIGKILL of postmaster pid ${pid} (${dataDir})`);
  process.kill(pid, 'SIGKILL');
}

/** --backlog: persistent messages stored (never consumed) in a queue of their own, before the load. */
async function storeBacklog(
  conn: Connection,
  count: number,
  log: (line: string) => void,
  signal?: AbortSignal,
): Promise<string> {
  const name = `keel-drill-backlog-${randomBytes(3).toString('hex')}`;
  const queue = `queue://${name}`;
  log(`storing a backlog of ${count} persistent messages in ${queue}...`);
  const started = Date.now();
  const session = await conn.createSession();
  const producer = session.createProducer(queue, { persistent: true });
  let failed = 0;
  let lastError: Error | null = null;
  await sendLoop({
    producer,
    sizeBytes: DRILL_BODY_BYTES,
    window: DRILL_BACKLOG_WINDOW,
    count,
    ...(signal ? { signal } : {}),
    onFailure: (_seq, err) => {
      failed++;
      lastError = err;
    },
  });
  await session.close().catch(() => {});
  if (failed > 0)
    throw new Error(`backlog: ${failed} of ${count} sends failed: ${(lastError as Error | null)?.message}`);
  const ms = Date.now() - started;
  log(`backlog stored: ${count} messages in ${ms} ms (${Math.round((count * 1000) / Math.max(1, ms))}/s)`);
  return name;
}

/** The `keel drill` action: Ctrl-C stops it and cleans up; exit status 1 if a message was lost. */
export async function drillCommand(options: DrillOptions, output: Output): Promise<DrillResult> {
  const result = await withInterrupt((signal) => runDrill(options, output, { signal }));
  if (result.totals.lost > 0) process.exitCode = 1;
  if (result.backlog && result.backlog.afterRounds !== result.backlog.stored) process.exitCode = 1;
  return result;
}
