/**
 * Runs a real broker node as a child process, for failover tests and drills:
 *
 *   node <repo>/packages/cli/dist/main.js broker --db URL --name N --cluster C \
 *        --port P --stomp-port S --admin-port A [...extra args]
 *
 * with free ports chosen for you. Its stdout (pino JSON, one object per line) and stderr are kept
 * in memory (and optionally appended to a file).
 *
 * Contract with the server (what waitForRole relies on): on every role change, including the
 * first role a node takes, the broker logs one JSON line whose `role` field is `"master"` or
 * `"slave"` and whose `msg` contains the word `role`, e.g.
 *   {"level":30,"time":...,"node":"n1","role":"master","msg":"role changed"}
 * A line is a role line when `typeof role === 'string'` and `/role/i.test(msg)`. The node's current
 * role is the `role` of the last such line.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createWriteStream, type WriteStream } from 'node:fs';
import * as path from 'node:path';
import { createInterface } from 'node:readline';
import { freePorts } from './free-port';

export type BrokerRole = 'master' | 'slave';

/** One stdout line: the parsed JSON object, or `{ msg: <raw line> }` for a line that is not JSON. */
export type LogEntry = Record<string, unknown> & { msg?: unknown };

export interface BrokerProcessOptions {
  /** The store's database URL (`--db`); empty: none given (`--store-dir` in args). */
  db: string;
  /** The node's name (`--name`). */
  name: string;
  /** The cluster name (`--cluster`). */
  cluster: string;
  /** Native protocol port (`--port`); a free port unless given. */
  port?: number;
  stompPort?: number;
  adminPort?: number;
  /** Further CLI arguments, appended after the standard ones. */
  args?: string[];
  /** Added to the parent's environment. */
  env?: Record<string, string>;
  /** Append stdout and stderr to this file as well. */
  logFile?: string;
  /**
   * The argv that replaces `node <repo>/packages/cli/dist/main.js` (the broker arguments are
   * appended to it), e.g. `[process.execPath, '-e', script, '--']` in tests of this launcher.
   */
  command?: string[];
  cwd?: string;
}

export interface BrokerExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** The repository root: packages/testkit/{src,dist} are two levels below it. */
export const REPO_ROOT = path.resolve(__dirname, '..', '..', '..');
/** The built CLI entry point (`npm test` builds before jest runs). */
export const CLI_MAIN = path.join(REPO_ROOT, 'packages', 'cli', 'dist', 'main.js');

const live = new Set<BrokerProcess>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // A test runner that dies must not leave brokers behind.
  process.once('exit', () => {
    for (const p of live) p.killNow();
  });
}

function isRoleLine(entry: LogEntry): entry is LogEntry & { role: string; msg: string } {
  return typeof entry.role === 'string' && typeof entry.msg === 'string' && /role/i.test(entry.msg);
}

export class BrokerProcess {
  readonly name: string;
  readonly port: number;
  readonly stompPort: number;
  readonly adminPort: number;
  readonly pid: number;
  /** The argv the process was started with. */
  readonly argv: readonly string[];
  /** Every stdout line, parsed. */
  readonly logs: LogEntry[] = [];
  /** Resolves when the process has exited (never rejects). */
  readonly exited: Promise<BrokerExit>;
  private stderrText = '';
  private exitInfo: BrokerExit | undefined;
  private paused = false;
  private readonly listeners = new Set<() => void>();
  private readonly logStream: WriteStream | undefined;

