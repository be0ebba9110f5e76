/**
 * `keel drill --mode pg-failover` (issue #20.3): the store's Postgres primary dies under load.
 *
 * 1. a primary and a streaming standby on loopback (drill-pg-topology.ts: initdb --data-checksums,
 *    pg_basebackup -R; synchronous or asynchronous standby, --standby), or existing servers given
 *    as a multi-host --pg-url with shell hooks for the faults (a Patroni topology plugs in there);
 * 2. --nodes `keel broker` nodes on the multi-host URL (`h1,h2/…?target_session_attrs=read-write`)
 *    and the drills' steady persistent load through failover clients (drill-load.ts);
 * 3. --rounds rounds: SIGKILL of the primary's postmaster, `pg_ctl promote` of the standby, the
 *    nodes follow the host list and a master takes the replicated lock there; the old primary is
 *    re-joined as a standby (pg_rewind, else a fresh clone) — never started as a second primary,
 *    which the drill checks — so the next round promotes back the other way;
 * 4. per round: promotion time (kill → promoted), broker pause (kill → a node's `role changed` to
 *    master), client pause (the longest gap between receipts), re-join method and time, receipted,
 *    received, lost (receipted, never received) and duplicated; a table, an SVG chart, JSON.
 *
 * With a synchronous standby a lost or duplicated message fails the drill (exit status 1); with an
 * asynchronous one the loss is what is measured, reported, not a failure.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { InvalidArgumentError } from '@keel/protocol';
import {
  ensureLockDatabase,
  formatHost,
  formatPgUrl,
  migrate,
  parsePgUrl,
  singleHostUrl,
  withDatabase,
} from '@keel/store-pg';
import type { Output } from '../output';
import {
  adminQuery,
  DEFAULT_DRILL_RATE_PER_S,
  DRILL_SETTLE_MS,
  DRILL_TAKEOVER_TIMEOUT_MS,
  type DrillOptions,
  formatTable,
  MAX_DRILL_NODES,
  quote,
} from './drill';
import { renderDrillChart } from './drill-chart';
import { DrillCluster } from './drill-cluster';
import {
  type DrillClientEvent,
  type DrillLedger,
  DrillLoad,
  type DrillTotals,
  totalsLine,
} from './drill-load';
import { HookTopology, LocalPairTopology, type PgRejoin, type PgTopology } from './drill-pg-topology';
import { DrillInterruptedError, DrillRun } from './drill-run';
import { integerOption, rateOption, withInterrupt } from './load-options';

export const PG_STANDBY_MODES = ['sync', 'async'] as const;
export type PgStandbyMode = (typeof PG_STANDBY_MODES)[number];
export const DEFAULT_PG_FAILOVER_ROUNDS = 3;
export const DEFAULT_PG_FAILOVER_NODES = 2;
export const DEFAULT_PG_FAILOVER_CHART = 'keel-drill-pg-failover.svg';
const CLUSTER = 'drill-pg';

export interface PgFailoverDrillOptions extends DrillOptions {
  rounds?: string;
  standby?: string;
  killPrimaryCmd?: string;
  promoteCmd?: string;
  rejoinCmd?: string;
}

export interface PgFailoverDrillSettings {
  rounds: number;
  standby: PgStandbyMode;
  nodes: number;
  ratePerS: number;
  chartFile: string;
  jsonFile?: string;
  /** Existing servers (multi-host superuser URL) with hooks, instead of a local pair. */
  pgUrl?: string;
  hooks?: { killPrimary: string; promote?: string; rejoin?: string };
}

export interface PgFailoverRound {
  round: number;
  oldPrimary: string;
  newPrimary: string;
  /** SIGKILL of the primary → the standby promoted (pg_ctl promote returned, or seen read-write). */
  promoteMs: number;
  /** SIGKILL → a broker node's `role changed` to master (on the new primary); null: none changed. */
  brokerPauseMs: number | null;
  newMaster: string | null;
  /** Longest gap between receipts around the fault (the producing client's pause). */
  clientPauseMs: number;
  deliveryPauseMs: number;
  rejoin: PgRejoin;
  receipted: number;
  received: number;
  lost: number;
  duplicated: number;
  faultAtMs: number;
  recoveredAtMs: number;
}

export interface PgFailoverDrillResult {
  mode: 'pg-failover';
  settings: PgFailoverDrillSettings;
  topology: string;
  startedAt: string;
  loadMs: number;
  rounds: PgFailoverRound[];
  totals: DrillTotals;
  clientEvents: DrillClientEvent[];
  chartFile: string;
  jsonFile?: string;
  timeline: { bucketMs: number; receipts: number[]; deliveries: number[] };
}

