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
  /** Whether the round that holds it has started (its mutation was applied then, if not cancelled). */
  started(): boolean;
}

/** A fire-and-forget write that its owner may withdraw until its round starts (see writeWithdrawable). */
export interface WithdrawableWrite {
  /** The owner no longer wants it: true when it will never be written. */
  withdraw(): boolean;
}

/** The batch's arrays, in StoreBatch order: an operation's share of a round is a slice of each. */
const BATCH_KEYS = [
  'inserts',
  'subEntries',
  'moves',
  'deliveryCounts',
  'subDeliveryCounts',
  'deletes',
  'subEntryDeletes',
  'producers',
  'forwards',
  'txOutcomes',
  'schedules',
] as const;
const KEYS = BATCH_KEYS.length;

/** Which round is open for new operations: a cancellable operation compares its own round with it. */
interface RoundClock {
  open: number;
}

/**
 * One caller's operations in a round (a write, a cancellable write, a fire-and-forget write) and
 * who learns how they ended. Kept apart so that a round refused for one row's data can be committed
 * again without that operation, each waiter still tied to its own rows. One object per operation
 * (it is the handle writeCancellable and writeWithdrawable return): this is the broker's hot path.
 */
class Op implements CancellableWrite, WithdrawableWrite {
  resolve: (() => void) | null = null;
  reject: ((err: Error) => void) | null = null;
  /** Fire-and-forget (writeLater): its mutation, retried in the next round if this one fails for a passing reason. */
  retry: ((b: StoreBatch) => void) | null = null;
  /** Cancellable: its mutation, applied when the round starts unless cancelled. */
  deferred: ((b: StoreBatch) => void) | null = null;
  cancelled = false;
  /** A withdrawable write (fire-and-forget): carried over a failed round unless withdrawn. */
  withdrawable = false;
  withdrawn = false;
  settled = false;
  committed!: Promise<void>;

  constructor(
    private readonly clock: RoundClock,
    private readonly round: number,
    /** Its place in the round's operations. */
    readonly index: number,
  ) {}

  started(): boolean {
    return this.clock.open !== this.round;
  }

  cancel(): boolean {
    if (this.started()) return this.cancelled;
    this.cancelled = true;
    return true;
  }

  withdraw(): boolean {
    this.withdrawn = true;
    return this.cancel();
  }
}

interface Round {
  no: number;
  batch: StoreBatch;
  /** Cancellable operations, applied to the batch when the round starts unless cancelled. */
  deferred: Op[];
  /** Every operation, in arrival order. */
  ops: Op[];
  /** The batch's slices, in the order they were written. */
  parts: PartLog;
  /**
   * When the round should start (performance.now()): the earliest due time of its held operations,
   * 0 once an operation joined that is not held, Infinity while it holds none.
   */
  dueAt: number;
}

/**
 * Where each slice of a round's batch starts, and whose it is: per slice the operation's index in
 * the round and the KEYS array lengths before it, in one typed array that the writer reuses round
 * after round (this bookkeeping runs for every operation; it is read only when a round is refused
 * for a row's data).
 */
class PartLog {
  private rows = new Uint32Array(64 * (KEYS + 1));
  count = 0;

  add(opIndex: number, b: StoreBatch): void {
    const at = this.count * (KEYS + 1);
    if (at + KEYS + 1 > this.rows.length) {
      const grown = new Uint32Array(this.rows.length * 2);
      grown.set(this.rows);
      this.rows = grown;
    }
    const rows = this.rows;
    rows[at] = opIndex;
    for (let k = 0; k < KEYS; k++) rows[at + 1 + k] = b[BATCH_KEYS[k]!].length;
    this.count += 1;
  }

  opIndex(part: number): number {
    return this.rows[part * (KEYS + 1)]!;
  }

  /** The length of key `k`'s array before slice `part` was written. */
  from(part: number, k: number): number {
    return this.rows[part * (KEYS + 1) + 1 + k]!;
  }
}

function newRound(no: number, parts: PartLog): Round {
  parts.count = 0;
  return { no, batch: emptyBatch(), deferred: [], ops: [], parts, dueAt: Number.POSITIVE_INFINITY };
}

/** Apply `mutate` to the round's batch on behalf of `op`, remembering which rows it wrote. */
function applyTo(round: Round, op: Op, mutate: (b: StoreBatch) => void): void {
  round.parts.add(op.index, round.batch);
  mutate(round.batch);
}

