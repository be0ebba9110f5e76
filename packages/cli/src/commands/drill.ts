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
import { chmodSync, copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import type { Connection } from '@keel/client';
import { InvalidArgumentError } from '@keel/protocol';
import { recordedPostmasterPid, SHARED_STORE_DATA_DIR } from '@keel/server';
import { ensureLockDatabase, migrate } from '@keel/store-pg';
import { Client } from 'pg';
import { startLocalPostgres } from '../local-postgres';
import type { Output } from '../output';
import type { QueueListReply } from './admin-client';
import { renderDrillChart } from './drill-chart';
import { DrillCluster } from './drill-cluster';
import {
  DRILL_BODY_BYTES,
  type DrillClientEvent,
  DrillLoad,
  type DrillTotals,
  type DrillWindowCounts,
  totalsLine,
} from './drill-load';
import type { DrillNode, DrillNodePlan } from './drill-node';
import { DrillProxy } from './drill-proxy';
import { DrillInterruptedError, DrillRun } from './drill-run';
import { integerOption, rateOption, withInterrupt } from './load-options';
import { sendLoop } from './produce';

export type { DrillTotals } from './drill-load';
export { DrillInterruptedError } from './drill-run';

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
/** Steady load before the first fault and after each recovery. */
export const DRILL_SETTLE_MS = 3_000;
/** How long the cluster may take to elect a new master. */
export const DRILL_TAKEOVER_TIMEOUT_MS = 90_000;
/** db-cut: how long the old master stays cut off at most, waiting for it to step down. */
export const DRILL_CUT_HOLD_MAX_MS = 10_000;
/** --locker file: a waiting node's retry interval, the master's lock-file check, stop mode's lease. */
export const DRILL_FILE_LOCK_ACQUIRE_SLEEP_INTERVAL_MS = 200;
export const DRILL_FILE_LOCK_KEEP_ALIVE_PERIOD_MS = 500;
export const DRILL_FILE_LEASE_DURATION_MS = 3_000;
/** --backlog is sent with this many sends in flight. */
export const DRILL_BACKLOG_WINDOW = 500;
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

export interface DrillResult {
  settings: DrillSettings;
  startedAt: string;
  loadMs: number;
  rounds: DrillRound[];
  totals: DrillTotals;
  clientEvents: DrillClientEvent[];
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

export async function adminQuery(adminUrl: string, sql: string): Promise<void> {
  const client = new Client({ connectionString: adminUrl });
  client.on('error', () => {});
  await client.connect();
  try {
    await client.query(sql);
  } finally {
    await client.end();
  }
}

export const quote = (name: string) => `"${name.replace(/"/g, '""')}"`;

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
  runOptions: { signal?: AbortSignal } = {},
): Promise<DrillResult> {
  const settings = drillSettings(options);
  const run = new DrillRun(output, runOptions.signal);
  const { log, tmp } = run;
  let postmasterPidFile: string | null = null;
  run.onKillNow(() => {
    if (!postmasterPidFile) return;
    try {
      const pid = Number(readFileSync(postmasterPidFile, 'utf8').split('\n')[0]);
      if (pid > 0) process.kill(pid, 'SIGQUIT'); // Postgres's immediate shutdown
    } catch {
      // not running
    }
  });

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
      run.cleanup(`databases ${dropped}, ${dropped}_lock`, async () => {
        await adminQuery(adminUrl, `DROP DATABASE IF EXISTS ${quote(dropped)} WITH (FORCE)`);
        await adminQuery(adminUrl, `DROP DATABASE IF EXISTS ${quote(`${dropped}_lock`)} WITH (FORCE)`);
      });
    } else {
      log(`starting a private Postgres in ${tmp}...`);
      const pg = await startLocalPostgres({ dir: tmp, logFile: path.join(tmp, 'postgres.log') });
      postmasterPidFile = path.join(pg.dataDir, 'postmaster.pid');
      run.cleanup('Postgres', async () => {
        await pg.stop('fast').catch(() => pg.stop('immediate'));
        postmasterPidFile = null;
      });
      adminUrl = pg.adminUrl;
      log(`Postgres ready on 127.0.0.1:${pg.port}`);
    }
    run.checkAbort();
    if (!storeDir) {
      await adminQuery(adminUrl, `CREATE DATABASE ${quote(dbName)}`);
      db = withDatabase(adminUrl, dbName);
      await migrate({ connectionString: db });
      lockDb = await ensureLockDatabase(db);
      log(`database ${dbName} migrated, lock database ${new URL(lockDb).pathname.slice(1)}`);
    }

    // ----- nodes -----------------------------------------------------------------------------------
    const proxies: (DrillProxy | null)[] = [];
    for (let i = 0; i < settings.nodes; i++) {
      if (settings.mode === 'db-cut') {
        const pgTarget = new URL(adminUrl);
        const proxy = await DrillProxy.start(pgTarget.hostname, Number(pgTarget.port || 5432));
        proxies.push(proxy);
        run.cleanup(`proxy ${i + 1}`, () => proxy.close());
      } else {
        proxies.push(null);
      }
    }
    const cluster = await DrillCluster.plan(run, CLUSTER, settings.nodes, (i) => {
      const proxy = proxies[i];
      return {
        db: proxy ? withPort(db, proxy.port) : db,
        lockDb: proxy ? withPort(lockDb, proxy.port) : lockDb,
        ...drillLockerWiring(settings, lockDir, storeDir),
      };
    });
    const nodes = cluster.nodes;
    await cluster.startAll();

    // ----- load ------------------------------------------------------------------------------------
    const load = new DrillLoad(run, cluster.failoverUrl);
    const consumerConn = await load.open('consumer');
    const producerConn = await load.open('producer');
    log(`clients connected: ${cluster.failoverUrl}`);
    const backlogQueue =
      settings.backlog > 0 ? await storeBacklog(producerConn, settings.backlog, log, run.signal) : null;
    await load.start(consumerConn, producerConn, settings.ratePerS, DRILL_SETTLE_MS);

    // ----- rounds ----------------------------------------------------------------------------------
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
      const oldIndex = await cluster.oneMaster(DRILL_TAKEOVER_TIMEOUT_MS, `round ${round}`);
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

      const took = await run.waitFor(
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
        const again = cluster.launch(oldIndex);
        const change = await cluster.waitForRole(again, ['slave'], faultAt);
        return change.atMs;
      };
      if (settings.mode === 'stop' && settings.locker === 'file') {
        // The new master fenced the frozen one before it took over: SIGKILL of its pid (same host).
        await Promise.race([old.exitPromise, run.sleep(1_000)]);
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
          const down = await run
            .waitFor(
              () => old.exited || old.roleChanges.some((c) => c.role !== 'master' && c.atMs >= faultAt),
              DRILL_CUT_HOLD_MAX_MS,
              () => '',
            )
            .catch((err: unknown) => {
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
          rejoinedAt = (await cluster.waitForRole(old, ['slave'], faultAt)).atMs;
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
      const resumed = await run
        .waitFor(
          () => load.resumedAfter(took.atMs),
          DRILL_TAKEOVER_TIMEOUT_MS,
          () =>
            `round ${round}: the load did not resume within ${DRILL_TAKEOVER_TIMEOUT_MS} ms of the new master`,
        )
        .catch((err: unknown) => {
          if (err instanceof DrillInterruptedError) throw err;
          log((err as Error).message);
          return null;
        });
      if (resumed) log(`round ${round}: the load resumed`);
      await run.sleep(DRILL_SETTLE_MS);
      run.checkAbort();
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
      const [m] = await cluster.masters();
      const reply =
        m === undefined
          ? null
          : await cluster
              .admin(m)
              .get<QueueListReply>('/api/queues')
              .catch(() => null);
      backlogAfterRounds = reply?.queues.find((q) => q.name === backlogQueue)?.depth ?? null;
      log(
        `backlog: ${settings.backlog} stored before the rounds, ${backlogAfterRounds ?? 'unknown'} on the last master`,
      );
    }

    // ----- drain -----------------------------------------------------------------------------------
    await load.stopAndDrain();

    // ----- results ---------------------------------------------------------------------------------
    const loadStart = load.loadStart;
    const counts = load.roundCounts(raw);
    const rounds: DrillRound[] = raw.map((r, i) => ({
      round: r.round,
      mode: settings.mode,
      oldMaster: r.oldMaster,
      newMaster: r.newMaster,
      takeoverMs: r.newMasterAt - r.faultAt,
      ...(counts[i] as DrillWindowCounts),
      rejoinMs: r.rejoinedAt === null ? null : r.rejoinedAt - r.faultAt,
      stepDownMs: r.stepDownAt === null ? null : r.stepDownAt - r.faultAt,
      faultAtMs: r.faultAt - loadStart,
      newMasterAtMs: r.newMasterAt - loadStart,
    }));
    const totals = load.totals();
    const timeline = load.timeline();
    const chartFile = path.resolve(settings.chartFile);
    writeFileSync(
      chartFile,
      renderDrillChart({
        title: `keel drill: ${settings.kills} × ${settings.mode}, ${settings.nodes} nodes, locker ${settings.locker}${settings.store === 'shared' ? ', shared store' : ''}, ${settings.ratePerS} msg/s${settings.backlog ? `, backlog ${settings.backlog}` : ''}`,
        subtitle: `${new Date(loadStart).toISOString()} · receipted ${totals.receipted}, delivered ${totals.delivered}, lost ${totals.lost}, duplicated ${totals.duplicated} · takeover = fault → new master's "role changed"`,
        bucketMs: timeline.bucketMs,
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
      startedAt: new Date(run.startedAt).toISOString(),
      loadMs: load.loadEnd - loadStart,
      rounds,
      totals,
      clientEvents: load.relativeClientEvents(),
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
    output.out(`${totalsLine(totals)}\n`);
    if (result.backlog) {
      output.out(
        `backlog: ${result.backlog.stored} stored, ${result.backlog.afterRounds ?? 'unknown'} after the rounds\n`,
      );
    }
    output.out(`chart: ${chartFile}\n`);
    if (result.jsonFile) output.out(`json: ${result.jsonFile}\n`);
    return result;
  } finally {
    await run.finish();
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
