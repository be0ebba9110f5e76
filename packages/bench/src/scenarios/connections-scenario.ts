import { readFileSync } from 'node:fs';
import { InvalidArgumentError } from '@keel/protocol';
import type { BenchConnection, BenchDestination } from '../bench-driver';
import type { ConnectionsRunResult, PhaseLoad } from '../bench-result';
import { ProgressLine } from '../progress';
import { RssSampler } from '../rss-sampler';
import { LatencyRecorder, ratePerSecond } from '../stats';
import { formatNumber } from '../table';
import { type FlowCounters, type ProduceResult, produce, startConsumers } from './flow';
import type { ScenarioRunContext } from './flow-scenario';

/** File descriptors kept free besides the idle connections (load connections, files, the runtime). */
export const FD_HEADROOM = 256;
/** The ramp stops after this many failed connects: the broker (or this machine) has had enough. */
export const MAX_IDLE_CONNECT_FAILURES = 200;
/** Load before the measured `before` phase (connections, JIT, the queue's creation), at most. */
export const CONNECTIONS_WARMUP_MS = 2_000;
/** Bound on the whole run besides its phases: the ramp, the drain, the closing. */
export const CONNECTIONS_RAMP_TIMEOUT_MS = 600_000;

/** The soft `Max open files` limit from the text of /proc/self/limits (proc(5)); null if absent or unlimited. */
export function parseMaxOpenFiles(limits: string): number | null {
  const m = /^Max open files\s+(\S+)\s+(\S+)/m.exec(limits);
  if (!m || m[1] === 'unlimited') return null;
  const n = Number(m[1]);
  return Number.isSafeInteger(n) ? n : null;
}

function maxOpenFiles(): number | null {
  try {
    return parseMaxOpenFiles(readFileSync('/proc/self/limits', 'utf8'));
  } catch {
    return null;
  }
}

type Phase = 'warmup' | 'before' | 'ramp' | 'withIdle';

class PhaseStats {
  sent = 0;
  received = 0;
  readonly latency = new LatencyRecorder();
  readonly receiptLatency = new LatencyRecorder();

