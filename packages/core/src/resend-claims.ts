import type { Message } from '@keel/protocol';
import type { MessageQueue } from './message-queue';
import type { Clock } from './ports';
import type { QueueEntry } from './queue-entry';

/** Producer keys of consumed messages remembered for resends, at most this many (oldest go first). */
export const MAX_CONSUMED_KEYS = 100_000;
/** ... and for at most this long. */
export const CONSUMED_KEY_TTL_MS = 10 * 60_000;

interface ResendHost {
  readonly clock: Clock;
  /** End of the recovery hold after a takeover (ms since the epoch). */
  readonly holdRecoveredUntil: number;
}

interface Held {
  queue: MessageQueue;
  entry: QueueEntry;
  until: number;
}

export interface ProducerSeq {
  producerId: string;
  producerSeq: number;
}

/**
 * Exactly-once across a takeover with concurrent store and dispatch. The old master may hand a
 * message to a consumer before its insert commits and die before it does: the producer, never
 * confirmed, resends it to the new master (same producer id and sequence, which the store does not
 * know), while the consumer already has it. Failover consumers replay the producer keys of what
 * they acknowledged (ackReplay); a resend arriving during the recovery hold is stored but held, and
 * either is dropped when such a replay names it or is delivered when the hold ends. A resend that
 * arrives after the replay is dropped at once.
 */
export class ResendClaims {
  private readonly consumedKeys = new Map<string, number>();
  private readonly held = new Map<string, Held>();

  constructor(private readonly host: ResendHost) {}

  /** A resend the store did not know: drop it (consumed), hold it, or treat it as new (null). */
  resent(m: Message): 'consumed' | 'hold' | null {
    const key = keyOf(m);
    if (key === null) return null;
    if (this.takeConsumed(key)) return 'consumed';
    return this.host.clock.now() < this.host.holdRecoveredUntil ? 'hold' : null;
  }

  /** A replay named this message while its resend was being stored. */
  isConsumed(m: Message): boolean {
    const key = keyOf(m);
    return key !== null && this.takeConsumed(key);
  }

  hold(m: Message, queue: MessageQueue, entry: QueueEntry, until: number): void {
    const key = keyOf(m);
    if (key === null) return;
    const now = this.host.clock.now();
    for (const [k, h] of this.held) if (h.until <= now) this.held.delete(k);
    this.held.set(key, { queue, entry, until });
  }

  /**
   * A failover consumer replayed that it consumed this message. Returns the held resend of it, if
   * one waits (the caller removes it); otherwise remembers the key for a resend still to come.
   */
  consumed(p: ProducerSeq): { queue: MessageQueue; entry: QueueEntry } | null {
    if (typeof p?.producerId !== 'string' || !Number.isSafeInteger(p.producerSeq)) return null;
    const key = `${p.producerId}:${p.producerSeq}`;
    const h = this.held.get(key);
    if (h) {
      this.held.delete(key);
      if (h.until > this.host.clock.now()) return h;
    }
    this.remember(key);
    return null;
  }

  get size(): number {
    return this.consumedKeys.size;
  }

  private remember(key: string): void {
    const now = this.host.clock.now();
    this.consumedKeys.delete(key);
    this.consumedKeys.set(key, now);
    for (const [k, at] of this.consumedKeys) {
      if (this.consumedKeys.size <= MAX_CONSUMED_KEYS && at > now - CONSUMED_KEY_TTL_MS) break;
      this.consumedKeys.delete(k);
    }
  }

  private takeConsumed(key: string): boolean {
    const at = this.consumedKeys.get(key);
    if (at === undefined) return false;
    this.consumedKeys.delete(key);
    return at > this.host.clock.now() - CONSUMED_KEY_TTL_MS;
  }
}

function keyOf(m: Message): string | null {
  return m.producerId === undefined || m.producerSeq === undefined
    ? null
    : `${m.producerId}:${m.producerSeq}`;
}
