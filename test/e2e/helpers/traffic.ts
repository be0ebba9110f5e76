/**
 * Producers and consumers for the end-to-end tests, on the real client library. Every loop is
 * bounded in count and in time.
 */
import { type Connection, type Consumer, connect, type Producer, type Session } from '@keel/client';
import { KeelError } from '@keel/protocol';
import { type BodyFields, type Ledger, makeBody } from './ledger';

/** Client options shared by the tests: quick reconnects, quick dead-broker detection. */
export const FAST_FAILOVER_QUERY = 'randomize=false&initialReconnectDelay=10&maxReconnectDelay=200';

export function failoverUrl(ports: number[], extra = ''): string {
  const members = ports.map((p) => `tcp://127.0.0.1:${p}`).join(',');
  return `failover:(${members})?${FAST_FAILOVER_QUERY}${extra ? `&${extra}` : ''}`;
}

/** Tracks the client-visible pauses of one connection ('interrupted' -> 'resumed'). */
export class PauseMeter {
  readonly pausesMs: number[] = [];
  interruptions = 0;
  private since: number | null = null;
  readonly resumedUrls: string[] = [];

  constructor(readonly conn: Connection) {
    conn.on('interrupted', () => {
      this.interruptions++;
      if (this.since === null) this.since = Date.now();
    });
    conn.on('resumed', ({ url }) => {
      if (this.since !== null) this.pausesMs.push(Date.now() - this.since);
      this.since = null;
      this.resumedUrls.push(url);
    });
  }

  get maxMs(): number {
    return this.pausesMs.length ? Math.max(...this.pausesMs) : 0;
  }

  get interrupted(): boolean {
    return this.since !== null;
  }
}

export interface ConnectedClient {
  conn: Connection;
  meter: PauseMeter;
}

export async function openClient(url: string, clientId?: string): Promise<ConnectedClient> {
  const conn = await connect(url, { clientId, heartbeatMs: 500, timeout: 30_000, connectTimeoutMs: 2_000 });
  // Asynchronous errors that belong to no call must not kill the test process.
  conn.on('error', () => {});
  return { conn, meter: new PauseMeter(conn) };
}

function errorCode(err: unknown): string {
  if (KeelError.isInstance(err)) return (err as KeelError).code;
  return (err as Error)?.message ?? String(err);
}

function isRetryable(err: unknown): boolean {
  return KeelError.isInstance(err) && (err as KeelError).retryable === true;
}

export interface ProducerRunOptions {
  session: Session;
  destination: string;
  name: string;
  count: number;
  ledger: Ledger;
  /** Sends outstanding at once (default 20). */
  window?: number;
  bodyBytes?: number;
  /** Retry a send that failed with a retryable KeelError (a new attempt, new producerSeq). */
  retryRetryable?: boolean;
  /** At most this many attempts per message when retrying (default 100; the deadline bounds it too). */
  maxAttempts?: number;
  /** Stop sending new messages after this time (the loop is bounded in time as well as count). */
  deadline: number;
  /** Called after each receipt (e.g. to trigger a fault midway). */
  onReceipt?: () => void;
  /** Stop sending new messages when this returns true. */
  stop?: () => boolean;
}

export interface ProducerRunResult {
  name: string;
  started: number;
  receipted: number;
  failed: number;
  retried: number;
  errors: Record<string, number>;
}

/**
 * Sends `count` persistent messages from one producer, `window` at a time, recording every attempt,
 * receipt and failure in the ledger. Resolves when every send has settled.
 */
