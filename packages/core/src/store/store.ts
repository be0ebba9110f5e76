import type { MessageHeaders } from '@keel/protocol';

/**
 * The Store port: the durable log behind a broker. The broker keeps the working state in memory and
 * writes through `commit(batch)`, one transaction per round of group commit (see group-commit.ts).
 * Implementations: MemoryStore (core, tests and non-persistent use) and PgStore (store-pg). Both
 * pass the conformance suite in packages/testkit.
 *
 * Ids: message ids are assigned by the master as `idBlock * 2^32 + counter` (see message-ids.ts),
 * where each takeover takes a new block: they grow across takeovers, never repeat across the clusters
 * of one database, and delivery order within a priority is id order.
 */

export type StoredDestinationType = 'queue' | 'topic';

export interface DestinationRecord {
  id: number;
  type: StoredDestinationType;
  name: string;
}

export interface DurableSubscriptionRecord {
  id: number;
  clientId: string;
  name: string;
  /** Topic destination id (a topic name, possibly with wildcards, is stored as a topic destination). */
  destId: number;
  selector: string | null;
  noLocal: boolean;
}

/** A message as it is stored: headers as a JSON object, body as bytes. */
export interface StoredMessage {
  id: number;
  destId: number;
  priority: number;
  /** ms since the epoch, 0 = never. */
  expiration: number;
  deliveryCount: number;
  headers: MessageHeaders;
  body: Buffer;
}

/** Position in delivery order: page after this (priority descending, then id ascending). */
export interface PageCursor {
  priority: number;
  id: number;
}

export interface SubEntry {
  subId: number;
  msgId: number;
  priority: number;
}

/**
 * Everything one group-commit round writes, in one transaction. Applied in this order: inserts,
 * subEntries, moves, deliveryCounts, subDeliveryCounts, deletes, subEntryDeletes, producers,
 * forwards, txOutcomes, schedules (inserts, advances, deletes, range deletes). The transaction first checks that the cluster's epoch is still `epoch` and aborts
 * with FencedError otherwise.
 *
 * All or nothing: an insert whose id (or a sub entry whose (subId, msgId)) already exists fails the
 * whole batch with a StoreError. Headers are stored as JSON (Postgres jsonb), so they must not hold
 * U+0000 in any string; such a message fails its whole batch too, so reject it at ingest. Several
 * changes to one row in a batch: the last one wins; producers keep their highest sequence.
 */
export interface StoreBatch {
  inserts: StoredMessage[];
  subEntries: SubEntry[];
  /** Move a message to another destination (DLQ, admin move/retry), replacing its headers. */
  moves: {
    id: number;
    destId: number;
    priority: number;
    headers: MessageHeaders;
    deliveryCount: number;
    /** New expiry (ms since the epoch, 0 = never); absent = unchanged. */
    expiration?: number;
  }[];
  deliveryCounts: { id: number; deliveryCount: number }[];
  subDeliveryCounts: { subId: number; msgId: number; deliveryCount: number }[];
  /** Message rows to delete (queue messages acknowledged, expired, purged). */
  deletes: number[];
  subEntryDeletes: { subId: number; msgId: number }[];
  /** Highest stored sequence per producer (duplicate detection). */
  producers: { producerId: string; seq: number }[];
  /**
   * Network forwards accepted (duplicate detection of a bridge's resends): the forwarding broker
   * and the message's id there (see parseNetworkProducerId). Kept per round, not per message.
   */
  forwards: { origin: string; id: number }[];
  /** Client transaction ids whose commit this batch makes durable. */
  txOutcomes: string[];
  /** Scheduled-delivery jobs created, advanced after a firing, or removed (see ScheduleWrite). */
  schedules: ScheduleWrite[];
}

/**
 * A scheduled-delivery job (ActiveMQ "Delay and Schedule Message Delivery"): the message to send,
 * when it is next due, and what follows a firing. See scheduler/schedule-plan.ts for the semantics.
 */
