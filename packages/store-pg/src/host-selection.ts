/**
 * Host selection below every pool (DESIGN.md, wave 2): a host list, a probe for read-write, a re-pick
 * on reconnect. node-postgres connects to one host only, so Keel does what libpq does with
 * `host=h1,h2` and `target_session_attrs` (PostgreSQL 15 docs, 34.1.1.3 "Specifying Multiple Hosts"
 * and 34.1.2 "target_session_attrs"): try the hosts in order and keep the first whose session
 * matches. Unlike libpq, the last good host is tried first (no flapping back to h1 while it is a
 * standby), and a session is judged by `pg_is_in_recovery()` plus `transaction_read_only`.
 *
 * The store, the lockers and the admin pool see only "a connection to the primary": a dedicated
 * client comes from HostSelector.connect, a pool gets HostSelector.poolClient as its `Client` class
 * (pg-pool's `Client` option), whose connect() picks the host on every new connection.
 */
import { StoreError } from '@keel/protocol';
import { Client, type ClientConfig } from 'pg';
import { isRetryablePgError } from './pg-errors';
import {
  formatHost,
  type PgHost,
  type PgUrl,
  parsePgUrl,
  singleHostUrl,
  type TargetSessionAttrs,
} from './pg-url';

export interface HostSelectionLogger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
}

export interface HostSelectorOptions {
  /** What this selector is for, in logs and the admin API: `store`, `lock`, `admin`, `migrate`. */
  name: string;
  /**
   * The target when the URL names none and lists several hosts. A single-host URL without
   * target_session_attrs connects as before, unchecked (libpq's default `any`).
   */
  defaultTarget?: TargetSessionAttrs;
  logger?: HostSelectionLogger;
}

/** What a selector shows the admin API and `keel status`. */
export interface HostSelectionStatus {
  name: string;
  target: TargetSessionAttrs;
  hosts: string[];
  /** The host new connections go to; null before the first connection or after its failure. */
  current: string | null;
  /** Why each host was last passed over (cleared when the host is chosen). */
  rejected: Record<string, string>;
}

interface Verdict {
  ok: boolean;
  /** Standby, read-only...: what the session is, for messages. */
  what: string;
  /** Acceptable for prefer-standby's second round (any session). */
  fallback: boolean;
}

const SILENT: HostSelectionLogger = { info() {}, warn() {} };
const CHECK_SQL = `SELECT pg_is_in_recovery() AS in_recovery, current_setting('transaction_read_only') AS read_only`;

function noop(): void {}

export class HostSelector {
  readonly url: PgUrl;
  readonly target: TargetSessionAttrs;
  readonly name: string;
  private readonly log: HostSelectionLogger;
  private current: PgHost | null = null;
  private readonly rejected = new Map<string, string>();
  private probing: Promise<PgHost> | null = null;

  constructor(connectionString: string, options: HostSelectorOptions) {
    this.url = parsePgUrl(connectionString);
    this.name = options.name;
    this.target =
      this.url.targetSessionAttrs ?? (this.url.hosts.length > 1 ? (options.defaultTarget ?? 'any') : 'any');
    this.log = options.logger ?? SILENT;
  }

  /** Sessions are checked after connecting unless the target is `any`. */
  get checks(): boolean {
    return this.target !== 'any';
  }

  status(): HostSelectionStatus {
    return {
      name: this.name,
      target: this.target,
      hosts: this.url.hosts.map(formatHost),
      current: this.current ? formatHost(this.current) : null,
      rejected: Object.fromEntries(this.rejected),
    };
  }

  /** The single-host URL of h (what pg is given). */
  urlOf(h: PgHost): string {
    return singleHostUrl(this.url, h);
  }

  /** The last good host first, then the list in order. */
  private order(): PgHost[] {
    const cur = this.current;
    if (!cur) return [...this.url.hosts];
    return [cur, ...this.url.hosts.filter((h) => h !== cur)];
  }

