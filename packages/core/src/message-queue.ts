import type { DestinationCounters } from './destination-counters';
import { exclusiveOwner } from './dispatch/exclusive-consumer';
import { GROUP_ID, groupIdOf, MessageGroups } from './dispatch/message-groups';
import type { GroupCommitWriter } from './group-commit';
import { PendingList } from './pending-list';
import type { Clock, Logger } from './ports';
import { entrySize, isExpired, type QueueEntry } from './queue-entry';
import { exceedsRedeliveries, type RedeliveryPolicy, redeliveryDelayMs } from './redelivery-policy';
import type { PageCursor, StoreBatch, StoredMessage } from './store/store';

const RESOLVED: Promise<void> = Promise.resolve();

function ignore(): void {}

/** Where a queue's stored messages live: a queue's rows, or a durable subscription's entries. */
export interface QueueBacking {
  page(cursor: PageCursor | null, limit: number): Promise<StoredMessage[]>;
  /** Rows after `cursor` for which the SQL condition `where` (MessageSelector.sql) holds; optional. */
  pageWhere?(cursor: PageCursor | null, limit: number, where: string): Promise<StoredMessage[]>;
  count(): Promise<number>;
  /** Store operation that removes the message from this queue (ack, purge, expiry). */
  remove(b: StoreBatch, id: number): void;
  setDeliveryCount(b: StoreBatch, id: number, deliveryCount: number): void;
}

/** Weight of the latest acknowledgement in a queue's moving average of ack latency. */
const ACK_LATENCY_WEIGHT = 0.1;

/** A consumer's message selector as the queue uses it (MessageSelector). */
export interface QueueSelector {
  matches(entry: QueueEntry): boolean;
  /** The same condition in SQL for the store's page reads, or null (then rows are tested here). */
  readonly sql: string | null;
}

/** Where a selector consumer's own reads of the store stand (see pageForSelectors). */
interface SelectorPage {
  cursor: PageCursor | null;
  reading: boolean;
  /** Nothing more matched after `cursor` when last read; cleared when more is spilled. */
  done: boolean;
}

/** Whether `c` may be given `entry` (its selector matches; no selector matches everything). */
function eligible(c: QueueConsumer, entry: QueueEntry): boolean {
  return c.selector == null || c.selector.matches(entry);
}

/** Whether `entry` lies after position `at` in delivery order (priority first, then id). */
function isAfter(entry: PageCursor, at: PageCursor): boolean {
  return entry.priority < at.priority || (entry.priority === at.priority && entry.id > at.id);
}

/** A cursor at or after both (null = before everything). */
function laterCursor(a: PageCursor | null, b: PageCursor | null): PageCursor | null {
  if (a === null) return b;
  if (b === null) return a;
  return a.priority < b.priority || (a.priority === b.priority && a.id > b.id) ? a : b;
}

/** A consumer as the queue sees it. */
export interface QueueConsumer {
  readonly id: string;
  /** Higher first; network bridges consume at a lower priority (decreaseNetworkConsumerPriority). */
  readonly priority: number;
  /** Free credit and a writable transport. */
  canTake(): boolean;
  /**
   * Hand over one message; the consumer now holds it in flight until ack, nack or close.
   * `groupFirst`: the first message of a message group it is given (JMSXGroupFirstForConsumer).
   */
  take(queue: MessageQueue, entry: QueueEntry, groupFirst?: boolean): void;
  /** ActiveMQ exclusive consumer (dispatch/exclusive-consumer.ts). */
  readonly exclusive?: boolean;
  /** A message selector (selector/): the consumer is given only the entries it matches. */
  readonly selector?: QueueSelector | null;
  /** The broker acknowledges on delivery (STOMP ack:auto): no delivery is recorded in the store. */
  readonly ackOnDelivery?: boolean;
}

export interface QueueHost {
  readonly clock: Clock;
  readonly writer: GroupCommitWriter | null;
  readonly redelivery: RedeliveryPolicy;
  /** Per-destination counts for the metrics (redeliveries are counted here). */
  readonly counters?: DestinationCounters;
  /** Concurrent store and dispatch's hold (ms), also the hold of a delivery mark (see acksWithin). */
  readonly dispatchHoldMs: number;
  readonly logger: Logger;
  /** No deliveries while set (the node lost its lock and does not know yet whether it is master). */
  readonly suspended: boolean;
  /** Recovered (possibly delivered before) messages wait until then after a takeover (ms). */
  readonly holdRecoveredUntil: number;
  /** Move an entry to the dead-letter queue (or drop it); `reason` is kept on the message. */
  deadLetter(queue: MessageQueue, entry: QueueEntry, reason: string): void;
  /** Build an entry from a stored row (headers, redelivered flag after takeover). */
  entryFromStored(row: StoredMessage): QueueEntry;
}

export interface QueueStats {
  enqueued: number;
  dequeued: number;
  expired: number;
  deadLettered: number;
}

export interface QueueOptions {
  /** Messages held in memory before the rest stays in Postgres only. */
  memoryWindow: number;
  /**
   * Bytes (QueueEntry.size) of waiting and in-flight messages held in memory before the rest stays
   * in Postgres only, whatever their count (issue #23.3; ActiveMQ's per-destination memoryLimit,
   * whose cursor pages to the store when it is reached). Default: no byte bound.
   */
  memoryWindowBytes?: number;
}

/** Rows in the first page read of a queue whose message sizes are not known yet (after recovery). */
const FIRST_PAGE_ROWS = 64;

