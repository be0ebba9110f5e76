/**
 * `keel drill --mode pg-soak` (issue #20.5; not for CI, scripts/soak-pg-ha.sh runs it): the
 * pg-failover drill's stage (a primary + streaming standby, nodes on the multi-host URL) under the
 * mixed persistent load of drill-mixed-load.ts (a queue stream and a topic stream with a durable
 * subscriber, bodies of 100 B to 16 KiB, --rate split between them, each with its own ledger) kept
 * up for --minutes, with a SIGKILL of the Keel master every
 * --master-kill-every seconds and a Postgres promotion (SIGKILL of the primary, pg_ctl promote,
 * the old primary re-joined) every --promote-every seconds. Every --sample-every seconds it samples
 * each broker's RSS (and pid: a killed node restarts as a new process) and the message tables'
 * dead tuples (their TOAST tables' included) and size (pg_stat_all_tables, pg_total_relation_size
 * on the primary). At the end: the events as a table (pause, lost, duplicated per window), each
 * stream's totals, the samples at their first and last reading, the throughput chart and the
 * resources chart (SVG), JSON. Any lost or duplicated receipted message, in either stream, fails
 * the run (exit status 1) with a synchronous standby.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { parseVmRssKiB } from '@keel/bench';
import { InvalidArgumentError } from '@keel/protocol';
import { Client } from 'pg';
import type { Output } from '../output';
import {
  DEFAULT_DRILL_RATE_PER_S,
  DRILL_SETTLE_MS,
  DRILL_TAKEOVER_TIMEOUT_MS,
  type DrillOptions,
  formatTable,
  MAX_DRILL_NODES,
} from './drill';
import { renderDrillChart } from './drill-chart';
import { type DrillTotals, totalsLine } from './drill-load';
import { DrillMixedLoad, sumTotals } from './drill-mixed-load';
import type { DrillNode } from './drill-node';
import {
  type PgDrillStage,
  type PgStandbyMode,
  pgPromotionRound,
  startPgDrillStage,
} from './drill-pg-failover';
import { DrillRun } from './drill-run';
import { renderSeriesChart } from './drill-series-chart';
import { integerOption, rateOption, withInterrupt } from './load-options';

/** The issue's soak: 30 minutes, the Keel master killed every 2 minutes, a promotion every 10. */
export const DEFAULT_SOAK_MINUTES = 30;
export const DEFAULT_SOAK_MASTER_KILL_EVERY_S = 120;
export const DEFAULT_SOAK_PROMOTE_EVERY_S = 600;
export const DEFAULT_SOAK_SAMPLE_EVERY_S = 10;
export const DEFAULT_SOAK_CHART = 'keel-soak-pg.svg';
/** The tables whose rows are messages (migrations/001_initial.sql). */
export const SOAK_MESSAGE_TABLES = ['keel_messages', 'keel_sub_entries'] as const;

export interface PgSoakOptions extends DrillOptions {
  minutes?: string;
  masterKillEvery?: string;
  promoteEvery?: string;
  sampleEvery?: string;
  standby?: string;
}

export interface PgSoakSettings {
  minutes: number;
  masterKillEveryS: number;
  promoteEveryS: number;
  sampleEveryS: number;
  standby: PgStandbyMode;
  nodes: number;
  ratePerS: number;
  chartFile: string;
  jsonFile?: string;
}

/** One stream's counts in one fault's window. */
export interface SoakStreamCounts {
  clientPauseMs: number;
  receipted: number;
  received: number;
  lost: number;
  duplicated: number;
}

export interface SoakEvent {
  kind: 'master-kill' | 'promotion';
  detail: string;
  faultAtMs: number;
  /** Fault → a master serving (broker), or null. */
  brokerPauseMs: number | null;
  /** The longest of the streams' client pauses. */
  clientPauseMs: number;
  receipted: number;
  lost: number;
  duplicated: number;
  /** By stream (queue, topic). */
  streams?: Record<string, SoakStreamCounts>;
}

