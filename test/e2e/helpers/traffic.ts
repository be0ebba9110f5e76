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
  /** At most this many attempts per message when retrying (default 10). */
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
  const maxAttempts = o.maxAttempts ?? 10;
  const result: ProducerRunResult = { name: o.name, started: 0, receipted: 0, failed: 0, retried: 0, errors: {} };
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
        await new Promise((r) => setTimeout(r, 50));
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
    ledger.deliver(m.body, m.redelivered);
    m.ack().catch(() => {
      running.ackErrors++;
    });
  });
  return running;
}
