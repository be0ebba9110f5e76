/**
 * `keel start` as real processes (the built CLI: `npm run build` first): two playgrounds on one host
 * with different ports both come up, and a busy port that was asked for is refused by name. Each
 * playground has its own directory and embedded Postgres; everything is stopped by PID.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { freePort } from '../ports';

const MAIN_JS = path.resolve(__dirname, '..', '..', 'dist', 'main.js');
const RUNNING_TIMEOUT_MS = 120_000;
const STOP_TIMEOUT_MS = 60_000;

/** Our environment without KEEL_* (the test says which ones a playground gets). */
function cleanEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('KEEL_')) env[k] = v;
  return { ...env, ...extra };
}

interface Started {
  dir: string;
  child: ChildProcess;
  output: () => string;
  exit: Promise<number | null>;
}

const started: Started[] = [];

/** Three distinct free ports for a node-a. */
async function nodePorts(): Promise<{ port: number; stompPort: number; adminPort: number }> {
  const ports = new Set<number>();
  while (ports.size < 3) ports.add(await freePort());
  const [port, stompPort, adminPort] = [...ports] as [number, number, number];
  return { port, stompPort, adminPort };
}

function keelStart(args: string[], env: NodeJS.ProcessEnv = cleanEnv()): Started {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'keel-start-test-'));
  chmodSync(dir, 0o755); // Postgres runs as the postgres user when we are root: it must reach pgdata
  const child = spawn(process.execPath, [MAIN_JS, 'start', ...args], {
    cwd: dir,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let text = '';
  child.stdout?.on('data', (b: Buffer) => {
    text += b.toString();
  });
  child.stderr?.on('data', (b: Buffer) => {
    text += b.toString();
  });
  const exit = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const s = { dir, child, output: () => text, exit };
  started.push(s);
  return s;
}

/** Resolves when the output matches; rejects when the process exits first or the time runs out. */
async function waitForOutput(s: Started, pattern: RegExp, timeoutMs: number): Promise<RegExpMatchArray> {
  const deadline = Date.now() + timeoutMs;
  let exited = false;
  void s.exit.then(() => {
    exited = true;
  });
  for (;;) {
    const m = s.output().match(pattern);
    if (m) return m;
    if (exited || Date.now() > deadline) {
      throw new Error(`keel start ${exited ? 'exited' : 'timed out'} before ${pattern}:\n${s.output()}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    promise,
    new Promise<T>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} took more than ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Last resort after a failed test: the nodes and Postgres of a playground, by their PIDs. */
function killLeftovers(dir: string): void {
  const pids: number[] = [];
  const startFile = path.join(dir, '.keel', 'start.json');
  if (existsSync(startFile))
    pids.push(...((JSON.parse(readFileSync(startFile, 'utf8')).nodePids ?? []) as number[]));
  for (const postmaster of [
    path.join(dir, '.keel', 'pgdata', 'postmaster.pid'),
    path.join(dir, 'shared', 'store', 'pgdata', 'postmaster.pid'),
  ]) {
    if (existsSync(postmaster)) pids.push(Number(readFileSync(postmaster, 'utf8').split('\n')[0]));
  }
  for (const pid of pids) if (pid > 0 && alive(pid)) process.kill(pid, 'SIGKILL');
}

afterAll(async () => {
  for (const s of started) {
    if (s.child.exitCode === null && s.child.signalCode === null && s.child.pid) {
      s.child.kill('SIGTERM');
      await withTimeout(s.exit, STOP_TIMEOUT_MS, 'keel start stop').catch(() => s.child.kill('SIGKILL'));
    }
    killLeftovers(s.dir);
    rmSync(s.dir, { recursive: true, force: true });
  }
}, 3 * STOP_TIMEOUT_MS);

interface Row {
  node: string;
  role: string;
  port: number;
  stompPort: number;
  adminPort: number;
}

/** The endpoint table keel start prints once both nodes are up. */
function endpointRows(output: string): Row[] {
  return [
    ...output.matchAll(
      /^ {2}(node-[ab]) +(\w+) +tcp:\/\/127\.0\.0\.1:(\d+) +stomp:\/\/127\.0\.0\.1:(\d+) +http:\/\/127\.0\.0\.1:(\d+)$/gm,
    ),
  ].map((m) => ({
    node: m[1] as string,
    role: m[2] as string,
    port: Number(m[3]),
    stompPort: Number(m[4]),
    adminPort: Number(m[5]),
  }));
}

async function brokerRole(adminPort: number): Promise<string> {
  const res = await fetch(`http://127.0.0.1:${adminPort}/api/broker`);
  return ((await res.json()) as { role: string }).role;
}

describe('keel start --shared DIR (shared-storage master/slave, mode b)', () => {
  it(
    'runs node-a as master with its Postgres on DIR/store and node-b as slave without one; stops both and that Postgres',
    async () => {
      const ports = await nodePorts();
      const s = keelStart([
        '--shared',
        'shared',
        '--port',
        String(ports.port),
        '--stomp-port',
        String(ports.stompPort),
        '--admin-port',
        String(ports.adminPort),
      ]);
      await waitForOutput(s, /Press Ctrl-C to stop/, RUNNING_TIMEOUT_MS);
      const rows = endpointRows(s.output());
      expect(rows.map((r) => r.role)).toEqual(['master', 'slave']);
      expect(s.output()).toContain('the nodes lock shared/lock; the master runs Postgres on shared/store');
      expect(s.output()).not.toContain('Postgres starting');
      const pidFile = path.join(s.dir, 'shared', 'store', 'pgdata', 'postmaster.pid');
      const postmaster = Number(readFileSync(pidFile, 'utf8').split('\n')[0]);
      expect(alive(postmaster)).toBe(true);
      const broker = (await (await fetch(`http://127.0.0.1:${rows[1]?.adminPort}/api/broker`)).json()) as {
        role: string;
        locker: { kind: string; holder: { name: string } | null };
      };
      expect(broker.role).toBe('slave');
      expect(broker.locker).toMatchObject({ kind: 'file', holder: { name: 'node-a' } });

      s.child.kill('SIGTERM');
      expect(await withTimeout(s.exit, STOP_TIMEOUT_MS, 'stopping keel start --shared')).toBe(0);
      expect(alive(postmaster)).toBe(false);
    },
    2 * RUNNING_TIMEOUT_MS,
  );
});

describe('keel start on a shared host', () => {
  it(
    'runs two playgrounds side by side on the ports given, refuses a busy one by name, and stops by PID',
    async () => {
      const portsA = await nodePorts();
      const a = keelStart([
        '--port',
        String(portsA.port),
        '--stomp-port',
        String(portsA.stompPort),
        '--admin-port',
        String(portsA.adminPort),
      ]);
      await waitForOutput(a, /Press Ctrl-C to stop/, RUNNING_TIMEOUT_MS);
      const rowsA = endpointRows(a.output());
      expect(rowsA[0]).toEqual({ node: 'node-a', role: 'master', ...portsA });
      expect(rowsA[1]?.role).toBe('slave');
      for (const key of ['port', 'stompPort', 'adminPort'] as const) {
        expect(rowsA[1]?.[key]).toBeGreaterThan(portsA[key]); // node-b: the next free ones above
      }

      // A port the first playground holds, asked for by flag, then by variable: refused at once.
      const busy = keelStart(['--port', String(portsA.port)]);
      expect(await withTimeout(busy.exit, 30_000, 'busy --port')).toBe(2);
      expect(busy.output()).toContain(`port: ${portsA.port} is already in use on 127.0.0.1`);
      expect(busy.output()).toContain('from --port');
      const busyEnv = keelStart([], cleanEnv({ KEEL_ADMIN_PORT: String(portsA.adminPort) }));
      expect(await withTimeout(busyEnv.exit, 30_000, 'busy KEEL_ADMIN_PORT')).toBe(2);
      expect(busyEnv.output()).toContain(`adminPort: ${portsA.adminPort} is already in use`);
      expect(busyEnv.output()).toContain('from KEEL_ADMIN_PORT');

      // The second playground: its ports from KEEL_* variables, its Postgres port by flag.
      const portsB = await nodePorts();
      const pgPortB = await freePort();
      const b = keelStart(
        ['--pg-port', String(pgPortB)],
        cleanEnv({
          KEEL_PORT: String(portsB.port),
          KEEL_STOMP_PORT: String(portsB.stompPort),
          KEEL_ADMIN_PORT: String(portsB.adminPort),
        }),
      );
      await waitForOutput(b, /Press Ctrl-C to stop/, RUNNING_TIMEOUT_MS);
      const rowsB = endpointRows(b.output());
      expect(rowsB[0]).toEqual({ node: 'node-a', role: 'master', ...portsB });
      expect(b.output()).toContain(`Postgres ready on 127.0.0.1:${pgPortB}`);

      // Both are up at once: each admin API answers with its node's role.
      const all = [...rowsA, ...rowsB].flatMap((r) => [r.port, r.stompPort, r.adminPort]);
      expect(new Set(all).size).toBe(12);
      expect(await brokerRole(rowsA[0]?.adminPort as number)).toBe('master');
      expect(await brokerRole(rowsB[0]?.adminPort as number)).toBe('master');
      expect(await brokerRole(rowsB[1]?.adminPort as number)).toBe('slave');

      // Stop both by PID: nodes first, then Postgres, exit 0.
      a.child.kill('SIGTERM');
      b.child.kill('SIGTERM');
      expect(await withTimeout(a.exit, STOP_TIMEOUT_MS, 'stopping the first keel start')).toBe(0);
      expect(await withTimeout(b.exit, STOP_TIMEOUT_MS, 'stopping the second keel start')).toBe(0);
      expect(a.output()).toMatch(/stopping Postgres\.\.\.\nstopped\n$/);
    },
    4 * RUNNING_TIMEOUT_MS,
  );
});
