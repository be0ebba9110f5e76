import { DeliveryMark } from './delivery-mark';
import type { DestinationCounters } from './destination-counters';
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
  count(): Promise<number>;
  /** Store operation that removes the message from this queue (ack, purge, expiry). */
  remove(b: StoreBatch, id: number): void;
  setDeliveryCount(b: StoreBatch, id: number, deliveryCount: number): void;
}

/** Weight of the latest acknowledgement in a queue's moving average of ack latency. */
const ACK_LATENCY_WEIGHT = 0.1;

/** A consumer as the queue sees it. */
export interface QueueConsumer {
  readonly id: string;
  /** Higher first; network bridges consume at a lower priority (decreaseNetworkConsumerPriority). */
  readonly priority: number;
  /** Free credit and a writable transport. */
  canTake(): boolean;
  /** Hand over one message; the consumer now holds it in flight until ack, nack or close. */
  take(queue: MessageQueue, entry: QueueEntry): void;
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
}

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
  private removedDuringPage: number[] = [];
  private closed = false;

  constructor(
    readonly key: string,
    private readonly host: QueueHost,
    private readonly backing: QueueBacking | null,
    private readonly options: QueueOptions,
  ) {}

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

  get isSpilled(): boolean {
    return this.spilled;
  }

  /** Oldest pending message timestamp (ms) among those in memory, or null. */
  oldestTimestamp(): number | null {
    const e = this.pending.peek();
    return e ? e.message.timestamp : null;
  }

  addConsumer(c: QueueConsumer): void {
    this.consumers.push(c);
    this.consumers.sort((a, b) => b.priority - a.priority);
    this.scheduleDispatch();
  }

  removeConsumer(c: QueueConsumer): void {
    this.consumers = this.consumers.filter((x) => x !== c);
  }

  /** A new message (committed when stored, unless `entry.storing`: see acceptsBeforeStored). */
  enqueue(entry: QueueEntry): void {
    this.stats.enqueued += 1;
    if (entry.stored && !entry.storing && this.backing && this.shouldSpill(entry)) {
      if (!this.spilled) {
        this.spilled = true;
        this.cursor = { priority: entry.priority, id: entry.id - 1 };
      }
      this.spilledCount += 1;
      return;
    }
    this.hold(entry);
    this.pending.push(entry);
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
    return this.inMemory >= this.options.memoryWindow;
  }

  private hold(entry: QueueEntry): void {
    if (entry.stored) this.memoryIds.add(entry.id);
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
    while (this.pending.size > 0) {
      const consumer = this.pickConsumer();
      if (!consumer) break;
      const entry = this.pending.shift()!;
      if (isExpired(entry, now)) {
        this.expire(entry);
        continue;
      }
      this.inflight += 1;
      entry.dispatchedAt = performance.now();
      this.noteDelivery(entry, consumer);
      consumer.take(this, entry);
    }
    this.maybePageIn();
  }

  private pickConsumer(): QueueConsumer | null {
    const cs = this.consumers;
    const n = cs.length;
    if (n === 0) return null;
    let best: QueueConsumer | null = null;
    let bestIndex = -1;
    for (let k = 0; k < n; k++) {
      const i = (this.rr + k) % n;
      const c = cs[i];
      if (!c.canTake()) continue;
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
   * stored delivery count is above 0 (Broker.entryFromStored). An insert not written yet carries the
   * delivery itself (deliveryCountToInsert); one being written is marked once it committed. A
   * consumer the broker acknowledges for on delivery needs no mark.
   */
  private noteDelivery(entry: QueueEntry, consumer: QueueConsumer): void {
    entry.delivering = true;
    if (!entry.stored || !this.backing || !this.host.writer || consumer.ackOnDelivery === true) return;
    const storing = entry.storing;
    if (storing) storing.committed.then(() => this.markDelivery(entry), ignore);
    else this.markDelivery(entry);
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
    entry.deliveryMark = new DeliveryMark(writer, (b) => backing.setDeliveryCount(b, id, count), hold);
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
    this.inflight -= 1;
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
    if (!entry.stored || !this.backing) return Promise.resolve();
    const id = entry.id;
    this.memoryIds.delete(id);
    const writer = this.host.writer;
    if (!writer) return Promise.resolve();
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
    const remove = (): Promise<void> =>
      writer.writeLater((b) => backing.remove(b, id)).then(() => this.removalCommitted(id));
    const storing = entry.storing;
    if (storing) {
      // Dispatched before its insert committed: the message is done, so the producer's send is
      // safe now. An insert not yet written is withdrawn; one being written is deleted after it.
      entry.storing = null;
      storing.consumed();
      if (storing.cancel()) {
        entry.stored = false;
        return Promise.resolve();
      }
      this.removing.add(id);
      return storing.committed.then(remove, () => this.removalCommitted(id));
    }
    this.removing.add(id);
    return remove();
  }

  /**
   * Whether a new stored message may be handed to this queue before its insert commits (concurrent
   * store and dispatch): only while it has consumers and would be held in memory, not spilled.
   */
  acceptsBeforeStored(): boolean {
    return (
      !this.closed && !this.spilled && this.consumers.length > 0 && this.inMemory < this.options.memoryWindow
    );
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
    if (this.paging) this.removedDuringPage.push(id);
    else this.removing.delete(id);
  }

  /**
   * Put an in-flight entry back (nack, consumer closed, transaction rolled back). The delivery count
   * grows; past the redelivery policy's maximum the entry goes to the dead-letter queue.
   */
  redeliver(entry: QueueEntry, reason: string): void {
    this.inflight -= 1;
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
      this.pending.push(entry);
      this.scheduleDispatch();
    }
  }

  /**
   * Return an in-flight entry without counting a delivery: a consumer that refused it unseen, or
   * (`delivered`) one whose connection went without a verdict (a network bridge's link dropped:
   * the peer may have it, so it is flagged redelivered and the next forward says so).
   */
  unconsumed(entry: QueueEntry, delivered = false): void {
    this.inflight -= 1;
    // Possibly delivered: its mark stays (the connection went, or the node stops: a graceful
    // handover drains the writer, so the mark commits). Refused unseen: withdrawn if still possible.
    if (delivered) {
      entry.delivering = false;
      entry.redelivered = true;
    } else this.settleDelivery(entry, true);
    this.pending.push(entry);
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
          this.pending.push(e);
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
    void this.pageIn();
  }

  private pageIn(): Promise<void> {
    if (this.paging) return this.paging;
    const run = async (): Promise<void> => {
      try {
        // The window bounds what waits in memory; in-flight messages are bounded by the consumers'
        // prefetch. (Counting them here shrank pages to a row or two while consumers held a full
        // prefetch, and the drain waited on one query per row.)
        const waiting = this.pending.size + this.delayed.size;
        const limit = Math.max(Math.ceil(this.options.memoryWindow / 2), this.options.memoryWindow - waiting);
        const rows = await this.backing!.page(this.cursor, limit);
        for (const row of rows) {
          this.cursor = { priority: row.priority, id: row.id };
          if (this.memoryIds.has(row.id) || this.removing.has(row.id)) continue;
          this.spilledCount -= 1;
          const entry = this.host.entryFromStored(row);
          this.hold(entry);
          this.pending.push(entry);
        }
        if (rows.length < limit) {
          // Everything after the cursor is in memory now (or the count drifted: recount).
          if (this.spilledCount > 0) {
            this.spilledCount = Math.max(0, (await this.backing!.count()) - this.memoryIds.size);
          }
          if (this.spilledCount <= 0) {
            this.spilled = false;
            this.cursor = null;
            this.spilledCount = 0;
          }
        }
      } catch (err) {
        this.host.logger.warn({ queue: this.key, err: (err as Error).message }, 'paging from store failed');
      } finally {
        this.paging = null;
        for (const id of this.removedDuringPage) this.removing.delete(id);
        this.removedDuringPage = [];
      }
      this.scheduleDispatch();
    };
    this.paging = run();
    return this.paging;
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