  private constructor(
    child: ChildProcess,
    argv: string[],
    options: BrokerProcessOptions,
    ports: [number, number, number],
  ) {
    this.argv = argv;
    this.name = options.name;
    [this.port, this.stompPort, this.adminPort] = ports;
    if (child.pid === undefined) throw new Error(`could not spawn ${argv.join(' ')}`);
    this.pid = child.pid;
    this.logStream = options.logFile ? createWriteStream(options.logFile, { flags: 'a' }) : undefined;
    this.logStream?.on('error', () => {});

    const stdoutDone = new Promise<void>((resolve) => {
      const rl = createInterface({
        input: child.stdout as NodeJS.ReadableStream,
        crlfDelay: Number.POSITIVE_INFINITY,
      });
      rl.on('line', (line) => this.onStdoutLine(line));
      rl.on('close', resolve);
    });
    child.stderr?.on('data', (chunk: Buffer) => {
      const text = chunk.toString();
      this.stderrText += text;
      this.logStream?.write(text);
    });
    const closed = new Promise<BrokerExit>((resolve) => {
      child.once('close', (code, signal) => resolve({ code, signal }));
      child.once('error', (err) => {
        this.stderrText += `spawn error: ${err.message}\n`;
        resolve({ code: null, signal: null });
      });
    });
    this.exited = Promise.all([closed, stdoutDone]).then(async ([info]) => {
      const stream = this.logStream;
      if (stream) await new Promise<void>((resolve) => stream.end(resolve));
      this.exitInfo = info;
      live.delete(this);
      this.notify();
      return info;
    });
  }

