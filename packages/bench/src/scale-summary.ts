import type { BenchReport, ConnectionsRunResult, ManyQueuesRunResult, RunResult } from './bench-result';
import { rowKey } from './render-report';
import { median } from './stats';
import { formatNumber } from './table';

/**
 * Issue #25.4, "cost must grow no faster than linearly": the many-queues and connections reports
 * of one scale run as tables of RSS (and CPU per message) against N, with the increment per unit
 * between consecutive sizes and a verdict per broker. Pure: the reports are given.
 */

/** One size of one broker: N and the RSS the N units added within that run (KiB). */
export interface ScalePoint {
  n: number;
  /** RSS with the N units in place minus RSS before them, same process, KiB; null if not measured. */
  deltaKiB: number | null;
}

/** Between two consecutive sizes: the RSS each added unit cost, KiB. */
export interface ScaleStep {
  from: number;
  to: number;
  perUnitKiB: number | null;
}

/** Per-unit increments between consecutive sizes (sorted by n): (Δ(to) − Δ(from)) / (to − from). */
export function scaleSteps(points: readonly ScalePoint[]): ScaleStep[] {
  const sorted = [...points].sort((a, b) => a.n - b.n);
  const steps: ScaleStep[] = [];
  for (let i = 1; i < sorted.length; i++) {
    const a = sorted[i - 1]!;
    const b = sorted[i]!;
    steps.push({
      from: a.n,
      to: b.n,
      perUnitKiB:
        a.deltaKiB === null || b.deltaKiB === null || b.n === a.n
          ? null
          : (b.deltaKiB - a.deltaKiB) / (b.n - a.n),
    });
  }
  return steps;
}

/**
 * The per-unit cost of a later step may exceed the first step's by this factor before RSS counts
 * as growing faster than linearly.
 */
export const LINEAR_TOLERANCE = 1.5;

/**
 * RSS readings of a garbage-collected (Node) or an Erlang heap move by a few MiB from one reading
 * to the next: a later step whose RSS exceeds the first step's rate by less than this in all, KiB,
 * is within the noise (at 100 → 300 queues, 8 MiB would be 41 KiB per queue).
 */
export const RSS_NOISE_KIB = 8 * 1024;

export type LinearVerdict = 'linear or better' | 'faster than linear' | 'not measured';

/**
 * RSS grows no faster than linearly when no later step costs more per unit than
 * LINEAR_TOLERANCE × the first step (a step that costs less per unit is sub-linear growth), or
 * the excess over the first step's rate is within RSS_NOISE_KIB over that step.
 */
export function linearVerdict(
  steps: readonly ScaleStep[],
  tolerance = LINEAR_TOLERANCE,
  noiseKiB = RSS_NOISE_KIB,
): LinearVerdict {
  if (steps.length < 2 || steps.some((s) => s.perUnitKiB === null)) return 'not measured';
  const first = Math.max(steps[0]!.perUnitKiB as number, 0);
  const within = (s: ScaleStep) => {
    const v = s.perUnitKiB as number;
    return v <= first * tolerance || (v - first) * (s.to - s.from) <= noiseKiB;
  };
  return steps.slice(1).every(within) ? 'linear or better' : 'faster than linear';
}

/** The broker names used in docs/benchmarks.md for a report's row key. */
export const SCALE_TARGET_LABELS: Readonly<Record<string, string>> = {
  'keel-native': 'Keel (native)',
  keel: 'Keel (STOMP)',
  'rabbitmq-amqp': 'RabbitMQ AMQP (classic)',
  'rabbitmq-quorum': 'RabbitMQ AMQP (quorum)',
  rabbitmq: 'RabbitMQ (STOMP)',
  activemq: 'ActiveMQ (STOMP)',
};

const label = (key: string) => SCALE_TARGET_LABELS[key] ?? key;
const num = (v: number | null | undefined, decimals = 0) =>
  v === null || v === undefined || Number.isNaN(v) ? '–' : formatNumber(v, decimals);