export function pgFailoverDrillSettings(options: PgFailoverDrillOptions): PgFailoverDrillSettings {
  if (options.kills !== undefined && options.rounds !== undefined)
    throw new InvalidArgumentError('--rounds and --kills are the same here: give one');
  const rounds =
    integerOption(options.rounds ?? options.kills, options.rounds ? '--rounds' : '--kills', 1, 1000) ??
    DEFAULT_PG_FAILOVER_ROUNDS;
  const standby = (options.standby ?? 'sync') as PgStandbyMode;
  if (!PG_STANDBY_MODES.includes(standby))
    throw new InvalidArgumentError(
      `--standby must be one of ${PG_STANDBY_MODES.join(', ')} (got ${JSON.stringify(options.standby)})`,
    );
  for (const [flag, given] of [
    ['--locker', options.locker],
    ['--store', options.store],
    ['--backlog', options.backlog],
  ] as const) {
    if (given !== undefined && !(flag === '--locker' && given === 'row'))
      throw new InvalidArgumentError(`--mode pg-failover takes no ${flag} (row locker, one store)`);
  }
  const hooks = options.killPrimaryCmd
    ? {
        killPrimary: options.killPrimaryCmd,
        ...(options.promoteCmd ? { promote: options.promoteCmd } : {}),
        ...(options.rejoinCmd ? { rejoin: options.rejoinCmd } : {}),
      }
    : undefined;
  if (options.pgUrl !== undefined) {
    let hosts = 0;
    try {
      hosts = parsePgUrl(options.pgUrl).hosts.length;
    } catch (err) {
      throw new InvalidArgumentError(`--pg-url: ${(err as Error).message}`);
    }
    if (hosts < 2)
      throw new InvalidArgumentError(
        '--mode pg-failover: --pg-url must list the primary and its standbys (postgres://u@h1:5432,h2:5432/postgres)',
      );
    if (!hooks) throw new InvalidArgumentError('--pg-url with --mode pg-failover needs --kill-primary-cmd');
    if (options.standby !== undefined)
      throw new InvalidArgumentError('--standby configures the local pair: drop it with --pg-url');
  } else if (options.killPrimaryCmd || options.promoteCmd || options.rejoinCmd) {
    throw new InvalidArgumentError('--kill-primary-cmd, --promote-cmd and --rejoin-cmd need --pg-url');
  }
  const chartFile = options.chart ?? DEFAULT_PG_FAILOVER_CHART;
  if (chartFile.trim() === '') throw new InvalidArgumentError('--chart needs a file name');
  if (options.json !== undefined && options.json.trim() === '')
    throw new InvalidArgumentError('--json needs a file name');
  return {
    rounds,
    standby,
    nodes: integerOption(options.nodes, '--nodes', 2, MAX_DRILL_NODES) ?? DEFAULT_PG_FAILOVER_NODES,
    ratePerS: rateOption(options.rate, '--rate') ?? DEFAULT_DRILL_RATE_PER_S,
    chartFile,
    ...(options.json !== undefined ? { jsonFile: options.json } : {}),
    ...(options.pgUrl !== undefined ? { pgUrl: options.pgUrl } : {}),
    ...(options.pgUrl !== undefined && hooks ? { hooks } : {}),
  };
}

const ms = (v: number | null) => (v === null ? '-' : `${v} ms`);

export function pgFailoverTable(rounds: readonly PgFailoverRound[], totals: DrillTotals): string {
  const header = [
    'ROUND',
    'PRIMARY',
    'PROMOTE',
    'BROKER PAUSE',
    'CLIENT PAUSE',
    'REJOIN',
    'RECEIPTED',
    'RECEIVED',
    'LOST',
    'DUPLICATED',
  ];
  const rows = rounds.map((r) => [
    String(r.round),
    `${r.oldPrimary} → ${r.newPrimary}`,
    ms(r.promoteMs),
    ms(r.brokerPauseMs),
    ms(r.clientPauseMs),
    `${r.rejoin.method} ${r.rejoin.ms} ms`,
    String(r.receipted),
    String(r.received),
    String(r.lost),
    String(r.duplicated),
  ]);
  const max = (f: (r: PgFailoverRound) => number | null) =>
    rounds.length ? Math.max(0, ...rounds.map((r) => f(r) ?? 0)) : 0;
  rows.push([
    'total',
    'max:',
    ms(max((r) => r.promoteMs)),
    ms(max((r) => r.brokerPauseMs)),
    ms(max((r) => r.clientPauseMs)),
    '',
    String(totals.receipted),
    String(totals.delivered),
    String(totals.lost),
    String(totals.duplicated),
  ]);
  return formatTable([header, ...rows]);
}

