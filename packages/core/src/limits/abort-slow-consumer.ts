import { KeelError } from '@keel/protocol';
import type { ConnectionState } from '../connection';
import type { BrokerConsumer } from '../consumer';

/**
 * ActiveMQ's AbortSlowConsumerStrategy (issue #23.3): a consumer whose prefetch stays full — every
 * credit used, nothing acknowledged — while its destination has messages waiting for it, for longer
 * than `maxSlowDuration`, is aborted: its connection is closed with RESOURCE_LIMIT
 * (`abortConnection`, Keel's default), or only the consumer is closed. Either way the messages it
 * held go back to its queues for the other consumers (redelivered).
 */
export interface AbortSlowConsumerOptions {
  /** ActiveMQ `maxSlowDuration` (ms); 0 = the strategy is off (ActiveMQ's default: no strategy). */
  maxSlowDurationMs?: number;
  /** ActiveMQ `checkPeriod` (ms): how often consumers are looked at. Default: maxSlowDuration / 2, at most 30 s. */
  checkPeriodMs?: number;
  /** ActiveMQ `abortConnection`: close the whole connection (true) or just the consumer. */
  abortConnection?: boolean;
}

export const ABORT_SLOW_CONSUMER_DEFAULTS = Object.freeze({
  maxSlowDurationMs: 0,
  abortConnection: true,
});

export interface SlowConsumerHost {
  connections(): Iterable<ConnectionState>;
  /** Close one consumer and redeliver what it held. */
  abortConsumer(conn: ConnectionState, consumer: BrokerConsumer, err: KeelError): void;
  /** Close the connection (its transport gets `err`) and redeliver what its consumers held. */
  abortConnection(conn: ConnectionState, err: KeelError): void;
  now(): number;
}

interface Watch {
  since: number;
  delivered: number;
}

export class AbortSlowConsumerStrategy {
  readonly maxSlowDurationMs: number;
  readonly checkPeriodMs: number;
  readonly abortConnection: boolean;
  private readonly watched = new Map<BrokerConsumer, Watch>();
  private timer: NodeJS.Timeout | null = null;
  /** Consumers aborted so far. */
  aborted = 0;

  constructor(
    options: AbortSlowConsumerOptions,
    private readonly host: SlowConsumerHost,
  ) {
    const d = ABORT_SLOW_CONSUMER_DEFAULTS;
    this.maxSlowDurationMs = Math.max(0, options.maxSlowDurationMs ?? d.maxSlowDurationMs);
    this.checkPeriodMs = Math.max(
      10,
      options.checkPeriodMs ?? Math.min(30_000, Math.ceil(this.maxSlowDurationMs / 2)),
    );
    this.abortConnection = options.abortConnection ?? d.abortConnection;
  }

  get enabled(): boolean {
    return this.maxSlowDurationMs > 0;
  }

  start(): void {
    if (!this.enabled || this.timer) return;
    this.timer = setInterval(() => this.check(), this.checkPeriodMs);
    this.timer.unref?.();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.watched.clear();
  }

  /** One look at every consumer (the timer's round; tests may call it). */
  check(): void {
    const now = this.host.now();
    const seen = new Set<BrokerConsumer>();
    for (const conn of [...this.host.connections()]) {
      if (conn.closed) continue;
      for (const consumer of [...conn.consumers.values()]) {
        if (!isSlow(consumer)) continue;
        seen.add(consumer);
        const w = this.watched.get(consumer);
        // ActiveMQ clears a subscription's slow mark on any acknowledgement: here, a delivery since
        // the last look means credit came back.
        if (w === undefined || w.delivered !== consumer.delivered) {
          this.watched.set(consumer, { since: now, delivered: consumer.delivered });
          continue;
        }
        if (now - w.since < this.maxSlowDurationMs) continue;
        this.aborted += 1;
        this.watched.delete(consumer);
        const err = new KeelError(
          'RESOURCE_LIMIT',
          `slow consumer ${consumer.id} aborted: its prefetch of ${consumer.inflight.size} unacknowledged messages stayed full for ${now - w.since} ms while messages waited (maxSlowDuration ${this.maxSlowDurationMs} ms)`,
        );
        if (!this.abortConnection) {
          this.host.abortConsumer(conn, consumer, err);
          continue;
        }
        this.host.abortConnection(conn, err);
        break;
      }
    }
    for (const c of this.watched.keys()) if (!seen.has(c)) this.watched.delete(c);
  }
}

/** Full prefetch (no credit, messages held) while one of its queues has messages waiting. */
function isSlow(c: BrokerConsumer): boolean {
  if (c.closed || c.ackOnDelivery || c.credit > 0 || c.inflight.size === 0) return false;
  return c.queues.some((q) => q.pending.size > 0 || q.isSpilled);
}