/**
 * A FIFO-within-priority queue of messages with competing consumers: used for queues, durable
 * subscriptions (each its own queue of references) and non-durable topic subscribers (memory only).
 *
 * Memory stays bounded: beyond `memoryWindow` messages, committed messages stay in the store only
 * ("spilled") and are paged back in delivery order as the window drains (DESIGN.md, "Bounded
 * memory"). Invariant while spilled: every spilled message lies after `cursor` in delivery order;
 * a message that would lie before it is admitted to memory instead.
 */
export class MessageQueue {
  readonly pending = new PendingList();
  readonly stats: QueueStats = { enqueued: 0, dequeued: 0, expired: 0, deadLettered: 0 };
  private consumers: QueueConsumer[] = [];
  private rr = 0;
  inflight = 0;
  /** Bytes (QueueEntry.size) of the entries in flight. */
  private inflightBytes = 0;
  /** Moving average of entry sizes seen (bytes); 0 before the first: sizes the byte-bounded page reads. */
  private entrySizeEstimate = 0;
  private readonly windowBytes: number;
  private delayed = new Set<QueueEntry>();
  private delayTimer: NodeJS.Timeout | null = null;
  private dispatchScheduled = false;
  /** Recovered stored messages at start (a takeover): subject to the recovery hold. */
  private recovered = false;
  private holdTimer: NodeJS.Timeout | null = null;

  // paging state
  private spilled = false;
  private cursor: PageCursor | null = null;
  /** Moving average of delivery → acknowledgement (ms); -1 before the first. */
  private ackLatencyMs = -1;
  private spilledCount = 0;
  private paging: Promise<void> | null = null;
  /** Ids held in memory (pending, in flight, delayed): never paged in twice. */
  private readonly memoryIds = new Set<number>();
  /** Ids whose removal is not yet committed: a page read before the commit must skip them. */
  private readonly removing = new Set<number>();
  /** Stored ids failover consumers replayed as consumed before a page brought them (noteReplayedAck). */
  private replayedAcks: Set<number> | null = null;
  private removedDuringPage: number[] = [];
  private closed = false;

  // dispatch policies (dispatch/): null until a grouped message or an exclusive consumer arrives,
  // so other traffic pays nothing for them
  /** Message groups apply to queues (ActiveMQ), not to a topic subscription's own queue. */
  private readonly groupable: boolean;
  private groups: MessageGroups | null = null;
  private exclusive: QueueConsumer | null = null;
  /** Consumers with a selector; 0 keeps dispatch on its plain path (no per-message selector work). */
  private selective = 0;
  /** Selector consumers' own page reads of a spilled queue (pageForSelectors); null until one needs it. */
  private selectorPages: Map<QueueConsumer, SelectorPage> | null = null;
  /** Page reads running (paging and selector pages): removals that commit meanwhile wait for them. */
  private reads = 0;
  /**
   * Per selector consumer: every waiting entry at or before this position is known not to match its
   * selector (dispatchBySelectors), so a scan starts after it instead of at the head. Dropped when an
   * entry is put back at or before it (pushPending).
   */
  private readonly selectorSkips = new Map<QueueConsumer, PageCursor>();
  /** Sends to this queue waiting for their insert to commit before they enqueue (see arriving()). */
  private arrivals = 0;

  constructor(
    readonly key: string,
    private readonly host: QueueHost,
    private readonly backing: QueueBacking | null,
    private readonly options: QueueOptions,
  ) {
    this.groupable = key.startsWith('queue://') || key.startsWith('temp-queue://');
    this.windowBytes = options.memoryWindowBytes ?? Number.POSITIVE_INFINITY;
  }

  /** Start from the store (recovery): everything stored is on disk until paged in. */
  async recover(): Promise<void> {
    if (!this.backing) return;
    const n = await this.backing.count();
    if (n > 0) {
      this.recovered = true;
      this.spilled = true;
      this.cursor = null;
      this.spilledCount = n;
      await this.pageIn();
    }
  }

  get depth(): number {
    return this.pending.size + this.inflight + this.delayed.size + this.spilledCount;
  }

  get consumerCount(): number {
    return this.consumers.length;
  }

  get consumerList(): readonly QueueConsumer[] {
    return this.consumers;
  }

  get inMemory(): number {
    return this.pending.size + this.inflight + this.delayed.size;
  }

  /** Bytes of the messages waiting in memory and in flight (the memoryUsage of this queue). */
  get memoryBytes(): number {
    return this.pending.byteSize + this.inflightBytes;
  }

  /** The count or the byte window is full: a new stored message stays in the store only. */
  private windowFull(): boolean {
    return this.inMemory >= this.options.memoryWindow || this.memoryBytes >= this.windowBytes;
  }

  private noteSize(size: number): void {
    const e = this.entrySizeEstimate;
    this.entrySizeEstimate = e === 0 ? size : e * 0.9 + size * 0.1;
  }

  get isSpilled(): boolean {
    return this.spilled;
  }

  /** Oldest pending message timestamp (ms) among those in memory, or null. */
  oldestTimestamp(): number | null {
    const e = this.pending.peek();
    return e ? e.message.timestamp : null;
  }

  addConsumer(c: QueueConsumer): void {
    if (c.selector) this.selective += 1;
    this.consumers.push(c);
    this.consumers.sort((a, b) => b.priority - a.priority);
    if (c.exclusive === true || this.exclusive !== null) this.exclusive = exclusiveOwner(this.consumers);
    this.scheduleDispatch();
  }