export interface ScheduleRecord {
  /** The id of the message that asked for the schedule (ActiveMQ's `scheduledJobId`). */
  jobId: string;
  /** Canonical destination (`queue://NAME`, `topic://NAME`). */
  destination: string;
  headers: MessageHeaders;
  body: Buffer;
  /** The next firing, ms since the epoch. */
  nextDue: number;
  delayMs: number;
  periodMs: number;
  /** AMQ_SCHEDULED_REPEAT: firings after the first of each series. */
  repeat: number;
  /** Firings of the current series still to come after the one due at `nextDue`. */
  repeatsLeft: number;
  /** AMQ_SCHEDULED_CRON (5 fields), or null. */
  cron: string | null;
  /** The cron match the current series started from (ms since the epoch; 0 without cron). */
  cronTime: number;
  /** Firings so far. */
  fired: number;
  /** ms since the epoch. */
  createdAt: number;
}

/** What a firing changes in its job's row. */
export interface ScheduleAdvance {
  jobId: string;
  nextDue: number;
  repeatsLeft: number;
  cronTime: number;
  fired: number;
}

/**
 * A change to the schedules: `insert` a new job, `advance` one after a firing (absolute values, so
 * writing it twice is harmless; a row removed meanwhile stays removed), `delete` one, or
 * `deleteRange`: every job of the cluster due in [from, to] (ms, inclusive).
 */
export type ScheduleWrite =
  | { op: 'insert'; schedule: ScheduleRecord }
  | ({ op: 'advance' } & ScheduleAdvance)
  | { op: 'delete'; jobId: string }
  | { op: 'deleteRange'; from: number; to: number };

/** Position in due order: page after this job (next due ascending, then job id). */
export interface ScheduleCursor {
  nextDue: number;
  jobId: string;
}

export function emptyBatch(): StoreBatch {
  return {
    inserts: [],
    subEntries: [],
    moves: [],
    deliveryCounts: [],
    subDeliveryCounts: [],
    deletes: [],
    subEntryDeletes: [],
    producers: [],
    forwards: [],
    txOutcomes: [],
    schedules: [],
  };
}

export function isEmptyBatch(b: StoreBatch): boolean {
  return (
    b.inserts.length === 0 &&
    b.subEntries.length === 0 &&
    b.moves.length === 0 &&
    b.deliveryCounts.length === 0 &&
    b.subDeliveryCounts.length === 0 &&
    b.deletes.length === 0 &&
    b.subEntryDeletes.length === 0 &&
    b.producers.length === 0 &&
    b.forwards.length === 0 &&
    b.txOutcomes.length === 0 &&
    b.schedules.length === 0
  );
}

export interface TakeoverRecord {
  node: string;
  epoch: number;
  reason: string;
  at: Date;
}

export interface StoreStats {
  /** Per destination id: stored message count. */
  depths: Map<number, number>;
}

export interface Store {
  readonly kind: 'memory' | 'postgres';
  /** Cluster whose rows this store reads and writes. */
  readonly cluster: string;

  /** Prepare (connect, check schema). Idempotent. */
  open(): Promise<void>;
  close(): Promise<void>;

  /** Current committed epoch of the cluster (0 when never taken over). */
  readEpoch(): Promise<number>;
  /**
   * Become the writer: commit epoch + 1 (recording node and reason in the takeover history) and
   * make every later write check it. Returns the new epoch.
   */
  takeOver(node: string, reason: string): Promise<number>;
  /** The epoch writes are checked against (set by takeOver). */
  readonly epoch: number;
  /**
   * The high part of the message ids this writer hands out (`idBlock * 2^32 + counter`), set by
   * takeOver: above every block taken before, and unique across all clusters of the database, which
   * share the message table (PgStore: a database-wide sequence). 0 before the first takeover.
   */
  readonly idBlock: number;
  takeovers(limit: number): Promise<TakeoverRecord[]>;

  /** Find or create a destination row; returns its id. Not fenced (idempotent, race-safe). */
  ensureDestination(type: StoredDestinationType, name: string): Promise<number>;
  /**
   * Delete a destination with its messages, the durable subscriptions on it and their entries.
   * Fenced like commit. A destination of another cluster, or none, is left alone.
   */
  deleteDestination(id: number): Promise<void>;
  loadDestinations(): Promise<DestinationRecord[]>;

