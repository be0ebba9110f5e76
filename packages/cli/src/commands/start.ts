/**
 * `keel start`: a local playground with no configuration at all.
 *
 * 1. an embedded PostgreSQL with its data in `./.keel/pgdata` (reused when it exists);
 * 2. the `keel` database migrated, with its `keel_lock` lock database;
 * 3. two `keel broker` processes, `node-a` then `node-b`, in cluster `local` on 127.0.0.1, the first
 *    to take the lock is master and the other waits as slave; their ports as start-ports.ts says
 *    (`--port`, `--stomp-port`, `--admin-port` or KEEL_PORT … for node-a, node-b the next free ones);
 * 4. a table of every endpoint, the nodes' logs streamed to `./.keel/logs/`;
 * 5. Ctrl-C / SIGTERM stops the nodes first (each gets one SIGTERM: a graceful stop), then
 *    Postgres; a second Ctrl-C kills them.
 *
 * The nodes run in process groups of their own, so a terminal's Ctrl-C reaches only this process
 * and the stop order is ours. The database URL (with its password) and the admin password reach the
 * nodes through their environment, not their command line (visible in `ps`).
 *
 * With `--tls`, a throwaway CA, a server certificate (localhost, 127.0.0.1, ::1) and a client
 * certificate are made in `./.keel/tls/` (kept across runs, tls/throwaway-certs.ts) and each node
 * also listens on ssl:// and stomp+ssl:// (from 61617 and 61612) and serves its admin API over https.
 *
 * The nodes' wiring is keel start's own: the KEEL_* variables that would rewire a node (WIRING_VARIABLES:
 * database, lock database, name, cluster, host, ports, advertised URLs, admin login, configuration
 * file) do not reach them; every other KEEL_* variable (users, locker, lock timing, store, redelivery,
 * dead letters, log level …) reaches both nodes, as it would reach `keel broker`.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  chmodSync,
  createWriteStream,
  mkdirSync,
  readFileSync,
  rmSync,
  type WriteStream,
  writeFileSync,
} from 'node:fs';
import * as path from 'node:path';
import { createInterface } from 'node:readline';
import { ConfigError, type ThrowawayTlsFiles, writeThrowawayTls } from '@keel/server';
import { ensureDatabase, ensureLockDatabase, migrate } from '@keel/store-pg';
import { type LocalPostgres, startLocalPostgres } from '../local-postgres';
import type { Output } from '../output';
import { EXIT_USAGE } from '../report-error';
import {
  type NodePorts,
  type NodeTlsPorts,
  PORT_KINDS,
  type PortKind,
  type PortSetting,
  planNodePorts,
  planTlsPorts,
  portSetting,
} from '../start-ports';
import { terminateChild } from './child-stop';

export const DEFAULT_START_DIR = '.keel';
export const START_CLUSTER = 'local';
export const START_DATABASE = 'keel';
export const START_ADMIN_USER = 'admin';
/** How long a node may take to report its role. */
export const NODE_READY_TIMEOUT_MS = 60_000;
/** How long a node may take to stop after SIGTERM before it is killed. */
export const NODE_STOP_TIMEOUT_MS = 20_000;
/** Roles a node settles in; `keel start` waits for one of them. */
export const SETTLED_ROLES: readonly string[] = ['master', 'slave'];

/** Variables keel start sets itself (or leaves unset) for its nodes; see the file comment. */
export const WIRING_VARIABLES: readonly string[] = [
  'KEEL_CONFIG',
  'KEEL_DB',
  'KEEL_LOCK_DB',
  'KEEL_NAME',
  'KEEL_CLUSTER',
  'KEEL_HOST',
  'KEEL_PORT',
  'KEEL_STOMP_PORT',
  'KEEL_ADMIN_PORT',
  'KEEL_PG_PORT',
  'KEEL_ADVERTISED_URLS',
  'KEEL_ADMIN_USER',
  'KEEL_ADMIN_PASSWORD',
  'KEEL_LOCKER',
  'KEEL_LOCK_DIR',
  'KEEL_STORE_DIR',
  'KEEL_SSL_PORT',
  'KEEL_STOMP_SSL_PORT',
  'KEEL_TLS_CERT',
  'KEEL_TLS_KEY',
  'KEEL_TLS_CA',
  'KEEL_ADMIN_HTTPS',
];