const mib = (kib: number | null | undefined) => (kib === null || kib === undefined ? null : kib / 1024);

/** a − b, or null when either is missing. */
function diff(a: number | null | undefined, b: number | null | undefined): number | null {
  return a === null || a === undefined || b === null || b === undefined ? null : a - b;
}

function medianOr(values: readonly (number | null | undefined)[]): number | null {
  const v = values.filter((x): x is number => typeof x === 'number' && Number.isFinite(x));
  return v.length === 0 ? null : median(v);
}

type RunOf<K extends RunResult['kind']> = Extract<RunResult, { kind: K }>;

/** Runs of one kind, by broker (row key) and size. */
function groupRuns<K extends 'many-queues' | 'connections'>(
  reports: readonly BenchReport[],
  kind: K,
  size: (run: RunOf<K>) => number,
): Map<string, Map<number, RunOf<K>[]>> {
  const out = new Map<string, Map<number, RunOf<K>[]>>();
  for (const r of reports) {
    for (const run of r.runs) {
      if (run.kind !== kind) continue;
      const typed = run as RunOf<K>;
      const key = rowKey(r);
      const sizes = out.get(key) ?? new Map<number, RunOf<K>[]>();
      const n = size(typed);
      sizes.set(n, [...(sizes.get(n) ?? []), typed]);
      out.set(key, sizes);
    }
  }
  return out;
}

const ORDER = Object.keys(SCALE_TARGET_LABELS);
const targetOrder = (a: string, b: string) =>
  (ORDER.indexOf(a) + 1 || 99) - (ORDER.indexOf(b) + 1 || 99) || a.localeCompare(b);

function stepColumns(steps: readonly ScaleStep[]): string {
  return steps
    .map((s) => `${num(s.perUnitKiB, 1)} (${formatNumber(s.from)}→${formatNumber(s.to)})`)
    .join(', ');
}

/** Markdown: many-queues against N per broker, then the increments and the verdict. Medians over runs of a size. */
export function manyQueuesTables(reports: readonly BenchReport[]): string {
  const groups = groupRuns(reports, 'many-queues', (r) => r.queues);
  if (groups.size === 0) return '';
  const lines = [
    '| broker | queues × consumers | subscribe s | received msg/s | latency p50 / p99 ms | broker CPU µs/msg | RSS before MiB | RSS idle MiB | KiB per queue (idle) | RSS steady MiB | RSS peak MiB | missing |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
  ];
  const verdicts: string[] = [
    '| broker | KiB per queue with its consumers, idle, step by step | KiB per queue under load (steady), step by step | broker CPU µs/msg, smallest → largest N | RSS verdict |',
    '| --- | --- | --- | --- | --- |',
  ];
  for (const key of [...groups.keys()].sort(targetOrder)) {
    const sizes = [...groups.get(key)!.entries()].sort((a, b) => a[0] - b[0]);
    const idlePoints: ScalePoint[] = [];
    const steadyPoints: ScalePoint[] = [];
    const cpu: (number | null)[] = [];
    for (const [n, runs] of sizes) {
      const m = (f: (r: ManyQueuesRunResult) => number | null | undefined) => medianOr(runs.map(f));
      const base = m((r) => r.rss?.baselineKiB);
      const idleDelta = m((r) => diff(r.rss?.idleKiB, r.rss?.baselineKiB));
      const steadyDelta = m((r) => diff(r.rss?.steadyKiB, r.rss?.baselineKiB));
      const subscribeMs = m((r) => r.subscribeMs);
      const cpuPerMsg = m((r) => r.cost?.brokerCpuUsPerMsg);
      idlePoints.push({ n, deltaKiB: idleDelta });
      steadyPoints.push({ n, deltaKiB: steadyDelta });
      cpu.push(cpuPerMsg);
      lines.push(
        `| ${label(key)} | ${formatNumber(n)} × ${runs[0]!.consumersPerQueue} | ${num(subscribeMs === null ? null : subscribeMs / 1000, 1)} | ` +
          `${num(m((r) => r.receiveRate))} | ${num(
            m((r) => r.latencyMs.p50),
            1,
          )} / ${num(
            m((r) => r.latencyMs.p99),
            1,
          )} | ` +
          `${num(cpuPerMsg, 1)} | ${num(mib(base), 1)} | ${num(mib(m((r) => r.rss?.idleKiB)), 1)} | ${num(idleDelta === null ? null : idleDelta / n, 1)} | ` +
          `${num(mib(m((r) => r.rss?.steadyKiB)), 1)} | ${num(mib(m((r) => r.rss?.peakKiB)), 1)} | ${num(m((r) => r.missing))} |`,
      );
    }
    const idleSteps = scaleSteps(idlePoints);
    const steadySteps = scaleSteps(steadyPoints);
    const v = linearVerdict(idleSteps);
    const vs = linearVerdict(steadySteps);
    verdicts.push(
      `| ${label(key)} | ${stepColumns(idleSteps)} | ${stepColumns(steadySteps)} | ${cpu.map((c) => num(c, 1)).join(' → ')} | ` +
        `idle: **${v}**; under load: **${vs}** |`,
    );
  }
  return `${lines.join('\n')}\n\n${verdicts.join('\n')}\n`;
}

