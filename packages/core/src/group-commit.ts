import { FencedError, KeelError, StoreError } from '@keel/protocol';
import type { Logger } from './ports';
import { silentLogger } from './ports';
import { emptyBatch, isEmptyBatch, type Store, type StoreBatch } from './store/store';

export interface GroupCommitOptions {
  /** A round closes early once it holds this many inserted messages. */
  maxBatchMessages?: number;
  logger?: Logger;
  /** Called once when a commit is refused because another node took over. */
  onFenced?: (err: FencedError) => void;
  /** Called after every round with its size and duration (metrics). */
  onCommit?: (stats: { operations: number; inserts: number; durationMs: number }) => void;
  /** Called when a round fails for any other reason (Postgres away …). */
  onStoreError?: (err: KeelError) => void;
  /**
   * A round holding cancellable writes (concurrent store and dispatch) starts no sooner than this
   * many ms after the first of them arrived, so a consumer that acknowledges within it saves the
   * insert and its delete (0 = start at once, on the next turn of the event loop; default
   * DEFAULT_CANCELLABLE_HOLD_MS). Only rounds that hold nothing but such writes and fire-and-forget
   * operations wait; a send whose message is consumed in the meantime is answered at once, one that
   * is not waits at most this much longer.
   */
  cancellableHoldMs?: number;
}

export const DEFAULT_MAX_BATCH_MESSAGES = 1000;
/**
 * Measured with 4 producers and 4 consumers (docs/benchmarks.md), alternating runs: one send in
 * flight each, rounds starting at once inserted (and then deleted) 28 % of the messages, a 2 ms hold
 * 15 %, 30 ms about 1 %, and the rate rose by a third at each step; 64 in flight, 2 ms inserted a
 * third of them and 30 ms a sixth, with the rate 12–20 % higher. The broker holds only for queues
 * whose consumers acknowledge within the hold (MessageQueue.acksWithin), and a write someone waits
 * for starts the round at once.
 */
export const DEFAULT_CANCELLABLE_HOLD_MS = 30;

/** An operation written only if it is still wanted when its round starts (see writeCancellable). */
export interface CancellableWrite {
  /** Settles after the round that held the operation committed (or failed). */
  readonly committed: Promise<void>;
  /** Withdraw the operation if its round has not started: true when it will never be written. */
  cancel(): boolean;
}

interface Deferred {
  mutate: (b: StoreBatch) => void;
  cancelled: boolean;
}

interface Round {
  batch: StoreBatch;
  /** Cancellable operations, applied to the batch when the round starts unless cancelled. */
  deferred: Deferred[];
  waiters: { resolve: () => void; reject: (err: Error) => void }[];
  /** Operations that must not be lost if the round fails: retried in the next round. */
  retryable: { mutate: (b: StoreBatch) => void; done: () => void }[];
  /**
   * When the round should start (performance.now()): the earliest due time of its held operations,
   * 0 once an operation joined that is not held, Infinity while it holds none.
   */
  dueAt: number;
}

function newRound(): Round {
  return { batch: emptyBatch(), deferred: [], waiters: [], retryable: [], dueAt: Number.POSITIVE_INFINITY };
}

function countOps(b: StoreBatch): number {
  return (
    b.inserts.length +
    b.subEntries.length +
    b.moves.length +
    b.deliveryCounts.length +
    b.subDeliveryCounts.length +
    b.deletes.length +
    b.subEntryDeletes.length +
    b.producers.length +
    b.forwards.length +
    b.txOutcomes.length
  );
}

/**
 * Group commit: one writer, at most one store transaction in flight. Operations that arrive while a
 * round commits gather into the next round, so under load each transaction carries hundreds of
 * sends and acks (DESIGN.md, "Group commit"). A caller that needs durability awaits `write()`; the
 * promise settles after the commit that holds its operation.
 */
