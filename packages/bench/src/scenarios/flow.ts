import type {
  BenchConnection,
  BenchDestination,
  BenchDriver,
  BenchSubscribeOptions,
  BenchSubscription,
} from '../bench-driver';
import { decodePayload, encodePayload } from '../payload';
import { LatencyRecorder } from '../stats';

/** Live counters the progress line reads. */
export interface FlowCounters {
  sent: number;
  received: number;
}

export interface ProduceOptions {
  driver: BenchDriver;
  destination: BenchDestination;
  /** Where send `seq` goes (many-queues spreads them); default `destination` for every send. */
  destinationFor?: (seq: number) => BenchDestination;
  producers: number;
  /** Messages to send in total, claimed by the producers' send loops as they go. */
  count: number;
  /** Send loops per producer: sends awaiting their receipt on one connection. */
  inFlight: number;
  sizeBytes: number;
  /** No new send starts at or after this `performance.now()` instant. */
  deadline: number;
  /** Sends per second over all producers (a fixed schedule: send i at start + i/rate); 0 = unpaced. */
  ratePerS?: number;
  /** Checked before each send: true stops the producers (besides count and deadline). */
  shouldStop?: () => boolean;
  /** Called for each send when its RECEIPT came (seq, performance.now() of the send and receipt). */
  onReceipt?: (seq: number, sentAt: number, receiptAt: number) => void;
  /** Called for each send that failed. */
  onFailure?: (seq: number, err: Error) => void;
  /** Called once per producer connection, before sending (e.g. to watch its failover events). */
  onConnection?: (conn: BenchConnection, name: string) => void;
  /** Called once every producer is connected, with the `performance.now()` the sending starts at. */
  onStarted?: (startedAt: number) => void;
  runId: string;
  counters: FlowCounters;
}

export interface ProduceResult {
  /** Sends started. */
  started: number;
  /** Sends the broker confirmed with a RECEIPT. */
  sent: number;
  /** Sends that failed (their connection failed before the receipt). */
  failed: number;
  startedAt: number;
  lastReceiptAt: number;
  /** Time from writing SEND to reading its RECEIPT, in ms. */
  receiptLatency: LatencyRecorder;
  errors: string[];
}

/**
 * P producer connections, each with `inFlight` concurrent send loops; every send is persistent and
 * waits for its receipt (the broker's confirmation that the message is stored). Bounded by `count`
 * and `deadline`; paced to `ratePerS` when given (a send late on the schedule goes at once, the
 * schedule does not slip: a stall is followed by a catch-up burst bounded by the window).
 */
export async function produce(o: ProduceOptions): Promise<ProduceResult> {
  const receiptLatency = new LatencyRecorder();
  const errors: string[] = [];
  let claimed = 0;
  let sent = 0;
  let failed = 0;
  let lastReceiptAt = 0;
  const conns: BenchConnection[] = [];
  const rate = o.ratePerS ?? 0;
  let started = 0;
  const stopped = () => claimed >= o.count || performance.now() >= o.deadline || o.shouldStop?.() === true;
  const destinationFor = o.destinationFor ?? (() => o.destination);
  try {
    for (let i = 0; i < o.producers; i++) {
      const name = `producer-${i + 1}`;
      const conn = await o.driver.connect(name);
      conns.push(conn);
      o.onConnection?.(conn, name);
    }
    const startedAt = performance.now();
    lastReceiptAt = startedAt;
    o.onStarted?.(startedAt);
    const loop = async (conn: BenchConnection): Promise<void> => {
      while (!stopped()) {
        const seq = claimed++;
        if (rate > 0) {
          const due = startedAt + (seq * 1000) / rate;
          const wait = due - performance.now();
          if (wait > 0) await sleep(wait);
          if (performance.now() >= o.deadline || o.shouldStop?.() === true) return;
        }
        started++;
        const t0 = performance.now();
        const body = encodePayload({ runId: o.runId, seq, sentAtMs: t0 }, o.sizeBytes);
        try {
          await conn.send(destinationFor(seq), body);
        } catch (err) {
          failed++;
          errors.push((err as Error).message);
          o.onFailure?.(seq, err as Error);
          return;
        }
        const t1 = performance.now();
        receiptLatency.record(t1 - t0);
        lastReceiptAt = t1;
        sent++;
        o.counters.sent++;
        o.onReceipt?.(seq, t0, t1);
      }
    };
    const loops: Promise<void>[] = [];
    for (const conn of conns) for (let w = 0; w < o.inFlight; w++) loops.push(loop(conn));
    await Promise.all(loops);
    return { started, sent, failed, startedAt, lastReceiptAt, receiptLatency, errors: dedupe(errors) };
  } finally {
    await Promise.all(conns.map((c) => c.close()));
  }
}

export interface ConsumeOptions {
  driver: BenchDriver;
  destination: BenchDestination;
  /** Consumer connections. */
  consumers: number;
  /**
   * many-queues: every destination gets `consumersPerDestination` subscriptions, spread over the
   * `consumers` connections (see subscriptionPlan). Default: `destination`, one subscription per
   * connection.
   */
  destinations?: readonly BenchDestination[];
  consumersPerDestination?: number;
  prefetch: number;
  runId: string;
  counters: FlowCounters;
  /** For queues: the highest seq + 1 to expect, to count duplicates; 0 = do not track. */
  trackSeqs: number;
  /**
   * Called for every message of this run, after the duplicate check (performance.now() of its
   * arrival; `duplicate` only when seqs are tracked).
   */
  onDelivery?: (seq: number, sentAt: number, receivedAt: number, duplicate: boolean) => void;
  /** Called once per consumer connection, after it subscribed. */
  onConnection?: (conn: BenchConnection, name: string) => void;
}

