import type { BenchOptions, Scenario, Target } from './bench-options';
import type { MessageCost } from './cost-meter';
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
  /** CPU, WAL bytes and fsyncs per message sent (cost-meter.ts); absent in older reports. */
  cost?: MessageCost;
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

/** A connection's failover event, ms since the load started. */
export interface LinkEventRecord {
  atMs: number;
  connection: string;
  event: 'interrupted' | 'resumed' | 'error';
  detail: string;
}

/** One run of `failover`: steady load, the master SIGKILLed, the load kept up. Times in ms. */
export interface FailoverRunResult {
  kind: 'failover';
  run: number;
  destination: string;
  killedPid: number;
  /** When the kill was sent, ms after the load started; null if it could not be sent. */
  killAtMs: number | null;
  /** Kill → the first node of --admin-url reporting role master; null without --admin-url or if none did. */
  takeoverMs: number | null;
  /** The admin URL that reported master after the kill. */
  newMasterAdmin: string | null;
  /** Kill → the first RECEIPT (first delivery) after it; null if none came. */
  firstReceiptAfterKillMs: number | null;
  firstDeliveryAfterKillMs: number | null;
  /** Longest gap between receipts (deliveries) from the last one before the kill to the end of the load. */
  receiptPauseMs: number;
  deliveryPauseMs: number;
  /** Sends started. */
  sent: number;
  receipted: number;
  /** Sends that failed (the failover transport gave up). */
  failed: number;
  /** Distinct messages received. */
  received: number;
  /** Receipted but never received. */
  lost: number;
  /** Deliveries of a message received before. */
  duplicated: number;
  /** Received although the send had no receipt (in doubt at the kill, stored after all). */
  deliveredWithoutReceipt: number;
  /** From the first send to the end of the drain. */
  durationMs: number;
  latencyMs: LatencySummary;
  receiptLatencyMs: LatencySummary;
  /** Receipts and first deliveries per 100 ms from the start of the load (a chart of the pause). */
  timeline: { bucketMs: number; receipts: number[]; deliveries: number[] };
  events: LinkEventRecord[];
  errors: string[];
}

/** The steady load of `connections` in one phase. */
export interface PhaseLoad {
  /** Receipted sends started in this phase. */
  sent: number;
  /** Messages received that were sent in this phase. */
  received: number;
  durationMs: number;
  /** Receipted sends per second in the phase. */
  sendRate: number;
  latencyMs: LatencySummary;
  receiptLatencyMs: LatencySummary;
}

/** One run of `connections`: load, then N idle connections opened, then load with them. */
export interface ConnectionsRunResult {
  kind: 'connections';
  run: number;
  destination: string;
  idle: {
    requested: number;
    opened: number;
    failed: number;
    /** Each idle connection subscribed to a queue of its own (--idle-subscribe). */
    subscribed: boolean;
    batch: number;
    /** From the first connect to the last one done. */
    rampMs: number;
    /** Each connection's TCP connect + handshake (+ SUBSCRIBE and its receipt with --idle-subscribe). */
    connectMs: LatencySummary;
    /** Closing them all, in batches. */
    closeMs: number;
    errors: string[];
  };
  before: PhaseLoad;
  /** The load sent during the ramp-up (neither before nor with every idle connection open). */
  ramp: PhaseLoad;
  withIdle: PhaseLoad;
  sendFailed: number;
  missing: number;
  duplicates: number;
  /** VmRSS of --broker-pid: before the ramp, with every idle connection open, peak; null without --broker-pid. */
  rss: {
    beforeKiB: number | null;
    withIdleKiB: number | null;
    peakKiB: number | null;
    /** (withIdle - before) / opened. */
    perIdleConnectionKiB: number | null;
    samples: RssSample[];
  } | null;
  errors: string[];
}

/** VmRSS of the broker at the points of a many-queues run, KiB (null where not read). */
export interface ManyQueuesRss {
  /** Before the consumers connected (the broker as the run found it). */
  baselineKiB: number | null;
  /** Every consumer attached, --idle-settle-ms later, no load yet. */
  idleKiB: number | null;
  /** Highest sample from the start of the load to the end of the drain. */
  peakKiB: number | null;
  /** Median of the samples of the second half of the load phase. */
  steadyKiB: number | null;
  /** (idle - baseline) / queues: the memory of one queue with its consumers. */
  idlePerQueueKiB: number | null;
  samples: RssSample[];
}

/** One run of `many-queues`: N queues × K consumers each, producers spreading over all queues. */
export interface ManyQueuesRunResult {
  kind: 'many-queues';
  run: number;
  /** The queues' common prefix: queues are `<prefix>.q-0` … `<prefix>.q-(N-1)`. */
  destinationPrefix: string;
  queues: number;
  consumersPerQueue: number;
  /** Subscriptions made (queues × consumersPerQueue when all succeeded). */
  subscriptions: number;
  /** Connecting the consumers and subscribing them all, ms. */
  subscribeMs: number;
  sent: number;
  sendFailed: number;
  received: number;
  missing: number;
  duplicates: number;
  /** From the first send to the last message received. */
  durationMs: number;
  sendRate: number;
  receiveRate: number;
  latencyMs: LatencySummary;
  receiptLatencyMs: LatencySummary;
  /** CPU (and WAL with --pg-url) per message sent, over the load phase only. */
  cost?: MessageCost;
  rss: ManyQueuesRss | null;
  errors: string[];
}