export class GroupCommitWriter {
  private readonly store: Store;
  private readonly maxBatchMessages: number;
  private readonly holdMs: number;
  /** The timer of a round waiting for its hold, and the due time it waits for. */
  private holdTimer: NodeJS.Timeout | null = null;
  private holdTimerDue = 0;
  private readonly log: Logger;
  private readonly opts: GroupCommitOptions;
  private next: Round = newRound();
  private inFlight = false;
  private scheduled = false;
  private fenced: FencedError | null = null;
  private closed = false;
  private idleWaiters: (() => void)[] = [];
  /** Back-off after a failed round, so a database outage is not hammered (ms, 0 = none). */
  private retryDelayMs = 0;

  constructor(store: Store, options: GroupCommitOptions = {}) {
    this.store = store;
    this.opts = options;
    this.maxBatchMessages = options.maxBatchMessages ?? DEFAULT_MAX_BATCH_MESSAGES;
    this.holdMs = options.cancellableHoldMs ?? DEFAULT_CANCELLABLE_HOLD_MS;
    this.log = options.logger ?? silentLogger;
  }

  get isFenced(): boolean {
    return this.fenced !== null;
  }

  /** Add operations to the next round; resolves after the round commits. */
  write(mutate: (b: StoreBatch) => void): Promise<void> {
    const refused = this.refusal();
    if (refused) return Promise.reject(refused);
    mutate(this.next.batch);
    // Someone waits for this one: the round starts at once, whatever it holds.
    this.next.dueAt = 0;
    return new Promise<void>((resolve, reject) => {
      this.next.waiters.push({ resolve, reject });
      this.schedule();
    });
  }

  /**
   * Add an operation that may still be withdrawn until its round starts (concurrent store and
   * dispatch: a message acknowledged by its consumer before its insert is written need never be
   * written). `always` joins the round unconditionally (the producer's sequence). The round starts
   * no sooner than `holdMs` from now (default: the writer's cancellableHoldMs) unless an operation
   * that cannot wait joins it.
   */
  writeCancellable(
    mutate: (b: StoreBatch) => void,
    always?: (b: StoreBatch) => void,
    holdMs: number = this.holdMs,
  ): CancellableWrite {
    const refused = this.refusal();
    if (refused) return { committed: Promise.reject(refused), cancel: () => false };
    const round = this.next;
    always?.(round.batch);
    const op: Deferred = { mutate, cancelled: false };
    round.dueAt = Math.min(round.dueAt, holdMs > 0 ? performance.now() + holdMs : 0);
    round.deferred.push(op);
    const committed = new Promise<void>((resolve, reject) => {
      round.waiters.push({ resolve, reject });
      this.schedule();
    });
    return {
      committed,
      cancel: () => {
        if (this.next !== round) return op.cancelled;
        op.cancelled = true;
        return true;
      },
    };
  }

  /**
   * Add operations nobody waits for (acks, delivery counts). If the round fails for a passing
   * reason they are carried into the following round, so an acknowledged message is not redelivered
   * after a brief database outage.
   */
  writeLater(mutate: (b: StoreBatch) => void): Promise<void> {
    if (this.refusal()) return new Promise(() => {});
    mutate(this.next.batch);
    return new Promise<void>((resolve) => {
      this.next.retryable.push({ mutate, done: resolve });
      this.schedule();
    });
  }