export interface StartOptions {
  dir?: string;
  logLevel?: string;
  /** node-a's ports (node-b takes the next free ones) and the embedded Postgres's, as given. */
  port?: string;
  stompPort?: string;
  adminPort?: string;
  pgPort?: string;
  /** Where KEEL_PORT … are read from and what the nodes inherit; defaults to process.env (tests). */
  env?: NodeJS.ProcessEnv;
  /**
   * Shared-storage master/slave (issue #19, mode b): no Postgres of keel start's own; the nodes lock
   * `<shared>/lock` (--locker file) and the master runs Postgres on `<shared>/store` (--store-dir).
   */
  shared?: string;
  /** A throwaway CA and certificates in `<dir>/tls`; the nodes listen on ssl:// and stomp+ssl:// too. */
  tls?: boolean;
}

interface NodePlan extends NodePorts {
  name: string;
  /** With --tls. */
  tlsPorts?: NodeTlsPorts;
}

/** A `keel broker` child process. */
class NodeProcess {
  role: string | null = null;
  exited = false;
  exitCode: number | null = null;
  exitSignal: NodeJS.Signals | null = null;
  private readonly recent: string[] = [];
  private readonly child: ChildProcess;
  private readonly log: WriteStream;
  readonly exitPromise: Promise<void>;
  private roleWaiters: (() => void)[] = [];
  onRoleChange: (node: NodeProcess, role: string) => void = () => {};
  onUnexpectedExit: (node: NodeProcess) => void = () => {};
  stopping = false;

