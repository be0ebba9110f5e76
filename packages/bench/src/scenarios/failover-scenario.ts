import type { BenchConnection, BenchDestination } from '../bench-driver';
import type { FailoverRunResult, LinkEventRecord } from '../bench-result';
import { ProgressLine } from '../progress';
import { LatencyRecorder } from '../stats';
import { bucketCounts, firstAtOrAfter, maxGapAround } from '../timeline';
import { type FlowCounters, produce, startConsumers } from './flow';
import type { ScenarioRunContext } from './flow-scenario';

/** Chart resolution of the run's timeline (the same as `keel drill`'s). */
export const FAILOVER_BUCKET_MS = 100;
/** How often the admin APIs are asked for their role after the kill, and how long at most. */
export const TAKEOVER_POLL_MS = 10;
export const TAKEOVER_POLL_TIMEOUT_MS = 60_000;
/** After the drain: time for late redeliveries (duplicates) to show. */
export const FAILOVER_DUPLICATE_GRACE_MS = 500;

/** The role the node at `adminUrl` reports (`GET /api/broker`), or null if it does not answer. */
export type AdminRoleProbe = (adminUrl: string, timeoutMs: number) => Promise<string | null>;

/** `GET {adminUrl}/api/broker` → its `role` (Keel's admin API; readable without credentials by default). */
export const fetchAdminRole: AdminRoleProbe = async (adminUrl, timeoutMs) => {
  try {
    const res = await fetch(`${adminUrl}/api/broker`, { signal: AbortSignal.timeout(timeoutMs) });
    if (!res.ok) return null;
    const body = (await res.json()) as { role?: unknown };
    return typeof body.role === 'string' ? body.role : null;
  } catch {
    return null;
  }
};

/**
 * `failover`: consumers subscribe, P producers send persistent messages at --rate with a receipt
 * each through failover connections (native `failover:(…)`, or the bench's STOMP list driver);
 * --kill-after-ms after the load started the master's process (--master-pid) is SIGKILLed, and
 * the load goes on until --duration-ms. With --admin-url the nodes' admin APIs are polled every
 * 10 ms after the kill until one reports `master` (the takeover). The consumers then get
 * --drain-timeout-ms to receive every receipted message. Counted as `keel drill` counts: sent,
 * receipted, received, lost (receipted, never received), duplicated; the pause is the longest gap
 * between receipts (deliveries) from the last one before the kill on.
 */