  /** sessionReadOnly: the session set default_transaction_read_only itself (a read pool). */
  private judge(row: { in_recovery: boolean; read_only: string }, sessionReadOnly: boolean): Verdict {
    const standby = row.in_recovery === true;
    const readOnly = row.read_only === 'on';
    const what = standby
      ? 'a standby (in recovery)'
      : readOnly
        ? 'read-only (transaction_read_only=on)'
        : 'a primary';
    switch (this.target) {
      case 'any':
        return { ok: true, what, fallback: true };
      case 'read-write':
        return { ok: !standby && (sessionReadOnly || !readOnly), what, fallback: false };
      case 'primary':
        return { ok: !standby, what, fallback: false };
      case 'read-only':
        return { ok: standby || readOnly, what, fallback: false };
      case 'standby':
        return { ok: standby, what, fallback: false };
      case 'prefer-standby':
        return { ok: standby, what, fallback: true };
    }
  }

  private async check(client: Client, sessionReadOnly = false): Promise<Verdict> {
    const r = await client.query<{ in_recovery: boolean; read_only: string }>(CHECK_SQL);
    return this.judge(r.rows[0] as { in_recovery: boolean; read_only: string }, sessionReadOnly);
  }

  private chose(h: PgHost): void {
    const key = formatHost(h);
    this.rejected.delete(key);
    if (this.current !== h) {
      const from = this.current ? formatHost(this.current) : null;
      this.current = h;
      if (this.url.hosts.length > 1 || from !== null)
        this.log.info({ pool: this.name, host: key, from, target: this.target }, 'Postgres host selected');
    }
  }

  /** h failed (connect, check, or a broken session): new connections look for a host again. */
  reject(h: PgHost, reason: string): void {
    const key = formatHost(h);
    this.rejected.set(key, reason);
    this.log.warn({ pool: this.name, host: key, reason, target: this.target }, 'Postgres host passed over');
    if (this.current === h) this.current = null;
  }

  /**
   * Every host passed over. STORE_UNAVAILABLE (retryable) when some host was down or of the wrong
   * kind, which a failover cures; STORE_ERROR when every host refused the same way for good
   * (authentication, no such database), the last error as cause.
   */
  private failure(reasons: string[], errors: unknown[] = []): StoreError {
    const what = this.target === 'any' || this.target === 'prefer-standby' ? 'reachable' : this.target;
    const retryable = errors.length < reasons.length || errors.some((e) => isRetryablePgError(e));
    return new StoreError(
      `no ${what} host among ${this.url.hosts.map(formatHost).join(', ')} (${reasons.join('; ')})`,
      retryable ? 'STORE_UNAVAILABLE' : 'STORE_ERROR',
      { retryable, ...(errors.length > 0 ? { cause: errors[errors.length - 1] } : {}) },
    );
  }

  /**
   * A connected pg.Client on the first host (last good one first) whose session matches the target.
   * config: the client's other settings (its connectionString and host are replaced). Throws a
   * retryable StoreError (STORE_UNAVAILABLE) naming every host and why it was passed over.
   */
  async connect(config: ClientConfig = {}): Promise<Client> {
    const reasons: string[] = [];
    const errors: unknown[] = [];
    let fallback: { client: Client; host: PgHost } | null = null;
    for (const h of this.order()) {
      const client = new Client({
        ...config,
        connectionString: this.urlOf(h),
        ...(this.url.connectTimeoutMs ? { connectionTimeoutMillis: this.url.connectTimeoutMs } : {}),
      });
      client.on('error', noop);
      try {
        await client.connect();
        const verdict = this.checks ? await this.check(client) : { ok: true, what: '', fallback: true };
        if (verdict.ok) {
          this.chose(h);
          if (fallback) await fallback.client.end().catch(noop);
          return client;
        }
        if (verdict.fallback && !fallback) {
          fallback = { client, host: h };
          continue;
        }
        reasons.push(`${formatHost(h)}: ${verdict.what}`);
        this.reject(h, verdict.what);
      } catch (err) {
        const reason = (err as Error).message || String(err);
        reasons.push(`${formatHost(h)}: ${reason}`);
        errors.push(err);
        this.reject(h, reason);
      }
      await client.end().catch(noop);
    }
    if (fallback) {
      this.chose(fallback.host);
      return fallback.client;
    }
    // One host, unchecked: pg's own error, as before host selection (its SQLSTATE tells callers
    // a missing database or a refused login from an outage).
    if (this.url.hosts.length === 1 && errors.length === 1) throw errors[0];
    throw this.failure(reasons, errors);
  }