  removeConsumer(c: QueueConsumer): void {
    const before = this.consumers.length;
    this.consumers = this.consumers.filter((x) => x !== c);
    if (c.selector && this.consumers.length < before) this.selective -= 1;
    this.selectorPages?.delete(c);
    this.selectorSkips.delete(c);
    let freed = false;
    if (this.exclusive === c) {
      this.exclusive = exclusiveOwner(this.consumers);
      freed = true;
    }
    if (this.groups?.consumerLeft(c)) freed = true;
    // Its messages may go to the others now (its in-flight ones come back in order: see dispatchByPolicy).
    if (freed) this.scheduleDispatch();
  }

  /** A new message (committed when stored, unless `entry.storing`: see acceptsBeforeStored). */
  enqueue(entry: QueueEntry): void {
    this.stats.enqueued += 1;
    this.noteSize(entry.size);
    if (entry.stored && !entry.storing && this.backing && this.shouldSpill(entry)) {
      if (!this.spilled) {
        this.spilled = true;
        this.cursor = { priority: entry.priority, id: entry.id - 1 };
      }
      this.spilledCount += 1;
      if (this.selectorPages !== null) this.selectorPagesStale(false);
      return;
    }
    this.hold(entry);
    this.pushPending(entry);
    this.scheduleDispatch();
  }

  /** A new (committed) message that no consumer may have before `until` (a resend after a takeover). */
  enqueueHeld(entry: QueueEntry, until: number): void {
    this.stats.enqueued += 1;
    this.hold(entry);
    entry.notBefore = until;
    this.delayed.add(entry);
    this.armDelayTimer();
  }

  /**
   * While spilled, only a message after the cursor can be left to paging; one before it (a higher
   * priority, or a moved message with an older id) must be held in memory or paging would skip it.
   */
  private shouldSpill(entry: QueueEntry): boolean {
    if (this.spilled) {
      const c = this.cursor;
      if (c === null) return true;
      return entry.priority < c.priority || (entry.priority === c.priority && entry.id > c.id);
    }
    return this.windowFull();
  }

  /** Put an entry among the waiting ones; a selector consumer's skip position before it is dropped. */
  private pushPending(entry: QueueEntry): void {
    this.pending.push(entry);
    if (this.selectorSkips.size === 0) return;
    for (const [c, at] of this.selectorSkips) if (!isAfter(entry, at)) this.selectorSkips.delete(c);
  }

  private hold(entry: QueueEntry): void {
    if (entry.stored) this.memoryIds.add(entry.id);
    if (this.groups === null && this.groupable && entry.message.properties?.[GROUP_ID] != null)
      this.groups = new MessageGroups();
  }

  scheduleDispatch(): void {
    if (this.dispatchScheduled || this.closed) return;
    this.dispatchScheduled = true;
    // A resolved promise's then, not queueMicrotask: Node wraps each queueMicrotask callback in an
    // AsyncResource, a cost paid here once per dispatch round.
    RESOLVED.then(this.runScheduledDispatch);
  }

  private readonly runScheduledDispatch = (): void => {
    this.dispatchScheduled = false;
    this.dispatch();
  };

  /** Hand pending messages to consumers with credit, highest consumer priority first, round robin. */
  dispatch(): void {
    if (this.host.suspended) return;
    const now = this.host.clock.now();
    if (this.recovered && now < this.host.holdRecoveredUntil) {
      // Failover clients replay their acknowledgements first (Broker.ackReplay).
      if (!this.holdTimer) {
        this.holdTimer = setTimeout(() => {
          this.holdTimer = null;
          this.scheduleDispatch();
        }, this.host.holdRecoveredUntil - now);
        this.holdTimer.unref?.();
      }
      return;
    }
    if (this.groups === null && this.exclusive === null && this.selective > 0) this.dispatchBySelectors(now);
    else if (this.groups !== null || this.exclusive !== null || this.selective > 0)
      this.dispatchByPolicy(now);
    else
      while (this.pending.size > 0) {
        const consumer = this.pickConsumer();
        if (!consumer) break;
        const entry = this.pending.shift()!;
        if (isExpired(entry, now)) {
          this.expire(entry);
          continue;
        }
        this.handOver(entry, consumer, false);
      }
    this.maybePageIn();
    if (this.selective > 0 && this.spilled) this.pageForSelectors();
  }

  private handOver(entry: QueueEntry, consumer: QueueConsumer, groupFirst: boolean): void {
    this.inflight += 1;
    this.inflightBytes += entry.size;
    entry.dispatchedAt = performance.now();
    this.noteDelivery(entry, consumer);
    consumer.take(this, entry, groupFirst);
  }