export async function runFailoverScenario(
  ctx: ScenarioRunContext,
  probe: AdminRoleProbe = fetchAdminRole,
): Promise<FailoverRunResult> {
  const o = ctx.options;
  const masterPid = o.masterPid;
  if (masterPid === undefined) throw new RangeError('the failover scenario needs masterPid');
  const destination: BenchDestination = { kind: 'queue', name: ctx.destinationName };
  const counters: FlowCounters = { sent: 0, received: 0 };
  const receipted = new Uint8Array(o.count);
  const delivered = new Uint8Array(o.count);
  const receiptTimes: number[] = [];
  const deliveryTimes: number[] = [];
  let outstanding = 0; // receipted, not delivered (yet)
  let deliveredWithoutReceipt = 0;
  const latency = new LatencyRecorder();
  const events: LinkEventRecord[] = [];
  const errors: string[] = [];
  let loadStart: number | null = null;
  let killAt: number | null = null;
  let takeover: { atMs: number; adminUrl: string } | null = null;
  let killTimer: NodeJS.Timeout | undefined;
  let polling: Promise<void> = Promise.resolve();
  let stopPolling = false;

  const watch = (conn: BenchConnection, name: string) => {
    conn.onLinkEvent?.((e) =>
      events.push({ atMs: performance.now() - (loadStart ?? performance.now()), connection: name, ...e }),
    );
    conn.onError((err) =>
      events.push({
        atMs: performance.now() - (loadStart ?? performance.now()),
        connection: name,
        event: 'error',
        detail: err.message,
      }),
    );
  };

  const consumers = await startConsumers({
    driver: ctx.driver,
    destination,
    consumers: o.consumers,
    prefetch: o.prefetch,
    runId: ctx.runId,
    counters,
    trackSeqs: o.count,
    onConnection: watch,
    onDelivery: (seq, sentAt, now, duplicate) => {
      if (duplicate || seq >= o.count) return;
      delivered[seq] = 1;
      deliveryTimes.push(now);
      latency.record(now - sentAt);
      if (receipted[seq] === 1) outstanding--;
      else deliveredWithoutReceipt++;
    },
  });

  const pollTakeover = async (): Promise<void> => {
    if (o.adminUrls.length === 0 || killAt === null) return;
    const deadline = performance.now() + TAKEOVER_POLL_TIMEOUT_MS;
    while (!stopPolling && performance.now() < deadline) {
      const t = performance.now();
      const roles = await Promise.all(o.adminUrls.map((u) => probe(u, 250)));
      const i = roles.indexOf('master');
      if (i >= 0) {
        // The answer came between t and now: take the midpoint.
        takeover = { atMs: (t + performance.now()) / 2, adminUrl: o.adminUrls[i]! };
        return;
      }
      const wait = TAKEOVER_POLL_MS - (performance.now() - t);
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    }
  };

  const kill = () => {
    try {
      process.kill(masterPid, 'SIGKILL');
      killAt = performance.now();
    } catch (err) {
      errors.push(`could not SIGKILL --master-pid ${masterPid}: ${(err as Error).message}`);
      return;
    }
    polling = pollTakeover();
  };

  const progress = new ProgressLine(
    `[failover ${o.target} ${ctx.driver.protocol} run ${ctx.run}/${o.runs}]`,
    () => counters,
    ctx.progressStream,
    !o.quiet,
    () => {
      if (killAt === null)
        return `kill in ${Math.max(0, ((loadStart ?? 0) + o.killAfterMs - performance.now()) / 1000).toFixed(0)}s`;
      const t = takeover as { atMs: number } | null;
      return `killed pid ${masterPid}${t ? `, new master after ${(t.atMs - killAt).toFixed(0)} ms` : ''}, outstanding ${outstanding}`;
    },
  );
  progress.start();
  try {
    const produced = await produce({
      driver: ctx.driver,
      destination,
      producers: o.producers,
      count: o.count,
      inFlight: o.inFlight,
      sizeBytes: o.sizeBytes,
      // produce() starts after its connections: the bound is re-based in onStarted below.
      deadline: Number.POSITIVE_INFINITY,
      shouldStop: () => loadStart !== null && performance.now() >= loadStart + o.durationMs,
      ratePerS: o.ratePerS,
      runId: ctx.runId,
      counters,
      onConnection: watch,
      onStarted: (at) => {
        loadStart = at;
        killTimer = setTimeout(kill, o.killAfterMs);
      },
      onReceipt: (seq, _sentAt, at) => {
        if (seq >= o.count) return;
        receipted[seq] = 1;
        receiptTimes.push(at);
        if (delivered[seq] === 0) outstanding++;
        else deliveredWithoutReceipt--;
      },
    });
    clearTimeout(killTimer);
    const loadEnd = performance.now();
    // Drain: every receipted message, or --drain-timeout-ms.
    const drainDeadline = loadEnd + o.drainTimeoutMs;
    while (outstanding > 0 && performance.now() < drainDeadline) await new Promise((r) => setTimeout(r, 50));
    await new Promise((r) => setTimeout(r, FAILOVER_DUPLICATE_GRACE_MS));
    stopPolling = true;
    await polling;
    progress.stop();
    const end = performance.now();
    const start = loadStart ?? loadEnd;
    receiptTimes.sort((a, b) => a - b);
    deliveryTimes.sort((a, b) => a - b);
    const k = killAt as number | null;
    const t = takeover as { atMs: number; adminUrl: string } | null;
    const firstReceipt = k === null ? null : firstAtOrAfter(receiptTimes, k);
    const firstDelivery = k === null ? null : firstAtOrAfter(deliveryTimes, k);
    return {
      kind: 'failover',
      run: ctx.run,
      destination: `/queue/${ctx.destinationName}`,
      killedPid: masterPid,
      killAtMs: k === null ? null : k - start,
      takeoverMs: t === null || k === null ? null : t.atMs - k,
      newMasterAdmin: t?.adminUrl ?? null,
      firstReceiptAfterKillMs: firstReceipt === null || k === null ? null : firstReceipt - k,
      firstDeliveryAfterKillMs: firstDelivery === null || k === null ? null : firstDelivery - k,
      receiptPauseMs: k === null ? 0 : maxGapAround(receiptTimes, k, loadEnd),
      deliveryPauseMs: k === null ? 0 : maxGapAround(deliveryTimes, k, loadEnd),
      sent: produced.started,
      receipted: produced.sent,
      failed: produced.failed,
      received: deliveryTimes.length,
      lost: outstanding,
      duplicated: consumers.duplicates,
      deliveredWithoutReceipt,
      durationMs: end - start,
      latencyMs: latency.summary(),
      receiptLatencyMs: produced.receiptLatency.summary(),
      timeline: {
        bucketMs: FAILOVER_BUCKET_MS,
        receipts: bucketCounts(receiptTimes, start, end, FAILOVER_BUCKET_MS),
        deliveries: bucketCounts(deliveryTimes, start, end, FAILOVER_BUCKET_MS),
      },
      events: events.map((e) => ({ ...e, atMs: Math.round(e.atMs * 10) / 10 })),
      errors: [...errors, ...produced.errors, ...consumers.errors],
    };
  } finally {
    clearTimeout(killTimer);
    stopPolling = true;
    progress.stop();
    await consumers.close();
  }
}
