import { type DeliveredMessage, deliveredMessage } from '@keel/protocol';
import { BrokerConsumer, type ConsumerFlow, type DeliverySink } from './consumer';
import { formatMessageId } from './message-ids';
import type { Clock, Logger } from './ports';
import { isExpired, type QueueEntry } from './queue-entry';
import type { PageCursor, StoredMessage } from './store/store';

/** Rows read from the store per page while a browse walks a queue's spilled backlog. */
export const BROWSE_PAGE_ROWS = 200;
/** Wait before a browse reads the store again after a failed page (the store may be away). */
export const BROWSE_RETRY_MS = 1000;

/** What a queue holds when a browse starts (Broker.subscribe with `browse`). */
export interface BrowseSnapshot {
  /** The browsed queue (`queue://name`), named by the end marker. */
  destination: string;
  /**
   * Every message held in memory: waiting, delayed, and in flight (delivered to a consumer, not yet
   * acknowledged — ActiveMQ's browser shows those too). References, not copies: the queue's memory
   * window bounds them.
   */
  memory: QueueEntry[];
  /** The last message id handed out: a stored row with a higher id arrived after the snapshot. */
  maxId: number;
  /**
   * Reads stored rows after a cursor in delivery order, when the queue kept some in the store only
   * (spilled past its memory window); null when everything it holds is in `memory`.
   */
  page: ((cursor: PageCursor | null, limit: number) => Promise<StoredMessage[]>) | null;
  /** Builds an entry from a stored row (Broker.entryFromStored: headers, redelivered flag). */
  toEntry(row: StoredMessage): QueueEntry;
}

export interface QueueBrowserOptions {
  clock: Clock;
  logger: Logger;
  /** Rows per store page; default BROWSE_PAGE_ROWS. */
  pageRows?: number;
}

/** Delivery order: higher priority first, then arrival (id) — the store's and PendingList's. */
function before(a: { priority: number; id: number }, b: { priority: number; id: number }): boolean {
  return a.priority > b.priority || (a.priority === b.priority && a.id < b.id);
}

/**
 * A browsing subscription (JMS QueueBrowser; ActiveMQ's STOMP `browser:true`): it shows what a queue
 * held when it subscribed, in delivery order, without consuming it — no acknowledgement, no
 * delivery count, no redelivered flag changes; the messages stay with the queue's consumers —
 * and then sends one end marker (a Delivery with `browseEnd`). After the marker it stays
 * subscribed and delivers nothing more, as ActiveMQ's browser does, until it is unsubscribed.
 *
 * Memory stays bounded: the snapshot refers to the entries the queue holds in memory (its window
 * and the in-flight ones) and reads the spilled rest from the store a page at a time, merging the
 * two in delivery order. A row is skipped when its message was in the memory snapshot (shown from
 * there) or arrived after the snapshot (a higher id). A stored message consumed by another consumer
 * before the browse reaches it is not shown: the browse follows the store, it does not copy it.
 *
 * Pacing: the connection's writability always; with `ackOnDelivery` (STOMP, where no frame gives
 * credit and acknowledgements of browsed messages are not needed) nothing else; otherwise each
 * browsed message takes one credit, which the client gives back with CREDIT frames (native).
 * Acknowledgements of browsed messages find nothing in flight and do nothing.
 */
export class QueueBrowser extends BrokerConsumer {
  private memory: (QueueEntry | null)[];
  private memoryIndex = 0;
  private readonly memoryIds: Set<number>;
  private rows: StoredMessage[] = [];
  private rowIndex = 0;
  private cursor: PageCursor | null = null;
  private storeDone: boolean;
  private readonly pageRows: number;
  private pumping = false;
  private ended = false;
  private retryTimer: NodeJS.Timeout | null = null;
  /** What head() found and advance() moves past. */
  private peeked: { entry: QueueEntry; fromMemory: boolean } | null = null;

  constructor(
    id: string,
    prefetch: number,
    ackOnDelivery: boolean,
    private readonly transport: ConsumerFlow,
    private readonly out: DeliverySink,
    private readonly snapshot: BrowseSnapshot,
    private readonly options: QueueBrowserOptions,
  ) {
    super(id, 0, prefetch, ackOnDelivery, transport, out);
    const byId = new Map<number, QueueEntry>();
    for (const e of snapshot.memory) byId.set(e.id, e);
    this.memory = [...byId.values()].sort((a, b) => (before(a, b) ? -1 : before(b, a) ? 1 : 0));
    this.memoryIds = new Set(byId.keys());
    this.storeDone = snapshot.page === null;
    this.pageRows = Math.max(1, options.pageRows ?? BROWSE_PAGE_ROWS);
  }

