/**
 * A primary and a streaming standby on loopback from the machine's Postgres binaries (issue #20),
 * for `keel drill --mode pg-failover` and the tests (testkit re-exports it):
 *
 * - initdb with data checksums, so pg_rewind can re-join an old primary (PostgreSQL 15 docs,
 *   pg_rewind: "data checksums or wal_log_hints = on"); `pg_basebackup -R -X stream` for the standby;
 *   both run as user `postgres` when we are root (Postgres refuses root);
 * - `killPrimary()`: SIGKILL of the primary's postmaster (its backends die with it);
 * - `promoteStandby()`: `pg_ctl promote -w`, a CHECKPOINT (pg_rewind reads the new timeline from the
 *   control file), and synchronous_standby_names cleared: the clone copied it, and the new primary
 *   with no standby of its own would make every commit wait (what Patroni does with no sync standby
 *   left, docs/operations.md "Postgres high availability");
 * - `rejoinOldPrimary()`: the old primary never starts as a primary again. It is rewound with
 *   `pg_rewind --source-server` (crash recovery first, pg_rewind does that itself since PG 13), or
 *   cloned afresh with pg_basebackup when the rewind fails, started with standby.signal and a
 *   primary_conninfo to the new primary, and, for a synchronous pair, named in the new primary's
 *   synchronous_standby_names again once it streams.
 *
 * Roles swap at each promotion: `primary` and `standby` always name the current ones; `hostList`
 * keeps one order (the first node first) as a multi-host URL would.
 */