  /** Resolves when nothing is pending or in flight. */
  drain(): Promise<void> {
    if (!this.inFlight && isEmptyBatch(this.next.batch) && this.next.waiters.length === 0) {
      return Promise.resolve();
    }
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Refuse further writes; pending ones fail with `reason`. */
  close(reason: KeelError = new StoreError('store writer closed', 'STORE_CLOSED')): void {
    this.closed = true;
    const round = this.next;
    this.next = newRound();
    for (const w of round.waiters) w.reject(reason);
    this.notifyIdle();
  }

  private refusal(): KeelError | null {
    if (this.fenced) return this.fenced;
    if (this.closed) return new StoreError('store writer closed', 'STORE_CLOSED');
    return null;
  }

  private schedule(): void {
    if (this.inFlight) return;
    if (this.scheduled) {
      // Waiting for a hold that an operation now wants over sooner: restart the wait.
      if (this.holdTimer === null || this.next.dueAt >= this.holdTimerDue) return;
      clearTimeout(this.holdTimer);
      this.holdTimer = null;
    }
    this.scheduled = true;
    const run = (): void => {
      this.scheduled = false;
      this.holdTimer = null;
      void this.flush();
    };
    // setImmediate lets every operation of the current I/O turn join the round.
    if (this.retryDelayMs > 0) {
      setTimeout(run, this.retryDelayMs).unref();
      return;
    }
    const due = this.next.dueAt;
    const hold = due === Number.POSITIVE_INFINITY ? 0 : due - performance.now();
    if (hold > 0) {
      this.holdTimerDue = due;
      this.holdTimer = setTimeout(run, hold);
    } else setImmediate(run);
  }

  private async flush(): Promise<void> {
    if (this.inFlight) return;
    const round = this.next;
    if (isEmptyBatch(round.batch) && round.waiters.length === 0) {
      this.notifyIdle();
      return;
    }
    this.next = newRound();
    this.inFlight = true;
    const started = performance.now();
    try {
      for (const d of round.deferred) if (!d.cancelled) d.mutate(round.batch);
      collapseProducers(round.batch);
      if (!isEmptyBatch(round.batch)) await this.store.commit(round.batch);
      this.retryDelayMs = 0;
      for (const w of round.waiters) w.resolve();
      for (const r of round.retryable) r.done();
      this.opts.onCommit?.({
        operations: countOps(round.batch),
        inserts: round.batch.inserts.length,
        durationMs: performance.now() - started,
      });
    } catch (err) {
      this.failRound(round, err);
    } finally {
      this.inFlight = false;
    }
    if (!isEmptyBatch(this.next.batch) || this.next.waiters.length > 0) {
      if (this.next.batch.inserts.length + this.next.deferred.length >= this.maxBatchMessages)
        void this.flush();
      else this.schedule();
    } else {
      this.notifyIdle();
    }
  }

  private failRound(round: Round, err: unknown): void {
    if (err instanceof FencedError || (KeelError.isInstance(err) && err.code === 'FENCED')) {
      const fenced = err instanceof FencedError ? err : new FencedError(err.message, { cause: err });
      this.fenced = fenced;
      for (const w of round.waiters) w.reject(fenced);
      const pending = this.next;
      this.next = newRound();
      for (const w of pending.waiters) w.reject(fenced);
      this.log.error({ err: fenced.message }, 'store write fenced: another node took over');
      this.opts.onFenced?.(fenced);
      return;
    }
    const storeErr = KeelError.isInstance(err)
      ? err
      : new StoreError(
          `store commit failed: ${(err as Error)?.message ?? String(err)}`,
          'STORE_UNAVAILABLE',
          {
            retryable: true,
            cause: err,
          },
        );
    // Fail what queued behind the failed round too: a producer's later send must not commit while
    // an earlier one failed, or duplicate detection (highest sequence per producer) would take a
    // resend of the earlier one for a duplicate.
    const queued = this.next;
    this.next = newRound();
    for (const w of round.waiters) w.reject(storeErr);
    for (const w of queued.waiters) w.reject(storeErr);
    this.retryDelayMs = Math.min(2000, Math.max(50, this.retryDelayMs * 2));
    // Carry fire-and-forget operations (acks, delivery counts) into the next round.
    for (const r of [...round.retryable, ...queued.retryable]) {
      r.mutate(this.next.batch);
      this.next.retryable.push(r);
    }
    this.log.warn({ err: storeErr.message, code: storeErr.code }, 'store commit failed');
    this.opts.onStoreError?.(storeErr);
  }

  private notifyIdle(): void {
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const w of waiters) w();
  }
}

/** One row per producer, the highest sequence: a statement may not update a row twice. */
function collapseProducers(b: StoreBatch): void {
  if (b.producers.length < 2) return;
  const max = new Map<string, number>();
  for (const p of b.producers) {
    const cur = max.get(p.producerId);
    if (cur === undefined || p.seq > cur) max.set(p.producerId, p.seq);
  }
  if (max.size === b.producers.length) return;
  b.producers = [...max].map(([producerId, seq]) => ({ producerId, seq }));
}