export interface Consumers {
  /** Messages of this run received (each subscriber counts for topics). */
  readonly received: number;
  /** Messages of this run received more than once (queues only). */
  readonly duplicates: number;
  /** Messages from other runs (left on a reused queue), acknowledged and ignored. */
  readonly stale: number;
  readonly firstReceivedAt: number;
  readonly lastReceivedAt: number;
  /** End-to-end latency: the producer's write of SEND to the consumer's read of MESSAGE, in ms. */
  readonly latency: LatencyRecorder;
  readonly errors: string[];
  /** Resolves true once `count` messages have arrived, false at `deadline` (performance.now()). */
  waitFor(count: number, deadline: number): Promise<boolean>;
  close(): Promise<void>;
}

/**
 * Which destinations each of `connections` connections subscribes to: subscription k (0-based) of
 * destination q goes on connection (q × perDestination + k) mod connections, so each destination's
 * consumers sit on different connections while there are enough, and the connections carry equal
 * shares. Returns, per connection, the destination indexes in subscription order. Pure.
 */
export function subscriptionPlan(
  destinations: number,
  perDestination: number,
  connections: number,
): number[][] {
  const plan: number[][] = Array.from({ length: connections }, () => []);
  for (let q = 0; q < destinations; q++) {
    for (let k = 0; k < perDestination; k++) plan[(q * perDestination + k) % connections]!.push(q);
  }
  return plan;
}

/** Subscriptions awaiting their confirmation at once on one connection while subscribing. */
export const SUBSCRIBE_CONCURRENCY = 32;

/**
 * C consumer connections subscribed with ack:client-individual (one subscription each, or the
 * subscriptionPlan of `destinations`); every message is acked on arrival.
 */
export async function startConsumers(o: ConsumeOptions): Promise<Consumers> {
  const latency = new LatencyRecorder();
  const errors: string[] = [];
  const seen = o.trackSeqs > 0 ? new Uint8Array(o.trackSeqs) : null;
  const state = { received: 0, duplicates: 0, stale: 0, firstReceivedAt: 0, lastReceivedAt: 0 };
  let waiter: { count: number; resolve: (ok: boolean) => void } | null = null;
  const conns: BenchConnection[] = [];
  const subs: BenchSubscription[] = [];

  const onBody = (body: Buffer): void => {
    const now = performance.now();
    const info = decodePayload(body);
    if (info === null || info.runId !== o.runId) {
      state.stale++;
      return;
    }
    if (seen !== null && info.seq < seen.length) {
      if (seen[info.seq] === 1) {
        state.duplicates++;
        o.onDelivery?.(info.seq, info.sentAtMs, now, true);
        return;
      }
      seen[info.seq] = 1;
    }
    o.onDelivery?.(info.seq, info.sentAtMs, now, false);
    latency.record(now - info.sentAtMs);
    if (state.received === 0) state.firstReceivedAt = now;
    state.lastReceivedAt = now;
    state.received++;
    o.counters.received++;
    if (waiter !== null && state.received >= waiter.count) {
      const w = waiter;
      waiter = null;
      w.resolve(true);
    }
  };

  const closeAll = async (): Promise<void> => {
    await Promise.all(subs.map((s) => s.unsubscribe().catch(() => undefined)));
    await Promise.all(conns.map((c) => c.close()));
  };

  const destinations = o.destinations ?? [o.destination];
  const plan =
    o.destinations === undefined
      ? Array.from({ length: o.consumers }, () => [0])
      : subscriptionPlan(destinations.length, o.consumersPerDestination ?? 1, o.consumers);
  const subscribeOptions: BenchSubscribeOptions = {
    prefetch: o.prefetch,
    onMessage: (m) => {
      m.ack();
      onBody(m.body);
    },
  };
  try {
    for (let i = 0; i < o.consumers; i++) {
      const name = `consumer-${i + 1}`;
      const conn = await o.driver.connect(name);
      conns.push(conn);
      conn.onError((err) => errors.push(err.message));
      const mine = plan[i]!;
      for (let j = 0; j < mine.length; j += SUBSCRIBE_CONCURRENCY) {
        const batch = mine.slice(j, j + SUBSCRIBE_CONCURRENCY);
        const settled = await Promise.allSettled(
          batch.map((q) => conn.subscribe(destinations[q]!, subscribeOptions)),
        );
        for (const s of settled) if (s.status === 'fulfilled') subs.push(s.value);
        const failed = settled.find((s) => s.status === 'rejected');
        if (failed !== undefined) throw (failed as PromiseRejectedResult).reason;
      }
      o.onConnection?.(conn, name);
    }
  } catch (err) {
    await closeAll();
    throw err;
  }

  return {
    get received() {
      return state.received;
    },
    get duplicates() {
      return state.duplicates;
    },
    get stale() {
      return state.stale;
    },
    get firstReceivedAt() {
      return state.firstReceivedAt;
    },
    get lastReceivedAt() {
      return state.lastReceivedAt;
    },
    latency,
    get errors() {
      return dedupe(errors);
    },
    waitFor(count, deadline) {
      if (state.received >= count) return Promise.resolve(true);
      return new Promise<boolean>((resolve) => {
        const timer = setTimeout(
          () => {
            waiter = null;
            resolve(state.received >= count);
          },
          Math.max(0, deadline - performance.now()),
        );
        waiter = {
          count,
          resolve: (ok) => {
            clearTimeout(timer);
            resolve(ok);
          },
        };
      });
    },
    close: closeAll,
  };
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function dedupe(messages: string[]): string[] {
  return [...new Set(messages)].slice(0, 10);
}
