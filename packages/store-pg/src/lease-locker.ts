import type { LeaseState, Locker } from '@keel/core';
import { Pool } from 'pg';
import { type HostSelectionStatus, HostSelector } from './host-selection';
import { type LockerLogger, lockerOptions } from './row-locker';

export interface LeaseLockerOptions {
  connectionString: string;
  cluster: string;
  node: string;
  /** Renew the lease this often. */
  keepAliveMs?: number;
  /** Lease length, judged by the database's clock. */
  leaseMs?: number;
  /** Waiting nodes try to take an expired lease this often. */
  waitingPollMs?: number;
  logger?: LockerLogger;
}

const SILENT: LockerLogger = { debug() {}, info() {}, warn() {} };
const NOW_MS = `(extract(epoch from clock_timestamp()) * 1000)::bigint`;

/**
 * ActiveMQ's LeaseDatabaseLocker on Postgres: the master holds a lease row (activemq_lock.time =
 * expiry in ms, judged by the database's clock) and renews it every keepAliveMs; a waiting node
 * takes the row once the lease has expired. No transaction stays open. The master fences itself
 * when a renewal fails or when its own clock says the lease may have run out before a renewal
 * returned.
 */
export class LeaseLocker implements Locker {
  readonly kind = 'lease' as const;
  private readonly opts: Required<Omit<LeaseLockerOptions, 'logger'>>;
  private readonly log: LockerLogger;
  private readonly pool: Pool;
  /** The lock database's host list: the lease pool goes to its primary (host-selection.ts). */
  private readonly hosts: HostSelector;
  private heldFlag = false;
  private timer: NodeJS.Timeout | null = null;
  private lostHandlers: ((reason: string) => void)[] = [];
  private renewedAt = 0;

  constructor(options: LeaseLockerOptions) {
    this.opts = { ...options, ...lockerOptions(options) };
    this.log = options.logger ?? SILENT;
    this.hosts = new HostSelector(options.connectionString, {
      name: 'lock',
      defaultTarget: 'read-write',
      logger: this.log,
    });
    this.pool = new Pool(
      this.hosts.poolOptions({
        max: 2,
        application_name: `keel-lease:${options.cluster}:${options.node}`.slice(0, 63),
        keepAlive: true,
        connectionTimeoutMillis: Math.max(1000, this.opts.leaseMs / 2),
        query_timeout: Math.max(500, this.opts.leaseMs / 2),
      }),
    );
    this.pool.on('error', (err) => this.log.warn({ err: err.message }, 'lease locker connection error'));
  }

  /** The host list and the host the lease pool uses now. */
  hostSelection(): HostSelectionStatus {
    return this.hosts.status();
  }

  get held(): boolean {
    return this.heldFlag;
  }

  /** The lease as the lock row records it (activemq_lock.time is its expiry, in ms); null without a holder. */
  async lease(): Promise<LeaseState | null> {
    const r = await this.pool.query<{ broker_name: string | null; time: string | null }>(
      'SELECT broker_name, time FROM activemq_lock WHERE cluster = $1',
      [this.opts.cluster],
    );
    const row = r.rows[0];
    if (!row || row.broker_name === null || row.time === null) return null;
    const expires = Number(row.time);
    const durationMs = Math.round(this.opts.leaseMs);
    return {
      holder: row.broker_name,
      renewedAt: new Date(expires - durationMs).toISOString(),
      expiresAt: new Date(expires).toISOString(),
      durationMs,
    };
  }

  onLost(handler: (reason: string) => void): void {
    this.lostHandlers.push(handler);
  }

  async acquire(signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      const started = Date.now();
      try {
        await this.pool.query(
          'INSERT INTO activemq_lock (cluster) VALUES ($1) ON CONFLICT (cluster) DO NOTHING',
          [this.opts.cluster],
        );
        const r = await this.pool.query(
          `UPDATE activemq_lock SET broker_name = $2, time = ${NOW_MS} + $3
             WHERE cluster = $1 AND (time < ${NOW_MS} OR broker_name = $2 OR broker_name IS NULL)
           RETURNING cluster`,
          [this.opts.cluster, this.opts.node, Math.round(this.opts.leaseMs)],
        );
        if (r.rowCount === 1) {
          this.heldFlag = true;
          this.renewedAt = started;
          this.schedule();
          this.log.info({ cluster: this.opts.cluster }, 'master lease acquired');
          return;
        }
      } catch (err) {
        this.log.warn({ err: (err as Error).message }, 'lease attempt failed; retrying');
      }
      await new Promise((r) => setTimeout(r, this.opts.waitingPollMs));
    }
    throw signal.reason ?? new Error('lease acquisition aborted');
  }

  private schedule(): void {
    this.timer = setTimeout(() => void this.renew(), this.opts.keepAliveMs);
  }

  private async renew(): Promise<void> {
    if (!this.heldFlag) return;
    const started = Date.now();
    const guard = setTimeout(
      () => this.lose('lease renewal did not return before the lease ran out'),
      Math.max(0, this.renewedAt + this.opts.leaseMs - started),
    );
    try {
      const r = await this.pool.query(
        `UPDATE activemq_lock SET time = ${NOW_MS} + $3 WHERE cluster = $1 AND broker_name = $2 RETURNING cluster`,
        [this.opts.cluster, this.opts.node, Math.round(this.opts.leaseMs)],
      );
      clearTimeout(guard);
      if (r.rowCount !== 1) return this.lose('lease taken by another node');
      if (Date.now() - this.renewedAt > this.opts.leaseMs)
        return this.lose('lease renewal overran the lease');
      this.renewedAt = started;
    } catch (err) {
      clearTimeout(guard);
      return this.lose(`lease renewal failed: ${(err as Error).message}`);
    }
    if (this.heldFlag) this.schedule();
  }

  private lose(reason: string): void {
    if (!this.heldFlag) return;
    this.heldFlag = false;
    if (this.timer) clearTimeout(this.timer);
    this.log.warn({ reason }, 'master lease lost');
    for (const h of this.lostHandlers) {
      try {
        h(reason);
      } catch {
        // ignore
      }
    }
  }

  async release(): Promise<void> {
    const wasHeld = this.heldFlag;
    this.heldFlag = false;
    if (this.timer) clearTimeout(this.timer);
    if (wasHeld) {
      await this.pool
        .query('UPDATE activemq_lock SET time = 0 WHERE cluster = $1 AND broker_name = $2', [
          this.opts.cluster,
          this.opts.node,
        ])
        .catch(() => {});
    }
  }

  async close(): Promise<void> {
    await this.release();
    await this.pool.end().catch(() => {});
  }
}
