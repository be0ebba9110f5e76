import type { BenchDestination } from '../bench-driver';
import type { ManyQueuesRss, ManyQueuesRunResult } from '../bench-result';
import { CostMeter, type MessageCost } from '../cost-meter';
import { ProgressLine } from '../progress';
import { type RssSample, RssSampler } from '../rss-sampler';
import { median, ratePerSecond } from '../stats';
import { formatNumber } from '../table';
import { type FlowCounters, type ProduceResult, produce, startConsumers } from './flow';
import type { ScenarioRunContext } from './flow-scenario';

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** The name of queue `q` (0-based) of a run whose destination name is `prefix`. */
export function queueName(prefix: string, q: number): string {
  return `${prefix}.q-${q}`;
}

/**
 * The RSS figures of a run from its samples (phases `load` and `drain` after the idle reading):
 * peak = the highest sample of the load and the drain; steady = the median of the load samples
 * taken in the second half of the load (from `loadHalfMs`, ms on the samples' clock), when the
 * broker has taken the load in; idle per queue = (idle - baseline) / queues. Pure.
 */
export function summarizeManyQueuesRss(
  samples: readonly RssSample[],
  baselineKiB: number | null,
  idleKiB: number | null,
  queues: number,
  loadHalfMs: number,
): Omit<ManyQueuesRss, 'samples'> {
  const loaded = samples.filter((s) => s.phase === 'load' || s.phase === 'drain');
  const steady = samples.filter((s) => s.phase === 'load' && s.tMs >= loadHalfMs).map((s) => s.rssKiB);
  return {
    baselineKiB,
    idleKiB,
    peakKiB: loaded.length === 0 ? null : Math.max(...loaded.map((s) => s.rssKiB)),
    steadyKiB: steady.length === 0 ? null : median(steady),
    idlePerQueueKiB:
      baselineKiB !== null && idleKiB !== null && queues > 0 ? (idleKiB - baselineKiB) / queues : null,
  };
}

/**
 * `many-queues` (issue #25.4): --queues N durable queues, --consumers-per-queue K consumers on each
 * (N × K subscriptions spread over --consumers connections, flow.ts subscriptionPlan), then P
 * producers with --in-flight sends each send persistent messages to the queues in turn (message i
 * to queue i mod N) for --duration-ms (or --count). Reported: received msg/s and latency; the
 * broker's VmRSS (--broker-pid) before the consumers connected, with all of them attached and
 * idle (after --idle-settle-ms), peak and steady under load; CPU per message of the broker (and of
 * Postgres with --pg-url) over the load and its drain only, not the subscribing.
 */
export async function runManyQueuesScenario(ctx: ScenarioRunContext): Promise<ManyQueuesRunResult> {
  const o = ctx.options;
  const queues: BenchDestination[] = Array.from({ length: o.queues }, (_, q) => ({
    kind: 'queue',
    name: queueName(ctx.destinationName, q),
  }));
  const counters: FlowCounters = { sent: 0, received: 0 };
  const rss = o.brokerPid === undefined ? null : new RssSampler(o.brokerPid);
  const baselineKiB = rss?.read() ?? null;
  if (rss) {
    rss.phase = 'subscribe';
    rss.start();
  }
  const subscribeStart = performance.now();
  const consumers = await startConsumers({
    driver: ctx.driver,
    destination: queues[0]!,
    destinations: queues,
    consumersPerDestination: o.consumersPerQueue,
    consumers: o.consumers,
    prefetch: o.prefetch,
    runId: ctx.runId,
    counters,
    trackSeqs: o.count,
  }).catch((err) => {
    rss?.stop();
    throw err;
  });
  const subscribeMs = performance.now() - subscribeStart;
  const progress = new ProgressLine(
    `[many-queues ${o.target} ${ctx.driver.protocol} ${formatNumber(o.queues)} queues run ${ctx.run}/${o.runs}]`,
    () => counters,
    ctx.progressStream,
    !o.quiet,
  );
  let meter: CostMeter | null = null;
  try {
    if (rss) rss.phase = 'idle';
    await sleep(o.idleSettleMs);
    const idleKiB = rss?.read() ?? null;

    meter = new CostMeter({ brokerPid: o.brokerPid, pgUrl: o.pgUrl, settleMs: o.costSettleMs });
    await meter.start();
    if (rss) rss.phase = 'load';
    let loadStartMs = 0;
    progress.start();
    const startedAt = performance.now();
    const produced: ProduceResult = await produce({
      driver: ctx.driver,
      destination: queues[0]!,
      destinationFor: (seq) => queues[seq % queues.length]!,
      producers: o.producers,
      count: o.count,
      inFlight: o.inFlight,
      sizeBytes: o.sizeBytes,
      deadline: startedAt + o.durationMs,
      ratePerS: o.ratePerS,
      runId: ctx.runId,
      counters,
      onStarted: () => {
        loadStartMs = rss?.elapsedMs() ?? 0;
      },
    });
    // On the samples' clock: where the second half of the load began.
    const loadHalfMs = (loadStartMs + (rss?.elapsedMs() ?? 0)) / 2;
    if (rss) rss.phase = 'drain';
    await consumers.waitFor(produced.sent, performance.now() + o.drainTimeoutMs);
    progress.stop();
    const m = meter;
    meter = null;
    const cost: MessageCost = await m.finish(produced.sent);
    rss?.stop();
    const end = Math.max(consumers.lastReceivedAt, produced.lastReceiptAt);
    return {
      kind: 'many-queues',
      run: ctx.run,
      destinationPrefix: `/queue/${ctx.destinationName}`,
      queues: o.queues,
      consumersPerQueue: o.consumersPerQueue,
      subscriptions: o.queues * o.consumersPerQueue,
      subscribeMs,
      sent: produced.sent,
      sendFailed: produced.failed,
      received: consumers.received,
      missing: Math.max(0, produced.sent - consumers.received),
      duplicates: consumers.duplicates,
      durationMs: end - produced.startedAt,
      sendRate: ratePerSecond(produced.sent, produced.lastReceiptAt - produced.startedAt),
      receiveRate: ratePerSecond(consumers.received, consumers.lastReceivedAt - produced.startedAt),
      latencyMs: consumers.latency.summary(),
      receiptLatencyMs: produced.receiptLatency.summary(),
      cost,
      rss: rss
        ? {
            ...summarizeManyQueuesRss(rss.samples, baselineKiB, idleKiB, o.queues, loadHalfMs),
            samples: rss.samples,
          }
        : null,
      errors: [...produced.errors, ...consumers.errors],
    };
  } finally {
    progress.stop();
    rss?.stop();
    await meter?.close();
    await consumers.close();
  }
}