/** The rows the operations in `ops` wrote to the round's batch, in their order. */
function batchOf(round: Round, ops: ReadonlySet<Op>): StoreBatch {
  const out = emptyBatch();
  const { parts, batch } = round;
  for (let i = 0; i < parts.count; i++) {
    if (!ops.has(round.ops[parts.opIndex(i)]!)) continue;
    const last = i + 1 === parts.count;
    for (let k = 0; k < KEYS; k++) {
      const key = BATCH_KEYS[k]!;
      const src = batch[key] as unknown[];
      const dst = out[key] as unknown[];
      const to = last ? src.length : parts.from(i + 1, k);
      for (let j = parts.from(i, k); j < to; j++) dst.push(src[j]);
    }
  }
  return out;
}

/** A store refusal caused by a value of the batch (a row's data), not by the database's state. */
function isDataError(err: unknown): boolean {
  return KeelError.isInstance(err) && err.code === 'STORE_DATA_ERROR';
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
    b.txOutcomes.length +
    b.schedules.length
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
  private readonly clock: RoundClock = { open: 0 };
  private next: Round = newRound(0, new PartLog());
  /** The part log of the last round that finished, for the next round to reuse. */
  private spareParts: PartLog | null = null;
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
    const round = this.next;
    const op = this.join(round);
    applyTo(round, op, mutate);
    // Someone waits for this one: the round starts at once, whatever it holds.
    round.dueAt = 0;
    return new Promise<void>((resolve, reject) => {
      op.resolve = resolve;
      op.reject = reject;
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
    if (refused) {
      // Never in an open round: started, and cannot be cancelled.
      const op = new Op(this.clock, -1, -1);
      op.committed = Promise.reject(refused);
      return op;
    }
    const round = this.next;
    const op = this.defer(round, mutate, holdMs);
    if (always) applyTo(round, op, always);
    op.committed = new Promise<void>((resolve, reject) => {
      op.resolve = resolve;
      op.reject = reject;
      this.schedule();
    });
    return op;
  }

  /**
   * A fire-and-forget operation its owner may withdraw until its round starts (a delivery count
   * that the consumer's acknowledgement makes moot). Held like writeCancellable's; if its round
   * fails for a passing reason it is carried into the next one as writeLater's are, unless
   * withdrawn meanwhile. A fenced or closed writer drops it.
   */
  writeWithdrawable(mutate: (b: StoreBatch) => void, holdMs: number = this.holdMs): WithdrawableWrite {
    if (this.refusal()) return new Op(this.clock, -1, -1);
    const op = this.defer(this.next, mutate, holdMs);
    op.withdrawable = true;
    this.schedule();
    return op;
  }

  /**
   * Add operations nobody waits for (acks, delivery counts). If the round fails for a passing
   * reason they are carried into the following round, so an acknowledged message is not redelivered
   * after a brief database outage.
   */
  writeLater(mutate: (b: StoreBatch) => void): Promise<void> {
    if (this.refusal()) return new Promise(() => {});
    return new Promise<void>((resolve) => {
      this.addRetry(mutate, resolve);
      this.schedule();
    });
  }

  private join(round: Round): Op {
    const op = new Op(this.clock, round.no, round.ops.length);
    round.ops.push(op);
    return op;
  }

  private defer(round: Round, mutate: (b: StoreBatch) => void, holdMs: number): Op {
    const op = this.join(round);
    op.deferred = mutate;
    round.deferred.push(op);
    round.dueAt = Math.min(round.dueAt, holdMs > 0 ? performance.now() + holdMs : 0);
    return op;
  }

  private addRetry(mutate: (b: StoreBatch) => void, done: (() => void) | null): void {
    const round = this.next;
    const op = this.join(round);
    op.retry = mutate;
    op.resolve = done;
    applyTo(round, op, mutate);
  }

  /** The next round opens: operations of the one it replaces can no longer be cancelled. */
  private openRound(): Round {
    const round = this.next;
    this.clock.open = round.no + 1;
    this.next = newRound(this.clock.open, this.spareParts ?? new PartLog());
    this.spareParts = null;
    return round;
  }

  /** Resolves when nothing is pending or in flight. */
  drain(): Promise<void> {
    if (!this.inFlight && isEmptyBatch(this.next.batch) && this.next.ops.length === 0) {
      return Promise.resolve();
    }
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Refuse further writes; pending ones fail with `reason`. */
  close(reason: KeelError = new StoreError('store writer closed', 'STORE_CLOSED')): void {
    this.closed = true;
    const round = this.openRound();
    for (const op of round.ops) op.reject?.(reason);
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
    if (isEmptyBatch(round.batch) && round.ops.length === 0) {
      this.notifyIdle();
      return;
    }
    this.openRound();
    this.inFlight = true;
    try {
      for (const op of round.deferred) if (!op.cancelled) applyTo(round, op, op.deferred!);
      const failure = await this.commitOps(round, round.ops, true);
      if (failure === null) this.retryDelayMs = 0;
      else this.failRound(round, failure);
    } catch (err) {
      this.failRound(round, err);
    } finally {
      this.inFlight = false;
      this.spareParts = round.parts;
    }
    if (!isEmptyBatch(this.next.batch) || this.next.ops.length > 0) {
      if (this.next.batch.inserts.length + this.next.deferred.length >= this.maxBatchMessages)
        void this.flush();
      else this.schedule();
    } else {
      this.notifyIdle();
    }
  }

  /**
   * Commit what `ops` wrote in one transaction and settle them. A refusal for a row's data
   * (STORE_DATA_ERROR: SQLSTATE class 22 or 23) is one operation's: the operations are committed
   * again in two halves, in arrival order, each split again while it is refused, down to the one
   * operation that fails alone (a round of n operations with one bad row costs about 2·log2(n)
   * commits, and no back-off). An earlier half commits before a later one, so a producer's later
   * send never commits ahead of an earlier one that then fails for a passing reason (see
   * failRound). Returns the error of a failure of any other kind (the caller fails every operation
   * not settled yet), or null.
   */
  private async commitOps(round: Round, ops: Op[], whole: boolean): Promise<unknown> {
    const started = performance.now();
    const batch = whole ? round.batch : batchOf(round, new Set(ops));
    try {
      if (!isEmptyBatch(batch)) await this.store.commit(collapseProducers(batch));
    } catch (err) {
      if (!isDataError(err)) return err;
      if (ops.length === 1) {
        this.failData(ops[0]!, err as KeelError);
        return null;
      }
      const mid = ops.length >> 1;
      return (
        (await this.commitOps(round, ops.slice(0, mid), false)) ??
        this.commitOps(round, ops.slice(mid), false)
      );
    }
    for (const op of ops) {
      op.settled = true;
      op.resolve?.();
    }
    this.opts.onCommit?.({
      operations: countOps(batch),
      inserts: batch.inserts.length,
      durationMs: performance.now() - started,
    });
    return null;
  }

  /** The one operation whose data the store refused: it fails alone (never retried: it would fail again). */
  private failData(op: Op, err: KeelError): void {
    op.settled = true;
    this.log.warn({ err: err.message, code: err.code }, 'store refused an operation for its data');
    op.reject?.(err);
    if (op.retry || op.withdrawable) {
      this.log.error(
        { err: err.message },
        'a fire-and-forget store operation was refused for its data and dropped',
      );
      op.resolve?.();
    }
  }

  private failRound(round: Round, err: unknown): void {
    const unsettled = round.ops.filter((op) => !op.settled);
    if (err instanceof FencedError || (KeelError.isInstance(err) && err.code === 'FENCED')) {
      const fenced = err instanceof FencedError ? err : new FencedError(err.message, { cause: err });
      this.fenced = fenced;
      for (const op of unsettled) op.reject?.(fenced);
      const pending = this.openRound();
      for (const op of pending.ops) op.reject?.(fenced);
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
    const queued = this.openRound();
    for (const op of unsettled) op.reject?.(storeErr);
    for (const op of queued.ops) op.reject?.(storeErr);
    this.retryDelayMs = Math.min(2000, Math.max(50, this.retryDelayMs * 2));
    // Carry fire-and-forget operations (acks, delivery counts) into the next round.
    for (const op of [...unsettled, ...queued.ops]) {
      if (op.retry) this.addRetry(op.retry, op.resolve);
      else if (op.withdrawable && !op.withdrawn) this.addRetry(op.deferred!, null);
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

/**
 * One row per producer, the highest sequence: a statement may not update a row twice. Returns a
 * copy when it changes anything (the round's batch stays as its operations wrote it).
 */
function collapseProducers(b: StoreBatch): StoreBatch {
  if (b.producers.length < 2) return b;
  const max = new Map<string, number>();
  for (const p of b.producers) {
    const cur = max.get(p.producerId);
    if (cur === undefined || p.seq > cur) max.set(p.producerId, p.seq);
  }
  if (max.size === b.producers.length) return b;
  return { ...b, producers: [...max].map(([producerId, seq]) => ({ producerId, seq })) };
}
