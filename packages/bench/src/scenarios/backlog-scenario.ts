import type { BenchDestination } from '../bench-driver';
import type { BacklogRunResult } from '../bench-result';
import { ProgressLine } from '../progress';
import { RssSampler } from '../rss-sampler';
import { ratePerSecond } from '../stats';
import { type FlowCounters, produce, startConsumers } from './flow';
import type { ScenarioRunContext } from './flow-scenario';

/**
 * `backlog`: P producers fill a queue with --count persistent messages while nobody consumes
 * (bounded by --duration-ms), then C consumers drain it (bounded by --duration-ms again). With
 * --broker-pid the broker's VmRSS is sampled every second through both phases.
 */
export async function runBacklogScenario(ctx: ScenarioRunContext): Promise<BacklogRunResult> {
  const o = ctx.options;
  const destination: BenchDestination = { kind: 'queue', name: ctx.destinationName };
  const counters: FlowCounters = { sent: 0, received: 0 };
  const rss = o.brokerPid === undefined ? null : new RssSampler(o.brokerPid);
  const progress = new ProgressLine(
    `[backlog ${o.target} run ${ctx.run}/${o.runs}]`,
    () => counters,
    ctx.progressStream,
    !o.quiet,
  );
  if (rss) {
    rss.phase = 'fill';
    rss.start();
  }
  progress.start();
  try {
    const fillStart = performance.now();
    const produced = await produce({
      driver: ctx.driver,
      destination,
      producers: o.producers,
      count: o.count,
      inFlight: o.inFlight,
      sizeBytes: o.sizeBytes,
      deadline: fillStart + o.durationMs,
      runId: ctx.runId,
      counters,
    });
    if (rss) rss.phase = 'drain';
    const drainStart = performance.now();
    const consumers = await startConsumers({
      driver: ctx.driver,
      destination,
      consumers: o.consumers,
      prefetch: o.prefetch,
      runId: ctx.runId,
      counters,
      trackSeqs: o.count,
    });
    try {
      await consumers.waitFor(produced.sent, drainStart + o.durationMs);
    } finally {
      await consumers.close();
    }
    progress.stop();
    rss?.stop();
    return {
      kind: 'backlog',
      run: ctx.run,
      destination: `/queue/${ctx.destinationName}`,
      fill: {
        sent: produced.sent,
        failed: produced.failed,
        durationMs: produced.lastReceiptAt - produced.startedAt,
        rate: ratePerSecond(produced.sent, produced.lastReceiptAt - produced.startedAt),
        receiptLatencyMs: produced.receiptLatency.summary(),
      },
      drain: {
        received: consumers.received,
        missing: Math.max(0, produced.sent - consumers.received),
        duplicates: consumers.duplicates,
        durationMs: consumers.lastReceivedAt === 0 ? 0 : consumers.lastReceivedAt - drainStart,
        rate: ratePerSecond(consumers.received, consumers.lastReceivedAt - drainStart),
        latencyMs: consumers.latency.summary(),
      },
      rss: rss ? { peakKiB: rss.peakKiB, samples: rss.samples } : null,
      errors: [...produced.errors, ...consumers.errors],
    };
  } finally {
    progress.stop();
    rss?.stop();
  }
}