  /**
   * Dispatch with message groups or an exclusive consumer (dispatch/): the consumer depends on the
   * entry, so an entry whose consumer is full waits and the scan goes on past it (ActiveMQ's
   * Queue.doActualDispatch skips such messages too). Order is kept: nothing overtakes a message
   * of the same group (or, with an exclusive consumer, any message) that waits for its
   * redelivery delay. Cost: a scan of the waiting entries ahead of each dispatched one.
   */
  private dispatchByPolicy(now: number): void {
    const groups = this.groups;
    const only = this.exclusive;
    // An exclusive consumer gets the queue in order: a message waiting for redelivery holds it up.
    if (only !== null && this.delayed.size > 0) return;
    let waitingGroups: Set<string> | null = null;
    if (groups !== null && this.delayed.size > 0) {
      waitingGroups = new Set();
      for (const e of this.delayed) {
        const g = groupIdOf(e);
        if (g !== undefined) waitingGroups.add(g);
      }
    }
    for (;;) {
      let found: QueueEntry | null = null;
      let consumer: QueueConsumer | null = null;
      let group: string | undefined;
      for (const entry of this.pending.values()) {
        if (isExpired(entry, now)) {
          found = entry;
          break;
        }
        group = groups === null ? undefined : groupIdOf(entry);
        if (group === undefined) {
          consumer = only === null ? this.pickConsumer(entry) : only.canTake() ? only : null;
          if (consumer !== null && only !== null && !eligible(only, entry)) consumer = null;
          // No consumer has credit (or the exclusive one has none): nothing behind can go either.
          // With selectors, one with credit may match an entry further on.
          if (consumer === null && (this.selective === 0 || !this.anyCanTake())) return;
        } else if (waitingGroups === null || !waitingGroups.has(group)) {
          const cs = this.selective === 0 ? this.consumers : this.consumers.filter((c) => eligible(c, entry));
          consumer = groups!.consumerFor(group, only, cs);
          // A group's owner whose selector does not match this message does not get it.
          if (consumer !== null && this.selective > 0 && !eligible(consumer, entry)) consumer = null;
        }
        if (consumer !== null) {
          found = entry;
          break;
        }
        if (only !== null && !only.canTake()) return;
      }
      if (found === null) return;
      this.pending.remove(found);
      if (consumer === null) this.expire(found);
      else this.handOver(found, consumer, group !== undefined && groups!.dispatched(found, group, consumer));
    }
  }

  /**
   * Dispatch with selector consumers only (no groups, no exclusive consumer): one pass over the
   * waiting entries in delivery order, each to a consumer with credit whose selector matches it
   * (pickConsumer), the pass going on after each hand-over instead of starting again at the head.
   * A consumer that still has credit when the pass ends matched nothing up to the tail: that position
   * is remembered (selectorSkips), so the next pass starts there for it, and a pass starts at the
   * earliest such position among the consumers with credit. So non-matching entries ahead are
   * evaluated once per consumer, not once per delivery (issue #21.1: a non-matching head never
   * blocks, nor slows, the matching messages behind it).
   */
  private dispatchBySelectors(now: number): void {
    let start: PageCursor | null = null;
    let anyCredit = false;
    for (const c of this.consumers) {
      if (!c.canTake()) continue;
      anyCredit = true;
      const at = c.selector ? this.selectorSkips.get(c) : undefined;
      if (at === undefined) {
        start = null;
        break;
      }
      if (start === null || isAfter(start, at)) start = at;
    }
    if (!anyCredit) return;
    let last: QueueEntry | null = null;
    for (const entry of this.pending.valuesAfter(start)) {
      last = entry;
      if (isExpired(entry, now)) {
        this.pending.remove(entry);
        this.expire(entry);
        continue;
      }
      const consumer = this.pickConsumer(entry);
      if (consumer === null) continue;
      this.pending.remove(entry);
      this.handOver(entry, consumer, false);
      if (!this.anyCanTake()) return;
    }
    if (last === null) return;
    const tail: PageCursor = { priority: last.priority, id: last.id };
    for (const c of this.consumers) {
      if (!c.selector || !c.canTake()) continue;
      const at = this.selectorSkips.get(c);
      // Entries before the pass's start are known not to match c (its position is at or after it).
      if (at === undefined || isAfter(last, at)) this.selectorSkips.set(c, tail);
    }
  }

  /** The entry is no longer in flight (acknowledged, returned or redelivered). */
  private landed(entry: QueueEntry): void {
    this.inflight -= 1;
    this.inflightBytes -= entry.size;
    if (this.groups?.settled(entry)) this.scheduleDispatch();
  }

  /** An entry acknowledged inside a transaction: its removal committed (Broker.commit). */
  acknowledgedInTransaction(entry: QueueEntry): void {
    this.landed(entry);
    this.stats.dequeued += 1;
  }

  /** A consumer with credit for `entry` (one whose selector matches it, when it is given). */
  private pickConsumer(entry?: QueueEntry): QueueConsumer | null {
    const cs = this.consumers;
    const n = cs.length;
    if (n === 0) return null;
    let best: QueueConsumer | null = null;
    let bestIndex = -1;
    for (let k = 0; k < n; k++) {
      const i = (this.rr + k) % n;
      const c = cs[i];
      if (!c.canTake()) continue;
      if (entry !== undefined && this.selective > 0) {
        // Known not to match (dispatchBySelectors) or tested now.
        const at = this.selectorSkips.size > 0 ? this.selectorSkips.get(c) : undefined;
        if ((at !== undefined && !isAfter(entry, at)) || !eligible(c, entry)) continue;
      }
      if (best === null || c.priority > best.priority) {
        best = c;
        bestIndex = i;
        if (c.priority >= cs[0].priority) break;
      }
    }
    if (best) this.rr = (bestIndex + 1) % n;
    return best;
  }

  /**
   * Record in the store that the entry is being delivered (issue #17.5), so that after a handover or
   * a crash it comes back flagged redelivered, and only then: a recovered row is redelivered iff its
   * stored delivery count is above 0 (Broker.entryFromStored). An insert whose round has not started
   * carries the delivery itself (deliveryCountToInsert); one being written is marked once it
   * committed. A consumer the broker acknowledges for on delivery needs no mark. The mark is a
   * withdrawable fire-and-forget write of group commit (writeWithdrawable): an ack or nack before
   * its round starts withdraws it, so fast consumers cost no extra write; a round that fails for a
   * passing reason carries it over unless the message was settled meanwhile. The one window left: a
   * crash between a dispatch and the commit of its mark (docs/architecture.md, "Redelivered flag").
   */
  private noteDelivery(entry: QueueEntry, consumer: QueueConsumer): void {
    entry.delivering = true;
    if (!entry.stored || !this.backing || !this.host.writer || consumer.ackOnDelivery === true) return;
    const storing = entry.storing;
    if (!storing) this.markDelivery(entry);
    else if (storing.started()) storing.committed.then(() => this.markDelivery(entry), ignore);
  }