  constructor(
    readonly plan: NodePlan,
    mainJs: string,
    env: NodeJS.ProcessEnv,
    logFile: string,
    logLevel: string | undefined,
    extraArgs: readonly string[] = [],
  ) {
    this.log = createWriteStream(logFile, { flags: 'a' });
    this.log.on('error', () => {});
    const args = [
      mainJs,
      'broker',
      '--name',
      plan.name,
      '--cluster',
      START_CLUSTER,
      '--host',
      '127.0.0.1',
      '--port',
      String(plan.port),
      '--stomp-port',
      String(plan.stompPort),
      '--admin-port',
      String(plan.adminPort),
      ...(logLevel ? ['--log-level', logLevel] : []),
      ...extraArgs,
    ];
    this.child = spawn(process.execPath, args, { env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    this.exitPromise = new Promise((resolve) => {
      this.child.once('exit', (code, signal) => {
        this.exited = true;
        this.exitCode = code;
        this.exitSignal = signal;
        for (const wake of this.roleWaiters) wake();
        this.roleWaiters = [];
        if (!this.stopping) this.onUnexpectedExit(this);
        resolve();
      });
    });
    this.child.on('error', (err) => this.remember(`spawn error: ${err.message}`));
    for (const stream of [this.child.stdout, this.child.stderr]) {
      if (!stream) continue;
      createInterface({ input: stream }).on('line', (line) => this.onLine(line));
    }
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  /** Keeps a short summary of the last lines for error messages (JSON lines: level, msg, error). */
  private remember(line: string): void {
    let summary = line;
    if (line.startsWith('{')) {
      try {
        const e = JSON.parse(line) as { level?: unknown; msg?: unknown; err?: { message?: unknown } };
        summary = `${String(e.level ?? '')} ${String(e.msg ?? '')}${e.err?.message ? `: ${String(e.err.message)}` : ''}`;
      } catch {
        // not JSON after all
      }
    }
    this.recent.push(summary.length > 300 ? `${summary.slice(0, 297)}...` : summary);
    if (this.recent.length > 8) this.recent.shift();
  }

  private onLine(line: string): void {
    this.log.write(`${line}\n`);
    this.remember(line);
    if (!line.startsWith('{')) return;
    let entry: { msg?: unknown; role?: unknown };
    try {
      entry = JSON.parse(line) as { msg?: unknown; role?: unknown };
    } catch {
      return;
    }
    if (entry.msg === 'role changed' && typeof entry.role === 'string' && entry.role !== this.role) {
      this.role = entry.role;
      this.onRoleChange(this, entry.role);
      for (const wake of this.roleWaiters) wake();
      this.roleWaiters = [];
    }
  }

  /**
   * Resolves with the node's role once it is one of `roles` (a settled role: the server also
   * reports passing states such as 'recovering'); rejects if the node exits first or the time runs
   * out.
   */
  async waitForRole(timeoutMs: number, roles: readonly string[] = SETTLED_ROLES): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    while (!(this.role !== null && roles.includes(this.role)) && !this.exited && Date.now() < deadline) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        new Promise<void>((resolve) => this.roleWaiters.push(resolve)),
        new Promise<void>((resolve) => {
          timer = setTimeout(resolve, deadline - Date.now());
        }),
      ]);
      clearTimeout(timer);
    }
    if (this.role !== null && roles.includes(this.role)) return this.role;
    const why = this.exited
      ? `exited (${this.exitSignal ?? `code ${this.exitCode}`})`
      : `did not report a role among ${roles.join(', ')} within ${timeoutMs} ms (last: ${this.role ?? 'none'})`;
    throw new Error(`${this.plan.name} ${why}; last lines:\n  ${this.recent.join('\n  ')}`);
  }

  signal(signal: NodeJS.Signals): void {
    if (this.exited || this.child.pid === undefined) return;
    try {
      // The node leads its own process group (detached): signal the whole group.
      process.kill(-this.child.pid, signal);
    } catch {
      try {
        this.child.kill(signal);
      } catch {
        // already gone
      }
    }
  }

  /** One SIGTERM (the node's graceful stop); SIGKILL if it has not exited after timeoutMs. */
  async stop(timeoutMs: number): Promise<void> {
    this.stopping = true;
    await terminateChild(this, timeoutMs);
    await this.closeLog();
  }

  kill(): void {
    this.stopping = true;
    this.signal('SIGKILL');
  }

  closeLog(): Promise<void> {
    return new Promise((resolve) => this.log.end(resolve));
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

interface StartFile {
  pid: number;
  nodePids?: number[];
}

function readStartFile(file: string): StartFile | null {
  try {
    const parsed = JSON.parse(readFileSync(file, 'utf8')) as StartFile;
    return Number.isInteger(parsed.pid) && parsed.pid > 0 ? parsed : null;
  } catch {
    return null;
  }
}

/** True when pid runs `... main.js broker ...` (Linux /proc; elsewhere we do not guess). */
function isKeelBroker(pid: number): boolean {
  try {
    const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    return argv.some((a) => a.endsWith('main.js')) && argv.includes('broker');
  } catch {
    return false;
  }
}

async function stopStrayProcess(pid: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  try {
    process.kill(pid, 'SIGTERM');
  } catch {
    return;
  }
  // Not our child: no exit event to await, so poll (bounded) until it is gone.
  while (isAlive(pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  if (isAlive(pid)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone meanwhile
    }
  }
}

function withDatabase(url: string, name: string): string {
  const u = new URL(url);
  u.pathname = `/${encodeURIComponent(name)}`;
  return u.toString();
}

function table(rows: string[][]): string {
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length))) ?? [];
  return rows
    .map(
      (r) =>
        `  ${r
          .map((cell, i) => cell.padEnd(widths[i] ?? 0))
          .join('  ')
          .trimEnd()}`,
    )
    .join('\n');
}

