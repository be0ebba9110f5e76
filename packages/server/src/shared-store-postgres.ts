/**
 * Shared-storage master/slave, the store half (issue #19, mode b; DESIGN.md "Lockers are one
 * port"): the master runs a PostgreSQL on a data directory inside the shared directory and serves
 * from it. This is PostgreSQL's documented "shared disk failover" (PostgreSQL 15 docs, 27.1
 * "Comparison of Different Solutions"): a new master starts the server on the same data directory,
 * which runs crash recovery, so every committed transaction is there. Its one rule: two postmasters
 * must never run on that directory. So:
 *
 * - only the holder of the file lock calls `start()`, and only after the lock is held;
 * - a node that loses the lock calls `stopNow()` first (SIGQUIT: Postgres's "immediate shutdown",
 *   docs 19.5 "Shutting Down the Server"), before anything else;
 * - the postmaster is started with a parent-death signal (`setpriv --pdeathsig SIGQUIT`), so a
 *   node that dies takes its Postgres with it; and before starting, a postmaster still alive on
 *   this host for this data directory (found by postmaster.pid and its working directory) is
 *   stopped — the lock is ours, so whatever still runs there belongs to a dead holder;
 * - the store directory remembers which lock directory owns it (`keel-store.json`, created with
 *   O_EXCL): a node with another lock directory is refused, since two lock directories on one
 *   store would make two masters.
 *
 * Layout of `--store-dir DIR`: `DIR/pgdata` (the data directory, initdb on first use as user
 * `postgres` when we are root: Postgres refuses to run as root), `DIR/keel-store.json` (the owning
 * lock directory), `DIR/postgres-<node>.log` (each node's server log). The server listens on a
 * Unix socket only, in a directory of this node under the OS temp dir (never on the shared file
 * system), with trust authentication for local connections; the node connects through it.
 */
import { type ChildProcess, execFile, execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  chownSync,
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  realpathSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { StoreError } from '@keel/protocol';
import { Client } from 'pg';
import { ConfigError } from './config';

const execFileAsync = promisify(execFile);

/** The database the broker uses inside the shared cluster. */
export const SHARED_STORE_DATABASE = 'keel';
export const SHARED_STORE_OWNER_FILE = 'keel-store.json';
export const SHARED_STORE_DATA_DIR = 'pgdata';
/** How long a start (initdb excluded) may take, crash recovery included. */
export const DEFAULT_SHARED_STORE_START_TIMEOUT_MS = 120_000;
/** An old postmaster asked to stop immediately gets this long before SIGKILL. */
export const POSTMASTER_STOP_GRACE_MS = 5_000;
/** The nominal port: it only names the socket file (`.s.PGSQL.<port>`); there is no TCP listener. */
const SOCKET_PORT = 5432;
const POLL_MS = 50;
const SUPERUSER = 'postgres';
/** How an unexpected exit of the postmaster is reported (onUnexpectedExit's reason begins so). */
export const SHARED_STORE_EXIT_PREFIX = 'the shared-store Postgres stopped unexpectedly';

/**
 * Server settings beyond the defaults. `checkpoint_timeout` bounds how much WAL a takeover's crash
 * recovery replays; fsync and full_page_writes stay on — they are what makes recovery complete.
 */
export const SHARED_STORE_SETTINGS: Readonly<Record<string, string>> = {
  listen_addresses: '',
  checkpoint_timeout: '60s',
  max_connections: '100',
  fsync: 'on',
  full_page_writes: 'on',
  synchronous_commit: 'on',
  // Crash recovery begins by syncing the data directory: one syncfs() per file system instead of
  // an fsync per file (PostgreSQL 14+, Linux; measured here: 0.6 s of a takeover with fsync).
  ...(process.platform === 'linux' ? { recovery_init_sync_method: 'syncfs' } : {}),
};

export interface SharedStoreLogger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

export interface SharedStorePostgresOptions {
  /** The shared store directory (`--store-dir`). */
  storeDir: string;
  /** The lock directory that owns it (`--lock-dir`). */
  lockDir: string;
  /** This node's name (its log file, its socket directory). */
  node: string;
  logger: SharedStoreLogger;
  /** Postgres binaries; default `pg_config --bindir`, else the newest /usr/lib/postgresql/N/bin. */
  bindir?: string;
  startTimeoutMs?: number;
  /** Extra server settings (`-c name=value`). */
  settings?: Record<string, string>;
}

/** Where the Postgres binaries are: `pg_config --bindir`, else the newest Debian-style install. */
export function findPostgresBindir(): string | undefined {
  const candidates: string[] = [];
  try {
    candidates.push(
      execFileSync('pg_config', ['--bindir'], {
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'ignore'],
      }).trim(),
    );
  } catch {
    // no pg_config on PATH
  }
  const root = '/usr/lib/postgresql';
  if (existsSync(root)) {
    const versions = readdirSync(root)
      .filter((v) => /^\d+$/.test(v))
      .sort((a, b) => Number(b) - Number(a));
    for (const v of versions) candidates.push(path.join(root, v, 'bin'));
  }
  return candidates.find((dir) => ['initdb', 'postgres'].every((b) => existsSync(path.join(dir, b))));
}