  private markDelivery(entry: QueueEntry): void {
    const writer = this.host.writer;
    const backing = this.backing;
    if (!entry.delivering || !entry.stored || !writer || !backing || this.closed) return;
    const count = entry.deliveryCount + 1;
    if ((entry.storedDeliveryCount ?? 0) >= count) return;
    entry.storedDeliveryCount = count;
    const id = entry.id;
    // Held like concurrent store and dispatch's inserts: only for consumers that ack within the hold.
    const hold = this.acksWithin(this.host.dispatchHoldMs) ? this.host.dispatchHoldMs : 0;
    entry.deliveryMark = writer.writeWithdrawable((b) => backing.setDeliveryCount(b, id, count), hold);
  }

  /**
   * The consumer settled the entry, or it leaves the queue: its delivery mark is withdrawn if not
   * written yet. `returned`: given back unseen, so the store's count stays as it was.
   */
  private settleDelivery(entry: QueueEntry, returned = false): void {
    entry.delivering = false;
    const mark = entry.deliveryMark;
    if (!mark) return;
    entry.deliveryMark = null;
    if (mark.withdraw() && returned) entry.storedDeliveryCount = entry.deliveryCount;
  }

  /** The consumer acknowledged the entry: it is done. Resolves once its removal committed. */
  acknowledge(entry: QueueEntry): Promise<void> {
    this.landed(entry);
    this.stats.dequeued += 1;
    const at = entry.dispatchedAt;
    if (at !== undefined) {
      const ms = performance.now() - at;
      this.ackLatencyMs =
        this.ackLatencyMs < 0 ? ms : this.ackLatencyMs + ACK_LATENCY_WEIGHT * (ms - this.ackLatencyMs);
    }
    return this.forget(entry);
  }

  /**
   * Whether this queue's consumers have lately acknowledged within `ms` of delivery (a moving
   * average): concurrent store and dispatch holds an insert back only then, so a slow consumer's
   * producers do not wait for a hold that would not save the insert.
   */
  acksWithin(ms: number): boolean {
    return this.ackLatencyMs >= 0 && this.ackLatencyMs <= ms;
  }

  /** Store operation for an acknowledged entry, to join a transaction's batch. */
  removeOp(b: StoreBatch, entry: QueueEntry): void {
    if (entry.stored && this.backing) this.backing.remove(b, entry.id);
  }

  /**
   * Release an entry from memory and write its store removal; resolves once the removal committed
   * (it is retried until it does: a brief outage must not bring an acknowledged message back).
   */
  forget(entry: QueueEntry): Promise<void> {
    this.settleDelivery(entry);
    if (entry.onConsumed) {
      entry.onConsumed();
      entry.onConsumed = null;
    }
    if (!entry.stored || !this.backing) return RESOLVED;
    const id = entry.id;
    this.memoryIds.delete(id);
    const writer = this.host.writer;
    if (!writer) return RESOLVED;
    return this.forgetStored(entry, id, writer, this.backing);
  }

  /**
   * The removal of a stored entry. The closures that wait for commit rounds hold the id only, never
   * the entry: when rounds are slow (a checkpoint, an outage) thousands of acknowledged messages
   * wait for their delete, and holding their bodies grew a benchmark node by 350 MiB.
   */
  private forgetStored(
    entry: QueueEntry,
    id: number,
    writer: GroupCommitWriter,
    backing: QueueBacking,
  ): Promise<void> {
    const storing = entry.storing;
    if (storing) {
      // Dispatched before its insert committed: the message is done, so the producer's send is
      // safe now. An insert not yet written is withdrawn (the common case for a fast consumer: no
      // closure, no promise of its own); one being written is deleted after it.
      entry.storing = null;
      storing.consumed();
      if (storing.cancel()) {
        entry.stored = false;
        return RESOLVED;
      }
      this.removing.add(id);
      return storing.committed.then(
        () => this.removeStored(id, writer, backing),
        () => this.removalCommitted(id),
      );
    }
    this.removing.add(id);
    return this.removeStored(id, writer, backing);
  }

  private removeStored(id: number, writer: GroupCommitWriter, backing: QueueBacking): Promise<void> {
    return writer.writeLater((b) => backing.remove(b, id)).then(() => this.removalCommitted(id));
  }

  /**
   * Whether a new stored message may be handed to this queue before its insert commits (concurrent
   * store and dispatch): only while it has consumers and would be held in memory, not spilled.
   */
  acceptsBeforeStored(): boolean {
    return (
      !this.closed && !this.spilled && this.arrivals === 0 && this.consumers.length > 0 && !this.windowFull()
    );
  }

  /**
   * A stored send to this queue that enqueues only once its insert commits (not dispatched before
   * stored): until the returned function is called, later sends do not take the concurrent path
   * either, or one could reach a consumer ahead of it (seen through stomp.py: a window full of
   * messages a selector consumer skips sent the next sends down the committed path, and a send
   * after the window freed overtook them).
   */
  arriving(): () => void {
    this.arrivals += 1;
    let done = false;
    return () => {
      if (done) return;
      done = true;
      this.arrivals -= 1;
    };
  }