export type RunResult =
  | FlowRunResult
  | BacklogRunResult
  | FailoverRunResult
  | ConnectionsRunResult
  | ManyQueuesRunResult;

/** True when a run lost messages or could not do what it was asked (the command exits 1). */
export function runIncomplete(r: RunResult): boolean {
  switch (r.kind) {
    case 'flow':
      return r.missing > 0 || r.sendFailed > 0;
    case 'backlog':
      return r.drain.missing > 0 || r.fill.failed > 0;
    case 'failover':
      return r.lost > 0 || r.failed > 0 || r.killAtMs === null;
    case 'connections':
      return r.missing > 0 || r.sendFailed > 0 || r.idle.failed > 0;
    case 'many-queues':
      return r.missing > 0 || r.sendFailed > 0 || r.subscriptions < r.queues * r.consumersPerQueue;
  }
}

/** What `--out` writes and docs/benchmarks.md is made from. */
export interface BenchReport {
  tool: 'keel-bench';
  formatVersion: 1;
  scenario: Scenario;
  target: Target;
  /** `stomp` or `native` (reports from before --protocol existed say `stomp`). */
  protocol: string;
  startedAt: string;
  /** The options, without the passcode. */
  config: Omit<BenchOptions, 'passcode' | 'help' | 'quiet' | 'out'>;
  machine: MachineInfo;
  runs: RunResult[];
  /** Median of each metric across the runs. */
  median: Record<string, number>;
}

/** The finite per-message costs of a run, flat. */
function costMetrics(c: MessageCost | undefined): Record<string, number> {
  const costs: Record<string, number> = {};
  if (c === undefined) return costs;
  for (const k of [
    'brokerCpuUsPerMsg',
    'brokerReadsPerMsg',
    'brokerWritesPerMsg',
    'pgCpuUsPerMsg',
    'loadCpuUsPerMsg',
    'walBytesPerMsg',
    'walSyncsPerMsg',
  ] as const) {
    const v = c[k];
    if (v !== undefined && Number.isFinite(v)) costs[k] = v;
  }
  return costs;
}

/** The numbers of a run, flat, for medians and tables. */
export function runMetrics(r: RunResult): Record<string, number> {
  if (r.kind === 'many-queues') {
    const m: Record<string, number> = {
      ...costMetrics(r.cost),
      queues: r.queues,
      subscriptions: r.subscriptions,
      subscribeMs: r.subscribeMs,
      sent: r.sent,
      received: r.received,
      missing: r.missing,
      sendRate: r.sendRate,
      receiveRate: r.receiveRate,
      latencyP50Ms: r.latencyMs.p50,
      latencyP99Ms: r.latencyMs.p99,
      latencyMaxMs: r.latencyMs.max,
    };
    const rss = r.rss;
    if (rss?.baselineKiB != null) m.rssBaselineMiB = rss.baselineKiB / 1024;
    if (rss?.idleKiB != null) m.rssIdleMiB = rss.idleKiB / 1024;
    if (rss?.peakKiB != null) m.rssPeakMiB = rss.peakKiB / 1024;
    if (rss?.steadyKiB != null) m.rssSteadyMiB = rss.steadyKiB / 1024;
    if (rss?.idlePerQueueKiB != null) m.rssIdlePerQueueKiB = rss.idlePerQueueKiB;
    return m;
  }
  if (r.kind === 'flow') {
    const costs = costMetrics(r.cost);
    return {
      ...costs,
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
  if (r.kind === 'failover') {
    const m: Record<string, number> = {
      sent: r.sent,
      receipted: r.receipted,
      received: r.received,
      lost: r.lost,
      duplicated: r.duplicated,
      failed: r.failed,
      receiptPauseMs: r.receiptPauseMs,
      deliveryPauseMs: r.deliveryPauseMs,
      latencyP50Ms: r.latencyMs.p50,
      latencyP99Ms: r.latencyMs.p99,
      latencyMaxMs: r.latencyMs.max,
    };
    if (r.takeoverMs !== null) m.takeoverMs = r.takeoverMs;
    if (r.firstReceiptAfterKillMs !== null) m.firstReceiptAfterKillMs = r.firstReceiptAfterKillMs;
    if (r.firstDeliveryAfterKillMs !== null) m.firstDeliveryAfterKillMs = r.firstDeliveryAfterKillMs;
    return m;
  }
  if (r.kind === 'connections') {
    const m: Record<string, number> = {
      idleOpened: r.idle.opened,
      idleFailed: r.idle.failed,
      rampMs: r.idle.rampMs,
      connectP50Ms: r.idle.connectMs.p50,
      connectP99Ms: r.idle.connectMs.p99,
      connectMaxMs: r.idle.connectMs.max,
      beforeP50Ms: r.before.latencyMs.p50,
      beforeP99Ms: r.before.latencyMs.p99,
      idleP50Ms: r.withIdle.latencyMs.p50,
      idleP99Ms: r.withIdle.latencyMs.p99,
      beforeSendRate: r.before.sendRate,
      idleSendRate: r.withIdle.sendRate,
      missing: r.missing,
    };
    if (r.rss?.beforeKiB != null) m.rssBeforeMiB = r.rss.beforeKiB / 1024;
    if (r.rss?.withIdleKiB != null) m.rssIdleMiB = r.rss.withIdleKiB / 1024;
    if (r.rss?.perIdleConnectionKiB != null) m.rssPerIdleConnectionKiB = r.rss.perIdleConnectionKiB;
    return m;
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