function isRoot(): boolean {
  return typeof process.getuid === 'function' && process.getuid() === 0;
}

/** uid/gid of the `postgres` user when we are root (Postgres refuses to run as root), else null. */
function postgresIds(): { uid: number; gid: number } | null {
  if (!isRoot()) return null;
  try {
    const uid = Number(execFileSync('id', ['-u', SUPERUSER], { encoding: 'utf8' }).trim());
    const gid = Number(execFileSync('id', ['-g', SUPERUSER], { encoding: 'utf8' }).trim());
    return { uid, gid };
  } catch {
    throw new StoreError(
      `running as root needs a system user '${SUPERUSER}' to run PostgreSQL as (PostgreSQL refuses to run as root)`,
      'STORE_ERROR',
    );
  }
}

function hasSetpriv(): boolean {
  try {
    execFileSync('setpriv', ['--help'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** The lock directory as every node should name it (symlinks resolved when it exists). */
function canonicalDir(dir: string): string {
  const abs = path.resolve(dir);
  try {
    return realpathSync(abs);
  } catch {
    return abs;
  }
}

interface OwnerRecord {
  lockDir: string;
  createdAt: string;
  createdBy: string;
}

/**
 * Makes sure `storeDir` belongs to `lockDir`: claims it when unclaimed (O_EXCL create, so of two
 * nodes racing with different lock directories exactly one wins), refuses it (CONFIG_INVALID) when
 * another lock directory owns it. Call it at node start, before waiting for the lock.
 */
export function claimSharedStore(storeDir: string, lockDir: string, node: string): void {
  const dir = path.resolve(storeDir);
  const ours = canonicalDir(lockDir);
  try {
    mkdirSync(dir, { recursive: true, mode: 0o755 });
  } catch (err) {
    throw new ConfigError([
      { setting: 'storeDir', message: `cannot create ${dir}: ${(err as Error).message}` },
    ]);
  }
  const file = path.join(dir, SHARED_STORE_OWNER_FILE);
  const record: OwnerRecord = {
    lockDir: ours,
    createdAt: new Date().toISOString(),
    createdBy: `${node}@${os.hostname()}`,
  };
  try {
    writeFileSync(file, `${JSON.stringify(record, null, 2)}\n`, { flag: 'wx', mode: 0o644 });
    return;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') {
      throw new ConfigError([
        { setting: 'storeDir', message: `cannot write ${file}: ${(err as Error).message}` },
      ]);
    }
  }
  let owner: Partial<OwnerRecord>;
  try {
    owner = JSON.parse(readFileSync(file, 'utf8')) as Partial<OwnerRecord>;
  } catch (err) {
    throw new ConfigError([
      { setting: 'storeDir', message: `${file} is unreadable (${(err as Error).message}): fix or remove it` },
    ]);
  }
  if (owner.lockDir !== ours) {
    throw new ConfigError([
      {
        setting: 'storeDir',
        message: `${dir} belongs to lock directory ${String(owner.lockDir)} (${file}), not to this node's ${ours}: two lock directories on one store would let two masters start Postgres on it — use the same --lock-dir on every node of the store`,
      },
    ]);
  }
}

/** The pid recorded in `<dataDir>/postmaster.pid`, or null. */
export function recordedPostmasterPid(dataDir: string): number | null {
  try {
    const pid = Number(readFileSync(path.join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
    return Number.isInteger(pid) && pid > 0 ? pid : null;
  } catch {
    return null;
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** True when `pid` is a process on this host whose working directory is `dataDir` (a postmaster does chdir there). */
function isPostmasterOf(pid: number, dataDir: string): boolean {
  try {
    return readlinkSync(`/proc/${pid}/cwd`) === realpathSync(dataDir);
  } catch {
    return false;
  }
}

async function waitGone(pid: number, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (alive(pid)) {
    if (Date.now() >= deadline) return false;
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
  return true;
}

/**
 * Fencing on this host: stops a postmaster still running on `dataDir` (SIGQUIT, SIGKILL after
 * POSTMASTER_STOP_GRACE_MS) and answers its pid, or null when none runs here. Only for a holder of
 * the lock (the file locker's fencing of a frozen holder uses it too). A postmaster.pid whose pid is
 * alive but is not this directory's postmaster (a pid from another host or boot) is removed, or
 * Postgres would refuse to start ("lock file already exists").
 */
export async function stopLeftoverPostmaster(
  dataDir: string,
  log?: SharedStoreLogger,
): Promise<number | null> {
  const pid = recordedPostmasterPid(dataDir);
  if (pid === null || !alive(pid)) return null;
  if (!isPostmasterOf(pid, dataDir)) {
    log?.warn(
      { pid, dataDir },
      'postmaster.pid names a live process that is not this data directory’s postmaster: removing the stale file',
    );
    rmSync(path.join(dataDir, 'postmaster.pid'), { force: true });
    return null;
  }
  log?.warn(
    { pid, dataDir },
    'a postmaster of an earlier holder still runs on the shared data directory: stopping it (immediate)',
  );
  process.kill(pid, 'SIGQUIT');
  if (!(await waitGone(pid, POSTMASTER_STOP_GRACE_MS))) {
    process.kill(pid, 'SIGKILL');
    await waitGone(pid, POSTMASTER_STOP_GRACE_MS);
  }
  return pid;
}

/** One node's Postgres on the shared data directory. */
export class SharedStorePostgres {
  readonly storeDir: string;
  readonly dataDir: string;
  readonly socketDir: string;
  /** The broker's connection URL (Unix socket, database `keel`). */
  readonly url: string;
  private readonly adminUrl: string;
  private readonly log: SharedStoreLogger;
  private readonly logFile: string;
  private child: ChildProcess | null = null;
  private exitedPromise: Promise<void> = Promise.resolve();
  private expectingExit = false;
  private exitHandler: ((reason: string) => void) | null = null;

  constructor(private readonly options: SharedStorePostgresOptions) {
    this.storeDir = path.resolve(options.storeDir);
    this.dataDir = path.join(this.storeDir, SHARED_STORE_DATA_DIR);
    // One per node and store, so a restarted node reuses its directory (a killed one cannot clean up).
    const tag = createHash('sha1').update(`${this.storeDir}\0${options.node}`).digest('hex').slice(0, 12);
    // Unix socket paths are limited to ~107 bytes: a short directory of its own under the temp dir.
    this.socketDir = path.join(os.tmpdir(), `keel-pg-${tag}`);
    // libpq's form for a socket directory: the percent-encoded path as the host.
    const host = `${encodeURIComponent(this.socketDir)}:${SOCKET_PORT}`;
    this.url = `postgres://${SUPERUSER}@${host}/${SHARED_STORE_DATABASE}`;
    this.adminUrl = `postgres://${SUPERUSER}@${host}/postgres`;
    this.logFile = path.join(this.storeDir, `postgres-${options.node.replace(/[^\w.-]/g, '_')}.log`);
    this.log = options.logger;
  }

  /** The running postmaster's pid (this node's), or null. */
  get postmasterPid(): number | null {
    return this.child && this.child.exitCode === null && this.child.signalCode === null
      ? (this.child.pid ?? null)
      : null;
  }

  get running(): boolean {
    return this.postmasterPid !== null;
  }

  /** Called once per start when the postmaster exits without stopNow()/stop() (killed, crashed). */
  onUnexpectedExit(handler: (reason: string) => void): void {
    this.exitHandler = handler;
  }

  /** Refuses a store owned by another lock directory (CONFIG_INVALID); claims an unowned one. */
  claim(): void {
    claimSharedStore(this.storeDir, this.options.lockDir, this.options.node);
  }

  /**
   * Starts Postgres on the shared data directory: only while holding the lock. initdb on first use;
   * a leftover postmaster of a dead holder on this host is stopped first; resolves when the server
   * accepts connections (crash recovery done) and the `keel` database exists.
   */
  async start(): Promise<void> {
    if (this.running) return;
    this.claim();
    const bindir = this.options.bindir ?? findPostgresBindir();
    if (!bindir) {
      throw new StoreError(
        'no PostgreSQL binaries found for --store-dir (pg_config --bindir, /usr/lib/postgresql/<n>/bin): install the postgresql server package',
        'STORE_ERROR',
      );
    }
    const ids = postgresIds();
    if (ids && !hasSetpriv()) {
      throw new StoreError(
        'running as root needs setpriv (util-linux) to run initdb and PostgreSQL as user postgres',
        'STORE_ERROR',
      );
    }
    if (ids) chownSync(this.storeDir, ids.uid, ids.gid);
    await this.initdbIfNeeded(bindir, ids);
    await stopLeftoverPostmaster(this.dataDir, this.log);
    mkdirSync(this.socketDir, { recursive: true, mode: 0o700 });
    if (ids) chownSync(this.socketDir, ids.uid, ids.gid);

    const started = Date.now();
    try {
      await this.startPostmaster(bindir, ids, started);
      await this.ensureDatabase();
    } catch (err) {
      // Never leave a postmaster behind a failed start: the lock may pass on after this.
      this.stopNow('the start failed');
      await this.exitedPromise;
      throw err;
    }
    this.log.info(
      {
        pid: this.postmasterPid,
        dataDir: this.dataDir,
        socketDir: this.socketDir,
        startMs: Date.now() - started,
      },
      'shared-store Postgres ready (crash recovery done)',
    );
  }

  private async startPostmaster(
    bindir: string,
    ids: { uid: number; gid: number } | null,
    started: number,
  ): Promise<void> {
    const deadline = started + (this.options.startTimeoutMs ?? DEFAULT_SHARED_STORE_START_TIMEOUT_MS);
    for (let attempt = 1; ; attempt++) {
      const exit = this.spawnPostmaster(bindir, ids);
      const outcome = await Promise.race([
        this.waitReady(deadline).then(() => 'ready' as const),
        exit.then((why) => why),
      ]);
      if (outcome === 'ready') break;
      // Backends of a postmaster killed a moment ago may still hold its shared memory ("pre-existing
      // shared memory block ... is still in use"): they exit on their own; try again shortly.
      const tail = this.logTail();
      if (Date.now() >= deadline || !/still in use|already exists|could not bind/i.test(tail)) {
        throw new StoreError(
          `PostgreSQL did not start on ${this.dataDir} (${outcome}); see ${this.logFile}: ${tail}`,
          'STORE_UNAVAILABLE',
        );
      }
      this.log.warn({ attempt, reason: outcome }, 'shared-store Postgres did not start yet; retrying');
      await new Promise((r) => setTimeout(r, 250));
    }
  }

  /**
   * Stops the postmaster at once, synchronously (SIGQUIT: immediate shutdown). The first thing a
   * node does when it loses the lock. Answers whether a postmaster was signalled.
   */
  stopNow(reason: string): boolean {
    const pid = this.postmasterPid;
    if (pid === null) return false;
    this.expectingExit = true;
    try {
      process.kill(pid, 'SIGQUIT');
    } catch {
      return false;
    }
    this.log.warn({ pid, reason }, `stopped the shared-store Postgres (immediate shutdown): ${reason}`);
    return true;
  }

  /** Stops the postmaster (`fast` or `immediate`) and waits until it exited; SIGKILL past the grace. */
  async stop(mode: 'fast' | 'immediate' = 'fast', timeoutMs = 30_000): Promise<void> {
    const pid = this.postmasterPid;
    if (pid !== null) {
      this.expectingExit = true;
      try {
        process.kill(pid, mode === 'fast' ? 'SIGINT' : 'SIGQUIT');
      } catch {
        // gone already
      }
      const timer = setTimeout(() => {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // gone already
        }
      }, timeoutMs);
      await this.exitedPromise;
      clearTimeout(timer);
    }
    await this.exitedPromise;
    rmSync(this.socketDir, { recursive: true, force: true });
  }

  /**
   * CHECKPOINT: the next crash recovery replays WAL from here. After initdb and the first
   * migrations, so the first takeover does not replay (and checkpoint at its end) all of them.
   */
  async checkpoint(): Promise<void> {
    const client = new Client({ connectionString: this.adminUrl });
    client.on('error', () => {});
    await client.connect();
    try {
      await client.query('CHECKPOINT');
    } finally {
      await client.end().catch(() => {});
    }
  }

  /** Resolves when the current postmaster (if any) has exited. */
  exited(): Promise<void> {
    return this.exitedPromise;
  }

  private async initdbIfNeeded(bindir: string, ids: { uid: number; gid: number } | null): Promise<void> {
    if (existsSync(path.join(this.dataDir, 'PG_VERSION'))) return;
    if (existsSync(this.dataDir)) {
      throw new StoreError(
        `${this.dataDir} exists but is not a PostgreSQL data directory (no PG_VERSION): remove it or point --store-dir elsewhere`,
        'STORE_ERROR',
      );
    }
    // initdb into a directory of its own, then rename: a node killed half-way leaves no half data dir.
    for (const entry of readdirSync(this.storeDir)) {
      if (entry.startsWith(`${SHARED_STORE_DATA_DIR}.initdb-`)) {
        rmSync(path.join(this.storeDir, entry), { recursive: true, force: true });
      }
    }
    const tmp = path.join(this.storeDir, `${SHARED_STORE_DATA_DIR}.initdb-${process.pid}`);
    this.log.info(
      { dataDir: this.dataDir },
      'initialising the shared-store Postgres data directory (initdb)',
    );
    const args = ['-D', tmp, '-U', SUPERUSER, '-A', 'trust', '-E', 'UTF8', '--locale=C'];
    // As the postmaster: as user postgres when we are root, and gone with this node (a node killed
    // during initdb must not leave an initdb writing beside the next holder's).
    const privs = ids ? [`--reuid=${ids.uid}`, `--regid=${ids.gid}`, '--init-groups'] : [];
    const [cmd, cmdArgs] = hasSetpriv()
      ? ['setpriv', [...privs, '--pdeathsig', 'SIGKILL', '--', path.join(bindir, 'initdb'), ...args]]
      : [path.join(bindir, 'initdb'), args];
    try {
      await execFileAsync(cmd, cmdArgs, {
        timeout: 300_000,
        encoding: 'utf8',
        env: { ...process.env, LC_ALL: 'C' },
      });
    } catch (err) {
      rmSync(tmp, { recursive: true, force: true });
      const e = err as { stderr?: string; message: string };
      throw new StoreError(
        `initdb failed on ${this.storeDir}: ${e.stderr?.trim() || e.message}`,
        'STORE_ERROR',
        {
          cause: err,
        },
      );
    }
    renameSync(tmp, this.dataDir);
  }

  private spawnPostmaster(bindir: string, ids: { uid: number; gid: number } | null): Promise<string> {
    const settings = {
      ...SHARED_STORE_SETTINGS,
      unix_socket_directories: this.socketDir,
      port: String(SOCKET_PORT),
      ...(this.options.settings ?? {}),
    };
    const pgArgs = ['-D', this.dataDir, ...Object.entries(settings).flatMap(([k, v]) => ['-c', `${k}=${v}`])];
    const postgres = path.join(bindir, 'postgres');
    // setpriv: drop to the postgres user (as root) and set the parent-death signal after that (a
    // credential change clears it), so a node that dies takes its postmaster with it (immediate).
    const privs = ids ? [`--reuid=${ids.uid}`, `--regid=${ids.gid}`, '--init-groups'] : [];
    const [cmd, args] = hasSetpriv()
      ? ['setpriv', [...privs, '--pdeathsig', 'SIGQUIT', '--', postgres, ...pgArgs]]
      : [postgres, pgArgs];
    const fd = openSync(this.logFile, 'a', 0o644);
    let child: ChildProcess;
    try {
      // A session of its own: a terminal's Ctrl-C reaches the node, which stops Postgres in order.
      child = spawn(cmd, args, {
        cwd: this.dataDir,
        detached: true,
        stdio: ['ignore', fd, fd],
        env: { ...process.env, LC_MESSAGES: 'C' },
      });
    } finally {
      closeSync(fd);
    }
    this.child = child;
    this.expectingExit = false;
    let settle: (why: string) => void = () => {};
    const exit = new Promise<string>((resolve) => {
      settle = resolve;
    });
    this.exitedPromise = exit.then(() => {});
    child.once('error', (err) => settle(`spawn failed: ${err.message}`));
    child.once('exit', (code, signal) => {
      const why = signal ? `postmaster killed by ${signal}` : `postmaster exited with code ${code}`;
      if (this.child === child && !this.expectingExit && this.readyOnce) {
        this.readyOnce = false;
        this.log.error(
          { pid: child.pid, code, signal },
          `the shared-store Postgres stopped unexpectedly: ${why}`,
        );
        this.exitHandler?.(`${SHARED_STORE_EXIT_PREFIX} (${why})`);
      }
      settle(why);
    });
    this.readyOnce = false;
    return exit;
  }

  private readyOnce = false;

  private async waitReady(deadline: number): Promise<void> {
    for (;;) {
      const client = new Client({ connectionString: this.adminUrl, connectionTimeoutMillis: 2_000 });
      client.on('error', () => {});
      try {
        await client.connect();
        await client.query('SELECT 1');
        await client.end();
        this.readyOnce = true;
        return;
      } catch (err) {
        await client.end().catch(() => {});
        if (Date.now() >= deadline) throw new Error(`not ready: ${(err as Error).message}`);
        if (this.postmasterPid === null) return new Promise(() => {}); // the exit promise answers
      }
      await new Promise((r) => setTimeout(r, POLL_MS));
    }
  }

  private async ensureDatabase(): Promise<void> {
    const client = new Client({ connectionString: this.adminUrl });
    client.on('error', () => {});
    await client.connect();
    try {
      const r = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [SHARED_STORE_DATABASE]);
      if (r.rowCount === 0) {
        await client.query(`CREATE DATABASE ${SHARED_STORE_DATABASE}`).catch((err: { code?: string }) => {
          if (err.code !== '42P04') throw err; // created meanwhile
        });
      }
    } finally {
      await client.end().catch(() => {});
    }
  }

  private logTail(): string {
    try {
      const text = readFileSync(this.logFile, 'utf8');
      return text.split('\n').filter(Boolean).slice(-4).join(' | ');
    } catch {
      return '(no log)';
    }
  }
}