  /**
   * The insert of an entry dispatched before it committed failed. One no consumer has had yet is
   * withdrawn, and its send fails (true). One handed to a consumer stays with it (or waits for its
   * redelivery) as a message that is not stored, and its send is in doubt (false; InDoubtSends).
   */
  storeFailed(entry: QueueEntry): boolean {
    if (!entry.storing) return true;
    entry.storing = null;
    entry.stored = false;
    this.memoryIds.delete(entry.id);
    if (entry.dispatchedAt !== undefined) return false;
    if (this.pending.remove(entry)) this.stats.enqueued -= 1;
    else if (this.delayed.delete(entry)) this.stats.enqueued -= 1;
    return true;
  }

  /** Called once a removal written elsewhere (a transaction) committed. */
  trackRemoval(id: number, committed: Promise<unknown>): void {
    this.memoryIds.delete(id);
    this.removing.add(id);
    committed.then(
      () => this.removalCommitted(id),
      () => this.removalCommitted(id),
    );
  }

  private removalCommitted(id: number): void {
    if (this.reads > 0) this.removedDuringPage.push(id);
    else this.removing.delete(id);
  }

  /** A page read ended: removals that committed while any read ran are safe to forget now. */
  private readEnded(): void {
    this.reads -= 1;
    if (this.reads > 0) return;
    for (const id of this.removedDuringPage) this.removing.delete(id);
    this.removedDuringPage = [];
  }

  /**
   * Put an in-flight entry back (nack, consumer closed, transaction rolled back). The delivery count
   * grows; past the redelivery policy's maximum the entry goes to the dead-letter queue.
   */
  redeliver(entry: QueueEntry, reason: string): void {
    this.landed(entry);
    // The count written below supersedes the delivery's mark.
    this.settleDelivery(entry);
    entry.deliveryCount += 1;
    entry.redelivered = true;
    const policy = this.host.redelivery;
    if (exceedsRedeliveries(policy, entry.deliveryCount)) {
      this.memoryIds.delete(entry.id);
      this.stats.deadLettered += 1;
      this.host.deadLetter(
        this,
        entry,
        `${reason}: delivered ${entry.deliveryCount} times, more than maximumRedeliveries=${policy.maximumRedeliveries}`,
      );
      return;
    }
    this.host.counters?.countRedelivered(entry.message.destination);
    if (entry.stored && this.backing && this.host.writer) {
      const backing = this.backing;
      const count = entry.deliveryCount;
      entry.storedDeliveryCount = count;
      void this.host.writer.writeLater((b) => backing.setDeliveryCount(b, entry.id, count));
    }
    const delay = redeliveryDelayMs(policy, entry.deliveryCount);
    if (delay > 0) {
      entry.notBefore = this.host.clock.now() + delay;
      this.delayed.add(entry);
      this.armDelayTimer();
    } else {
      this.pushPending(entry);
      this.scheduleDispatch();
    }
  }

  /**
   * Return an in-flight entry without counting a delivery: a consumer that refused it unseen, or
   * (`delivered`) one whose connection went without a verdict (a network bridge's link dropped:
   * the peer may have it, so it is flagged redelivered and the next forward says so).
   */
  unconsumed(entry: QueueEntry, delivered = false): void {
    this.landed(entry);
    // Possibly delivered: its mark stays (the connection went, or the node stops: a graceful
    // handover drains the writer, so the mark commits). Refused unseen: withdrawn if still possible.
    if (delivered) {
      entry.delivering = false;
      entry.redelivered = true;
    } else this.settleDelivery(entry, true);
    this.pushPending(entry);
    this.scheduleDispatch();
  }

  private armDelayTimer(): void {
    if (this.delayTimer || this.closed) return;
    let next = Number.POSITIVE_INFINITY;
    for (const e of this.delayed) next = Math.min(next, e.notBefore);
    const wait = Math.max(0, next - this.host.clock.now());
    this.delayTimer = setTimeout(() => {
      this.delayTimer = null;
      const now = this.host.clock.now();
      for (const e of this.delayed) {
        if (e.notBefore <= now) {
          this.delayed.delete(e);
          this.pushPending(e);
        }
      }
      if (this.delayed.size > 0) this.armDelayTimer();
      this.scheduleDispatch();
    }, wait);
    this.delayTimer.unref?.();
  }

  private expire(entry: QueueEntry): void {
    this.stats.expired += 1;
    this.memoryIds.delete(entry.id);
    this.host.deadLetter(this, entry, 'expired');
  }

  private maybePageIn(): void {
    if (!this.spilled || this.paging || this.closed) return;
    if (this.pending.size + this.delayed.size >= this.options.memoryWindow / 2) return;
    if (this.pending.byteSize >= this.windowBytes / 2) return;
    void this.pageIn();
  }