/** The stage of a Postgres failover drill: the servers, the nodes on them, the running load. */
export interface PgDrillStage<L extends DrillLedger = DrillLoad> {
  topology: PgTopology;
  cluster: DrillCluster;
  load: L;
  /** The nodes' multi-host URL. */
  db: string;
  /** A single-host superuser URL of the drill's database on the primary now. */
  primaryDb(): Promise<string>;
}

type PgStageSettings = Pick<PgFailoverDrillSettings, 'standby' | 'nodes' | 'ratePerS' | 'pgUrl' | 'hooks'>;
type StartDrillLoad<L extends DrillLedger> = (
  run: DrillRun,
  cluster: DrillCluster,
  ratePerS: number,
) => Promise<L>;

/** The drills' load: one queue, a producer and a consumer (drill-load.ts). */
async function startQueueLoad(run: DrillRun, cluster: DrillCluster, ratePerS: number): Promise<DrillLoad> {
  const load = new DrillLoad(run, cluster.failoverUrl);
  const consumerConn = await load.open('consumer');
  const producerConn = await load.open('producer');
  run.log(`clients connected: ${cluster.failoverUrl}`);
  await load.start(consumerConn, producerConn, ratePerS, DRILL_SETTLE_MS);
  return load;
}

/**
 * Postgres (a local pair or the given servers), the nodes on the multi-host URL, the load running
 * (by default the drills' one queue; `startLoad` gives another, e.g. the soak's mixed load).
 */
export function startPgDrillStage(run: DrillRun, settings: PgStageSettings): Promise<PgDrillStage>;
export function startPgDrillStage<L extends DrillLedger>(
  run: DrillRun,
  settings: PgStageSettings,
  startLoad: StartDrillLoad<L>,
): Promise<PgDrillStage<L>>;
export async function startPgDrillStage(
  run: DrillRun,
  settings: PgStageSettings,
  startLoad: StartDrillLoad<DrillLedger> = startQueueLoad,
): Promise<PgDrillStage<DrillLedger>> {
  const { log } = run;
  // ----- Postgres --------------------------------------------------------------------------------
  let topology: PgTopology;
  if (settings.pgUrl && settings.hooks) {
    topology = new HookTopology(settings.pgUrl, settings.hooks);
  } else {
    log(`starting a Postgres primary and an ${settings.standby} streaming standby in ${run.tmp}...`);
    const pair = await LocalPairTopology.start(settings.standby === 'sync', path.join(run.tmp, 'pg'));
    run.onKillNow(() => {
      for (const dir of pair.dataDirs) {
        try {
          const pid = Number(readFileSync(path.join(dir, 'postmaster.pid'), 'utf8').split('\n')[0]);
          if (pid > 0) process.kill(pid, 'SIGQUIT'); // immediate shutdown
        } catch {
          // not running
        }
      }
    });
    run.cleanup('Postgres pair', () => pair.stop());
    topology = pair;
  }
  log(`Postgres: ${topology.description}`);
  const primary = await topology.primary();
  if (!primary) throw new Error(`no primary among ${topology.hosts.join(', ')}`);
  const dbName = `keel_drill_${process.pid}_${randomBytes(3).toString('hex')}`;
  const servers = parsePgUrl(topology.hostsUrl);
  /** A single-host superuser URL of the primary now. */
  const primaryAdmin = async () => {
    const now = (await topology.primary()) ?? primary;
    return singleHostUrl(servers, servers.hosts.find((h) => formatHost(h) === now) ?? servers.hosts[0]!);
  };
  await adminQuery(await primaryAdmin(), `CREATE DATABASE ${quote(dbName)}`);
  if (settings.pgUrl) {
    run.cleanup(`databases ${dbName}, ${dbName}_lock`, async () => {
      const url = await primaryAdmin();
      await adminQuery(url, `DROP DATABASE IF EXISTS ${quote(dbName)} WITH (FORCE)`);
      await adminQuery(url, `DROP DATABASE IF EXISTS ${quote(`${dbName}_lock`)} WITH (FORCE)`);
    });
  }
  // Every node on every host: libpq's multi-host form, the first read-write host wins (issue #20.1).
  const db = formatPgUrl({
    ...servers,
    database: dbName,
    targetSessionAttrs: 'read-write',
    connectTimeoutMs: 2_000,
  });
  await migrate({ connectionString: db });
  const lockDb = await ensureLockDatabase(db);
  log(`database ${dbName} migrated on ${primary}; the nodes use ${db.replace(/:[^:@/]*@/, ':***@')}`);

  // ----- nodes and load --------------------------------------------------------------------------
  const cluster = await DrillCluster.plan(run, CLUSTER, settings.nodes, () => ({
    db,
    lockDb,
    env: { KEEL_LOCKER: 'row' },
  }));
  await cluster.startAll();
  const load = await startLoad(run, cluster, settings.ratePerS);

  return {
    topology,
    cluster,
    load,
    db,
    primaryDb: async () => withDatabase(await primaryAdmin(), dbName),
  };
}