/** One message table (its TOAST table's dead tuples and autovacuums included). */
export interface SoakTableStats {
  mib: number;
  deadTuples: number;
  liveTuples: number;
  autovacuums: number;
}

export interface SoakSample {
  atMs: number;
  /** RSS of each running broker node, MiB. */
  rssMiB: Record<string, number>;
  /** The process id behind each rssMiB entry (a killed node comes back as another process). */
  pids?: Record<string, number>;
  deadTuples: number;
  liveTuples: number;
  tableMiB: number;
  tables?: Record<string, SoakTableStats>;
}

export interface PgSoakResult {
  mode: 'pg-soak';
  settings: PgSoakSettings;
  startedAt: string;
  loadMs: number;
  events: SoakEvent[];
  samples: SoakSample[];
  totals: DrillTotals;
  /** Each stream's totals and destination. */
  streams: Record<string, DrillTotals & { destination: string }>;
  /** The broker process that lived longest: its RSS over its life. */
  longestLived: LongestLived | null;
  chartFile: string;
  resourcesChartFile: string;
  jsonFile?: string;
}

export function pgSoakSettings(options: PgSoakOptions): PgSoakSettings {
  const standby = (options.standby ?? 'sync') as PgStandbyMode;
  if (standby !== 'sync' && standby !== 'async')
    throw new InvalidArgumentError(
      `--standby must be one of sync, async (got ${JSON.stringify(options.standby)})`,
    );
  if (options.pgUrl !== undefined)
    throw new InvalidArgumentError('--mode pg-soak runs its own Postgres pair: drop --pg-url');
  const chartFile = options.chart ?? DEFAULT_SOAK_CHART;
  if (chartFile.trim() === '') throw new InvalidArgumentError('--chart needs a file name');
  return {
    minutes: integerOption(options.minutes, '--minutes', 1, 24 * 60) ?? DEFAULT_SOAK_MINUTES,
    masterKillEveryS:
      integerOption(options.masterKillEvery, '--master-kill-every', 10) ?? DEFAULT_SOAK_MASTER_KILL_EVERY_S,
    promoteEveryS: integerOption(options.promoteEvery, '--promote-every', 30) ?? DEFAULT_SOAK_PROMOTE_EVERY_S,
    sampleEveryS: integerOption(options.sampleEvery, '--sample-every', 1, 600) ?? DEFAULT_SOAK_SAMPLE_EVERY_S,
    standby,
    nodes: integerOption(options.nodes, '--nodes', 2, MAX_DRILL_NODES) ?? 2,
    ratePerS: rateOption(options.rate, '--rate') ?? DEFAULT_DRILL_RATE_PER_S,
    chartFile,
    ...(options.json !== undefined ? { jsonFile: options.json } : {}),
  };
}

function rssMiB(node: DrillNode): number | null {
  if (node.exited || node.pid === undefined) return null;
  try {
    const kib = parseVmRssKiB(readFileSync(`/proc/${node.pid}/status`, 'utf8'));
    return kib === null ? null : Math.round((kib / 1024) * 10) / 10;
  } catch {
    return null;
  }
}

/**
 * The message tables on the primary: total size (heap, indexes, TOAST), dead and live tuples and
 * autovacuum runs (heap + TOAST). The counters are the primary's statistics: a promoted standby
 * starts them from zero (statistics are not replicated), the size is physical.
 */
