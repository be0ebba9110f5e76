/**
 * One `keel broker` child process of `keel drill`: this CLI's own main.js under process.execPath
 * (as `keel start` runs its nodes), in a process group of its own so a terminal's Ctrl-C reaches
 * only the drill, with its pino lines kept in a log file and its role changes (the server's
 * `role changed` line, with pino's `time`) remembered with their timestamps.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createWriteStream, type WriteStream } from 'node:fs';
import { createInterface } from 'node:readline';
import { terminateChild } from './child-stop';

export interface DrillNodePlan {
  name: string;
  cluster: string;
  port: number;
  adminPort: number;
  /** Message database URL (KEEL_DB) and lock database URL (KEEL_LOCK_DB); empty: not set (shared store). */
  db: string;
  lockDb: string;
  logFile: string;
  /** More `keel broker` flags (the locker's wiring). */
  args?: string[];
  /** More environment variables (KEEL_*). */
  env?: Record<string, string>;
}

export interface RoleChange {
  role: string;
  /** The log line's own time (ms since the epoch). */
  atMs: number;
}

export class DrillNode {
  readonly roleChanges: RoleChange[] = [];
  exited = false;
  exitDescription = '';
  paused = false;
  private readonly child: ChildProcess;
  private readonly log: WriteStream;
  private readonly recent: string[] = [];
  readonly exitPromise: Promise<void>;

  constructor(
    readonly plan: DrillNodePlan,
    mainJs: string,
  ) {
    this.log = createWriteStream(plan.logFile, { flags: 'a' });
    this.log.on('error', () => {});
    const env: NodeJS.ProcessEnv = {};
    for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('KEEL_')) env[k] = v;
    // Secrets (the database password) go through the environment, not the command line (ps).
    if (plan.db) env.KEEL_DB = plan.db;
    if (plan.lockDb) env.KEEL_LOCK_DB = plan.lockDb;
    Object.assign(env, plan.env ?? {});
    const args = [
      mainJs,
      'broker',
      '--name',
      plan.name,
      '--cluster',
      plan.cluster,
      '--host',
      '127.0.0.1',
      '--port',
      String(plan.port),
      '--stomp-port',
      'false',
      '--admin-port',
      String(plan.adminPort),
      '--log-level',
      'info',
      ...(plan.args ?? []),
    ];
    this.child = spawn(process.execPath, args, { env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    this.exitPromise = new Promise((resolve) => {
      this.child.once('exit', (code, signal) => {
        this.exited = true;
        this.exitDescription = signal ?? `code ${code}`;
        resolve();
      });
      this.child.once('error', (err) => {
        this.remember(`spawn error: ${err.message}`);
        this.exited = true;
        this.exitDescription = 'spawn error';
        resolve();
      });
    });
    for (const stream of [this.child.stdout, this.child.stderr]) {
      if (stream) createInterface({ input: stream }).on('line', (line) => this.onLine(line));
    }
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  /** The role of the last role line, or null before the first. */
  get role(): string | null {
    return this.roleChanges[this.roleChanges.length - 1]?.role ?? null;
  }

  /** The first change to `role` at or after sinceMs. */
  roleSince(role: string, sinceMs: number): RoleChange | undefined {
    return this.roleChanges.find((c) => c.role === role && c.atMs >= sinceMs);
  }

  /** The last lines, summarised, for error messages. */
  lastLines(): string {
    return this.recent.join('\n    ');
  }

  private remember(summary: string): void {
    this.recent.push(summary.length > 240 ? `${summary.slice(0, 237)}...` : summary);
    if (this.recent.length > 15) this.recent.shift();
  }

  private onLine(line: string): void {
    this.log.write(`${line}\n`);
    if (!line.startsWith('{')) {
      this.remember(line);
      return;
    }
    let entry: {
      msg?: unknown;
      role?: unknown;
      time?: unknown;
      level?: unknown;
      err?: { message?: unknown };
    };
    try {
      entry = JSON.parse(line) as typeof entry;
    } catch {
      this.remember(line);
      return;
    }
    this.remember(
      `${String(entry.level ?? '')} ${String(entry.msg ?? '')}${entry.err?.message ? `: ${String(entry.err.message)}` : ''}`,
    );
    if (entry.msg === 'role changed' && typeof entry.role === 'string') {
      const atMs =
        typeof entry.time === 'number'
          ? entry.time
          : typeof entry.time === 'string' && !Number.isNaN(Date.parse(entry.time))
            ? Date.parse(entry.time)
            : Date.now();
      this.roleChanges.push({ role: entry.role, atMs });
    }
  }

  /** Signals the node's process group (it leads one: detached). */
  signal(signal: NodeJS.Signals): void {
    if (this.exited || this.child.pid === undefined) return;
    try {
      process.kill(-this.child.pid, signal);
    } catch {
      try {
        this.child.kill(signal);
      } catch {
        // gone already
      }
    }
    if (signal === 'SIGSTOP') this.paused = true;
    if (signal === 'SIGCONT') this.paused = false;
  }

  /** SIGTERM (continued first if paused), SIGKILL after timeoutMs; resolves once exited. */
  async stop(timeoutMs: number): Promise<void> {
    if (this.paused) this.signal('SIGCONT');
    await terminateChild(this, timeoutMs);
    await new Promise<void>((resolve) => this.log.end(resolve));
  }

  /** SIGKILL now, synchronously (exit paths). */
  killNow(): void {
    this.signal('SIGKILL');
  }
}
