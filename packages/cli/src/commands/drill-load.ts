/**
 * The drill's steady persistent load and its ledger: a producer through a failover client paced to
 * a rate that waits for each receipt, and a consumer (individual acks) on the same queue — or, for
 * a topic stream, a durable subscriber (client id + subscription name) on the same topic; every
 * body carries a sequence number, so the drill counts per time window receipted, delivered, lost
 * (receipted, never delivered), duplicated, and the longest gap between receipts (the client's
 * pause) and between deliveries around a fault. drill-mixed-load.ts runs two of them at once.
 */
import { randomBytes } from 'node:crypto';
import { type Connection, connect } from '@keel/client';
import type { DrillRun } from './drill-run';
import { bucketCounts, countBetween, maxGapAround } from './drill-timeline';
import { sendLoop } from './produce';
import { parseSequence, SequenceTracker } from './sequence-body';

export const DRILL_BODY_BYTES = 256;
export const DRILL_SEND_WINDOW = 64;
/** Chart resolution. */
export const DRILL_BUCKET_MS = 100;
export const DRILL_CLIENT_HEARTBEAT_MS = 1_000;
/** The drain ends when every receipted message came, or nothing came for this long. */
export const DRILL_DRAIN_IDLE_MS = 10_000;
export const DRILL_DRAIN_TIMEOUT_MS = 90_000;

export interface DrillClientEvent {
  atMs: number;
  client: string;
  event: string;
  detail: string;
}

export interface DrillTotals {
  sent: number;
  receipted: number;
  failed: number;
  delivered: number;
  lost: number;
  duplicated: number;
  /** Delivered although their send failed or had no receipt (in doubt, not an error). */
  deliveredWithoutReceipt: number;
}

/** Counts of one round: messages receipted in (from, to], the pauses around the fault. */
export interface DrillWindowCounts {
  /** Longest gap between receipts around the fault (the producing client's pause). */
  pauseMs: number;
  deliveryPauseMs: number;
  receipted: number;
  delivered: number;
  lost: number;
  duplicated: number;
}

/** What one DrillLoad sends and to what. */
export interface DrillStream {
  /** Its name in log lines and ledgers. */
  name: string;
  kind: 'queue' | 'topic';
  /**
   * A topic stream's subscriber: a durable subscription (the connection's client id and the
   * subscription name; the consumer connection must be opened with that client id). The failover
   * client subscribes again with the same name on the new master.
   */
  durable?: { clientId: string; subscription: string };
  /** The body size of message seq (default DRILL_BODY_BYTES for every message). */
  bodyBytes?: (seq: number) => number;
}

/** The drills' load by default: one queue, bodies of DRILL_BODY_BYTES. */
export const DRILL_QUEUE_STREAM: DrillStream = { name: 'queue', kind: 'queue' };

/** What a Postgres drill stage needs of its load (DrillLoad, or several at once). */
export interface DrillLedger {
  readonly loadStart: number;
  readonly loadEnd: number;
  resumedAfter(afterMs: number): number | undefined;
  stopAndDrain(): Promise<void>;
  roundCounts(rounds: readonly { faultAt: number; endAt: number }[]): DrillWindowCounts[];
  totals(): DrillTotals;
  timeline(): { bucketMs: number; receipts: number[]; deliveries: number[] };
  relativeClientEvents(): DrillClientEvent[];
}

