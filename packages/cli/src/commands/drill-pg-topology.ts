/**
 * The Postgres HA topology under `keel drill --mode pg-failover`: whatever can say which host is
 * the primary, kill it, promote a standby and re-join the old primary as a standby.
 *
 * - `LocalPairTopology`: @keel/server's startPostgresPair on loopback (Debian's postgresql-15
 *   binaries; pg_ctl promote; pg_rewind, else a fresh clone);
 * - `HookTopology`: existing servers given as a multi-host superuser URL (`--pg-url h1,h2,…`) and
 *   shell hooks for the faults, so a Patroni (or any other) topology plugs in: `--kill-primary-cmd`
 *   (required), `--promote-cmd` (without it the drill waits for another host to become read-write,
 *   as Patroni promotes by itself), `--rejoin-cmd` (without it the drill waits for the old host to
 *   come back in recovery). The hooks run under `sh -c` with KEEL_DRILL_PRIMARY (host:port of the
 *   primary when the round started) and KEEL_DRILL_HOSTS (every host:port, comma-separated).
 */
import { exec } from 'node:child_process';
import { promisify } from 'node:util';
import { type PostgresPair, startPostgresPair } from '@keel/server';
import { formatHost, type PgUrl, parsePgUrl, singleHostUrl } from '@keel/store-pg';
import { Client } from 'pg';
import { freePort } from '../ports';

const execAsync = promisify(exec);

/** How long promotion and re-joining may take through hooks (Patroni's loop_wait and ttl included). */
export const HOOK_WAIT_TIMEOUT_MS = 120_000;
const PROBE_MS = 100;

export interface PgRejoin {
  /** pg_rewind, clone, or `hook` for an external topology. */
  method: string;
  ms: number;
}

export interface PgTopology {
  /** One line for the log and the report. */
  readonly description: string;
  /** Superuser URL with every host (libpq multi-host form), database `postgres`. */
  readonly hostsUrl: string;
  /** host:port of every server, in the URL's order. */
  readonly hosts: readonly string[];
  /** host:port of the primary now (the first read-write host), or null when none answers as one. */
  primary(): Promise<string | null>;
  /** The hosts answering as primaries (read-write) now: more than one is a split brain. */
  primaries(): Promise<string[]>;
  /** Kills the primary's postmaster; its host:port. */
  killPrimary(): Promise<string>;
  /**
   * Promotes a standby (or waits for the topology to): the new primary's host:port and when it was
   * promoted (ms since the epoch).
   */
  promote(oldPrimary: string, signal?: AbortSignal): Promise<{ host: string; atMs: number }>;
  /** Re-joins the killed old primary as a standby of the new one. */
  rejoin(oldPrimary: string, signal?: AbortSignal): Promise<PgRejoin>;
  stop(): Promise<void>;
}

/** pg_is_in_recovery() of one server, or null when it does not answer. */
async function inRecovery(url: string): Promise<boolean | null> {
  const c = new Client({ connectionString: url, connectionTimeoutMillis: 1_000 });
  c.on('error', () => {});
  try {
    await c.connect();
    const { rows } = await c.query<{ r: boolean }>('SELECT pg_is_in_recovery() AS r');
    return rows[0]?.r ?? null;
  } catch {
    return null;
  } finally {
    await c.end().catch(() => {});
  }
}

abstract class ProbingTopology {
  protected readonly url: PgUrl;
  readonly hosts: readonly string[];

  constructor(readonly hostsUrl: string) {
    this.url = parsePgUrl(hostsUrl);
    this.hosts = this.url.hosts.map(formatHost);
  }

  /** Each host's pg_is_in_recovery(), null for one that does not answer. */
  protected async probe(): Promise<Map<string, boolean | null>> {
    const answers = await Promise.all(this.url.hosts.map((h) => inRecovery(singleHostUrl(this.url, h))));
    return new Map(this.hosts.map((h, i) => [h, answers[i] ?? null]));
  }

  async primaries(): Promise<string[]> {
    return [...(await this.probe())].filter(([, r]) => r === false).map(([h]) => h);
  }

  async primary(): Promise<string | null> {
    return (await this.primaries())[0] ?? null;
  }

