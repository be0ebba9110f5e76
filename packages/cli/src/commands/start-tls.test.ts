/**
 * `keel start --tls` as a real process (the built CLI): one flag gives a throwaway CA and
 * certificates, ssl:// and stomp+ssl:// listeners and an https admin API; the printed CA is all a
 * client needs to connect with verification on.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import * as https from 'node:https';
import * as os from 'node:os';
import * as path from 'node:path';
import { connect } from '@keel/client';
import { freePort } from '../ports';

const MAIN_JS = path.resolve(__dirname, '..', '..', 'dist', 'main.js');
const RUNNING_TIMEOUT_MS = 120_000;

let dir = '';
let child: ChildProcess | null = null;
let output = '';
let exit: Promise<number | null> = Promise.resolve(null);

afterAll(async () => {
  if (child && child.exitCode === null && child.signalCode === null) {
    child.kill('SIGTERM');
    await Promise.race([exit, new Promise((r) => setTimeout(r, 60_000))]);
  }
  // Last resort: the nodes and Postgres by their PIDs.
  const startFile = path.join(dir, '.keel', 'start.json');
  const pids: number[] = existsSync(startFile)
    ? (JSON.parse(readFileSync(startFile, 'utf8')).nodePids ?? [])
    : [];
  const postmaster = path.join(dir, '.keel', 'pgdata', 'postmaster.pid');
  if (existsSync(postmaster)) pids.push(Number(readFileSync(postmaster, 'utf8').split('\n')[0]));
  for (const pid of pids) {
    try {
      if (pid > 0) process.kill(pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
  rmSync(dir, { recursive: true, force: true });
}, 90_000);

async function waitForOutput(pattern: RegExp, timeoutMs: number): Promise<RegExpMatchArray> {
  const deadline = Date.now() + timeoutMs;
  let exited = false;
  void exit.then(() => {
    exited = true;
  });
  for (;;) {
    const m = output.match(pattern);
    if (m) return m;
    if (exited || Date.now() > deadline)
      throw new Error(`keel start ${exited ? 'exited' : 'timed out'}:\n${output}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

test(
  'keel start --tls: prints the CA; ssl:// verified against it carries a message; the admin API answers https',
  async () => {
    const ports = new Set<number>();
    while (ports.size < 3) ports.add(await freePort());
    const [port, stompPort, adminPort] = [...ports] as [number, number, number];
    dir = mkdtempSync(path.join(os.tmpdir(), 'keel-start-tls-'));
    chmodSync(dir, 0o755); // Postgres runs as the postgres user when we are root
    const env: NodeJS.ProcessEnv = {};
    for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('KEEL_')) env[k] = v;
    const args = [
      'start',
      '--tls',
      '--port',
      `${port}`,
      '--stomp-port',
      `${stompPort}`,
      '--admin-port',
      `${adminPort}`,
    ];
    child = spawn(process.execPath, [MAIN_JS, ...args], { cwd: dir, env, stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout?.on('data', (b: Buffer) => (output += b.toString()));
    child.stderr?.on('data', (b: Buffer) => (output += b.toString()));
    const c = child;
    exit = new Promise((resolve) => c.once('exit', (code) => resolve(code)));

    await waitForOutput(/Press Ctrl-C to stop/, RUNNING_TIMEOUT_MS);
    const caFile = (output.match(/^ {2}CA +(\S+)/m) ?? [])[1] as string;
    expect(caFile).toBe(path.join(dir, '.keel', 'tls', 'ca.pem'));
    const ssl = output.match(
      /^ {2}node-a +master +\S+ +\S+ +ssl:\/\/localhost:(\d+) +stomp\+ssl:\/\/localhost:(\d+) +https:\/\/localhost:(\d+)$/m,
    );
    expect(ssl).not.toBeNull();
    const failover = (output.match(/^ {2}TLS failover +(\S+)/m) ?? [])[1] as string;
    expect(failover).toMatch(/^failover:\(ssl:\/\/localhost:\d+,ssl:\/\/localhost:\d+\)$/);

    const conn = await connect(failover, { tls: { caFile }, timeout: 10_000 });
    conn.on('error', () => {});
    const session = await conn.createSession();
    const consumer = await session.createConsumer('queue://start.tls');
    const got = new Promise<string>((resolve) => consumer.onMessage((m) => resolve(m.body.toString())));
    await session.createProducer('queue://start.tls').send('hello');
    expect(await got).toBe('hello');
    await conn.close();

    const status = await new Promise<number>((resolve, reject) => {
      https
        .get(`https://localhost:${ssl?.[3]}/healthz`, { ca: readFileSync(caFile) }, (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        })
        .on('error', reject);
    });
    expect(status).toBe(200);

    c.kill('SIGTERM');
    expect(await exit).toBe(0);
  },
  3 * RUNNING_TIMEOUT_MS,
);