/** Markdown: idle connections against N per broker, then the increments and the verdict. */
export function connectionsTables(reports: readonly BenchReport[]): string {
  const groups = groupRuns(reports, 'connections', (r) => r.idle.requested);
  if (groups.size === 0) return '';
  const lines = [
    '| broker | idle connections (opened) | ramp s | connect p99 ms | RSS before MiB | RSS with idle MiB | KiB per connection | RSS peak MiB | load p50 / p99 ms before | load p50 / p99 ms with idle | missing |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
  ];
  const verdicts = [
    '| broker | KiB per idle connection, step by step | RSS verdict |',
    '| --- | --- | --- |',
  ];
  for (const key of [...groups.keys()].sort(targetOrder)) {
    const sizes = [...groups.get(key)!.entries()].sort((a, b) => a[0] - b[0]);
    const points: ScalePoint[] = [];
    for (const [n, runs] of sizes) {
      const m = (f: (r: ConnectionsRunResult) => number | null | undefined) => medianOr(runs.map(f));
      const delta = m((r) => diff(r.rss?.withIdleKiB, r.rss?.beforeKiB));
      const opened = m((r) => r.idle.opened);
      points.push({ n: opened ?? n, deltaKiB: delta });
      lines.push(
        `| ${label(key)} | ${formatNumber(n)} (${num(opened)}) | ${num(
          m((r) => r.idle.rampMs / 1000),
          1,
        )} | ${num(
          m((r) => r.idle.connectMs.p99),
          1,
        )} | ` +
          `${num(mib(m((r) => r.rss?.beforeKiB)), 1)} | ${num(mib(m((r) => r.rss?.withIdleKiB)), 1)} | ${num(
            m((r) => r.rss?.perIdleConnectionKiB),
            1,
          )} | ` +
          `${num(mib(m((r) => r.rss?.peakKiB)), 1)} | ${num(
            m((r) => r.before.latencyMs.p50),
            2,
          )} / ${num(
            m((r) => r.before.latencyMs.p99),
            2,
          )} | ` +
          `${num(
            m((r) => r.withIdle.latencyMs.p50),
            2,
          )} / ${num(
            m((r) => r.withIdle.latencyMs.p99),
            2,
          )} | ${num(m((r) => r.missing))} |`,
      );
    }
    const steps = scaleSteps(points);
    verdicts.push(`| ${label(key)} | ${stepColumns(steps)} | **${linearVerdict(steps)}** |`);
  }
  return `${lines.join('\n')}\n\n${verdicts.join('\n')}\n`;
}