  protected async until<T>(
    check: () => Promise<T | null>,
    what: string,
    signal?: AbortSignal,
    timeoutMs = HOOK_WAIT_TIMEOUT_MS,
  ): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const value = await check();
      if (value !== null) return value;
      if (signal?.aborted) throw new Error(`interrupted while waiting for ${what}`);
      if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, PROBE_MS));
    }
  }
}

export class LocalPairTopology extends ProbingTopology implements PgTopology {
  readonly description: string;

  private constructor(private readonly pair: PostgresPair) {
    super(`postgres://postgres@${pair.hostList}/postgres`);
    this.description = `local pair ${pair.nodes.map((n) => `${n.name} 127.0.0.1:${n.port}`).join(', ')}, ${pair.synchronous ? 'synchronous' : 'asynchronous'} standby (pg_ctl promote, pg_rewind)`;
  }

  static async start(synchronous: boolean, dir: string): Promise<LocalPairTopology> {
    const first = await freePort();
    let second = await freePort();
    while (second === first) second = await freePort();
    return new LocalPairTopology(await startPostgresPair({ ports: [first, second], synchronous, dir }));
  }

  private hostOf(n: { port: number }): string {
    return `127.0.0.1:${n.port}`;
  }

  /** Data directories, for the drill's exit hook. */
  get dataDirs(): string[] {
    return this.pair.nodes.map((n) => n.dataDir);
  }

  async killPrimary(): Promise<string> {
    const host = this.hostOf(this.pair.primary);
    await this.pair.killPrimary();
    return host;
  }

  async promote(): Promise<{ host: string; atMs: number }> {
    const atMs = await this.pair.promoteStandby();
    return { host: this.hostOf(this.pair.primary), atMs };
  }

  async rejoin(): Promise<PgRejoin> {
    const r = await this.pair.rejoinOldPrimary();
    return { method: r.method, ms: r.ms };
  }

  stop(): Promise<void> {
    return this.pair.stop();
  }
}

export interface PgHooks {
  killPrimary: string;
  promote?: string;
  rejoin?: string;
}

export class HookTopology extends ProbingTopology implements PgTopology {
  readonly description: string;

  constructor(
    hostsUrl: string,
    private readonly hooks: PgHooks,
  ) {
    super(hostsUrl);
    this.description = `servers ${this.hosts.join(', ')} with hooks (kill: ${hooks.killPrimary}; promote: ${hooks.promote ?? 'wait for a new primary'}; rejoin: ${hooks.rejoin ?? 'wait for the old host in recovery'})`;
  }

  private async runHook(cmd: string, primary: string): Promise<void> {
    await execAsync(cmd, {
      env: { ...process.env, KEEL_DRILL_PRIMARY: primary, KEEL_DRILL_HOSTS: this.hosts.join(',') },
      timeout: HOOK_WAIT_TIMEOUT_MS,
    });
  }

  async killPrimary(): Promise<string> {
    const primary = await this.primary();
    if (!primary) throw new Error(`no primary among ${this.hosts.join(', ')}`);
    await this.runHook(this.hooks.killPrimary, primary);
    return primary;
  }

  async promote(oldPrimary: string, signal?: AbortSignal): Promise<{ host: string; atMs: number }> {
    if (this.hooks.promote) await this.runHook(this.hooks.promote, oldPrimary);
    const host = await this.until(
      async () => (await this.primaries()).find((h) => h !== oldPrimary) ?? null,
      `a new primary other than ${oldPrimary}`,
      signal,
    );
    return { host, atMs: Date.now() };
  }

  async rejoin(oldPrimary: string, signal?: AbortSignal): Promise<PgRejoin> {
    const started = Date.now();
    if (this.hooks.rejoin) await this.runHook(this.hooks.rejoin, oldPrimary);
    await this.until(
      async () => ((await this.probe()).get(oldPrimary) === true ? true : null),
      `${oldPrimary} back as a standby`,
      signal,
    );
    return { method: 'hook', ms: Date.now() - started };
  }

  async stop(): Promise<void> {
    // Not ours: left running.
  }
}