  /** True once the end marker went out. */
  get finished(): boolean {
    return this.ended;
  }

  /** Never attached to a queue: nothing is dispatched to a browser. */
  override canTake(): boolean {
    return false;
  }

  override take(): void {
    throw new Error('a queue browser takes no messages from its queue');
  }

  /** Credit came back or the transport drained: go on browsing. */
  override wake(): void {
    if (!this.pumping && !this.closed && !this.ended && this.retryTimer === null) void this.pump();
  }

  override detach(): ReturnType<BrokerConsumer['detach']> {
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.release();
    return super.detach();
  }

  private async pump(): Promise<void> {
    this.pumping = true;
    try {
      while (!this.closed && !this.ended && this.transport.writable) {
        const entry = await this.head();
        if (this.closed) return;
        if (entry === null) {
          this.finish();
          return;
        }
        if (!this.ackOnDelivery && this.credit <= 0) return;
        this.advance();
        if (!this.ackOnDelivery) this.credit -= 1;
        this.delivered += 1;
        this.out({
          consumerId: this.id,
          message: deliveredMessage(
            entry.message,
            formatMessageId(entry.id),
            entry.deliveryCount,
            entry.redelivered || entry.deliveryCount > 0,
          ),
        });
      }
    } catch (err) {
      // The store is away: read the page again later (the snapshot's memory part is unaffected).
      this.options.logger.warn(
        { consumer: this.id, queue: this.snapshot.destination, err: (err as Error).message },
        'browse: reading the store failed; retrying',
      );
      this.retryTimer = setTimeout(() => {
        this.retryTimer = null;
        this.wake();
      }, BROWSE_RETRY_MS);
      this.retryTimer.unref?.();
    } finally {
      this.pumping = false;
    }
  }

  /** The next message to show (skipping expired ones), without taking it; null at the end. */
  private async head(): Promise<QueueEntry | null> {
    if (this.peeked !== null) return this.peeked.entry;
    const now = this.options.clock.now();
    for (;;) {
      const mem = this.memory[this.memoryIndex] ?? null;
      const row = await this.storeHead();
      if (this.closed) return null;
      if (mem !== null && (row === null || before(mem, row))) this.peeked = { entry: mem, fromMemory: true };
      else if (row !== null) this.peeked = { entry: this.snapshot.toEntry(row), fromMemory: false };
      else return null;
      if (!isExpired(this.peeked.entry, now)) return this.peeked.entry;
      this.advance();
    }
  }

  /** Move past what head() returned. */
  private advance(): void {
    const p = this.peeked;
    this.peeked = null;
    if (p === null) return;
    if (p.fromMemory) {
      // Let go of it: the browse holds each entry only until it is shown.
      this.memory[this.memoryIndex] = null;
      this.memoryIndex += 1;
    } else this.rowIndex += 1;
  }

  /** The next eligible stored row, reading the next page when this one is used up. */
  private async storeHead(): Promise<StoredMessage | null> {
    while (this.rowIndex >= this.rows.length) {
      if (this.storeDone || this.closed) return null;
      const page = this.snapshot.page!;
      const rows = await page(this.cursor, this.pageRows);
      if (rows.length < this.pageRows) this.storeDone = true;
      if (rows.length > 0) {
        const last = rows[rows.length - 1];
        this.cursor = { priority: last.priority, id: last.id };
      }
      this.rows = rows.filter((r) => r.id <= this.snapshot.maxId && !this.memoryIds.has(r.id));
      this.rowIndex = 0;
    }
    return this.rows[this.rowIndex];
  }

  /** Every message was shown: send the end marker; the subscription stays, silent. */
  private finish(): void {
    this.ended = true;
    this.release();
    const message = browseEndMessage(this.snapshot.destination, this.options.clock);
    this.out({ consumerId: this.id, message, browseEnd: true });
  }

  private release(): void {
    this.memory = [];
    this.rows = [];
    this.peeked = null;
  }
}

const EMPTY_BODY = Buffer.alloc(0);

/** The placeholder an end marker carries: no body, id "0" (ActiveMQ's `message-id:0`). */
export function browseEndMessage(destination: string, clock: Clock): DeliveredMessage {
  return deliveredMessage(
    {
      destination,
      body: EMPTY_BODY,
      persistent: false,
      priority: 0,
      timestamp: clock.now(),
      expiration: 0,
      properties: {},
    },
    '0',
    0,
    false,
  );
}