export class DrillLoad implements DrillLedger {
  readonly clientEvents: DrillClientEvent[] = [];
  readonly connections: Connection[] = [];
  readonly receiptTimes: number[] = [];
  readonly receiptAt = new Map<number, number>();
  /** First deliveries. */
  readonly deliveryTimes: number[] = [];
  readonly duplicateTimes: number[] = [];
  readonly allDeliveryTimes: number[] = [];
  readonly tracker = new SequenceTracker();
  /** Receipted, not delivered (yet). */
  readonly missing = new Set<number>();
  sent = 0;
  failed = 0;
  lastSendError: Error | null = null;
  loadStart = 0;
  loadEnd = 0;
  /** The queue or topic, once started. */
  destination = '';
  private readonly stopLoad = new AbortController();
  private sending: Promise<unknown> = Promise.resolve();
  private statusTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly run: DrillRun,
    private readonly failoverUrl: string,
    readonly stream: DrillStream = DRILL_QUEUE_STREAM,
  ) {
    run.cleanup('client connections', async () => {
      this.stopLoad.abort();
      clearInterval(this.statusTimer);
      await Promise.all(this.connections.map((c) => c.close().catch(() => {})));
    });
  }

  /** A failover connection whose interruptions are logged and remembered. */
  async open(name: string, clientId?: string): Promise<Connection> {
    const log = this.run.log;
    const conn = await connect(this.failoverUrl, {
      heartbeatMs: DRILL_CLIENT_HEARTBEAT_MS,
      ...(clientId !== undefined ? { clientId } : {}),
    });
    this.connections.push(conn);
    conn.on('interrupted', ({ url, error }) => {
      this.clientEvents.push({
        atMs: Date.now(),
        client: name,
        event: 'interrupted',
        detail: `${url}: ${error.message}`,
      });
      log(`${name}: lost ${url} (${error.message})`);
    });
    conn.on('resumed', ({ url }) => {
      this.clientEvents.push({ atMs: Date.now(), client: name, event: 'resumed', detail: url });
      log(`${name}: resumed on ${url}`);
    });
    conn.on('error', (err) => {
      this.clientEvents.push({ atMs: Date.now(), client: name, event: 'error', detail: err.message });
      log(`${name}: ${err.message}`);
    });
    conn.on('close', ({ error }) => {
      if (error) log(`${name}: closed: ${error.message}`);
    });
    return conn;
  }

  /**
   * Starts consuming and producing `ratePerS` persistent messages/s to a fresh queue (or topic, with
   * its durable subscriber), with a status line every 5 s; resolves once the first message went
   * round, after settleMs more of load.
   */
  async start(
    consumerConn: Connection,
    producerConn: Connection,
    ratePerS: number,
    settleMs: number,
  ): Promise<void> {
    const { log } = this.run;
    const { kind, durable, bodyBytes } = this.stream;
    const tag = this.tag;
    this.destination = `${kind}://keel-drill-${randomBytes(3).toString('hex')}`;
    const consumerSession = await consumerConn.createSession({ ackMode: 'individual' });
    const consumer = await consumerSession.createConsumer(this.destination, {
      prefetch: 200,
      ...(durable ? { durableName: durable.subscription } : {}),
    });
    consumer.on('error', (err) => log(`${tag}consumer: ${err.message}`));
    consumer.on('message', (m) => {
      const now = Date.now();
      this.allDeliveryTimes.push(now);
      const seq = parseSequence(m.body);
      const kind = this.tracker.add(seq);
      if (kind === 'duplicate') this.duplicateTimes.push(now);
      else if (kind === 'new') {
        this.deliveryTimes.push(now);
        this.missing.delete(seq as number);
      }
      m.ack().catch(() => {});
    });
    const producerSession = await producerConn.createSession();
    const producer = producerSession.createProducer(this.destination, { persistent: true });
    this.loadStart = Date.now();
    this.sending = sendLoop({
      producer,
      sizeBytes: DRILL_BODY_BYTES,
      ...(bodyBytes ? { sizeOf: bodyBytes } : {}),
      ratePerS,
      window: DRILL_SEND_WINDOW,
      signal: this.stopLoad.signal,
      shouldStop: () => producerConn.status === 'closed',
      onSent: () => {
        this.sent++;
      },
      onReceipt: (seq, at) => {
        this.receiptTimes.push(at);
        this.receiptAt.set(seq, at);
        if (!this.tracker.has(seq)) this.missing.add(seq);
      },
      onFailure: (_seq, err) => {
        this.failed++;
        this.lastSendError = err;
      },
    });
    const sizes = bodyBytes ? 'varied sizes' : `${DRILL_BODY_BYTES} bytes`;
    const subscriber = durable ? ` (durable subscription ${durable.clientId}:${durable.subscription})` : '';
    log(`${tag}load: ${ratePerS} persistent messages/s of ${sizes} to ${this.destination}${subscriber}`);
    this.statusTimer = setInterval(() => {
      const now = Date.now();
      log(
        `${tag}load: ${countBetween(this.receiptTimes, now - 1000, now)} receipts/s, ${countBetween(this.allDeliveryTimes, now - 1000, now)} deliveries/s; sent ${this.sent}, receipted ${this.receiptTimes.length}, delivered ${this.deliveryTimes.length}, failed ${this.failed}`,
      );
    }, 5_000);
    this.statusTimer.unref();
    await this.run.waitFor(
      () => this.receiptTimes.length > 0 && this.deliveryTimes.length > 0,
      30_000,
      () =>
        `the ${this.stream.name} load did not start within 30 s (sent ${this.sent}, receipted ${this.receiptTimes.length}, failed ${this.failed})`,
    );
    await this.run.sleep(settleMs);
  }

  /** Log prefix: none for the drills' one queue, the stream's name otherwise. */
  private get tag(): string {
    return this.stream === DRILL_QUEUE_STREAM ? '' : `${this.stream.name} `;
  }

  /** The time of the latest receipt and delivery both after `afterMs`, or undefined. */
  resumedAfter(afterMs: number): number | undefined {
    const r = this.receiptTimes[this.receiptTimes.length - 1] ?? 0;
    const d = this.allDeliveryTimes[this.allDeliveryTimes.length - 1] ?? 0;
    return r > afterMs && d > afterMs ? Math.max(r, d) : undefined;
  }

  /** Stops the producer and waits until every receipted message came or nothing came for a while. */
  async stopAndDrain(): Promise<void> {
    const { log } = this.run;
    const tag = this.tag;
    log(`${tag}stopping the producer, draining the consumer...`);
    this.stopLoad.abort();
    await this.sending;
    const drainStart = Date.now();
    let lastCount = this.allDeliveryTimes.length;
    let lastChange = Date.now();
    await this.run.waitFor(
      () => {
        if (this.allDeliveryTimes.length !== lastCount) {
          lastCount = this.allDeliveryTimes.length;
          lastChange = Date.now();
        }
        return this.missing.size === 0 || Date.now() - lastChange > DRILL_DRAIN_IDLE_MS;
      },
      DRILL_DRAIN_TIMEOUT_MS,
      () => 'the drain did not end',
    );
    // Redeliveries of messages acknowledged just now would come within a moment: give them one.
    await this.run.sleep(500);
    this.loadEnd = Date.now();
    clearInterval(this.statusTimer);
    log(
      `${tag}drained in ${this.loadEnd - drainStart} ms; ${this.missing.size} receipted messages never delivered`,
    );
    await Promise.all(this.connections.map((c) => c.close().catch(() => {})));
    const sendError = this.lastSendError as Error | null;
    if (this.failed > 0 && sendError)
      log(`${tag}${this.failed} sends failed; last error: ${sendError.message}`);
  }

  /**
   * Counts of one round: messages receipted in (fromMs, toMs], the gaps between faultAtMs and
   * endAtMs. Call after stopAndDrain().
   */
  windowCounts(fromMs: number, toMs: number, faultAtMs: number, endAtMs: number): DrillWindowCounts {
    const sortedReceipts = [...this.receiptTimes].sort((a, b) => a - b);
    const sortedDeliveries = [...this.allDeliveryTimes].sort((a, b) => a - b);
    let lost = 0;
    for (const seq of this.missing) {
      const at = this.receiptAt.get(seq) ?? 0;
      if (at > fromMs && at <= toMs) lost++;
    }
    return {
      pauseMs: maxGapAround(sortedReceipts, faultAtMs, endAtMs),
      deliveryPauseMs: maxGapAround(sortedDeliveries, faultAtMs, endAtMs),
      receipted: countBetween(sortedReceipts, fromMs, toMs),
      delivered: countBetween(this.deliveryTimes, fromMs, toMs),
      lost,
      duplicated: countBetween(this.duplicateTimes, fromMs, toMs),
    };
  }

  /**
   * Per-round windows: round i covers receipts after the previous round's end (the load's start
   * for the first) up to its own end (for ever for the last).
   */
  roundCounts(rounds: readonly { faultAt: number; endAt: number }[]): DrillWindowCounts[] {
    return rounds.map((r, i) =>
      this.windowCounts(
        i === 0 ? this.loadStart - 1 : (rounds[i - 1] as { endAt: number }).endAt,
        i === rounds.length - 1 ? Number.POSITIVE_INFINITY : r.endAt,
        r.faultAt,
        r.endAt,
      ),
    );
  }

  totals(): DrillTotals {
    const counts = this.tracker.counts();
    const deliveredUnique = counts.received - counts.duplicates - counts.unnumbered;
    return {
      sent: this.sent,
      receipted: this.receiptTimes.length,
      failed: this.failed,
      delivered: deliveredUnique,
      lost: this.missing.size,
      duplicated: counts.duplicates,
      deliveredWithoutReceipt: deliveredUnique - (this.receiptAt.size - this.missing.size),
    };
  }

  timeline(): { bucketMs: number; receipts: number[]; deliveries: number[] } {
    return {
      bucketMs: DRILL_BUCKET_MS,
      receipts: bucketCounts(this.receiptTimes, this.loadStart, this.loadEnd, DRILL_BUCKET_MS),
      deliveries: bucketCounts(this.allDeliveryTimes, this.loadStart, this.loadEnd, DRILL_BUCKET_MS),
    };
  }

  /** Client events with times relative to the load's start. */
  relativeClientEvents(): DrillClientEvent[] {
    return this.clientEvents.map((e) => ({ ...e, atMs: e.atMs - this.loadStart }));
  }
}

/** The totals line every drill prints under its table. */
export function totalsLine(totals: DrillTotals): string {
  return `sent ${totals.sent}, receipted ${totals.receipted}, failed ${totals.failed}, delivered ${totals.delivered}, lost ${totals.lost}, duplicated ${totals.duplicated}${totals.deliveredWithoutReceipt ? `, delivered without receipt ${totals.deliveredWithoutReceipt}` : ''}`;
}