async function tableStats(url: string): Promise<Record<string, SoakTableStats> | null> {
  const c = new Client({ connectionString: url, connectionTimeoutMillis: 2_000 });
  c.on('error', () => {});
  try {
    await c.connect();
    const { rows } = await c.query<{ name: string; bytes: string; dead: string; live: string; av: string }>(
      `SELECT c.relname AS name, pg_total_relation_size(c.oid) AS bytes,
              coalesce(s.n_dead_tup, 0) + coalesce(t.n_dead_tup, 0) AS dead,
              coalesce(s.n_live_tup, 0) AS live,
              coalesce(s.autovacuum_count, 0) + coalesce(t.autovacuum_count, 0) AS av
         FROM pg_class c
         LEFT JOIN pg_stat_all_tables s ON s.relid = c.oid
         LEFT JOIN pg_stat_all_tables t ON t.relid = c.reltoastrelid
        WHERE c.relname = ANY($1) AND c.relkind = 'r' AND pg_table_is_visible(c.oid)`,
      [[...SOAK_MESSAGE_TABLES]],
    );
    return Object.fromEntries(
      rows.map((r) => [
        r.name,
        {
          mib: Math.round((Number(r.bytes) / 1048576) * 100) / 100,
          deadTuples: Number(r.dead),
          liveTuples: Number(r.live),
          autovacuums: Number(r.av),
        },
      ]),
    );
  } catch {
    return null;
  } finally {
    await c.end().catch(() => {});
  }
}

/** A sample from the node readings and the tables' (null: the primary did not answer). */
export function soakSample(
  atMs: number,
  nodes: readonly { name: string; pid: number; rssMiB: number }[],
  tables: Record<string, SoakTableStats> | null,
): SoakSample {
  const all = Object.values(tables ?? {});
  const sum = (f: (t: SoakTableStats) => number) => (tables ? all.reduce((n, t) => n + f(t), 0) : Number.NaN);
  return {
    atMs,
    rssMiB: Object.fromEntries(nodes.map((n) => [n.name, n.rssMiB])),
    pids: Object.fromEntries(nodes.map((n) => [n.name, n.pid])),
    deadTuples: sum((t) => t.deadTuples),
    liveTuples: sum((t) => t.liveTuples),
    tableMiB: tables ? Math.round(sum((t) => t.mib) * 100) / 100 : Number.NaN,
    ...(tables ? { tables } : {}),
  };
}

export interface LongestLived {
  node: string;
  pid: number;
  fromMs: number;
  toMs: number;
  firstMiB: number;
  lastMiB: number;
  maxMiB: number;
}

/** Of the broker processes sampled, the one sampled over the longest span, and its RSS. */
export function longestLived(samples: readonly SoakSample[]): LongestLived | null {
  const lives = new Map<string, LongestLived>();
  for (const s of samples) {
    for (const [node, rss] of Object.entries(s.rssMiB)) {
      const pid = s.pids?.[node];
      if (pid === undefined) continue;
      const key = `${node}/${pid}`;
      const life = lives.get(key);
      if (!life) {
        lives.set(key, { node, pid, fromMs: s.atMs, toMs: s.atMs, firstMiB: rss, lastMiB: rss, maxMiB: rss });
      } else {
        life.toMs = s.atMs;
        life.lastMiB = rss;
        life.maxMiB = Math.max(life.maxMiB, rss);
      }
    }
  }
  let best: LongestLived | null = null;
  for (const life of lives.values())
    if (!best || life.toMs - life.fromMs > best.toMs - best.fromMs) best = life;
  return best;
}

/** SIGKILL of the Keel master; another node takes over; the killed one restarts as a slave. */
async function masterKill(
  run: DrillRun,
  stage: PgDrillStage<DrillMixedLoad>,
): Promise<{ detail: string; faultAt: number; newMasterAt: number | null }> {
  const { cluster } = stage;
  const index = await cluster.oneMaster(DRILL_TAKEOVER_TIMEOUT_MS, 'master kill');
  const old = cluster.nodes[index] as DrillNode;
  const faultAt = Date.now();
  run.log(`SIGKILL of the Keel master ${old.plan.name} (pid ${old.pid})`);
  old.signal('SIGKILL');
  const took = await run.waitFor(
    () => {
      for (const [i, n] of cluster.nodes.entries()) {
        const change = i === index ? undefined : n.roleSince('master', faultAt);
        if (change) return { name: n.plan.name, atMs: change.atMs };
      }
      return undefined;
    },
    DRILL_TAKEOVER_TIMEOUT_MS,
    () => `no new master within ${DRILL_TAKEOVER_TIMEOUT_MS} ms of the kill`,
  );
  await old.exitPromise;
  await cluster.waitForRole(cluster.launch(index), ['slave'], faultAt);
  run.log(`${took.name} is master ${took.atMs - faultAt} ms after the kill; ${old.plan.name} is slave again`);
  return { detail: `${old.plan.name} → ${took.name}`, faultAt, newMasterAt: took.atMs };
}

