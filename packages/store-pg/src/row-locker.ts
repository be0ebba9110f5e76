import type { Locker } from '@keel/core';
import { InvalidArgumentError } from '@keel/protocol';
import type { Client } from 'pg';
import { type HostSelectionStatus, HostSelector } from './host-selection';
import { sqlState } from './pg-errors';

export interface LockerLogger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
}

export interface RowLockerOptions {
  /** Lock database URL (`<database>_lock` by default, see DESIGN.md). */
  connectionString: string;
  cluster: string;
  node: string;
  /** The master runs a keep-alive statement on the lock session this often. */
  keepAliveMs?: number;
  /**
   * idle_in_transaction_session_timeout of the lock session: a frozen master loses its session (and
   * so the lock) after this long. A keep-alive that overruns it makes the master fence itself.
   */
  leaseMs?: number;
  /** lock_timeout of each waiting attempt: waiting nodes stay responsive to shutdown. */
  waitingPollMs?: number;
  logger?: LockerLogger;
}

export const ROW_LOCKER_DEFAULTS = Object.freeze({ keepAliveMs: 500, leaseMs: 2000, waitingPollMs: 500 });

const SILENT: LockerLogger = { debug() {}, info() {}, warn() {} };

export function lockerOptions<T extends { keepAliveMs?: number; leaseMs?: number; waitingPollMs?: number }>(
  o: T,
) {
  const keepAliveMs = o.keepAliveMs ?? ROW_LOCKER_DEFAULTS.keepAliveMs;
  const leaseMs = o.leaseMs ?? ROW_LOCKER_DEFAULTS.leaseMs;
  const waitingPollMs = o.waitingPollMs ?? ROW_LOCKER_DEFAULTS.waitingPollMs;
  if (!(keepAliveMs > 0)) throw new InvalidArgumentError('locker: keepAliveMs must be > 0');
  if (!(leaseMs > keepAliveMs))
    throw new InvalidArgumentError('locker: leaseMs must be greater than keepAliveMs');
  if (!(waitingPollMs > 0)) throw new InvalidArgumentError('locker: waitingPollMs must be > 0');
  return { keepAliveMs, leaseMs, waitingPollMs };
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    const t = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = (): void => {
      clearTimeout(t);
      reject(signal.reason);
    };
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * ActiveMQ's JDBC master lock on Postgres: the lock session runs
 * `BEGIN; SELECT … FROM activemq_lock WHERE cluster = $1 FOR UPDATE` and keeps that transaction
 * open. Waiting nodes run the same statement under a short lock_timeout in a loop. The lock session
 * is a dedicated pg.Client (never pooled) with TCP keepalives and idle_in_transaction_session_timeout
 * = leaseMs, and the master runs `SELECT 1` on it every keepAliveMs: a master that freezes or loses
 * Postgres loses its session, and the lock passes on within about leaseMs.
 */
export class RowLocker implements Locker {
  readonly kind = 'row' as const;
  private readonly opts: Required<Omit<RowLockerOptions, 'logger'>>;
  private readonly log: LockerLogger;
  private client: Client | null = null;
  private heldFlag = false;
  private keepAliveTimer: NodeJS.Timeout | null = null;
  private lostHandlers: ((reason: string) => void)[] = [];
  private lastKeepAliveOk = 0;
  /** The lock database's host list: the lock session goes to its primary (host-selection.ts). */
  private readonly hosts: HostSelector;

  constructor(options: RowLockerOptions) {
    this.opts = { ...options, ...lockerOptions(options) };
    this.log = options.logger ?? SILENT;
    this.hosts = new HostSelector(options.connectionString, {
      name: 'lock',
      defaultTarget: 'read-write',
      logger: this.log,
    });
  }

  /** The host list and the host the lock session uses now. */
  hostSelection(): HostSelectionStatus {
    return this.hosts.status();
  }

  get held(): boolean {
    return this.heldFlag;
  }

  onLost(handler: (reason: string) => void): void {
    this.lostHandlers.push(handler);
  }

  private async connect(): Promise<Client> {
    const client = await this.hosts.connect({
      application_name: `keel-lock:${this.opts.cluster}:${this.opts.node}`.slice(0, 63),
      keepAlive: true,
      keepAliveInitialDelayMillis: Math.max(1000, this.opts.leaseMs),
      connectionTimeoutMillis: Math.max(2000, this.opts.leaseMs),
    });
    client.on('error', (err) => {
      this.log.warn({ err: err.message }, 'lock session error');
      if (this.heldFlag) this.lose(`lock session error: ${err.message}`);
    });
    client.on('end', () => {
      if (this.heldFlag) this.lose('lock session ended');
    });
    // lock_timeout for every statement of this session: a waiting node stays responsive, and no
    // statement blocks behind the master's open transaction for longer than one poll.
    await client.query(
      `SET idle_in_transaction_session_timeout = ${Math.round(this.opts.leaseMs)}; SET statement_timeout = 0; SET lock_timeout = ${Math.round(this.opts.waitingPollMs)}; SET tcp_keepalives_idle = ${Math.max(1, Math.round(this.opts.leaseMs / 1000))}; SET tcp_keepalives_interval = 1; SET tcp_keepalives_count = 2`,
    );
    const exists = await client.query('SELECT 1 FROM activemq_lock WHERE cluster = $1', [this.opts.cluster]);
    if (exists.rowCount === 0) {
      await client.query('INSERT INTO activemq_lock (cluster) VALUES ($1) ON CONFLICT (cluster) DO NOTHING', [
        this.opts.cluster,
      ]);
    }
    return client;
  }

  async acquire(signal: AbortSignal): Promise<void> {
    if (this.heldFlag) return;
    let backoff = 100;
    while (!signal.aborted) {
      try {
        if (!this.client) this.client = await this.connect();
        const c = this.client;
        await c.query('BEGIN');
        try {
          await c.query('SELECT cluster FROM activemq_lock WHERE cluster = $1 FOR UPDATE', [
            this.opts.cluster,
          ]);
        } catch (err) {
          await c.query('ROLLBACK').catch(() => {});
          if (sqlState(err) === '55P03') continue; // lock_not_available: someone else is master
          throw err;
        }
        // Held. The row itself is not updated: an update would leave an uncommitted row version
        // for this master's whole reign, and another session's INSERT … ON CONFLICT on it would
        // wait for that transaction to end. The holder's name is in keel_clusters.master.
        if (signal.aborted) {
          await c.query('ROLLBACK').catch(() => {});
          break;
        }
        this.heldFlag = true;
        this.lastKeepAliveOk = Date.now();
        this.startKeepAlive();
        this.log.info({ cluster: this.opts.cluster }, 'master lock acquired');
        return;
      } catch (err) {
        this.log.warn({ err: (err as Error).message }, 'lock attempt failed; retrying');
        await this.dropClient();
        await sleep(backoff, signal).catch(() => {});
        backoff = Math.min(backoff * 2, 2000);
      }
    }
    throw signal.reason ?? new Error('lock acquisition aborted');
  }

  private startKeepAlive(): void {
    this.stopKeepAlive();
    const tick = async (): Promise<void> => {
      if (!this.heldFlag || !this.client) return;
      const started = Date.now();
      // Postgres ends the session (and so frees the lock) leaseMs after its last statement, which
      // began at lastKeepAliveOk at the earliest. A keep-alive not answered by then means another
      // node may be master: fence ourselves BEFORE that moment, with a margin of one keep-alive
      // period (less when the lease leaves no room for it). A timer of leaseMs from this tick's start
      // fired up to keepAliveMs after the session could be gone: the e2e partition drill
      // (test/e2e/drills.test.ts) saw two nodes report `master` for ~200 ms.
      const { leaseMs, keepAliveMs } = this.opts;
      const marginMs = Math.min(keepAliveMs, (leaseMs - keepAliveMs) / 2);
      const fenceAt = this.lastKeepAliveOk + leaseMs - marginMs;
      const timer = setTimeout(
        () =>
          this.lose(`keep-alive did not answer within ${fenceAt - this.lastKeepAliveOk} ms of the last one`),
        Math.max(0, fenceAt - started),
      );
      try {
        await this.client.query('SELECT 1');
        clearTimeout(timer);
        const now = Date.now();
        if (now > fenceAt) {
          this.lose(`keep-alive overran the lease (${now - this.lastKeepAliveOk} ms since the last one)`);
          return;
        }
        this.lastKeepAliveOk = started;
      } catch (err) {
        clearTimeout(timer);
        this.lose(`keep-alive failed: ${(err as Error).message}`);
        return;
      }
      if (this.heldFlag) this.keepAliveTimer = setTimeout(() => void tick(), this.opts.keepAliveMs);
    };
    this.keepAliveTimer = setTimeout(() => void tick(), this.opts.keepAliveMs);
  }

  private stopKeepAlive(): void {
    if (this.keepAliveTimer) clearTimeout(this.keepAliveTimer);
    this.keepAliveTimer = null;
  }

  private lose(reason: string): void {
    if (!this.heldFlag) return;
    this.heldFlag = false;
    this.stopKeepAlive();
    this.log.warn({ reason }, 'master lock lost');
    void this.dropClient();
    for (const h of this.lostHandlers) {
      try {
        h(reason);
      } catch {
        // handlers must not break the locker
      }
    }
  }

  private async dropClient(): Promise<void> {
    const c = this.client;
    this.client = null;
    if (!c) return;
    // end() waits for the server; a frozen or unreachable one must not hold us.
    const ended = c.end().catch(() => {});
    const conn = (c as unknown as { connection?: { stream?: { destroy(): void } } }).connection;
    await Promise.race([ended, new Promise((r) => setTimeout(r, 500))]);
    conn?.stream?.destroy();
  }

  async release(): Promise<void> {
    const wasHeld = this.heldFlag;
    this.heldFlag = false;
    this.stopKeepAlive();
    if (this.client && wasHeld) {
      await this.client.query('ROLLBACK').catch(() => {});
      this.log.info({ cluster: this.opts.cluster }, 'master lock released');
    }
  }

  async close(): Promise<void> {
    await this.release();
    await this.dropClient();
  }
}
