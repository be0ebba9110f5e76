/**
 * The soak's mixed persistent load (issue #20.5): two DrillLoad streams through failover clients at
 * once, each with its own ledger —
 *
 * - `queue`: a producer and a consumer (individual acks) on a fresh queue;
 * - `topic`: a producer on a fresh topic and a durable subscriber (a client id and a subscription
 *   name, JMS's durable TopicSubscriber / ActiveMQ's `clientID` + `subscriptionName`), which the
 *   failover client subscribes again under the same name on whichever node is master; every
 *   receipted message must reach that subscription, across kills and promotions.
 *
 * The rate is split evenly between the streams; bodies vary from 100 B to 16 KiB (log-uniform, so
 * small ones are as common as in real traffic while the large ones go through TOAST). Counts per
 * fault window and in total are the sum of the streams; each stream's own counts stay available.
 */
import { randomBytes } from 'node:crypto';
import {
  DRILL_BUCKET_MS,
  type DrillClientEvent,
  type DrillLedger,
  DrillLoad,
  type DrillTotals,
  type DrillWindowCounts,
} from './drill-load';
import type { DrillRun } from './drill-run';
import { bucketCounts } from './drill-timeline';

export const MIXED_BODY_MIN_BYTES = 100;
export const MIXED_BODY_MAX_BYTES = 16 * 1024;
/** The durable subscription's name (its client id is made unique per run). */
export const MIXED_SUBSCRIPTION = 'keel-soak';
const GOLDEN_RATIO_CONJUGATE = 0.618_033_988_749_895;

/**
 * Body size of message seq: log-uniform between 100 B and 16 KiB, spread evenly over consecutive
 * numbers (the golden-ratio sequence), the same for a given seq on every run.
 */
export function mixedBodyBytes(seq: number): number {
  const f = (seq * GOLDEN_RATIO_CONJUGATE) % 1;
  return Math.round(MIXED_BODY_MIN_BYTES * (MIXED_BODY_MAX_BYTES / MIXED_BODY_MIN_BYTES) ** f);
}

/** One fault window over every stream: counts added up, pauses the longest of any stream. */
export function sumWindowCounts(parts: readonly DrillWindowCounts[]): DrillWindowCounts {
  return {
    pauseMs: Math.max(0, ...parts.map((p) => p.pauseMs)),
    deliveryPauseMs: Math.max(0, ...parts.map((p) => p.deliveryPauseMs)),
    receipted: parts.reduce((n, p) => n + p.receipted, 0),
    delivered: parts.reduce((n, p) => n + p.delivered, 0),
    lost: parts.reduce((n, p) => n + p.lost, 0),
    duplicated: parts.reduce((n, p) => n + p.duplicated, 0),
  };
}

export function sumTotals(parts: readonly DrillTotals[]): DrillTotals {
  const sum = (f: (t: DrillTotals) => number) => parts.reduce((n, t) => n + f(t), 0);
  return {
    sent: sum((t) => t.sent),
    receipted: sum((t) => t.receipted),
    failed: sum((t) => t.failed),
    delivered: sum((t) => t.delivered),
    lost: sum((t) => t.lost),
    duplicated: sum((t) => t.duplicated),
    deliveredWithoutReceipt: sum((t) => t.deliveredWithoutReceipt),
  };
}

export class DrillMixedLoad implements DrillLedger {
  private constructor(readonly streams: readonly DrillLoad[]) {}

  /**
   * Opens the clients (the topic's subscriber with its client id), subscribes, starts both
   * producers at ratePerS / 2 each; resolves once both streams went round, after settleMs more.
   */
  static async start(
    run: DrillRun,
    failoverUrl: string,
    ratePerS: number,
    settleMs: number,
  ): Promise<DrillMixedLoad> {
    const clientId = `keel-soak-${randomBytes(3).toString('hex')}`;
    const queue = new DrillLoad(run, failoverUrl, {
      name: 'queue',
      kind: 'queue',
      bodyBytes: mixedBodyBytes,
    });
    const topic = new DrillLoad(run, failoverUrl, {
      name: 'topic',
      kind: 'topic',
      durable: { clientId, subscription: MIXED_SUBSCRIPTION },
      bodyBytes: mixedBodyBytes,
    });
    const queueConsumer = await queue.open('queue consumer');
    const queueProducer = await queue.open('queue producer');
    const subscriber = await topic.open('topic subscriber', clientId);
    const topicProducer = await topic.open('topic producer');
    run.log(`clients connected: ${failoverUrl}`);
    await Promise.all([
      queue.start(queueConsumer, queueProducer, ratePerS / 2, 0),
      topic.start(subscriber, topicProducer, ratePerS / 2, 0),
    ]);
    await run.sleep(settleMs);
    return new DrillMixedLoad([queue, topic]);
  }

  get loadStart(): number {
    return Math.min(...this.streams.map((s) => s.loadStart));
  }

  get loadEnd(): number {
    return Math.max(...this.streams.map((s) => s.loadEnd));
  }

  /** Once every stream has a receipt and a delivery after afterMs: the latest of them. */
  resumedAfter(afterMs: number): number | undefined {
    let latest = 0;
    for (const s of this.streams) {
      const at = s.resumedAfter(afterMs);
      if (at === undefined) return undefined;
      latest = Math.max(latest, at);
    }
    return latest;
  }

  /** Stops both producers at once and drains both consumers. */
  async stopAndDrain(): Promise<void> {
    await Promise.all(this.streams.map((s) => s.stopAndDrain()));
  }

  roundCounts(rounds: readonly { faultAt: number; endAt: number }[]): DrillWindowCounts[] {
    const per = this.streams.map((s) => s.roundCounts(rounds));
    return rounds.map((_, i) => sumWindowCounts(per.map((counts) => counts[i] as DrillWindowCounts)));
  }

  /** Each stream's window counts, by stream name. */
  streamRoundCounts(
    rounds: readonly { faultAt: number; endAt: number }[],
  ): Record<string, DrillWindowCounts[]> {
    return Object.fromEntries(this.streams.map((s) => [s.stream.name, s.roundCounts(rounds)]));
  }

  totals(): DrillTotals {
    return sumTotals(this.streams.map((s) => s.totals()));
  }

  /** Each stream's totals and destination, by stream name. */
  streamTotals(): Record<string, DrillTotals & { destination: string }> {
    return Object.fromEntries(
      this.streams.map((s) => [s.stream.name, { destination: s.destination, ...s.totals() }]),
    );
  }

  timeline(): { bucketMs: number; receipts: number[]; deliveries: number[] } {
    const merged = (f: (s: DrillLoad) => readonly number[]) => this.streams.flatMap((s) => [...f(s)]);
    return {
      bucketMs: DRILL_BUCKET_MS,
      receipts: bucketCounts(
        merged((s) => s.receiptTimes),
        this.loadStart,
        this.loadEnd,
        DRILL_BUCKET_MS,
      ),
      deliveries: bucketCounts(
        merged((s) => s.allDeliveryTimes),
        this.loadStart,
        this.loadEnd,
        DRILL_BUCKET_MS,
      ),
    };
  }

  relativeClientEvents(): DrillClientEvent[] {
    const start = this.loadStart;
    return this.streams
      .flatMap((s) => s.clientEvents)
      .map((e) => ({ ...e, atMs: e.atMs - start }))
      .sort((a, b) => a.atMs - b.atMs);
  }
}