  /** Spawns the broker; resolves once it is spawned (not once it is ready: use waitForRole). */
  static async start(options: BrokerProcessOptions): Promise<BrokerProcess> {
    const free = await freePorts(3);
    const ports: [number, number, number] = [
      options.port ?? (free[0] as number),
      options.stompPort ?? (free[1] as number),
      options.adminPort ?? (free[2] as number),
    ];
    const command = options.command ?? [process.execPath, CLI_MAIN];
    const brokerArgs = [
      'broker',
      // Empty: no --db (shared-storage mode b: --store-dir in args).
      ...(options.db ? ['--db', options.db] : []),
      '--name',
      options.name,
      '--cluster',
      options.cluster,
      '--port',
      String(ports[0]),
      '--stomp-port',
      String(ports[1]),
      '--admin-port',
      String(ports[2]),
      ...(options.args ?? []),
    ];
    const argv = [...command, ...brokerArgs];
    const child = spawn(argv[0] as string, argv.slice(1), {
      cwd: options.cwd ?? REPO_ROOT,
      env: { ...process.env, ...options.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    await new Promise<void>((resolve) => {
      child.once('spawn', resolve);
      child.once('error', () => resolve());
    });
    const broker = new BrokerProcess(child, argv, options, ports);
    live.add(broker);
    installExitHook();
    return broker;
  }

  /** Everything written to stderr so far. */
  get stderr(): string {
    return this.stderrText;
  }

  /** The role of the last role line, or undefined before the first. */
  get role(): BrokerRole | undefined {
    for (let i = this.logs.length - 1; i >= 0; i--) {
      const entry = this.logs[i] as LogEntry;
      if (isRoleLine(entry)) return entry.role as BrokerRole;
    }
    return undefined;
  }

  /** Exit code and signal once exited, else undefined. */
  get exitStatus(): BrokerExit | undefined {
    return this.exitInfo;
  }

  get isPaused(): boolean {
    return this.paused;
  }

  /**
   * Resolves with the first log entry at index >= fromIndex (default 0: the whole log so far, then
   * new lines) that satisfies predicate. Rejects on timeout or when the process exits first, with
   * the tail of its output in the message.
   */
  waitForLog(predicate: (entry: LogEntry) => boolean, timeoutMs = 30_000, fromIndex = 0): Promise<LogEntry> {
    return new Promise((resolve, reject) => {
      let next = fromIndex;
      const check = (): boolean => {
        for (; next < this.logs.length; next++) {
          const entry = this.logs[next] as LogEntry;
          if (predicate(entry)) {
            finish();
            resolve(entry);
            return true;
          }
        }
        if (this.exitInfo) {
          finish();
          reject(
            new Error(
              `${this.name} exited (${this.describeExit()}) before the awaited log line\n${this.tail()}`,
            ),
          );
          return true;
        }
        return false;
      };
      const timer = setTimeout(() => {
        finish();
        reject(new Error(`${this.name}: no matching log line within ${timeoutMs} ms\n${this.tail()}`));
      }, timeoutMs);
      const listener = () => {
        check();
      };
      const finish = () => {
        clearTimeout(timer);
        this.listeners.delete(listener);
      };
      this.listeners.add(listener);
      check();
    });
  }

  /**
   * Resolves when the node's current role (its last role line) is `role`: at once if it already
   * is, else on the next role line with that role.
   */
  async waitForRole(role: BrokerRole, timeoutMs = 30_000): Promise<LogEntry> {
    let lastRoleIndex = -1;
    for (let i = this.logs.length - 1; i >= 0; i--) {
      if (isRoleLine(this.logs[i] as LogEntry)) {
        lastRoleIndex = i;
        break;
      }
    }
    const from =
      lastRoleIndex >= 0 && (this.logs[lastRoleIndex] as LogEntry).role === role
        ? lastRoleIndex
        : lastRoleIndex + 1;
    return this.waitForLog((e) => isRoleLine(e) && e.role === role, timeoutMs, from);
  }

  /** Number of log lines so far: pass it as waitForLog's fromIndex to wait only for new lines. */
  mark(): number {
    return this.logs.length;
  }

  /** Sends a signal (SIGTERM unless given). A paused process is continued first unless the signal is SIGSTOP/SIGCONT. */
  kill(signal: NodeJS.Signals = 'SIGTERM'): void {
    if (this.exitInfo) return;
    if (this.paused && signal !== 'SIGSTOP' && signal !== 'SIGCONT' && signal !== 'SIGKILL') this.resume();
    try {
      process.kill(this.pid, signal);
    } catch {
      // already gone
    }
  }

  /** Freezes the process (SIGSTOP): its sockets stay open but it answers nothing. */
  pause(): void {
    if (this.exitInfo) return;
    process.kill(this.pid, 'SIGSTOP');
    this.paused = true;
  }

  /** Continues a paused process (SIGCONT). */
  resume(): void {
    if (this.exitInfo) return;
    process.kill(this.pid, 'SIGCONT');
    this.paused = false;
  }

  /** SIGTERM, then SIGKILL if it has not exited within graceMs. Resolves with the exit status. */
  async stop(graceMs = 10_000): Promise<BrokerExit> {
    if (this.exitInfo) return this.exitInfo;
    this.kill('SIGTERM');
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), graceMs);
    });
    const first = await Promise.race([this.exited, timedOut]);
    clearTimeout(timer);
    if (first === 'timeout') this.kill('SIGKILL');
    return this.exited;
  }

  /** @internal SIGKILL without waiting (used by the exit hook). */
  killNow(): void {
    try {
      process.kill(this.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }

  /** The last lines of stdout and stderr, for error messages. */
  tail(lines = 20): string {
    const out = this.logs.slice(-lines).map((e) => JSON.stringify(e));
    const err = this.stderrText.split('\n').slice(-lines).join('\n');
    return `--- stdout (last ${out.length} lines) ---\n${out.join('\n')}\n--- stderr ---\n${err}`;
  }

  private describeExit(): string {
    const e = this.exitInfo;
    return e ? (e.signal ? `signal ${e.signal}` : `code ${e.code}`) : 'running';
  }

  private onStdoutLine(line: string): void {
    this.logStream?.write(`${line}\n`);
    if (line.trim() === '') return;
    let entry: LogEntry;
    try {
      const parsed: unknown = JSON.parse(line);
      entry =
        typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed)
          ? (parsed as LogEntry)
          : { msg: line };
    } catch {
      entry = { msg: line };
    }
    this.logs.push(entry);
    this.notify();
  }

  private notify(): void {
    for (const listener of [...this.listeners]) listener();
  }
}

/** Shorthand for BrokerProcess.start. */
export function startBroker(options: BrokerProcessOptions): Promise<BrokerProcess> {
  return BrokerProcess.start(options);
}

/** Every broker process started by this test file that has not exited yet. */
export function liveBrokers(): BrokerProcess[] {
  return [...live];
}

/** Stops every live broker (SIGTERM, SIGKILL after graceMs); for afterAll/afterEach. */
export async function stopAll(graceMs = 5_000): Promise<void> {
  await Promise.all([...live].map((p) => p.stop(graceMs)));
}