  private pageIn(): Promise<void> {
    if (this.paging) return this.paging;
    const run = async (): Promise<void> => {
      this.reads += 1;
      try {
        // The window bounds what waits in memory; in-flight messages are bounded by the consumers'
        // prefetch. (Counting them here shrank pages to a row or two while consumers held a full
        // prefetch, and the drain waited on one query per row.)
        const limit = this.pageLimit();
        const rows = await this.backing!.page(this.cursor, limit);
        // The byte window (issue #23.3): rows past it stay in the store, the cursor before them.
        let truncated = false;
        for (const [i, row] of rows.entries()) {
          if (i > 0 && this.pending.byteSize >= this.windowBytes) {
            truncated = true;
            break;
          }
          this.cursor = { priority: row.priority, id: row.id };
          if (this.memoryIds.has(row.id) || this.removing.has(row.id) || this.dropReplayed(row.id)) continue;
          this.spilledCount -= 1;
          const entry = this.host.entryFromStored(row);
          this.noteSize(entry.size);
          this.hold(entry);
          this.pushPending(entry);
        }
        if (!truncated && rows.length < limit) {
          // Everything after the cursor is in memory now (or the count drifted: recount).
          if (this.spilledCount > 0) {
            this.spilledCount = Math.max(0, (await this.backing!.count()) - this.memoryIds.size);
          }
          if (this.spilledCount <= 0) {
            this.spilled = false;
            this.cursor = null;
            this.spilledCount = 0;
            this.replayedAcks = null;
          }
        }
      } catch (err) {
        this.host.logger.warn({ queue: this.key, err: (err as Error).message }, 'paging from store failed');
      } finally {
        this.paging = null;
        this.readEnded();
      }
      this.scheduleDispatch();
    };
    this.paging = run();
    return this.paging;
  }

  /**
   * Rows to read in one page: what fills the count window, and, with a byte window, what fits in the
   * bytes left at the sizes seen so far (FIRST_PAGE_ROWS while none were seen), at least one.
   */
  private pageLimit(): number {
    const waiting = this.pending.size + this.delayed.size;
    const byCount = Math.max(Math.ceil(this.options.memoryWindow / 2), this.options.memoryWindow - waiting);
    return this.boundedByBytes(byCount, this.windowBytes - this.pending.byteSize);
  }

  /** `rows`, or fewer: what fits in `bytes` at the sizes seen so far (at least one row). */
  private boundedByBytes(rows: number, bytes: number): number {
    if (this.windowBytes === Number.POSITIVE_INFINITY) return rows;
    const est = this.entrySizeEstimate;
    if (est === 0) return Math.min(rows, FIRST_PAGE_ROWS);
    return Math.max(1, Math.min(rows, Math.floor(Math.max(0, bytes) / est)));
  }

  private anyCanTake(): boolean {
    for (const c of this.consumers) if (c.canTake()) return true;
    return false;
  }

  /**
   * A selector consumer with credit that found nothing it matches in memory reads the store itself
   * (issue #21.1): the next matching rows after the queue's cursor, with the selector's SQL where the
   * store has it (PgStore.pageMessagesWhere), else a page of rows tested here. So non-matching
   * messages ahead never block matching ones, and are never loaded for it (memory holds the window
   * plus at most a page per selector consumer). Rows it admits are held like paged ones (memoryIds),
   * so the queue's own paging skips them.
   */
  private pageForSelectors(): void {
    if (!this.backing || this.closed) return;
    for (const c of this.consumers) {
      const selector = c.selector;
      if (!selector || !c.canTake()) continue;
      this.selectorPages ??= new Map();
      let page = this.selectorPages.get(c);
      if (page === undefined) {
        page = { cursor: null, reading: false, done: false };
        this.selectorPages.set(c, page);
      }
      if (!page.reading && !page.done) void this.readForSelector(c, selector, page);
    }
  }

  private async readForSelector(
    c: QueueConsumer,
    selector: QueueSelector,
    page: SelectorPage,
  ): Promise<void> {
    const backing = this.backing!;
    const limit = this.boundedByBytes(Math.ceil(this.options.memoryWindow / 2), this.windowBytes / 2);
    page.reading = true;
    this.reads += 1;
    let admitted = 0;
    try {
      const from = laterCursor(page.cursor, this.cursor);
      const sql = selector.sql;
      const rows =
        sql !== null && backing.pageWhere
          ? await backing.pageWhere(from, limit, sql)
          : await backing.page(from, limit);
      if (this.selectorPages?.get(c) !== page) return; // the consumer left, or the pages were reset
      for (const row of rows) {
        page.cursor = { priority: row.priority, id: row.id };
        if (this.memoryIds.has(row.id) || this.removing.has(row.id) || this.dropReplayed(row.id)) continue;
        const entry = this.host.entryFromStored(row);
        if (!selector.matches(entry)) continue;
        this.spilledCount = Math.max(0, this.spilledCount - 1);
        this.hold(entry);
        this.pushPending(entry);
        admitted += 1;
      }
      if (rows.length < limit) page.done = true;
    } catch (err) {
      this.host.logger.warn({ queue: this.key, err: (err as Error).message }, 'selector page read failed');
      page.done = true;
    } finally {
      page.reading = false;
      this.readEnded();
    }
    // Read on while nothing matched (rows tested here) or deliver what came in.
    if (admitted > 0 || !page.done) this.scheduleDispatch();
  }

  /**
   * More was spilled: selector pages read again. `reset`: rows may lie anywhere (resync), so they
   * start over, and a read in flight is discarded (readForSelector sees its page replaced).
   */
  private selectorPagesStale(reset: boolean): void {
    if (reset) this.selectorPages!.clear();
    else for (const page of this.selectorPages!.values()) page.done = false;
  }

