import { MAX_PRIORITY } from '@keel/protocol';
import type { QueueEntry } from './queue-entry';

/**
 * Messages waiting for a consumer, in delivery order: highest priority first, FIFO (by id) within
 * a priority. One array-backed deque per priority makes push and shift O(1); a redelivered message
 * is put back in id order with a binary search.
 */
class Bucket {
  items: QueueEntry[] = [];
  head = 0;

  get size(): number {
    return this.items.length - this.head;
  }

  push(e: QueueEntry): void {
    const n = this.items.length;
    if (n === this.head || this.items[n - 1].id < e.id) {
      this.items.push(e);
      return;
    }
    let lo = this.head;
    let hi = n;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.items[mid].id < e.id) lo = mid + 1;
      else hi = mid;
    }
    this.items.splice(lo, 0, e);
  }

  peek(): QueueEntry | undefined {
    return this.head < this.items.length ? this.items[this.head] : undefined;
  }

  shift(): QueueEntry | undefined {
    if (this.head >= this.items.length) return undefined;
    const e = this.items[this.head];
    this.items[this.head] = undefined as unknown as QueueEntry;
    this.head += 1;
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return e;
  }

  remove(id: number): QueueEntry | undefined {
    for (let i = this.head; i < this.items.length; i++) {
      if (this.items[i].id === id) {
        const [e] = this.items.splice(i, 1);
        return e;
      }
    }
    return undefined;
  }

  *values(): IterableIterator<QueueEntry> {
    for (let i = this.head; i < this.items.length; i++) yield this.items[i];
  }

  /** Entries with an id above `id`, in order; the one just yielded may be removed meanwhile. */
  *valuesAfter(id: number): IterableIterator<QueueEntry> {
    let lo = this.head;
    let hi = this.items.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.items[mid].id <= id) lo = mid + 1;
      else hi = mid;
    }
    for (let i = lo; i < this.items.length; ) {
      const e = this.items[i];
      yield e;
      // remove() splices: the next entry then sits at i.
      if (this.items[i] === e) i += 1;
    }
  }
}

export class PendingList {
  private readonly buckets: Bucket[] = Array.from({ length: MAX_PRIORITY + 1 }, () => new Bucket());
  private count = 0;
  private bytes = 0;

  get size(): number {
    return this.count;
  }

  get byteSize(): number {
    return this.bytes;
  }

  push(e: QueueEntry): void {
    this.buckets[e.priority].push(e);
    this.count += 1;
    this.bytes += e.size;
  }

  peek(): QueueEntry | undefined {
    for (let p = MAX_PRIORITY; p >= 0; p--) {
      const e = this.buckets[p].peek();
      if (e) return e;
    }
    return undefined;
  }

  shift(): QueueEntry | undefined {
    for (let p = MAX_PRIORITY; p >= 0; p--) {
      if (this.buckets[p].size > 0) {
        const e = this.buckets[p].shift()!;
        this.count -= 1;
        this.bytes -= e.size;
        return e;
      }
    }
    return undefined;
  }

  remove(entry: QueueEntry): boolean {
    const e = this.buckets[entry.priority].remove(entry.id);
    if (!e) return false;
    this.count -= 1;
    this.bytes -= e.size;
    return true;
  }

  /** In delivery order. */
  *values(): IterableIterator<QueueEntry> {
    for (let p = MAX_PRIORITY; p >= 0; p--) yield* this.buckets[p].values();
  }

  /**
   * In delivery order, starting after position `after` (null: from the head); an entry may be
   * removed (remove()) while the iteration stands on it.
   */
  *valuesAfter(after: { priority: number; id: number } | null): IterableIterator<QueueEntry> {
    for (let p = after === null ? MAX_PRIORITY : after.priority; p >= 0; p--) {
      yield* this.buckets[p].valuesAfter(
        after !== null && p === after.priority ? after.id : Number.NEGATIVE_INFINITY,
      );
    }
  }

  clear(): QueueEntry[] {
    const all = [...this.values()];
    for (const b of this.buckets) {
      b.items = [];
      b.head = 0;
    }
    this.count = 0;
    this.bytes = 0;
    return all;
  }
}