  /**
   * The host for a pool's next connection: the current one, or the first match of a probe round
   * (one probe at a time; concurrent callers share it).
   */
  async pick(config: ClientConfig): Promise<PgHost> {
    if (this.current) return this.current;
    if (this.url.hosts.length === 1 && !this.checks) return this.url.hosts[0] as PgHost;
    if (!this.probing) {
      this.probing = (async () => {
        const probe = await this.connect({
          ...config,
          application_name: `keel-probe:${this.name}`.slice(0, 63),
          options: undefined,
        });
        await probe.end().catch(noop);
        return this.current ?? (this.url.hosts[0] as PgHost);
      })().finally(() => {
        this.probing = null;
      });
    }
    return this.probing;
  }

  /**
   * A pg.Client class for pg.Pool's `Client` option: each new pooled connection goes to pick()'s
   * host and is checked before the pool hands it out; a host that fails is passed over, so the next
   * connection probes the list again (a re-pick on every reconnect).
   */
  poolClient(): typeof Client {
    const selector = this;
    class HostSelectingClient extends Client {
      private readonly selectionConfig: ClientConfig;
      private selected: PgHost | null = null;
      constructor(config: ClientConfig) {
        super(config);
        this.selectionConfig = config;
        // A listener for the client's whole life: between its connect and the pool's own listener
        // (pg-pool adds it only in its connect callback, after our host check) a terminated session
        // emitted 'error' to nobody and killed the process (native/in-doubt-send.test.ts, under
        // pg_terminate_backend every 15 ms). Its queries fail all the same. And with several hosts,
        // a session that breaks (its server died, or was demoted and restarted) makes the next
        // connection look for a host again, instead of failing once on the dead one first.
        this.on('error', (err: Error) => {
          if (selector.url.hosts.length > 1 && this.selected && selector.current === this.selected)
            selector.reject(this.selected, `session failed: ${err.message}`);
        });
      }
      override connect(): Promise<Client>;
      override connect(callback: ((err: Error) => void) | ((err: null, c: Client) => void)): void;
      override connect(
        callback?: ((err: Error) => void) | ((err: null, c: Client) => void),
      ): Promise<Client> | undefined {
        const done = this.selectAndConnect();
        if (callback) {
          const cb = callback as (err: Error | null, c?: Client) => void;
          done.then(
            () => cb(null, this),
            (err: Error) => cb(err),
          );
          return undefined;
        }
        return done.then(() => this);
      }
      private async selectAndConnect(): Promise<void> {
        const h = await selector.pick(this.selectionConfig);
        // pg reads host and port at connect time (Client#_connect).
        this.host = h.host;
        this.port = h.port;
        const params = (this as unknown as { connectionParameters: { host: string; port: number } })
          .connectionParameters;
        params.host = h.host;
        params.port = h.port;
        try {
          await super.connect();
        } catch (err) {
          selector.reject(h, (err as Error).message);
          throw err;
        }
        this.selected = h;
        if (!selector.checks) return;
        let verdict: Verdict;
        try {
          verdict = await selector.check(
            this,
            /default_transaction_read_only\s*=\s*on/.test(String(this.selectionConfig.options ?? '')),
          );
        } catch (err) {
          selector.reject(h, (err as Error).message);
          await this.end().catch(noop);
          throw err;
        }
        if (!verdict.ok && !(verdict.fallback && selector.current === h)) {
          selector.reject(h, verdict.what);
          await this.end().catch(noop);
          throw selector.failure([`${formatHost(h)}: ${verdict.what}`]);
        }
      }
    }
    return HostSelectingClient;
  }

  /** Pool options: these plus a single-host URL and the selecting Client class. */
  poolOptions<T extends ClientConfig>(options: T): T & { connectionString: string; Client: typeof Client } {
    const first = this.url.hosts[0] as PgHost;
    return {
      ...options,
      connectionString: this.urlOf(first),
      ...(this.url.connectTimeoutMs ? { connectionTimeoutMillis: this.url.connectTimeoutMs } : {}),
      Client: this.poolClient(),
    };
  }
}