export async function runPgSoak(
  options: PgSoakOptions,
  output: Output,
  runOptions: { signal?: AbortSignal } = {},
): Promise<PgSoakResult> {
  const settings = pgSoakSettings(options);
  const run = new DrillRun(output, runOptions.signal, 'keel drill --mode pg-soak');
  let sampler: NodeJS.Timeout | undefined;
  try {
    const stage = await startPgDrillStage(run, settings, (r, c, rate) =>
      DrillMixedLoad.start(r, c.failoverUrl, rate, DRILL_SETTLE_MS),
    );
    const { load, cluster } = stage;
    const t0 = load.loadStart;
    const endAt = t0 + settings.minutes * 60_000;
    const samples: SoakSample[] = [];
    let sampling = false;
    const sample = async () => {
      if (sampling) return;
      sampling = true;
      try {
        const readings: { name: string; pid: number; rssMiB: number }[] = [];
        for (const n of cluster.nodes) {
          const v = rssMiB(n);
          if (v !== null && n.pid !== undefined) readings.push({ name: n.plan.name, pid: n.pid, rssMiB: v });
        }
        const atMs = Date.now() - t0;
        const s = soakSample(atMs, readings, await tableStats(await stage.primaryDb().catch(() => '')));
        samples.push(s);
        run.log(
          `sample: rss ${Object.entries(s.rssMiB)
            .map(([k, v]) => `${k} ${v} MiB`)
            .join(
              ', ',
            )}; message tables ${s.tableMiB} MiB, ${s.deadTuples} dead / ${s.liveTuples} live tuples`,
        );
      } finally {
        sampling = false;
      }
    };
    await sample();
    sampler = setInterval(() => void sample(), settings.sampleEveryS * 1000);
    sampler.unref();

    interface RawEvent {
      kind: SoakEvent['kind'];
      detail: string;
      faultAt: number;
      newMasterAt: number | null;
      endAt: number;
    }
    const raw: RawEvent[] = [];
    let nextKill = t0 + settings.masterKillEveryS * 1000;
    let nextPromote = t0 + settings.promoteEveryS * 1000;
    let promotions = 0;
    for (;;) {
      const next = Math.min(nextKill, nextPromote);
      if (next >= endAt) break;
      await run.sleep(Math.max(0, next - Date.now()));
      run.checkAbort();
      if (nextPromote <= nextKill) {
        nextPromote += settings.promoteEveryS * 1000;
        // A kill due at the same moment waits for the promotion to finish.
        const p = await pgPromotionRound(run, stage, ++promotions, 0);
        raw.push({
          kind: 'promotion',
          detail: `${p.oldPrimary} → ${p.newPrimary} (${p.rejoin.method})`,
          faultAt: p.faultAt,
          newMasterAt: p.newMasterAt,
          endAt: Date.now(),
        });
        if (nextKill < Date.now()) nextKill = Date.now() + 5_000;
      } else {
        nextKill += settings.masterKillEveryS * 1000;
        const k = await masterKill(run, stage);
        raw.push({ kind: 'master-kill', ...k, endAt: Date.now() });
      }
      const remaining = Math.max(0, Math.round((endAt - Date.now()) / 1000));
      run.log(`soak: ${raw.length} faults so far, ${remaining} s to go`);
    }
    await run.sleep(Math.max(0, endAt - Date.now()));
    clearInterval(sampler);
    await sample();
    await load.stopAndDrain();

    const counts = load.roundCounts(raw);
    const perStream = load.streamRoundCounts(raw);
    const events: SoakEvent[] = raw.map((e, i) => {
      const c = counts[i] as (typeof counts)[number];
      const streams = Object.fromEntries(
        Object.entries(perStream).map(([name, list]) => {
          const w = list[i] as (typeof list)[number];
          return [
            name,
            {
              clientPauseMs: w.pauseMs,
              receipted: w.receipted,
              received: w.delivered,
              lost: w.lost,
              duplicated: w.duplicated,
            },
          ];
        }),
      );
      return {
        kind: e.kind,
        detail: e.detail,
        faultAtMs: e.faultAt - t0,
        brokerPauseMs: e.newMasterAt === null ? null : e.newMasterAt - e.faultAt,
        clientPauseMs: c.pauseMs,
        receipted: c.receipted,
        lost: c.lost,
        duplicated: c.duplicated,
        streams,
      };
    });
    const totals = load.totals();
    const streams = load.streamTotals();
    const longest = longestLived(samples);
    const timeline = load.timeline();
    const chartFile = path.resolve(settings.chartFile);
    const resourcesChartFile = chartFile.replace(/(\.svg)?$/, '-resources.svg');
    const title = `keel drill --mode pg-soak: ${settings.minutes} min, master SIGKILL every ${settings.masterKillEveryS} s, promotion every ${settings.promoteEveryS} s, ${settings.standby} standby, ${settings.ratePerS} msg/s (queue + durable topic, 100 B-16 KiB)`;
    const subtitle = `${new Date(t0).toISOString()} · receipted ${totals.receipted}, received ${totals.delivered}, lost ${totals.lost}, duplicated ${totals.duplicated}`;
    const markers = events.map((e) => ({
      atMs: e.faultAtMs,
      label: e.kind === 'promotion' ? 'promote' : 'kill',
    }));
    writeFileSync(
      chartFile,
      renderDrillChart({
        title,
        subtitle,
        bucketMs: timeline.bucketMs,
        receipts: timeline.receipts,
        deliveries: timeline.deliveries,
        markers: events.map((e) => ({
          atMs: e.faultAtMs,
          label: `${e.kind === 'promotion' ? 'promotion' : 'master kill'}: ${(e.clientPauseMs / 1000).toFixed(1)} s`,
        })),
      }),
    );
    const names = [...new Set(samples.flatMap((s) => Object.keys(s.rssMiB)))].sort();
    const finite = samples.filter((s) => Number.isFinite(s.tableMiB));
    writeFileSync(
      resourcesChartFile,
      renderSeriesChart({
        title,
        subtitle,
        durationMs: Math.max(load.loadEnd - t0, settings.minutes * 60_000),
        markers,
        panels: [
          {
            title: 'broker RSS',
            unit: 'MiB',
            series: names.map((n) => ({
              name: n,
              points: samples
                .filter((s) => s.rssMiB[n] !== undefined)
                .map((s) => ({ atMs: s.atMs, value: s.rssMiB[n] as number })),
            })),
          },
          {
            title: 'message tables, dead (incl. TOAST) and live tuples',
            unit: 'rows',
            series: [
              { name: 'dead', points: finite.map((s) => ({ atMs: s.atMs, value: s.deadTuples })) },
              { name: 'live', points: finite.map((s) => ({ atMs: s.atMs, value: s.liveTuples })) },
            ],
          },
          {
            title: 'message tables, size (heap + indexes + TOAST)',
            unit: 'MiB',
            series: [
              { name: 'total', points: finite.map((s) => ({ atMs: s.atMs, value: s.tableMiB })) },
              ...SOAK_MESSAGE_TABLES.map((t) => ({
                name: t,
                points: finite.flatMap((s) => {
                  const table = s.tables?.[t];
                  return table ? [{ atMs: s.atMs, value: table.mib }] : [];
                }),
              })),
            ],
          },
        ],
      }),
    );
    const result: PgSoakResult = {
      mode: 'pg-soak',
      settings,
      startedAt: new Date(run.startedAt).toISOString(),
      loadMs: load.loadEnd - t0,
      events,
      samples,
      totals,
      streams,
      longestLived: longest,
      chartFile,
      resourcesChartFile,
    };
    if (settings.jsonFile) {
      result.jsonFile = path.resolve(settings.jsonFile);
      writeFileSync(result.jsonFile, `${JSON.stringify(result, null, 2)}\n`);
    }
    output.out(`${soakTable(events)}\n\n${streamsTable(streams)}\n\n${totalsLine(totals)}\n`);
    output.out(`${soakSamplesLine(samples)}\n`);
    if (longest)
      output.out(
        `longest-lived broker process: ${longest.node} pid ${longest.pid}, sampled ${Math.round(longest.fromMs / 1000)}-${Math.round(longest.toMs / 1000)} s, RSS first ${longest.firstMiB} MiB, last ${longest.lastMiB} MiB, max ${longest.maxMiB} MiB\n`,
      );
    output.out(`charts: ${chartFile}, ${resourcesChartFile}\n`);
    if (result.jsonFile) output.out(`json: ${result.jsonFile}\n`);
    return result;
  } finally {
    clearInterval(sampler);
    await run.finish();
  }
}