export async function runProducer(o: ProducerRunOptions): Promise<ProducerRunResult> {
  const producer: Producer = o.session.createProducer(o.destination, { persistent: true });
  const window = o.window ?? 20;
  const maxAttempts = o.maxAttempts ?? 100;
  const result: ProducerRunResult = {
    name: o.name,
    started: 0,
    receipted: 0,
    failed: 0,
    retried: 0,
    errors: {},
  };
  let next = 1;

  const sendOne = async (seq: number): Promise<void> => {
    for (let attempt = 1; attempt <= maxAttempts; attempt++) {
      const f: BodyFields = { producer: o.name, seq, attempt };
      const key = o.ledger.attempt(f);
      if (attempt > 1) result.retried++;
      try {
        await producer.send(makeBody(f, o.bodyBytes ?? 256), { properties: { seq, attempt } });
        o.ledger.receipt(key);
        result.receipted++;
        o.onReceipt?.();
        return;
      } catch (err) {
        const code = errorCode(err);
        o.ledger.fail(key, code);
        result.errors[code] = (result.errors[code] ?? 0) + 1;
        if (!o.retryRetryable || !isRetryable(err) || Date.now() > o.deadline) {
          result.failed++;
          return;
        }
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    result.failed++;
  };

  const lane = async (): Promise<void> => {
    while (next <= o.count && Date.now() < o.deadline && !o.stop?.()) {
      const seq = next++;
      result.started++;
      await sendOne(seq);
    }
  };
  await Promise.all(Array.from({ length: window }, () => lane()));
  return result;
}

export interface RunningConsumer {
  consumer: Consumer;
  ackErrors: number;
  close(): Promise<void>;
}

/**
 * A consumer in 'individual' ack mode that records every message in the ledger and acknowledges it
 * at once (m.ack(), not awaited: an ack that fails in a failover is counted, and the client's audit
 * suppresses the redelivery of a message the application acknowledged).
 */
export async function startConsumer(
  conn: Connection,
  destination: string,
  ledger: Ledger,
  prefetch = 200,
  tag = '',
): Promise<RunningConsumer> {
  const session = await conn.createSession({ ackMode: 'individual' });
  const consumer = await session.createConsumer(destination, { prefetch });
  const running: RunningConsumer = {
    consumer,
    ackErrors: 0,
    async close() {
      await session.close().catch(() => {});
    },
  };
  consumer.on('error', () => {});
  consumer.onMessage((m) => {
    ledger.deliver(m.body, m.redelivered, tag, m.messageId);
    m.ack().catch(() => {
      running.ackErrors++;
    });
  });
  return running;
}

export interface SteadyTrafficOptions {
  url: string;
  destination: string;
  ledger: Ledger;
  /** Producer connections (default 2), each with `window` sends outstanding (default 5). */
  producers?: number;
  window?: number;
  /** Consumer connections (default 1). */
  consumers?: number;
  retryRetryable?: boolean;
  /** Hard bound on the run (default 90 s). */
  maxRunMs?: number;
  /** Prefix of producer names (body keys), so two runs in one ledger do not collide. */
  tag?: string;
}

/**
 * Steady persistent traffic through the failover URL until stop(): producers that send all the
 * time (bounded by maxRunMs and a per-producer count), consumers that acknowledge every message.
 */
export class SteadyTraffic {
  readonly clients: ConnectedClient[] = [];
  readonly consumers: RunningConsumer[] = [];
  /** Time of every receipt, in order. */
  readonly receiptTimes: number[] = [];
  private stopped = false;
  private producerRuns: Promise<ProducerRunResult[]> = Promise.resolve([]);
  results: ProducerRunResult[] = [];

  private constructor(readonly o: SteadyTrafficOptions) {}

  static async start(o: SteadyTrafficOptions): Promise<SteadyTraffic> {
    const t = new SteadyTraffic(o);
    const tag = o.tag ?? 'st';
    for (let i = 0; i < (o.consumers ?? 1); i++) {
      const c = await openClient(o.url, `${tag}-consumer-${i + 1}`);
      t.clients.push(c);
      t.consumers.push(await startConsumer(c.conn, o.destination, o.ledger, 100, `c${i + 1}`));
    }
    const producerClients: ConnectedClient[] = [];
    for (let i = 0; i < (o.producers ?? 2); i++)
      producerClients.push(await openClient(o.url, `${tag}-producer-${i + 1}`));
    t.clients.push(...producerClients);
    const deadline = Date.now() + (o.maxRunMs ?? 90_000);
    t.producerRuns = Promise.all(
      producerClients.map(async (c, i) =>
        runProducer({
          session: await c.conn.createSession(),
          destination: o.destination,
          name: `${tag}p${i + 1}`,
          count: 1_000_000,
          ledger: o.ledger,
          window: o.window ?? 5,
          deadline,
          retryRetryable: o.retryRetryable,
          onReceipt: () => t.receiptTimes.push(Date.now()),
          stop: () => t.stopped,
        }),
      ),
    );
    return t;
  }

  get receipted(): number {
    return this.receiptTimes.length;
  }

  /** Resolves once `n` more receipts have come in (polling, bounded by timeoutMs). */
  async waitForReceipts(n: number, timeoutMs: number, what = `${n} receipts`): Promise<void> {
    const target = this.receiptTimes.length + n;
    const deadline = Date.now() + timeoutMs;
    while (this.receiptTimes.length < target) {
      if (Date.now() > deadline) {
        throw new Error(
          `timed out after ${timeoutMs} ms waiting for ${what} (${JSON.stringify(this.o.ledger.summary())})`,
        );
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  /** The longest time without a receipt after `since` (up to the first receipt after it, at least). */
  longestReceiptGapMs(since: number): number {
    let prev = since;
    let max = 0;
    for (const t of this.receiptTimes) {
      if (t < since) continue;
      max = Math.max(max, t - prev);
      prev = t;
    }
    return max;
  }

  /** Stops sending and waits for every outstanding send to settle. */
  async stopProducers(): Promise<ProducerRunResult[]> {
    this.stopped = true;
    this.results = await this.producerRuns;
    return this.results;
  }

  /** Largest client-visible pause ('interrupted' -> 'resumed') over every connection. */
  get maxClientPauseMs(): number {
    return Math.max(0, ...this.clients.map((c) => c.meter.maxMs));
  }

  errorCounts(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const r of this.results) for (const [k, v] of Object.entries(r.errors)) out[k] = (out[k] ?? 0) + v;
    return out;
  }

  async close(): Promise<void> {
    this.stopped = true;
    await this.producerRuns.catch(() => []);
    for (const c of this.consumers) await c.close();
    for (const c of this.clients) await c.conn.close().catch(() => {});
  }
}

/**
 * Waits until every receipted message was delivered and the queue is empty in the store (every ack
 * committed, so no redelivery can still come). Returns the final depth.
 */
export async function drain(
  ledger: Ledger,
  depth: () => Promise<number>,
  timeoutMs: number,
): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  await ledger.waitFor(() => ledger.lost().length === 0, timeoutMs, 'every receipted message');
  let d = await depth();
  while (d > 0 && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 100));
    d = await depth();
  }
  return d;
}