  result(durationMs: number): PhaseLoad {
    return {
      sent: this.sent,
      received: this.received,
      durationMs,
      sendRate: ratePerSecond(this.sent, durationMs),
      latencyMs: this.latency.summary(),
      receiptLatencyMs: this.receiptLatency.summary(),
    };
  }
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * `connections`: C consumers and P producers keep a steady load (--rate, receipts, individual
 * acks) on one queue. After a warm-up (a fifth of --duration-ms, 2 s at most, not measured) and
 * --duration-ms of load, --idle-connections more connections are opened,
 * --connect-batch at a time (each: TCP connect and handshake — CONNECT/CONNECTED, or HELLO/WELCOME
 * and a session — with heart-beats off; with --idle-subscribe also a SUBSCRIBE to a queue of its
 * own, `<queue>.idle-N`, awaited). They then sit idle while the load runs --duration-ms more.
 * Reported: connect times, the broker's VmRSS (--broker-pid) before and with them, and the load's
 * latency sent before the ramp against sent with every idle connection open. Everything is closed
 * at the end, in batches.
 */
export async function runConnectionsScenario(ctx: ScenarioRunContext): Promise<ConnectionsRunResult> {
  const o = ctx.options;
  const limit = maxOpenFiles();
  const needed = o.idleConnections + o.producers + o.consumers + FD_HEADROOM;
  if (limit !== null && needed > limit) {
    throw new InvalidArgumentError(
      `--idle-connections ${o.idleConnections} needs about ${needed} file descriptors, the limit (ulimit -n) is ${limit}: raise it or lower --idle-connections (the broker needs as many)`,
    );
  }
  const destination: BenchDestination = { kind: 'queue', name: ctx.destinationName };
  const counters: FlowCounters = { sent: 0, received: 0 };
  const phases: Record<Phase, PhaseStats> = {
    warmup: new PhaseStats(),
    before: new PhaseStats(),
    ramp: new PhaseStats(),
    withIdle: new PhaseStats(),
  };
  const warmupMs = Math.min(CONNECTIONS_WARMUP_MS, Math.floor(o.durationMs / 5));
  let warmupEnd = Number.POSITIVE_INFINITY;
  let rampStart = Number.POSITIVE_INFINITY;
  let rampEnd = Number.POSITIVE_INFINITY;
  const phaseOf = (sentAt: number): Phase =>
    sentAt < warmupEnd ? 'warmup' : sentAt < rampStart ? 'before' : sentAt < rampEnd ? 'ramp' : 'withIdle';
  const rss = o.brokerPid === undefined ? null : new RssSampler(o.brokerPid);
  const idle: BenchConnection[] = [];
  const connectMs = new LatencyRecorder();
  const idleErrors: string[] = [];
  let idleFailed = 0;
  let stopLoad = false;
  let started: () => void = () => undefined;
  const loadStarted = new Promise<void>((resolve) => {
    started = resolve;
  });

  const consumers = await startConsumers({
    driver: ctx.driver,
    destination,
    consumers: o.consumers,
    prefetch: o.prefetch,
    runId: ctx.runId,
    counters,
    trackSeqs: o.count,
    onDelivery: (_seq, sentAt, now, duplicate) => {
      if (duplicate) return;
      const p = phases[phaseOf(sentAt)];
      p.received++;
      p.latency.record(now - sentAt);
    },
  });
  const progress = new ProgressLine(
    `[connections ${o.target} ${ctx.driver.protocol} run ${ctx.run}/${o.runs}]`,
    () => counters,
    ctx.progressStream,
    !o.quiet,
    () =>
      `idle ${formatNumber(idle.length)}/${formatNumber(o.idleConnections)}${idleFailed ? ` (${idleFailed} failed)` : ''}`,
  );
  if (rss) {
    rss.phase = 'before';
    rss.start();
  }
  progress.start();
  let rssBefore: number | null = null;
  let rssWithIdle: number | null = null;
  let closeMs = 0;
  let producing: Promise<ProduceResult> | null = null;
  try {
    producing = produce({
      driver: ctx.driver,
      destination,
      producers: o.producers,
      count: o.count,
      inFlight: o.inFlight,
      sizeBytes: o.sizeBytes,
      deadline: performance.now() + 2 * o.durationMs + CONNECTIONS_RAMP_TIMEOUT_MS,
      shouldStop: () => stopLoad,
      ratePerS: o.ratePerS,
      runId: ctx.runId,
      counters,
      onStarted: (at) => {
        warmupEnd = at + warmupMs;
        started();
      },
      onReceipt: (_seq, sentAt, at) => {
        const p = phases[phaseOf(sentAt)];
        p.sent++;
        p.receiptLatency.record(at - sentAt);
      },
    });
    // If the producers cannot connect, produce() rejects before onStarted: do not wait forever.
    await Promise.race([loadStarted, producing]);
    await sleep(warmupMs + o.durationMs);

    // ----- ramp up ----------------------------------------------------------------------------------
    rssBefore = rss?.read() ?? null;
    if (rss) rss.phase = 'ramp';
    rampStart = performance.now();
    const rampDeadline = rampStart + CONNECTIONS_RAMP_TIMEOUT_MS;
    for (let next = 0; next < o.idleConnections; ) {
      if (idleFailed >= MAX_IDLE_CONNECT_FAILURES || performance.now() >= rampDeadline) {
        idleErrors.push(
          `ramp stopped after ${idle.length} connections: ${idleFailed} failed connects${performance.now() >= rampDeadline ? ', time bound reached' : ''}`,
        );
        break;
      }
      const batch = Math.min(o.connectBatch, o.idleConnections - next);
      await Promise.all(
        Array.from({ length: batch }, async (_, k) => {
          const n = next + k + 1;
          const t0 = performance.now();
          let conn: BenchConnection | null = null;
          try {
            conn = await ctx.driver.connect(`idle-${n}`);
            if (o.idleSubscribe) {
              await conn.subscribe(
                { kind: 'queue', name: `${ctx.destinationName}.idle-${n}` },
                { prefetch: 1, onMessage: (m) => m.ack() },
              );
            }
            connectMs.record(performance.now() - t0);
            idle.push(conn);
          } catch (err) {
            idleFailed++;
            if (idleErrors.length < 10) idleErrors.push(`idle-${n}: ${(err as Error).message}`);
            await conn?.close().catch(() => undefined);
          }
        }),
      );
      next += batch;
    }
    rampEnd = performance.now();
    const opened = idle.length;
    if (rss) rss.phase = 'withIdle';

    // ----- load with the idle connections open ------------------------------------------------------
    await sleep(o.durationMs);
    rssWithIdle = rss?.read() ?? null;
    const loadEnd = performance.now();
    stopLoad = true;
    const produced = await producing;
    await consumers.waitFor(produced.sent, performance.now() + o.drainTimeoutMs);
    progress.stop();

    // ----- close ------------------------------------------------------------------------------------
    if (rss) rss.phase = 'close';
    const closeStart = performance.now();
    await closeInBatches(idle, o.connectBatch);
    closeMs = performance.now() - closeStart;
    rss?.stop();

    const start = Math.min(warmupEnd, rampStart);
    return {
      kind: 'connections',
      run: ctx.run,
      destination: `/queue/${ctx.destinationName}`,
      idle: {
        requested: o.idleConnections,
        opened,
        failed: idleFailed,
        subscribed: o.idleSubscribe,
        batch: o.connectBatch,
        rampMs: rampEnd - rampStart,
        connectMs: connectMs.summary(),
        closeMs,
        errors: idleErrors,
      },
      before: phases.before.result(rampStart - start),
      ramp: phases.ramp.result(rampEnd - rampStart),
      withIdle: phases.withIdle.result(loadEnd - rampEnd),
      sendFailed: produced.failed,
      missing: Math.max(0, produced.sent - consumers.received),
      duplicates: consumers.duplicates,
      rss: rss
        ? {
            beforeKiB: rssBefore,
            withIdleKiB: rssWithIdle,
            peakKiB: rss.peakKiB,
            perIdleConnectionKiB:
              rssBefore !== null && rssWithIdle !== null && opened > 0
                ? (rssWithIdle - rssBefore) / opened
                : null,
            samples: rss.samples,
          }
        : null,
      errors: [...idleErrors.slice(0, 3), ...produced.errors, ...consumers.errors],
    };
  } finally {
    stopLoad = true;
    progress.stop();
    rss?.stop();
    await producing?.catch(() => undefined);
    await closeInBatches(idle, o.connectBatch);
    await consumers.close();
  }
}

/** Close connections `batch` at a time (each close is bounded by its driver); empties the list. */
async function closeInBatches(conns: BenchConnection[], batch: number): Promise<void> {
  const all = conns.splice(0);
  for (let i = 0; i < all.length; i += batch) {
    await Promise.all(all.slice(i, i + batch).map((c) => c.close().catch(() => undefined)));
  }
}
