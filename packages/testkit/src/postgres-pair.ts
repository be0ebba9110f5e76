/**
 * A primary and a streaming standby on loopback from the machine's Postgres binaries (issue #20):
 * initdb with data checksums (pg_rewind can re-join an old primary), `pg_basebackup -R -X stream`
 * for the standby, both run as user `postgres` when we are root. For host-selection and failover
 * tests: kill the primary's postmaster (SIGKILL), promote the standby (`pg_ctl promote`).
 */
import { execFile } from 'node:child_process';
import { chownSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { freePort } from './free-port';
import { findPostgresBindir, waitForServer } from './postgres-server';

const run = promisify(execFile);

export interface PostgresNode {
  readonly port: number;
  readonly dataDir: string;
  /** Superuser URL of this node's `postgres` database. */
  readonly adminUrl: string;
}

export interface PostgresPair {
  readonly primary: PostgresNode;
  readonly standby: PostgresNode;
  /** `127.0.0.1:p1,127.0.0.1:p2`: the host list of a multi-host URL, primary first. */
  readonly hostList: string;
  /** SIGKILL of the primary's postmaster (its children die with it). */
  killPrimary(): Promise<void>;
  /** pg_ctl promote -w on the standby. */
  promoteStandby(): Promise<void>;
  stop(): Promise<void>;
}

function isRoot(): boolean {
  return typeof process.getuid === 'function' && process.getuid() === 0;
}

async function asPostgres(bindir: string, bin: string, args: string[]): Promise<void> {
  const file = path.join(bindir, bin);
  const [cmd, cmdArgs] = isRoot() ? ['runuser', ['-u', 'postgres', '--', file, ...args]] : [file, args];
  await run(cmd, cmdArgs, { timeout: 120_000 });
}

export async function startPostgresPair(options: { synchronous?: boolean } = {}): Promise<PostgresPair> {
  const bindir = findPostgresBindir();
  if (!bindir) throw new Error('no Postgres binaries (initdb, pg_ctl) on this machine');
  const dir = mkdtempSync(path.join(os.tmpdir(), 'keel-pgpair-'));
  if (isRoot()) {
    const uid = Number((await run('id', ['-u', 'postgres'])).stdout.trim());
    const gid = Number((await run('id', ['-g', 'postgres'])).stdout.trim());
    chownSync(dir, uid, gid);
  }
  const node = (name: string, port: number): PostgresNode => ({
    port,
    dataDir: path.join(dir, name),
    adminUrl: `postgres://postgres@127.0.0.1:${port}/postgres`,
  });
  const primary = node('primary', await freePort());
  const standby = node('standby', await freePort());
  const start = (n: PostgresNode) =>
    asPostgres(bindir, 'pg_ctl', ['start', '-D', n.dataDir, '-l', `${n.dataDir}.log`, '-w', '-t', '60']);
  const stopped = new Set<string>();
  try {
    await asPostgres(bindir, 'initdb', [
      '-D',
      primary.dataDir,
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
    const conf = [
      `port = ${primary.port}`,
      `listen_addresses = '127.0.0.1'`,
      `unix_socket_directories = '${dir}'`,
      'max_connections = 200',
      'wal_level = replica',
      'max_wal_senders = 5',
      'hot_standby = on',
      `synchronous_standby_names = '${options.synchronous ? 'keel_standby' : ''}'`,
      'synchronous_commit = on',
    ];
    writeFileSync(path.join(primary.dataDir, 'postgresql.auto.conf'), `${conf.join('\n')}\n`);
    const hba = path.join(primary.dataDir, 'pg_hba.conf');
    writeFileSync(hba, `${readFileSync(hba, 'utf8')}\nhost replication all 127.0.0.1/32 trust\n`);
    if (isRoot()) await run('chown', ['-R', 'postgres:postgres', primary.dataDir]);
    await start(primary);
    await asPostgres(bindir, 'pg_basebackup', [
      '-h',
      '127.0.0.1',
      '-p',
      String(primary.port),
      '-U',
      'postgres',
      '-D',
      standby.dataDir,
      '-R',
      '-X',
      'stream',
      '--no-sync',
    ]);
    const auto = path.join(standby.dataDir, 'postgresql.auto.conf');
    const text = readFileSync(auto, 'utf8')
      .replace(/^port = .*$/m, `port = ${standby.port}`)
      .replace(
        /^primary_conninfo = '(.*)'$/m,
        (_m, c: string) => `primary_conninfo = '${c} application_name=keel_standby'`,
      );
    writeFileSync(auto, text);
    if (isRoot()) await run('chown', ['postgres:postgres', auto]);
    await start(standby);
    await waitForServer(standby.adminUrl, 30_000);
  } catch (err) {
    for (const n of [standby, primary])
      await asPostgres(bindir, 'pg_ctl', ['stop', '-D', n.dataDir, '-m', 'immediate', '-t', '30']).catch(
        () => {},
      );
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  const postmasterPid = (n: PostgresNode) =>
    Number(readFileSync(path.join(n.dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
  return {
    primary,
    standby,
    hostList: `127.0.0.1:${primary.port},127.0.0.1:${standby.port}`,
    async killPrimary() {
      process.kill(postmasterPid(primary), 'SIGKILL');
      stopped.add(primary.dataDir);
    },
    async promoteStandby() {
      await asPostgres(bindir, 'pg_ctl', ['promote', '-D', standby.dataDir, '-w', '-t', '60']);
      // The clone copied synchronous_standby_names: the new primary, with no standby of its own
      // yet, would make every commit wait forever. Relax it, as Patroni does with no sync standby
      // left (docs/operations.md, "Postgres high availability").
      const { Client } = await import('pg');
      const c = new Client({ connectionString: standby.adminUrl });
      await c.connect();
      try {
        await c.query(`ALTER SYSTEM SET synchronous_standby_names = ''`);
        await c.query('SELECT pg_reload_conf()');
      } finally {
        await c.end();
      }
    },
    async stop() {
      for (const n of [primary, standby]) {
        if (stopped.has(n.dataDir)) {
          // A SIGKILLed postmaster may leave children for a moment; they exit on their own.
          continue;
        }
        await asPostgres(bindir, 'pg_ctl', [
          'stop',
          '-D',
          n.dataDir,
          '-m',
          'immediate',
          '-w',
          '-t',
          '30',
        ]).catch(() => {});
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
