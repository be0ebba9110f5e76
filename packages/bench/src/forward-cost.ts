import { median } from './stats';

/**
 * Networks of brokers, issue #25.5: the cost of a forwarded message against a local one. The
 * target is in CPU, not in rate (two brokers sharing two cores cannot show a rate target): the CPU
 * both brokers spend per forwarded message (producer on B, bridge B → A, consumer on A) is at most
 * FORWARD_COST_TARGET × what broker A spends per message produced and consumed on A alone.
 */
export const FORWARD_COST_TARGET = 1.5;

/** CPU µs per message of the processes of one run (network-bench.js `cpuUsPerMsg`). */
export interface CpuPerMessage {
  /** Broker A (the consumer's broker). */
  A: number;
  /** Broker B (the producer's broker in a forwarded run; idle in a local one). */
  B: number;
  /** Every postgres process of the machine. */
  postgres: number;
  /**
   * The Postgres processes working for the benchmark (its databases' backends and the server's
   * background processes): used instead of `postgres` when present.
   */
  postgresOwn?: number;
}

function postgresOf(c: CpuPerMessage): number {
  return c.postgresOwn ?? c.postgres;
}

export interface ForwardCost {
  /** Broker A + broker B, µs per forwarded message. */
  forwardedBrokersUs: number;
  /** Broker A, µs per local message. */
  localBrokerUs: number;
  /** forwardedBrokersUs / localBrokerUs: the figure. */
  ratio: number;
  /** The same with Postgres: (A + B + Postgres) forwarded / (A + Postgres) local. */
  forwardedWithPostgresUs: number;
  localWithPostgresUs: number;
  ratioWithPostgres: number;
}

/**
 * One run's figure. The local denominator is broker A alone: B is idle in a local run (its few µs
 * are timers and heartbeats, not the message's work).
 */
export function forwardCost(local: CpuPerMessage, forwarded: CpuPerMessage): ForwardCost {
  const forwardedBrokersUs = forwarded.A + forwarded.B;
  const localBrokerUs = local.A;
  const forwardedWithPostgresUs = forwardedBrokersUs + postgresOf(forwarded);
  const localWithPostgresUs = local.A + postgresOf(local);
  return {
    forwardedBrokersUs,
    localBrokerUs,
    ratio: ratioOf(forwardedBrokersUs, localBrokerUs),
    forwardedWithPostgresUs,
    localWithPostgresUs,
    ratioWithPostgres: ratioOf(forwardedWithPostgresUs, localWithPostgresUs),
  };
}

export interface ForwardCostSummary {
  target: number;
  /** Per run (local run i against forwarded run i). */
  runs: ForwardCost[];
  /** Medians of the per-run figures (each field its own median). */
  median: ForwardCost;
  /** The median brokers' ratio is within the target. */
  met: boolean;
  /** The same with Postgres included (reported; the target is on the brokers). */
  metWithPostgres: boolean;
}

/** Pairs local run i with forwarded run i; medians of every figure; the verdict against `target`. */
export function summarizeForwardCost(
  local: readonly CpuPerMessage[],
  forwarded: readonly CpuPerMessage[],
  target = FORWARD_COST_TARGET,
): ForwardCostSummary {
  if (local.length !== forwarded.length || local.length === 0) {
    throw new RangeError(
      `need as many local as forwarded runs (got ${local.length} and ${forwarded.length})`,
    );
  }
  const runs = local.map((l, i) => forwardCost(l, forwarded[i]!));
  const m = (k: keyof ForwardCost) => median(runs.map((r) => r[k]));
  const med: ForwardCost = {
    forwardedBrokersUs: m('forwardedBrokersUs'),
    localBrokerUs: m('localBrokerUs'),
    ratio: m('ratio'),
    forwardedWithPostgresUs: m('forwardedWithPostgresUs'),
    localWithPostgresUs: m('localWithPostgresUs'),
    ratioWithPostgres: m('ratioWithPostgres'),
  };
  return {
    target,
    runs,
    median: med,
    met: med.ratio <= target,
    metWithPostgres: med.ratioWithPostgres <= target,
  };
}

/** One line for a log: `2.41× (A+B 48 µs / A 20 µs), with Postgres 2.60×; target ≤ 1.5×: not met`. */
export function formatForwardCost(c: ForwardCost, target = FORWARD_COST_TARGET): string {
  const verdict = c.ratio <= target ? 'met' : 'not met';
  return (
    `${c.ratio.toFixed(2)}× (A+B ${c.forwardedBrokersUs.toFixed(1)} µs / A ${c.localBrokerUs.toFixed(1)} µs), ` +
    `with Postgres ${c.ratioWithPostgres.toFixed(2)}× (${c.forwardedWithPostgresUs.toFixed(1)} / ` +
    `${c.localWithPostgresUs.toFixed(1)} µs); target ≤ ${target}×: ${verdict}`
  );
}

function ratioOf(a: number, b: number): number {
  return b > 0 ? a / b : Number.NaN;
}
