import type { Message } from '@keel/protocol';

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
}

export function entrySize(message: Message): number {
  return message.body.length + 256;
}

export function isExpired(entry: QueueEntry, now: number): boolean {
  return entry.expiration > 0 && now >= entry.expiration;
}
