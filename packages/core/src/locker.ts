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
