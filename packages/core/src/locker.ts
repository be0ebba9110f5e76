/**
 * The master lock port. Exactly one node of a cluster holds it; that node serves. Implementations
 * (store-pg): RowLocker (ActiveMQ's JDBC lease-less locker: a row lock held in an open transaction)
 * and LeaseLocker (ActiveMQ's LeaseDatabaseLocker: a lease row renewed by the master).
 */
export interface Locker {
  readonly kind: 'row' | 'lease';
  /** Resolves once this node holds the lock; rejects when `signal` aborts. */
  acquire(signal: AbortSignal): Promise<void>;
  /** True while the lock is believed held (keep-alive succeeding within the lease). */
  readonly held: boolean;
  /** Register the handler called once when a held lock is lost (keep-alive failed or overran). */
  onLost(handler: (reason: string) => void): void;
  /** Give the lock up (planned hand-over or shutdown). */
  release(): Promise<void>;
  close(): Promise<void>;
}