/** The nodes' environment: ours without the wiring variables, plus the playground's wiring. */
export function nodeEnv(
  parent: NodeJS.ProcessEnv,
  db: string,
  lockDb: string,
  adminPassword: string,
): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(parent)) if (!WIRING_VARIABLES.includes(k)) env[k] = v;
  return {
    ...env,
    // Empty with --shared: the master derives its database from the shared store.
    ...(db ? { KEEL_DB: db } : {}),
    ...(lockDb ? { KEEL_LOCK_DB: lockDb } : {}),
    KEEL_ADMIN_USER: START_ADMIN_USER,
    KEEL_ADMIN_PASSWORD: adminPassword,
  };
}

/** `keel start --tls`: a node's TLS flags (the throwaway certificates, its ssl ports). */
export function tlsNodeArgs(files: ThrowawayTlsFiles, ports: NodeTlsPorts): string[] {
  return [
    '--tls-cert',
    files.certFile,
    '--tls-key',
    files.keyFile,
    '--tls-ca',
    files.caFile,
    '--ssl-port',
    String(ports.sslPort),
    '--stomp-ssl-port',
    String(ports.stompSslPort),
  ];
}

/** `keel start --shared DIR`: each node's locker and store flags (the directories made here). */
export function sharedStorageArgs(shared: string): string[] {
  const dir = path.resolve(shared);
  const lockDir = path.join(dir, 'lock');
  mkdirSync(lockDir, { recursive: true, mode: 0o755 });
  // Postgres runs as user postgres when we are root: it must be able to enter the directory.
  chmodSync(dir, 0o755);
  return ['--locker', 'file', '--lock-dir', lockDir, '--store-dir', path.join(dir, 'store')];
}

