import type { Message } from '@keel/protocol';
import type { CancellableWrite, WithdrawableWrite } from './group-commit';

/** A message held by a queue (or a subscription) in memory, with its delivery bookkeeping. */
export interface QueueEntry {
  /** Store id (also the wire message id). */
  id: number;
  message: Message;
  priority: number;
  /** ms since the epoch, 0 = never. */
  expiration: number;
  /** Deliveries before the next one. */
  deliveryCount: number;
  /** Set when the message may have been delivered before (redelivery, recovered after takeover). */
  redelivered: boolean;
  /** Stored in the message table (persistent, durable destination). */
  stored: boolean;
  /** Body + rough header size, for memory accounting. */
  size: number;
  /** Not deliverable before this time (redelivery delay), ms since the epoch. */
  notBefore: number;
  /**
   * Concurrent store and dispatch: the insert of this stored entry is not committed yet, and the
   * entry was handed to the queue anyway. Cleared once the insert commits.
   */
  storing?: PendingInsert | null;
  /** When it was last handed to a consumer (performance.now()), for the queue's ack latency. */
  dispatchedAt?: number;
  /** Its send was answered in doubt (InDoubtSends): called when a consumer acknowledges it. */
  onConsumed?: (() => void) | null;
  /** Handed to a consumer and not back yet (no ack, nack or return): one delivery more than deliveryCount. */
  delivering?: boolean;
  /**
   * The delivery count the store holds for this stored entry, or will hold once a write already
   * queued commits (see MessageQueue.noteDelivery); undefined = 0.
   */
  storedDeliveryCount?: number;
  /** The store write recording the current delivery, withdrawn if the consumer settles it first (MessageQueue.noteDelivery). */
  deliveryMark?: WithdrawableWrite | null;
}

/** The insert of a message dispatched before it committed (Broker, concurrent store and dispatch). */
export class PendingInsert {
  constructor(
    private readonly write: CancellableWrite,
    /** The consumer acknowledged the message: the producer's send is safe whatever the insert does. */
    readonly consumed: () => void,
  ) {}

  /** Settles when the insert committed (or failed). */
  get committed(): Promise<void> {
    return this.write.committed;
  }

  /** Withdraw the insert if it is not written yet: true when it never will be. */
  cancel(): boolean {
    return this.write.cancel();
  }

  /** Whether the insert's round has started (its row is written as the entry then was). */
  started(): boolean {
    return this.write.started();
  }
}

/**
 * The delivery count to insert an entry's row with, built when its round starts: a message handed
 * to a consumer before its insert was written (concurrent store and dispatch) is inserted already
 * marked delivered, so no separate mark is needed (MessageQueue.noteDelivery).
 */
export function deliveryCountToInsert(entry: QueueEntry): number {
  const count = entry.deliveryCount + (entry.delivering ? 1 : 0);
  entry.storedDeliveryCount = count;
  return count;
}

export function entrySize(message: Message): number {
  return message.body.length + 256;
}

export function isExpired(entry: QueueEntry, now: number): boolean {
  return entry.expiration > 0 && now >= entry.expiration;
}