export function soakTable(events: readonly SoakEvent[]): string {
  const ms = (v: number | null) => (v === null ? '-' : `${v} ms`);
  return formatTable([
    ['AT', 'FAULT', 'DETAIL', 'BROKER PAUSE', 'CLIENT PAUSE', 'RECEIPTED', 'LOST', 'DUPLICATED'],
    ...events.map((e) => [
      `${(e.faultAtMs / 1000).toFixed(0)} s`,
      e.kind,
      e.detail,
      ms(e.brokerPauseMs),
      ms(e.clientPauseMs),
      String(e.receipted),
      String(e.lost),
      String(e.duplicated),
    ]),
  ]);
}

/** Each stream's ledger and the sum. */
export function streamsTable(streams: Record<string, DrillTotals & { destination: string }>): string {
  const row = (name: string, t: DrillTotals) => [
    name,
    String(t.sent),
    String(t.receipted),
    String(t.delivered),
    String(t.lost),
    String(t.duplicated),
    String(t.failed),
  ];
  return formatTable([
    ['STREAM', 'SENT', 'RECEIPTED', 'RECEIVED', 'LOST', 'DUPLICATED', 'FAILED'],
    ...Object.entries(streams).map(([name, t]) => row(`${name} (${t.destination})`, t)),
    row('total', sumTotals(Object.values(streams))),
  ]);
}

