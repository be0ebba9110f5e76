import type { BenchDestination, BenchDriver } from '../bench-driver';
import type { BenchOptions } from '../bench-options';
import type { FlowRunResult } from '../bench-result';
import { ProgressLine } from '../progress';
import { ratePerSecond } from '../stats';
import { type FlowCounters, produce, startConsumers } from './flow';

export interface ScenarioRunContext {
  driver: BenchDriver;
  options: BenchOptions;
  /** 1-based. */
  run: number;
  /** Unique per run; marks this run's messages. */
  runId: string;
  destinationName: string;
  progressStream?: NodeJS.WritableStream & { isTTY?: boolean };
}

/**
 * `throughput` (a queue, C competing consumers) and `fanout` (a topic, C subscribers each getting
 * every message): consumers subscribe first, then P producers send persistent messages with a
 * receipt each, bounded by --count and --duration-ms; consumers then get --drain-timeout-ms to
 * receive the rest.
 */
export async function runFlowScenario(
  ctx: ScenarioRunContext,
  kind: 'queue' | 'topic',
): Promise<FlowRunResult> {
  const o = ctx.options;
  const destination: BenchDestination = { kind, name: ctx.destinationName };
  const counters: FlowCounters = { sent: 0, received: 0 };
  const consumers = await startConsumers({
    driver: ctx.driver,
    destination,
    consumers: o.consumers,
    prefetch: o.prefetch,
    runId: ctx.runId,
    counters,
    trackSeqs: kind === 'queue' ? o.count : 0,
  });
  const progress = new ProgressLine(
    `[${o.scenario} ${o.target} run ${ctx.run}/${o.runs}]`,
    () => counters,
    ctx.progressStream,
    !o.quiet,
  );
  progress.start();
  try {
    const startedAt = performance.now();
    const produced = await produce({
      driver: ctx.driver,
      destination,
      producers: o.producers,
      count: o.count,
      inFlight: o.inFlight,
      sizeBytes: o.sizeBytes,
      deadline: startedAt + o.durationMs,
      runId: ctx.runId,
      counters,
    });
    const perMessage = kind === 'topic' ? o.consumers : 1;
    const expected = produced.sent * perMessage;
    await consumers.waitFor(expected, performance.now() + o.drainTimeoutMs);
    progress.stop();
    const end = Math.max(consumers.lastReceivedAt, produced.lastReceiptAt);
    return {
      kind: 'flow',
      run: ctx.run,
      destination: `/${kind}/${ctx.destinationName}`,
      sent: produced.sent,
      sendFailed: produced.failed,
      expected,
      received: consumers.received,
      missing: Math.max(0, expected - consumers.received),
      duplicates: consumers.duplicates,
      stale: consumers.stale,
      durationMs: end - produced.startedAt,
      sendRate: ratePerSecond(produced.sent, produced.lastReceiptAt - produced.startedAt),
      receiveRate: ratePerSecond(consumers.received, consumers.lastReceivedAt - produced.startedAt),
      latencyMs: consumers.latency.summary(),
      receiptLatencyMs: produced.receiptLatency.summary(),
      errors: [...produced.errors, ...consumers.errors],
    };
  } finally {
    progress.stop();
    await consumers.close();
  }
}