  /**
   * Re-read the stored count: rows the broker does not hold (a commit that succeeded although its
   * answer was lost) become a spilled backlog that paging delivers. Paging skips what is held.
   */
  async resync(): Promise<void> {
    if (!this.backing || this.closed) return;
    const stored = await this.backing.count();
    const extra = stored - this.memoryIds.size - this.removing.size - this.spilledCount;
    if (extra <= 0) return;
    this.host.logger.warn(
      { queue: this.key, extra },
      'store holds messages the broker did not know; paging them in',
    );
    this.spilledCount += extra;
    if (!this.spilled) {
      this.spilled = true;
      this.cursor = null;
    } else {
      this.cursor = null; // the unknown rows may lie anywhere in delivery order
    }
    if (this.selectorPages !== null) this.selectorPagesStale(true);
    this.scheduleDispatch();
  }

  /** Remove every message not in flight (admin purge). Returns how many were removed. */
  async purge(): Promise<number> {
    let removed = 0;
    const writer = this.host.writer;
    const backing = this.backing;
    const removals: Promise<void>[] = [];
    for (const e of [...this.pending.clear(), ...this.delayed]) {
      removed += 1;
      removals.push(this.forget(e));
    }
    this.delayed.clear();
    await Promise.all(removals);
    if (backing && writer && this.spilledCount > 0) {
      let cursor: PageCursor | null = this.cursor;
      for (;;) {
        const rows = await backing.page(cursor, 5000);
        if (rows.length === 0) break;
        const ids = rows.filter((r) => !this.memoryIds.has(r.id)).map((r) => r.id);
        removed += ids.length;
        await writer.write((b) => {
          for (const id of ids) backing.remove(b, id);
        });
        cursor = { priority: rows[rows.length - 1].priority, id: rows[rows.length - 1].id };
      }
      this.spilled = false;
      this.cursor = null;
      this.spilledCount = 0;
    }
    return removed;
  }

  /** Entries in delivery order without consuming them (browse), from memory then the store. */
  async browse(limit: number, offset = 0): Promise<QueueEntry[]> {
    const out: QueueEntry[] = [];
    let skipped = 0;
    for (const e of this.pending.values()) {
      if (skipped < offset) {
        skipped += 1;
        continue;
      }
      if (out.length >= limit) return out;
      out.push(e);
    }
    if (this.spilled && this.backing && out.length < limit) {
      const rows = await this.backing.page(this.cursor, limit - out.length + Math.max(0, offset - skipped));
      for (const row of rows) {
        if (this.memoryIds.has(row.id)) continue;
        if (skipped < offset) {
          skipped += 1;
          continue;
        }
        if (out.length >= limit) break;
        out.push(this.host.entryFromStored(row));
      }
    }
    return out;
  }

  /** Entries waiting in memory, not in flight (pending and delayed): a browse's snapshot. */
  waitingEntries(): QueueEntry[] {
    return [...this.pending.values(), ...this.delayed];
  }

  /** Stored rows after `cursor` in delivery order (a browse pages them); none without a backing. */
  pageStored(cursor: PageCursor | null, limit: number): Promise<StoredMessage[]> {
    return this.backing ? this.backing.page(cursor, limit) : Promise.resolve([]);
  }

  /**
   * A failover consumer replayed its acknowledgement of a stored message that is not in memory
   * (Broker.ackReplay): after a takeover the queue reads the store page by page and holds no more
   * than its window, so a replayed id may be a row not read yet. It is remembered, and when a page
   * brings its row the row is removed instead of delivered — else it went to another consumer once
   * the recovery hold ended (duplicates beside stress-ng, issue #17). Most replayed ids were removed
   * by the old master already; they are forgotten once the whole queue has been read.
   */
  noteReplayedAck(id: number): void {
    if (!this.backing || !this.spilled || this.memoryIds.has(id) || this.removing.has(id)) return;
    this.replayedAcks ??= new Set();
    this.replayedAcks.add(id);
  }

  /** A paged row that a failover consumer replayed as consumed: removed, not delivered. */
  private dropReplayed(id: number): boolean {
    const writer = this.host.writer;
    if (!this.replayedAcks?.delete(id) || !writer || !this.backing) return false;
    this.spilledCount = Math.max(0, this.spilledCount - 1);
    this.stats.dequeued += 1;
    this.removing.add(id);
    void this.removeStored(id, writer, this.backing);
    return true;
  }

  /** Find a pending entry in memory by id and take it out (admin move/retry). */
  takePending(id: number): QueueEntry | null {
    for (const e of this.pending.values()) {
      if (e.id === id) {
        this.pending.remove(e);
        this.memoryIds.delete(id);
        return e;
      }
    }
    for (const e of this.delayed) {
      if (e.id === id) {
        this.delayed.delete(e);
        this.memoryIds.delete(id);
        return e;
      }
    }
    return null;
  }

  /** True while the message is held in memory (pending, delayed or in flight) or being removed. */
  holds(id: number): boolean {
    return this.memoryIds.has(id) || this.removing.has(id);
  }

  /** A message taken out of the store directly (spilled): keep the count right. */
  spilledRemoved(n = 1): void {
    this.spilledCount = Math.max(0, this.spilledCount - n);
  }

  /** Drop every in-memory structure (node stops serving). */
  close(): void {
    this.closed = true;
    if (this.holdTimer) clearTimeout(this.holdTimer);
    if (this.delayTimer) clearTimeout(this.delayTimer);
    this.delayTimer = null;
    this.consumers = [];
  }

  /** Make a memory entry for a message that is not stored. */
  static memoryEntry(id: number, message: QueueEntry['message']): QueueEntry {
    return {
      id,
      message,
      priority: message.priority,
      expiration: message.expiration,
      deliveryCount: 0,
      redelivered: false,
      stored: false,
      size: entrySize(message),
      notBefore: 0,
    };
  }
}
