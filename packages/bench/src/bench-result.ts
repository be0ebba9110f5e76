import type { BenchOptions, Scenario, Target } from './bench-options';
import type { MachineInfo } from './machine-info';
import type { RssSample } from './rss-sampler';
import type { LatencySummary } from './stats';

/** One run of `throughput` or `fanout`. Rates are per second, times in ms. */
export interface FlowRunResult {
  kind: 'flow';
  run: number;
  destination: string;
  /** Sends confirmed by a receipt. */
  sent: number;
  sendFailed: number;
  /** sent × subscribers (fanout) or sent (queue). */
  expected: number;
  received: number;
  missing: number;
  duplicates: number;
  stale: number;
  /** From the first send to the last message received. */
  durationMs: number;
  /** Receipted sends per second, first send to last receipt. */
  sendRate: number;
  /** Messages received per second, first send to last receive. */
  receiveRate: number;
  latencyMs: LatencySummary;
  receiptLatencyMs: LatencySummary;
  errors: string[];
}

export interface BacklogRunResult {
  kind: 'backlog';
  run: number;
  destination: string;
  fill: { sent: number; failed: number; durationMs: number; rate: number; receiptLatencyMs: LatencySummary };
  drain: {
    received: number;
    missing: number;
    duplicates: number;
    durationMs: number;
    rate: number;
    latencyMs: LatencySummary;
  };
  /** VmRSS of --broker-pid, sampled every second; null without --broker-pid. */
  rss: { peakKiB: number | null; samples: RssSample[] } | null;
  errors: string[];
}

export type RunResult = FlowRunResult | BacklogRunResult;

/** What `--out` writes and docs/benchmarks.md is made from. */
export interface BenchReport {
  tool: 'keel-bench';
  formatVersion: 1;
  scenario: Scenario;
  target: Target;
  protocol: string;
  startedAt: string;
  /** The options, without the passcode. */
  config: Omit<BenchOptions, 'passcode' | 'help' | 'quiet' | 'out'>;
  machine: MachineInfo;
  runs: RunResult[];
  /** Median of each metric across the runs. */
  median: Record<string, number>;
}

/** The numbers of a run, flat, for medians and tables. */
export function runMetrics(r: RunResult): Record<string, number> {
  if (r.kind === 'flow') {
    return {
      sent: r.sent,
      received: r.received,
      missing: r.missing,
      sendRate: r.sendRate,
      receiveRate: r.receiveRate,
      latencyP50Ms: r.latencyMs.p50,
      latencyP99Ms: r.latencyMs.p99,
      latencyMaxMs: r.latencyMs.max,
      receiptP50Ms: r.receiptLatencyMs.p50,
      receiptP99Ms: r.receiptLatencyMs.p99,
      durationMs: r.durationMs,
    };
  }
  const m: Record<string, number> = {
    sent: r.fill.sent,
    received: r.drain.received,
    missing: r.drain.missing,
    fillRate: r.fill.rate,
    drainRate: r.drain.rate,
    fillDurationMs: r.fill.durationMs,
    drainDurationMs: r.drain.durationMs,
    receiptP99Ms: r.fill.receiptLatencyMs.p99,
  };
  if (r.rss?.peakKiB != null) m.peakRssMiB = r.rss.peakKiB / 1024;
  return m;
}