/** One promotion round as it happened (ms since the epoch). */
export interface PgPromotion {
  round: number;
  oldPrimary: string;
  newPrimary: string;
  faultAt: number;
  promotedAt: number;
  newMasterAt: number | null;
  newMaster: string | null;
  recoveredAt: number;
  rejoin: PgRejoin;
  endAt: number;
}

/**
 * SIGKILL of the primary's postmaster, promotion, a master on the new primary, the load resumed,
 * the old primary re-joined as a standby (and checked: one primary), then settleMs of load.
 */
export async function pgPromotionRound(
  run: DrillRun,
  stage: PgDrillStage<DrillLedger>,
  round: number,
  settleMs = DRILL_SETTLE_MS,
): Promise<PgPromotion> {
  const { log } = run;
  const { topology, cluster, load } = stage;
  const nodes = cluster.nodes;
  await cluster.oneMaster(DRILL_TAKEOVER_TIMEOUT_MS, `round ${round}`);
  const faultAt = Date.now();
  const oldPrimary = await topology.killPrimary();
  log(`round ${round}: SIGKILL of the primary's postmaster (${oldPrimary})`);
  const { host: newPrimary, atMs: promotedAt } = await topology.promote(oldPrimary, run.signal);
  log(`round ${round}: ${newPrimary} promoted ${promotedAt - faultAt} ms after the kill`);

  // The nodes follow the host list: a master takes the replicated lock on the new primary.
  const took = await run
    .waitFor(
      () => {
        for (const n of nodes) {
          const change = n.roleSince('master', faultAt);
          if (change) return { node: n.plan.name, atMs: change.atMs };
        }
        return undefined;
      },
      DRILL_TAKEOVER_TIMEOUT_MS,
      () => '',
    )
    .catch((err: unknown) => {
      if (err instanceof DrillInterruptedError) throw err;
      return null;
    });
  if (took) log(`round ${round}: ${took.node} is master ${took.atMs - faultAt} ms after the kill`);
  else log(`round ${round}: no node changed to master within ${DRILL_TAKEOVER_TIMEOUT_MS} ms`);
  const recoveredAt =
    (await run
      .waitFor(
        () => load.resumedAfter(promotedAt),
        DRILL_TAKEOVER_TIMEOUT_MS,
        () => `round ${round}: the load did not resume within ${DRILL_TAKEOVER_TIMEOUT_MS} ms`,
      )
      .catch((err: unknown) => {
        if (err instanceof DrillInterruptedError) throw err;
        log((err as Error).message);
        return null;
      })) ?? Date.now();
  log(`round ${round}: the load resumed ${recoveredAt - faultAt} ms after the kill`);

  // A node that crashed on the way (it must not) comes back, and is reported.
  for (const [i, n] of nodes.entries()) {
    if (n.exited) {
      log(`round ${round}: ${n.plan.name} exited (${n.exitDescription}); restarting it`);
      await cluster.waitForRole(cluster.launch(i), ['slave', 'master'], faultAt);
    }
  }

  // The old primary must never come back as a second primary: re-join it as a standby.
  log(`round ${round}: re-joining ${oldPrimary} as a standby of ${newPrimary}...`);
  const rejoin = await topology.rejoin(oldPrimary, run.signal);
  const primaries = await topology.primaries();
  if (primaries.length !== 1 || primaries[0] !== newPrimary)
    throw new Error(
      `round ${round}: expected ${newPrimary} as the one primary after the re-join, found ${primaries.join(', ') || 'none'}`,
    );
  log(`round ${round}: ${oldPrimary} streams from ${newPrimary} (${rejoin.method}, ${rejoin.ms} ms)`);
  await run.sleep(settleMs);
  run.checkAbort();
  return {
    round,
    oldPrimary,
    newPrimary,
    faultAt,
    promotedAt,
    newMasterAt: took?.atMs ?? null,
    newMaster: took?.node ?? null,
    recoveredAt,
    rejoin,
    endAt: Date.now(),
  };
}