/** First and last sample: is the broker's RSS and the message tables' size flat? */
export function soakSamplesLine(samples: readonly SoakSample[]): string {
  const first = samples[0];
  const last = samples[samples.length - 1];
  if (!first || !last) return 'no samples';
  const rss = (s: SoakSample) =>
    Object.entries(s.rssMiB)
      .map(([k, v]) => `${k} ${v}`)
      .join(', ');
  const maxRss = Math.max(0, ...samples.flatMap((s) => Object.values(s.rssMiB)));
  const maxDead = Math.max(0, ...samples.map((s) => (Number.isFinite(s.deadTuples) ? s.deadTuples : 0)));
  const maxSize = Math.max(0, ...samples.map((s) => (Number.isFinite(s.tableMiB) ? s.tableMiB : 0)));
  return [
    `broker RSS MiB: first ${rss(first)}; last ${rss(last)}; max ${maxRss}`,
    `message tables: first ${first.tableMiB} MiB, ${first.deadTuples} dead; last ${last.tableMiB} MiB, ${last.deadTuples} dead; max ${maxSize} MiB, ${maxDead} dead (${samples.length} samples)`,
  ].join('\n');
}

/** The action: exit status 1 on a loss or duplicate (a synchronous standby). */
export async function pgSoakCommand(options: PgSoakOptions, output: Output): Promise<PgSoakResult> {
  const result = await withInterrupt((signal) => runPgSoak(options, output, { signal }));
  if (result.settings.standby === 'sync' && (result.totals.lost > 0 || result.totals.duplicated > 0))
    process.exitCode = 1;
  return result;
}
