/**
 * The master lock port. Exactly one node of a cluster holds it; that node serves. Implementations:
 * RowLocker (store-pg; ActiveMQ's JDBC lease-less locker: a row lock held in an open transaction),
 * LeaseLocker (store-pg; ActiveMQ's LeaseDatabaseLocker: a lease row renewed by the master) and
 * FileLocker (lock-file; ActiveMQ's SharedFileLocker: a kernel lock on `<directory>/lock`).
 * Each yields the same thing to the node: "I hold it" (then the node takes over the store's epoch,
 * which fences every write) or "I lost it" (onLost).
 */
export interface Locker {
  readonly kind: 'row' | 'lease' | 'file';
  /** Resolves once this node holds the lock; rejects when `signal` aborts. */
  acquire(signal: AbortSignal): Promise<void>;
  /** True while the lock is believed held (keep-alive succeeding within the lease). */
  readonly held: boolean;
  /** Register the handler called once when a held lock is lost (keep-alive failed or overran). */
  onLost(handler: (reason: string) => void): void;
  /** Give the lock up (planned hand-over or shutdown). */
  release(): Promise<void>;
  close(): Promise<void>;
  /**
   * Adapters that keep a holder record of their own (file): record the epoch this node took over
   * at, once the store has committed it. Absent on the Postgres lockers (the epoch is in the store).
   */
  recordEpoch?(epoch: number): Promise<void>;
  /** The holder as the lock itself records it (file); absent when the store's cluster row says it. */
  holder?(): Promise<LockHolder | null>;
  /**
   * The master's lease as the lock records it, read by any node (lease locker; file locker with a
   * leaseDuration); absent or null when the lock has no lease (row locker, file locker without one).
   */
  lease?(): Promise<LeaseState | null>;
}

/** A lease as the lock records it: who renewed it last, when, and until when it holds. */
export interface LeaseState {
  holder: string | null;
  /** ISO 8601; the last renewal (by the clock the lock is judged by: Postgres's, or the holder's). */
  renewedAt: string;
  /** ISO 8601; after this a waiting node may take the lock (the file locker: fence first). */
  expiresAt: string;
  durationMs: number;
}

/** Who holds (or last held) a lock, as the lock records it. */
export interface LockHolder {
  name: string;
  host: string;
  pid: number;
  epoch: number;
  /** ISO 8601. */
  acquiredAt: string;
}