import { execFile } from 'node:child_process';
import { chownSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { Client } from 'pg';
import { findPostgresBindir } from './shared-store-postgres';

const run = promisify(execFile);

/** The standby's application_name, as synchronous_standby_names names it. */
export const PAIR_STANDBY_NAME = 'keel_standby';

export interface PostgresNode {
  /** `pg1` or `pg2`. */
  readonly name: string;
  readonly port: number;
  readonly dataDir: string;
  /** Superuser URL of this node's `postgres` database. */
  readonly adminUrl: string;
}

export interface PairRejoin {
  /** How the old primary was turned into a standby. */
  method: 'pg_rewind' | 'clone';
  /** Start of the rewind (or clone) → the node streams (and, synchronous, is the sync standby). */
  ms: number;
  /** Why pg_rewind was not used, when it was not. */
  rewindError?: string;
}

export interface PostgresPairOptions {
  /** Two free loopback ports: the first node (initial primary), the second (initial standby). */
  ports: readonly [number, number];
  /** synchronous_standby_names names the standby (synchronous_commit = on). */
  synchronous?: boolean;
  /** Where the data directories go (default: a new temporary directory, removed by stop()). */
  dir?: string;
}

export interface PostgresPair {
  readonly nodes: readonly [PostgresNode, PostgresNode];
  /** The current primary. */
  readonly primary: PostgresNode;
  /** The current standby (down between killPrimary()+promoteStandby() and rejoinOldPrimary()). */
  readonly standby: PostgresNode;
  readonly synchronous: boolean;
  /** `127.0.0.1:p1,127.0.0.1:p2`: the host list of a multi-host URL, first node first. */
  readonly hostList: string;
  /** SIGKILL of the primary's postmaster (its children die with it). */
  killPrimary(): Promise<void>;
  /**
   * pg_ctl promote -w on the standby; it becomes `primary`, the killed one `standby` (down).
   * Resolves with the time pg_ctl promote returned (ms since the epoch), before the follow-up.
   */
  promoteStandby(): Promise<number>;
  /** The down old primary re-joins as the standby of the new one (pg_rewind, else a fresh clone). */
  rejoinOldPrimary(): Promise<PairRejoin>;
  stop(): Promise<void>;
}

function isRoot(): boolean {
  return typeof process.getuid === 'function' && process.getuid() === 0;
}

async function adminQuery<T = Record<string, unknown>>(url: string, sql: string): Promise<T[]> {
  const c = new Client({ connectionString: url, connectionTimeoutMillis: 5_000 });
  c.on('error', () => {});
  await c.connect();
  try {
    return (await c.query(sql)).rows as T[];
  } finally {
    await c.end().catch(() => {});
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function startPostgresPair(options: PostgresPairOptions): Promise<PostgresPair> {
  const bindir = findPostgresBindir();
  if (!bindir) throw new Error('no Postgres binaries (initdb, pg_ctl) on this machine');
  if (!['pg_basebackup', 'pg_rewind', 'pg_ctl'].every((b) => existsSync(path.join(bindir, b))))
    throw new Error(`pg_basebackup, pg_rewind and pg_ctl are needed in ${bindir}`);
  const synchronous = options.synchronous ?? false;
  const ownsDir = options.dir === undefined;
  const dir = options.dir ?? mkdtempSync(path.join(os.tmpdir(), 'keel-pgpair-'));
  mkdirSync(dir, { recursive: true });
  const owner = isRoot()
    ? {
        uid: Number((await run('id', ['-u', 'postgres'])).stdout.trim()),
        gid: Number((await run('id', ['-g', 'postgres'])).stdout.trim()),
      }
    : null;
  if (owner) chownSync(dir, owner.uid, owner.gid);
  const asPostgres = async (bin: string, args: string[]): Promise<string> => {
    const file = path.join(bindir, bin);
    const [cmd, cmdArgs] = owner ? ['runuser', ['-u', 'postgres', '--', file, ...args]] : [file, args];
    try {
      return (await run(cmd, cmdArgs, { timeout: 120_000 })).stdout;
    } catch (err) {
      const e = err as Error & { stderr?: string };
      throw new Error(`${bin} failed: ${(e.stderr ?? '').trim() || e.message}`);
    }
  };
  const giveToPostgres = async (p: string) => {
    if (owner) await run('chown', ['-R', 'postgres:postgres', p]);
  };
  const node = (name: string, port: number): PostgresNode => ({
    name,
    port,
    dataDir: path.join(dir, name),
    adminUrl: `postgres://postgres@127.0.0.1:${port}/postgres`,
  });
  const nodes = [node('pg1', options.ports[0]), node('pg2', options.ports[1])] as const;
  let primaryIndex = 0;
  const down = new Set<string>();

  /** The whole postgresql.auto.conf of a node: one place for its port and role. */
  const writeConf = async (n: PostgresNode, standbyOf: PostgresNode | null) => {
    const conf = [
      `port = ${n.port}`,
      `listen_addresses = '127.0.0.1'`,
      `unix_socket_directories = '${dir}'`,
      'max_connections = 200',
      'wal_level = replica',
      'max_wal_senders = 5',
      "wal_keep_size = '256MB'",
      // A standby whose primary died retries every 5 s by default, and notices a promotion only then.
      "wal_retrieve_retry_interval = '200ms'",
      'hot_standby = on',
      'synchronous_commit = on',
      // A standby names none; a primary names its standby when the pair is synchronous.
      `synchronous_standby_names = '${synchronous && !standbyOf ? PAIR_STANDBY_NAME : ''}'`,
      ...(standbyOf
        ? [
            `primary_conninfo = 'host=127.0.0.1 port=${standbyOf.port} user=postgres application_name=${PAIR_STANDBY_NAME}'`,
          ]
        : []),
    ];
    writeFileSync(path.join(n.dataDir, 'postgresql.auto.conf'), `${conf.join('\n')}\n`);
    if (standbyOf) writeFileSync(path.join(n.dataDir, 'standby.signal'), '');
    await giveToPostgres(n.dataDir);
  };
  const start = async (n: PostgresNode) => {
    await asPostgres('pg_ctl', ['start', '-D', n.dataDir, '-l', `${n.dataDir}.log`, '-w', '-t', '60']);
    down.delete(n.dataDir);
  };
  const stopNode = (n: PostgresNode) =>
    asPostgres('pg_ctl', ['stop', '-D', n.dataDir, '-m', 'immediate', '-w', '-t', '30']).catch(() => {});
  const clone = async (target: PostgresNode, source: PostgresNode) => {
    rmSync(target.dataDir, { recursive: true, force: true });
    await asPostgres('pg_basebackup', [
      '-h',
      '127.0.0.1',
      '-p',
      String(source.port),
      '-U',
      'postgres',
      '-D',
      target.dataDir,
      '-X',
      'stream',
      '--no-sync',
    ]);
  };
  /** Waits until the primary sees the standby streaming (and, synchronous, as its sync standby). */
  const waitStreaming = async (primary: PostgresNode, timeoutMs = 60_000) => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const rows = await adminQuery<{ state: string; sync_state: string }>(
        primary.adminUrl,
        `SELECT state, sync_state FROM pg_stat_replication WHERE application_name = '${PAIR_STANDBY_NAME}'`,
      ).catch(() => []);
      if (rows.some((r) => r.state === 'streaming' && (!synchronous || r.sync_state === 'sync'))) return;
      if (Date.now() > deadline)
        throw new Error(`the standby did not stream from ${primary.name} within ${timeoutMs} ms`);
      await sleep(100);
    }
  };

  const [first, second] = nodes;
  try {
    await asPostgres('initdb', [
      '-D',
      first.dataDir,
      '-U',
      'postgres',
      '-A',
      'trust',
      '-E',
      'UTF8',
      '--locale=C',
      '--no-sync',
      '--data-checksums',
    ]);
    const hba = path.join(first.dataDir, 'pg_hba.conf');
    writeFileSync(hba, `${readFileSync(hba, 'utf8')}\nhost replication all 127.0.0.1/32 trust\n`);
    await writeConf(first, null);
    await start(first);
    await clone(second, first);
    await writeConf(second, first);
    await start(second);
    await waitStreaming(first);
  } catch (err) {
    for (const n of [second, first]) await stopNode(n);
    if (ownsDir) rmSync(dir, { recursive: true, force: true });
    throw err;
  }

  const postmasterPid = (n: PostgresNode) =>
    Number(readFileSync(path.join(n.dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
  const current = () => ({
    primary: nodes[primaryIndex] as PostgresNode,
    standby: nodes[1 - primaryIndex] as PostgresNode,
  });

  return {
    nodes,
    get primary() {
      return current().primary;
    },
    get standby() {
      return current().standby;
    },
    synchronous,
    hostList: nodes.map((n) => `127.0.0.1:${n.port}`).join(','),
    async killPrimary() {
      const { primary } = current();
      process.kill(postmasterPid(primary), 'SIGKILL');
      down.add(primary.dataDir);
    },
    async promoteStandby() {
      const { standby } = current();
      await asPostgres('pg_ctl', ['promote', '-D', standby.dataDir, '-w', '-t', '60']);
      const promotedAt = Date.now();
      primaryIndex = 1 - primaryIndex;
      const c = new Client({ connectionString: standby.adminUrl });
      c.on('error', () => {});
      await c.connect();
      try {
        await c.query(`ALTER SYSTEM SET synchronous_standby_names = ''`);
        await c.query('SELECT pg_reload_conf()');
        await c.query('CHECKPOINT');
      } finally {
        await c.end();
      }
      return promotedAt;
    },
    async rejoinOldPrimary() {
      const { primary, standby: old } = current();
      // Killed by killPrimary() or by anything else (a test's own hook): its postmaster must be gone.
      const alive = () => {
        try {
          process.kill(postmasterPid(old), 0);
          return true;
        } catch {
          return false;
        }
      };
      for (let i = 0; alive(); i++) {
        if (i >= 50) throw new Error(`${old.name}'s postmaster still runs: kill it and promote first`);
        await sleep(100);
      }
      down.add(old.dataDir);
      const started = Date.now();
      let method: PairRejoin['method'] = 'pg_rewind';
      let rewindError: string | undefined;
      // The SIGKILLed postmaster's backends notice its death within moments; pg_rewind's crash
      // recovery refuses the data directory while one still holds the shared memory.
      for (let attempt = 1; ; attempt++) {
        try {
          await asPostgres('pg_rewind', [
            '--target-pgdata',
            old.dataDir,
            '--source-server',
            `host=127.0.0.1 port=${primary.port} user=postgres dbname=postgres`,
            '--no-sync',
          ]);
          rewindError = undefined;
          break;
        } catch (err) {
          rewindError = (err as Error).message;
          if (attempt >= 10 || !/shared memory|postmaster|lock file/i.test(rewindError)) break;
          await sleep(500);
        }
      }
      if (rewindError !== undefined) {
        method = 'clone';
        await clone(old, primary);
      }
      await writeConf(old, primary);
      await start(old);
      if (synchronous) {
        await adminQuery(
          primary.adminUrl,
          `ALTER SYSTEM SET synchronous_standby_names = '${PAIR_STANDBY_NAME}'`,
        );
        await adminQuery(primary.adminUrl, 'SELECT pg_reload_conf()');
      }
      await waitStreaming(primary);
      return { method, ms: Date.now() - started, ...(rewindError ? { rewindError } : {}) };
    },
    async stop() {
      for (const n of nodes) {
        // A SIGKILLed postmaster may leave children for a moment; they exit on their own.
        if (!down.has(n.dataDir)) await stopNode(n);
      }
      if (ownsDir) rmSync(dir, { recursive: true, force: true });
    },
  };
}