export async function runStart(options: StartOptions, output: Output): Promise<never> {
  const parentEnv = options.env ?? process.env;
  // Ports given by flag or KEEL_* are checked before anything starts (a bad value is refused here).
  const portSettings = Object.fromEntries(
    PORT_KINDS.map((k) => [k, portSetting(k, options, parentEnv) as PortSetting]),
  ) as Record<PortKind, PortSetting>;
  const pgPort = portSetting('pgPort', options, parentEnv);
  const dir = path.resolve(options.dir ?? DEFAULT_START_DIR);
  const shown = path.relative(process.cwd(), dir) || '.';
  const logsDir = path.join(dir, 'logs');
  const progress = (line: string) => output.out(`${line}\n`);
  mkdirSync(logsDir, { recursive: true });

  let pg: LocalPostgres | null = null;
  const nodes: NodeProcess[] = [];

  // One `keel start` per directory. The file also lists the nodes, so that nodes left running by
  // a `keel start` that was killed (SIGKILL leaves its children behind) are stopped first.
  const pidFile = path.join(dir, 'start.json');
  const earlier = readStartFile(pidFile);
  if (earlier && earlier.pid !== process.pid && isAlive(earlier.pid)) {
    throw new Error(`another keel start (pid ${earlier.pid}) is running with ${shown}; stop it first`);
  }
  for (const pid of earlier?.nodePids ?? []) {
    if (isAlive(pid) && isKeelBroker(pid)) {
      progress(`stopping a node left running by an earlier keel start (pid ${pid})...`);
      await stopStrayProcess(pid, NODE_STOP_TIMEOUT_MS);
    }
  }
  // The nodes' ports (once the stray nodes, which may hold them, are gone): a busy port asked for is
  // refused before anything starts (ConfigError: `keel` reports it, exit 2), and Postgres keeps out
  // of the nodes' way.
  const ports = await planNodePorts(portSettings, '127.0.0.1', 2);
  const tlsPorts = options.tls
    ? await planTlsPorts(
        2,
        '127.0.0.1',
        ports.flatMap((p) => PORT_KINDS.map((k) => p[k])),
      )
    : [];
  const plans: NodePlan[] = ['node-a', 'node-b'].map((name, i) => ({
    name,
    ...(ports[i] as NodePorts),
    ...(tlsPorts[i] ? { tlsPorts: tlsPorts[i] } : {}),
  }));
  for (const key of PORT_KINDS) {
    const wanted = portSettings[key];
    if (wanted.source === 'default' && plans[0]?.[key] !== wanted.value) {
      progress(`port ${wanted.value} is busy: node-a takes ${plans[0]?.[key]} instead`);
    }
  }

  const writeStartFile = () =>
    writeFileSync(
      pidFile,
      `${JSON.stringify({ pid: process.pid, nodePids: nodes.map((n) => n.pid).filter(Boolean) })}\n`,
    );
  writeStartFile();

  let shuttingDown = false;
  let signals = 0;
  let forced = false;

  const finish = async (code: number): Promise<never> => {
    if (shuttingDown) return new Promise<never>(() => {});
    shuttingDown = true;
    if (nodes.length > 0) {
      progress(`stopping ${nodes.map((n) => n.plan.name).join(', ')}...`);
      await Promise.all(nodes.map((n) => n.stop(NODE_STOP_TIMEOUT_MS)));
    }
    if (forced) return new Promise<never>(() => {}); // the second signal's path exits
    if (pg) {
      progress('stopping Postgres...');
      try {
        await pg.stop('fast');
      } catch (err) {
        output.err(`keel: ${(err as Error).message}\n`);
        code = code || 1;
      }
    }
    if (forced) return new Promise<never>(() => {});
    rmSync(pidFile, { force: true });
    progress('stopped');
    process.exit(code);
  };

  const onSignal = (signal: NodeJS.Signals) => {
    signals++;
    if (signals === 1) {
      progress(`\n${signal}: stopping (press Ctrl-C again to kill everything at once)`);
      void finish(0);
      return;
    }
    if (forced) return;
    forced = true;
    output.err('second signal: killing the nodes and Postgres\n');
    for (const n of nodes) n.kill();
    const exit = () => {
      rmSync(pidFile, { force: true });
      process.exit(130);
    };
    if (pg) pg.stop('immediate').then(exit, exit);
    else exit();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  try {
    let db = '';
    let lockDb = '';
    let nodeArgs: string[] = [];
    if (options.shared) {
      nodeArgs = sharedStorageArgs(options.shared);
      progress(
        `shared storage in ${options.shared}: the nodes lock ${path.join(options.shared, 'lock')}; the master runs Postgres on ${path.join(options.shared, 'store')}`,
      );
    } else {
      progress(`Postgres starting (data in ${shown}/pgdata)...`);
      const postgresLog = path.join(logsDir, 'postgres.log');
      pg = await startLocalPostgres({
        dir,
        logFile: postgresLog,
        progress,
        port: pgPort,
        avoidPorts: plans.flatMap((p) => [
          ...PORT_KINDS.map((k) => p[k]),
          ...(p.tlsPorts ? [p.tlsPorts.sslPort, p.tlsPorts.stompSslPort] : []),
        ]),
      });
      if (shuttingDown) return new Promise<never>(() => {});
      db = withDatabase(pg.adminUrl, START_DATABASE);
      progress(`Postgres ready on 127.0.0.1:${pg.port}`);

      progress(`migrating database "${START_DATABASE}"...`);
      await ensureDatabase(db);
      const migrated = await migrate({ connectionString: db });
      lockDb = await ensureLockDatabase(db);
      progress(
        `  ${migrated.applied.length > 0 ? `applied ${migrated.applied.join(', ')}` : 'schema up to date'} (version ${migrated.current})`,
      );
    }

    let tlsFiles: ThrowawayTlsFiles | null = null;
    if (options.tls) {
      tlsFiles = await writeThrowawayTls(path.join(dir, 'tls'));
      progress(
        `${tlsFiles.created ? 'made a throwaway CA and certificates' : 'using the throwaway CA and certificates'} in ${path.join(shown, 'tls')}`,
      );
    }

    const adminPassword = randomBytes(12).toString('base64url');
    const mainJs = path.resolve(__dirname, '..', 'main.js');
    const env = nodeEnv(parentEnv, db, lockDb, adminPassword);
    let ready = false;

    // node-a first, so that it is the one that takes the lock and node-b waits as its slave.
    for (const plan of plans) {
      if (shuttingDown) return new Promise<never>(() => {});
      progress(`${plan.name} starting...`);
      const node = new NodeProcess(
        plan,
        mainJs,
        env,
        path.join(logsDir, `${plan.name}.log`),
        options.logLevel,
        [...nodeArgs, ...(tlsFiles && plan.tlsPorts ? tlsNodeArgs(tlsFiles, plan.tlsPorts) : [])],
      );
      nodes.push(node);
      writeStartFile();
      node.onRoleChange = (n, role) => {
        if (ready) progress(`${n.plan.name} is now ${role}`);
      };
      node.onUnexpectedExit = (n) => {
        if (!ready || shuttingDown) return;
        output.err(
          `${n.plan.name} exited (${n.exitSignal ?? `code ${n.exitCode}`}); its log: ${path.join(shown, 'logs', `${n.plan.name}.log`)}\n`,
        );
        if (nodes.every((x) => x.exited)) void finish(1);
      };
      // The first node should end up master; it may report slave while it takes the lock.
      const role = await node.waitForRole(
        NODE_READY_TIMEOUT_MS,
        nodes.length === 1 ? ['master'] : SETTLED_ROLES,
      );
      progress(`${plan.name} is ${role}`);
    }
    ready = true;

    const withTls = tlsFiles !== null;
    const rows = [
      ['NODE', 'ROLE', 'NATIVE', 'STOMP', ...(withTls ? ['SSL', 'STOMP+SSL'] : []), 'ADMIN'],
      ...nodes.map((n) => [
        n.plan.name,
        n.role ?? '?',
        `tcp://127.0.0.1:${n.plan.port}`,
        `stomp://127.0.0.1:${n.plan.stompPort}`,
        ...(n.plan.tlsPorts
          ? [
              `ssl://localhost:${n.plan.tlsPorts.sslPort}`,
              `stomp+ssl://localhost:${n.plan.tlsPorts.stompSslPort}`,
            ]
          : []),
        `${withTls ? 'https://localhost' : 'http://127.0.0.1'}:${n.plan.adminPort}`,
      ]),
    ];
    const failover = `failover:(${nodes.map((n) => `tcp://127.0.0.1:${n.plan.port}`).join(',')})`;
    const tlsLines = tlsFiles
      ? [
          `  TLS failover  failover:(${nodes.map((n) => `ssl://localhost:${n.plan.tlsPorts?.sslPort}`).join(',')})`,
          `  CA            ${tlsFiles.caFile} (clients trust it: tls.caFile, stomp.py set_ssl(ca_certs=...), curl --cacert)`,
          `  Client cert   ${tlsFiles.clientCertFile}, key ${tlsFiles.clientKeyFile} (for --need-client-auth)`,
          `  keel CLI      NODE_EXTRA_CA_CERTS=${tlsFiles.caFile} keel produce --url 'failover:(ssl://…)' …; keel status --admin https://localhost:${nodes[0]?.plan.adminPort}`,
        ]
      : [];
    output.out(
      [
        '',
        `Keel is running: cluster "${START_CLUSTER}"`,
        '',
        table(rows),
        '',
        `  Failover URL  ${failover}`,
        ...tlsLines,
        options.shared
          ? `  Store         ${path.join(options.shared, 'store')} (the master's Postgres; its log there)`
          : `  Postgres      ${db}`,
        `  Admin login   ${START_ADMIN_USER} / ${adminPassword}`,
        `  Logs          ${path.join(shown, 'logs')}/ (node-a.log, node-b.log${options.shared ? '' : ', postgres.log'})`,
        '',
        'Press Ctrl-C to stop.',
        '',
      ].join('\n'),
    );
    return new Promise<never>(() => {});
  } catch (err) {
    if (!shuttingDown) {
      output.err(`keel start: ${(err as Error).message}\n`);
      return finish(err instanceof ConfigError ? EXIT_USAGE : 1);
    }
    return new Promise<never>(() => {});
  }
}