  /**
   * Find (by clientId and name) or create a durable subscription. An existing one is returned
   * unchanged: the broker compares its topic/selector and deletes and recreates it when they
   * changed, as ActiveMQ does. Not fenced (idempotent, race-safe).
   */
  ensureDurableSubscription(sub: Omit<DurableSubscriptionRecord, 'id'>): Promise<DurableSubscriptionRecord>;
  /** Delete a durable subscription and its entries (not the messages: see cleanupTopicMessages). Fenced. */
  deleteDurableSubscription(id: number): Promise<void>;
  loadDurableSubscriptions(): Promise<DurableSubscriptionRecord[]>;

  /** Messages of a destination in delivery order, after `cursor` (exclusive), at most `limit`. */
  pageMessages(destId: number, cursor: PageCursor | null, limit: number): Promise<StoredMessage[]>;
  /**
   * Like pageMessages, only the rows for which `where` holds: a SQL condition over a keel_messages
   * row built by MessageSelector (selector/sql.ts), never from client text. Optional: without it a
   * selector consumer's queue pages every row and tests each (MessageQueue, selector pages).
   */
  pageMessagesWhere?(
    destId: number,
    cursor: PageCursor | null,
    limit: number,
    where: string,
  ): Promise<StoredMessage[]>;
  /**
   * The messages a durable subscription still has to receive, in delivery order of its entries.
   * `priority` and `deliveryCount` of each result are the entry's (the cursor is over those).
   */
  pageSubscription(subId: number, cursor: PageCursor | null, limit: number): Promise<StoredMessage[]>;
  countMessages(destId: number): Promise<number>;
  /** Number of entries the subscription still holds. */
  countSubscription(subId: number): Promise<number>;
  getMessage(id: number): Promise<StoredMessage | null>;

  /** Highest stored sequence of a producer, or -1 when unknown. */
  producerSequence(producerId: string): Promise<number>;
  /** Whether a committed round recorded the network forward of message `id` from broker `origin`. */
  forwardedSeen(origin: string, id: number): Promise<boolean>;
  /** Whether a client transaction with this id committed. */
  txCommitted(txId: string): Promise<boolean>;

  /**
   * Apply one group-commit round atomically; rejects with FencedError on an epoch mismatch (a
   * cluster that was never taken over is at epoch 0, so a store that never called takeOver may
   * write to it) and with StoreError (`retryable` set from the cause) otherwise.
   */
  commit(batch: StoreBatch): Promise<void>;

  /** Stored messages of this cluster expired at `now` (ms), earliest expiration first, at most `limit`. */
  expiredMessages(now: number, limit: number): Promise<StoredMessage[]>;
  /** Delete topic messages no durable subscription references any more; returns how many. Not fenced (always safe). */
  cleanupTopicMessages(): Promise<number>;
  /**
   * Forget the duplicate-detection sequence of producers not heard from for `olderThanMs`, and the
   * network forwards recorded longer ago than that; returns how many producers. Not fenced (always
   * safe: nothing that old is resent).
   */
  pruneProducers(olderThanMs: number): Promise<number>;

  /** Scheduled jobs of this cluster due at `now` (ms) or before, earliest first, at most `limit`. */
  dueSchedules(now: number, limit: number): Promise<ScheduleRecord[]>;
  /** The earliest next due time (ms) of this cluster's jobs, or null when there is none. */
  nextScheduleDue(): Promise<number | null>;
  /**
   * This cluster's jobs in due order after `cursor` (exclusive), at most `limit`; `range` keeps
   * those due in [from, to] (ms, inclusive).
   */
  pageSchedules(
    cursor: ScheduleCursor | null,
    limit: number,
    range?: { from: number; to: number },
  ): Promise<ScheduleRecord[]>;
  getSchedule(jobId: string): Promise<ScheduleRecord | null>;
  countSchedules(): Promise<number>;
}