export async function runPgFailoverDrill(
  options: PgFailoverDrillOptions,
  output: Output,
  runOptions: { signal?: AbortSignal } = {},
): Promise<PgFailoverDrillResult> {
  const settings = pgFailoverDrillSettings(options);
  const run = new DrillRun(output, runOptions.signal);
  try {
    const stage = await startPgDrillStage(run, settings);
    const { topology, load } = stage;
    const raw: PgPromotion[] = [];
    for (let round = 1; round <= settings.rounds; round++)
      raw.push(await pgPromotionRound(run, stage, round));

    // ----- drain and results -----------------------------------------------------------------------
    await load.stopAndDrain();
    const loadStart = load.loadStart;
    const counts = load.roundCounts(raw);
    const rounds: PgFailoverRound[] = raw.map((r, i) => {
      const c = counts[i] as (typeof counts)[number];
      return {
        round: r.round,
        oldPrimary: r.oldPrimary,
        newPrimary: r.newPrimary,
        promoteMs: r.promotedAt - r.faultAt,
        brokerPauseMs: r.newMasterAt === null ? null : r.newMasterAt - r.faultAt,
        newMaster: r.newMaster,
        clientPauseMs: c.pauseMs,
        deliveryPauseMs: c.deliveryPauseMs,
        rejoin: r.rejoin,
        receipted: c.receipted,
        received: c.delivered,
        lost: c.lost,
        duplicated: c.duplicated,
        faultAtMs: r.faultAt - loadStart,
        recoveredAtMs: r.recoveredAt - loadStart,
      };
    });
    const totals = load.totals();
    const timeline = load.timeline();
    const chartFile = path.resolve(settings.chartFile);
    writeFileSync(
      chartFile,
      renderDrillChart({
        title: `keel drill: ${settings.rounds} × pg-failover, ${settings.pgUrl ? 'external servers' : `${settings.standby} standby`}, ${settings.nodes} nodes, ${settings.ratePerS} msg/s`,
        subtitle: `${new Date(loadStart).toISOString()} · receipted ${totals.receipted}, received ${totals.delivered}, lost ${totals.lost}, duplicated ${totals.duplicated} · band = primary killed → the load resumed`,
        bucketMs: timeline.bucketMs,
        receipts: timeline.receipts,
        deliveries: timeline.deliveries,
        markers: rounds.map((r) => ({
          atMs: r.faultAtMs,
          untilMs: r.recoveredAtMs,
          label: `${r.round}: ${r.oldPrimary} → ${r.newPrimary}, client pause ${(r.clientPauseMs / 1000).toFixed(2)} s`,
        })),
      }),
    );
    const result: PgFailoverDrillResult = {
      mode: 'pg-failover',
      settings,
      topology: topology.description,
      startedAt: new Date(run.startedAt).toISOString(),
      loadMs: load.loadEnd - loadStart,
      rounds,
      totals,
      clientEvents: load.relativeClientEvents(),
      chartFile,
      timeline,
    };
    if (settings.jsonFile) {
      result.jsonFile = path.resolve(settings.jsonFile);
      writeFileSync(result.jsonFile, `${JSON.stringify(result, null, 2)}\n`);
    }
    output.out(`${pgFailoverTable(rounds, totals)}\n\n`);
    output.out(`${totalsLine(totals)}\n`);
    if (settings.standby === 'async' && !settings.pgUrl)
      output.out(
        `asynchronous standby: ${totals.lost} receipted messages lost over ${rounds.length} promotions (measured, not a failure)\n`,
      );
    output.out(`chart: ${chartFile}\n`);
    if (result.jsonFile) output.out(`json: ${result.jsonFile}\n`);
    return result;
  } finally {
    await run.finish();
  }
}

/** The action: Ctrl-C stops and cleans up; exit status 1 on a loss or duplicate with a sync standby. */
export async function pgFailoverDrillCommand(
  options: PgFailoverDrillOptions,
  output: Output,
): Promise<PgFailoverDrillResult> {
  const result = await withInterrupt((signal) => runPgFailoverDrill(options, output, { signal }));
  const strict = result.settings.standby === 'sync' || result.settings.pgUrl !== undefined;
  if (strict && (result.totals.lost > 0 || result.totals.duplicated > 0)) process.exitCode = 1;
  return result;
}
