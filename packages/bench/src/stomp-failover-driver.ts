import { ConnectionError, TimeoutError } from '@keel/protocol';
import type {
  BenchConnection,
  BenchDestination,
  BenchDriver,
  BenchLinkEvent,
  BenchSubscribeOptions,
  BenchSubscription,
} from './bench-driver';

export interface StompFailoverDriverOptions {
  /** One driver per broker URL, tried in this order (a STOMP master/slave pair, a peer cluster). */
  members: ReadonlyArray<{ url: string; driver: BenchDriver }>;
  /** Give up (fail the connection) after this long without a broker (default 60 s). */
  reconnectTimeoutMs?: number;
  /** Delay between passes over the list, doubled per pass up to the cap (default 20 ms, cap 500 ms). */
  initialReconnectDelayMs?: number;
  maxReconnectDelayMs?: number;
}

export const DEFAULT_STOMP_RECONNECT_TIMEOUT_MS = 60_000;
export const DEFAULT_STOMP_INITIAL_RECONNECT_DELAY_MS = 20;
export const DEFAULT_STOMP_MAX_RECONNECT_DELAY_MS = 500;

/**
 * STOMP has no failover transport, so this one is the bench's own, for brokers reached over STOMP
 * only (ActiveMQ, RabbitMQ, Keel over STOMP): when a connection fails it reconnects down the list
 * of URLs (starting with the next one; a slave refuses, so it moves on), subscribes again, and
 * resends every send that had no RECEIPT yet. Nothing deduplicates those resends, so a message
 * stored just before the master died may come twice; the scenario counts such duplicates.
 * Messages delivered on the old connection and not acknowledged come again from the new master.
 */
export class StompFailoverDriver implements BenchDriver {
  readonly protocol = 'stomp';

  constructor(private readonly options: StompFailoverDriverOptions) {
    if (options.members.length === 0) throw new RangeError('StompFailoverDriver needs at least one URL');
  }

  async connect(name: string): Promise<BenchConnection> {
    const conn = new FailoverStompConnection(this.options, name);
    await conn.open();
    return conn;
  }
}

interface SubscriptionRecord {
  destination: BenchDestination;
  options: BenchSubscribeOptions;
  /** The subscription on the current link, if any. */
  inner: BenchSubscription | null;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

class FailoverStompConnection implements BenchConnection {
  private inner: BenchConnection | null = null;
  /** Resolves with the next usable link (rejects when the reconnect gave up or close() was called). */
  private ready: Promise<BenchConnection> = Promise.reject(new ConnectionError('not connected'));
  /** Index in the member list of the current (or last) link. */
  private index = -1;
  private readonly subscriptions = new Set<SubscriptionRecord>();
  private readonly errorListeners: Array<(err: Error) => void> = [];
  private readonly linkListeners: Array<(event: BenchLinkEvent) => void> = [];
  private closing = false;
  private failure: Error | null = null;

  constructor(
    private readonly options: StompFailoverDriverOptions,
    private readonly name: string,
  ) {
    this.ready.catch(() => undefined);
  }

  async open(): Promise<void> {
    this.ready = this.dial(null);
    await this.ready;
  }

  onError(listener: (err: Error) => void): void {
    this.errorListeners.push(listener);
  }

  onLinkEvent(listener: (event: BenchLinkEvent) => void): void {
    this.linkListeners.push(listener);
  }

  /** Resolves once a RECEIPT came on some link; a send lost with a link goes again on the next. */
  async send(destination: BenchDestination, body: Buffer): Promise<void> {
    for (;;) {
      const link = await this.ready;
      try {
        await link.send(destination, body);
        return;
      } catch (err) {
        if (this.closing || this.failure) throw this.failure ?? err;
        // The link failed (its onError starts the reconnect): wait for the next one, resend.
        if (link === this.inner) this.onLinkFailed(link, err as Error);
      }
    }
  }

  async subscribe(destination: BenchDestination, options: BenchSubscribeOptions): Promise<BenchSubscription> {
    const record: SubscriptionRecord = { destination, options, inner: null };
    const link = await this.ready;
    record.inner = await link.subscribe(destination, options);
    this.subscriptions.add(record);
    return {
      unsubscribe: async () => {
        this.subscriptions.delete(record);
        await record.inner?.unsubscribe().catch(() => undefined);
      },
    };
  }

  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    await this.inner?.close();
    this.inner = null;
  }

  private onLinkFailed(link: BenchConnection, err: Error): void {
    if (link !== this.inner || this.closing) return;
    this.inner = null;
    for (const s of this.subscriptions) s.inner = null;
    const url = this.options.members[this.index]?.url ?? '?';
    this.emitLink({ event: 'interrupted', detail: `${url}: ${err.message}` });
    void link.close();
    this.ready = this.dial(err);
    this.ready.catch(() => undefined);
  }

  /** Passes over the list, from the member after the current one, until one connects. */
  private async dial(cause: Error | null): Promise<BenchConnection> {
    const members = this.options.members;
    const timeoutMs = this.options.reconnectTimeoutMs ?? DEFAULT_STOMP_RECONNECT_TIMEOUT_MS;
    const maxDelay = this.options.maxReconnectDelayMs ?? DEFAULT_STOMP_MAX_RECONNECT_DELAY_MS;
    let delay = this.options.initialReconnectDelayMs ?? DEFAULT_STOMP_INITIAL_RECONNECT_DELAY_MS;
    const deadline = performance.now() + timeoutMs;
    let lastError = cause;
    for (;;) {
      for (let k = 0; k < members.length; k++) {
        if (this.closing) throw new ConnectionError(`${this.name}: closed`, 'CONNECTION_CLOSED');
        const i = (this.index + 1 + k) % members.length;
        const member = members[i]!;
        let link: BenchConnection | null = null;
        try {
          link = await member.driver.connect(this.name);
          const candidate = link;
          candidate.onError((err) => this.onLinkFailed(candidate, err));
          for (const s of this.subscriptions) s.inner = await candidate.subscribe(s.destination, s.options);
          if (this.closing) {
            await candidate.close();
            throw new ConnectionError(`${this.name}: closed`, 'CONNECTION_CLOSED');
          }
          this.index = i;
          this.inner = candidate;
          if (cause !== null) this.emitLink({ event: 'resumed', detail: member.url });
          return candidate;
        } catch (err) {
          lastError = err as Error;
          if (link !== null) await link.close().catch(() => undefined);
          if (this.closing) throw err;
        }
      }
      if (cause === null || performance.now() >= deadline) {
        // At startup one pass decides; after a drop, reconnectTimeoutMs.
        const err =
          cause === null
            ? (lastError ?? new ConnectionError(`${this.name}: no broker answered`))
            : new TimeoutError(
                `${this.name}: no broker of ${members.map((m) => m.url).join(', ')} within ${timeoutMs} ms: ${lastError?.message ?? ''}`,
              );
        if (cause !== null) this.giveUp(err);
        throw err;
      }
      await sleep(delay);
      delay = Math.min(maxDelay, delay * 2);
    }
  }

  private giveUp(err: Error): void {
    if (this.failure) return;
    this.failure = err;
    for (const l of this.errorListeners) l(err);
  }

  private emitLink(event: BenchLinkEvent): void {
    for (const l of this.linkListeners) l(event);
  }
}
