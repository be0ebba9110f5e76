import { type ChildProcess, spawn } from 'node:child_process';
import {
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  FileLocker,
  type FileLockerOptions,
  LOCK_FILE,
  LOCK_RECORD_FILE,
  readLockRecord,
} from './file-locker';

/**
 * The file locker on a real file system with real processes: the holder is another node process
 * (a few lines that lock `<dir>/lock` through fs-native-extensions and write lock.json as the
 * locker does), killed with SIGKILL or frozen with SIGSTOP.
 */
const REPO = path.resolve(__dirname, '..', '..', '..');

interface Logged {
  level: string;
  obj: Record<string, unknown>;
  msg: string;
}

function recorder(): {
  logger: FileLockerOptions['logger'];
  lines: Logged[];
  waitFor(re: RegExp): Promise<Logged>;
} {
  const lines: Logged[] = [];
  const waiters: { re: RegExp; resolve(l: Logged): void }[] = [];
  const push = (level: string) => (obj: object, msg?: string) => {
    const line = { level, obj: obj as Record<string, unknown>, msg: msg ?? '' };
    lines.push(line);
    for (const w of [...waiters]) {
      if (w.re.test(line.msg)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(line);
      }
    }
  };
  return {
    lines,
    logger: { debug: push('debug'), info: push('info'), warn: push('warn') },
    waitFor(re) {
      const found = lines.find((l) => re.test(l.msg));
      if (found) return Promise.resolve(found);
      return new Promise((resolve) => waiters.push({ re, resolve }));
    },
  };
}

/** A holder process: locks DIR/lock, writes lock.json (renewing its lease every RENEW ms if set). */
const HOLDER = `
const fs = require('fs'), fsx = require('fs-native-extensions'), os = require('os'), path = require('path');
const dir = process.env.DIR, renew = Number(process.env.RENEW || 0);
const fd = fs.openSync(path.join(dir, 'lock'), fs.constants.O_RDWR | fs.constants.O_CREAT);
if (!fsx.tryLock(fd)) { console.log('busy'); process.exit(3); }
const stat = fs.readFileSync('/proc/self/stat', 'utf8');
const rec = { name: process.env.NAME, host: process.env.HOST || os.hostname(), pid: process.pid, epoch: 7,
  acquiredAt: new Date().toISOString(), cluster: 'default', token: 'holder' + process.pid, seq: 0,
  renewedAt: new Date().toISOString(), procStart: stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] };
const write = () => { fs.writeFileSync(path.join(dir, 'lock.json.tmp'), JSON.stringify(rec));
  fs.renameSync(path.join(dir, 'lock.json.tmp'), path.join(dir, 'lock.json')); };
write();
if (renew > 0) setInterval(() => { rec.seq++; write(); }, renew);
console.log('locked');
setInterval(() => {}, 1000);
`;

function startHolder(dir: string, env: Record<string, string> = {}): Promise<ChildProcess> {
  const child = spawn(process.execPath, ['-e', HOLDER], {
    cwd: REPO,
    env: { ...process.env, DIR: dir, NAME: 'holder', ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  children.push(child);
  return new Promise((resolve, reject) => {
    child.stdout?.once('data', (b: Buffer) =>
      b.toString().includes('locked') ? resolve(child) : reject(new Error(b.toString())),
    );
    child.once('exit', (code) => reject(new Error(`holder exited ${code}`)));
  });
}

function exited(child: ChildProcess): Promise<NodeJS.Signals | number | null> {
  if (child.exitCode !== null || child.signalCode !== null)
    return Promise.resolve(child.signalCode ?? child.exitCode);
  return new Promise((resolve) => child.once('exit', (code, signal) => resolve(signal ?? code)));
}

let dir: string;
const children: ChildProcess[] = [];
const lockers: FileLocker[] = [];
const aborts: AbortController[] = [];

function locker(options: Partial<FileLockerOptions> = {}): FileLocker {
  const l = new FileLocker({
    directory: dir,
    node: `n${lockers.length + 1}`,
    lockAcquireSleepInterval: 50,
    lockKeepAlivePeriod: 50,
    ...options,
  });
  lockers.push(l);
  return l;
}

function acquire(l: FileLocker): Promise<void> {
  const a = new AbortController();
  aborts.push(a);
  return l.acquire(a.signal);
}

beforeEach(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'keel-file-locker-'));
});

afterEach(async () => {
  for (const a of aborts.splice(0)) a.abort(new Error('test over'));
  await Promise.all(lockers.splice(0).map((l) => l.close()));
  for (const c of children.splice(0)) {
    if (c.exitCode === null && c.signalCode === null) {
      c.kill('SIGKILL');
      await exited(c);
    }
  }
  rmSync(dir, { recursive: true, force: true });
});

describe('FileLocker', () => {
  it('lets exactly one of several racing nodes hold the lock, records it, and passes it on when released', async () => {
    const nodes = [locker(), locker(), locker()];
    const winners: number[] = [];
    const attempts = nodes.map((l, i) => acquire(l).then(() => winners.push(i)));
    await Promise.race(attempts);
    // Several attempts of the others (every 50 ms): nobody else may win meanwhile.
    await new Promise((r) => setTimeout(r, 300));
    expect(winners).toHaveLength(1);
    const first = winners[0] as number;
    expect(nodes.filter((l) => l.held)).toHaveLength(1);
    const rec = await readLockRecord(dir);
    expect(rec).toMatchObject({ name: `n${first + 1}`, host: os.hostname(), pid: process.pid, epoch: 1 });
    expect(Date.parse(rec?.acquiredAt ?? '')).toBeGreaterThan(Date.now() - 10_000);
    await nodes[first]?.recordEpoch(41);
    expect((await readLockRecord(dir))?.epoch).toBe(41);

    await nodes[first]?.release();
    await Promise.race(attempts.filter((_, i) => i !== first));
    expect(winners).toHaveLength(2);
    expect(nodes.filter((l) => l.held)).toHaveLength(1);
    // The next holder's provisional epoch follows the recorded one.
    expect(await readLockRecord(dir)).toMatchObject({ name: `n${(winners[1] as number) + 1}`, epoch: 42 });
  });

  it('takes over at once when the holder process is SIGKILLed (the kernel drops its lock)', async () => {
    const holder = await startHolder(dir);
    const log = recorder();
    const l = locker({ lockAcquireSleepInterval: 100, logger: log.logger });
    const got = acquire(l);
    await log.waitFor(/held by another node/);
    expect(l.held).toBe(false);
    const killedAt = Date.now();
    holder.kill('SIGKILL');
    await got;
    // At once: well inside 3 s even on a busy machine (not after a lease or a stale-lock timeout).
    expect(Date.now() - killedAt).toBeLessThan(3_000);
    expect(await readLockRecord(dir)).toMatchObject({ name: 'n1', pid: process.pid, epoch: 8 });
  });

  it('without a lease, never takes the lock from a frozen (SIGSTOPped) holder, and says why it waits', async () => {
    const holder = await startHolder(dir);
    const log = recorder();
    const l = locker({ logger: log.logger });
    const got = acquire(l);
    const said = await log.waitFor(/held by another node; waiting/);
    expect(said.msg).toMatch(/no lease: a frozen holder keeps the lock/);
    expect(said.obj).toMatchObject({ holder: 'holder', pid: holder.pid });
    holder.kill('SIGSTOP');
    // 40 attempts of the waiting node.
    const outcome = await Promise.race([
      got.then(() => 'acquired'),
      new Promise((r) => setTimeout(r, 2_000, 'waiting')),
    ]);
    expect(outcome).toBe('waiting');
    expect(l.held).toBe(false);
    holder.kill('SIGCONT');
  });

  it('with a lease, fences a frozen holder on this host (SIGKILL of its pid, the fence hooks) and takes over', async () => {
    const holder = await startHolder(dir, { RENEW: '50' });
    const log = recorder();
    const hooked: number[] = [];
    const l = locker({
      logger: log.logger,
      leaseDuration: 400,
      fenceHooks: [(h) => void hooked.push(h.pid)],
    });
    const got = acquire(l);
    await log.waitFor(/held by another node; waiting/);
    // Renewing: stays held for well over a lease.
    await new Promise((r) => setTimeout(r, 800));
    expect(l.held).toBe(false);
    const frozenAt = Date.now();
    holder.kill('SIGSTOP');
    await got;
    expect(await exited(holder)).toBe('SIGKILL');
    expect(hooked).toEqual([holder.pid]);
    const took = Date.now() - frozenAt;
    // Not before the lease ran out since the last renewal (at most one renewal period before the freeze).
    expect(took).toBeGreaterThanOrEqual(400 - 50);
    expect(took).toBeLessThan(3_000);
    expect((await log.waitFor(/fenced the stale master/)).obj).toMatchObject({
      holder: 'holder',
      pid: holder.pid,
    });
    expect(await readLockRecord(dir)).toMatchObject({ name: 'n1', pid: process.pid, epoch: 8 });
  });

  it('with a lease, does not fence a stale holder on another host without a fenceCommand, and says why', async () => {
    const holder = await startHolder(dir, { RENEW: '50', HOST: 'elsewhere' });
    const log = recorder();
    const l = locker({ logger: log.logger, leaseDuration: 300 });
    const got = acquire(l);
    holder.kill('SIGSTOP');
    const said = await log.waitFor(/lease of the master is stale/);
    expect(said.msg).toMatch(/runs on another host \(elsewhere\) and no fenceCommand is configured/);
    const outcome = await Promise.race([
      got.then(() => 'acquired'),
      new Promise((r) => setTimeout(r, 500, 'waiting')),
    ]);
    expect(outcome).toBe('waiting');
    expect(holder.signalCode).toBeNull(); // not killed
    holder.kill('SIGCONT');
  });

  it('runs the fenceCommand for a stale holder on another host: a failure waits, exit 0 replaces the lock file', async () => {
    const holder = await startHolder(dir, { RENEW: '50', HOST: 'elsewhere' });
    const marker = path.join(dir, 'fenced.env');
    const failing = recorder();
    const f = locker({
      logger: failing.logger,
      leaseDuration: 300,
      fenceCommand: 'echo no power switch >&2; exit 3',
    });
    const stuck = acquire(f);
    holder.kill('SIGSTOP');
    const said = await failing.waitFor(/fenceCommand failed/);
    expect(said.obj.why).toMatch(/exited 3: no power switch/);
    await f.close();
    for (const a of aborts) a.abort(new Error('next'));
    await stuck.catch(() => {});

    const log = recorder();
    const l = locker({
      logger: log.logger,
      leaseDuration: 300,
      fenceCommand: `env | grep ^KEEL_FENCE_ > ${marker}`,
    });
    const inodeBefore = statSync(path.join(dir, LOCK_FILE)).ino;
    await acquire(l);
    const env = readFileSync(marker, 'utf8');
    expect(env).toMatch(/KEEL_FENCE_NAME=holder/);
    expect(env).toMatch(/KEEL_FENCE_HOST=elsewhere/);
    expect(env).toMatch(new RegExp(`KEEL_FENCE_PID=${holder.pid}`));
    // The frozen holder's lock is not released (another host): the lock file was replaced.
    expect(statSync(path.join(dir, LOCK_FILE)).ino).not.toBe(inodeBefore);
    expect(await readLockRecord(dir)).toMatchObject({ name: 'n2', pid: process.pid });
    await log.waitFor(/replaced the lock file/);
  });

  it.each([
    ['removed', () => unlinkSync(path.join(dir, LOCK_FILE)), /lock file .* was removed/],
    [
      'replaced',
      () => {
        writeFileSync(path.join(dir, 'other'), '');
        renameSync(path.join(dir, 'other'), path.join(dir, LOCK_FILE));
      },
      /lock file .* was replaced/,
    ],
    [
      'overwritten with another holder',
      () =>
        writeFileSync(
          path.join(dir, LOCK_RECORD_FILE),
          JSON.stringify({ name: 'intruder', host: 'h', pid: 1, epoch: 9, token: 'x', seq: 0 }),
        ),
      /now names intruder/,
    ],
  ])('steps down at once when its lock file is %s, and says why', async (_case, tamper, reason) => {
    const l = locker();
    await acquire(l);
    const lost = new Promise<string>((resolve) => l.onLost(resolve));
    tamper();
    expect(await lost).toMatch(reason);
    expect(l.held).toBe(false);
  });

  it('a waiting node that must create a removed lock file holds it two keep-alives before serving, so the old holder steps down first', async () => {
    const a = locker({ lockKeepAlivePeriod: 100 });
    await acquire(a);
    const log = recorder();
    const b = locker({ lockKeepAlivePeriod: 100, logger: log.logger });
    const got = acquire(b);
    await log.waitFor(/held by another node/);
    const events: string[] = [];
    a.onLost(() => events.push('a lost'));
    void got.then(() => events.push('b holds'));
    unlinkSync(path.join(dir, LOCK_FILE));
    const said = await log.waitFor(/lock file was missing: created it/);
    expect(said.obj).toMatchObject({ holder: 'n1', waitMs: 200 });
    await got;
    expect(events).toEqual(['a lost', 'b holds']);
    expect(await readLockRecord(dir)).toMatchObject({ name: 'n2' });
  });

  it('shows the lease from lock.json to a waiting node (holder, last renewal, expiry); none without a lease', async () => {
    const holder = locker({ leaseDuration: 400, lockKeepAlivePeriod: 50 });
    const waiter = locker({ leaseDuration: 400, lockKeepAlivePeriod: 50 });
    const noLease = locker();
    await acquire(holder);
    const waiting = acquire(waiter).catch(() => {}); // ends when the test aborts it
    const first = await waiter.lease();
    expect(first).toMatchObject({ holder: 'n1', durationMs: 400 });
    expect(Date.parse(first!.expiresAt) - Date.parse(first!.renewedAt)).toBe(400);
    await new Promise((r) => setTimeout(r, 200)); // a few keep-alives renew it
    const later = await waiter.lease();
    expect(Date.parse(later!.renewedAt)).toBeGreaterThan(Date.parse(first!.renewedAt));
    expect(await noLease.lease()).toBeNull();
    expect(waiter.held).toBe(false);
    for (const a of aborts) a.abort(new Error('test over'));
    await waiting;
  });

  it('steps down when it finds its own lease overrun (it was frozen longer than leaseDuration)', async () => {
    const l = locker({ leaseDuration: 200, lockKeepAlivePeriod: 50 });
    await acquire(l);
    const lost = new Promise<string>((resolve) => l.onLost(resolve));
    // Freeze this process (as SIGSTOP would) for longer than the lease.
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 400);
    expect(await lost).toMatch(/lease overrun: \d+ ms since the last keep-alive \(leaseDuration 200 ms\)/);
  });
});

describe('FileLocker start-up check', () => {
  it('names a missing directory', async () => {
    const missing = path.join(dir, 'nope');
    await expect(locker({ directory: missing }).check()).rejects.toMatchObject({
      code: 'LOCK_DIRECTORY_INVALID',
      message: `lock directory ${missing} does not exist`,
    });
  });

  it('names a path that is not a directory', async () => {
    const file = path.join(dir, 'file');
    writeFileSync(file, '');
    await expect(locker({ directory: file }).check()).rejects.toThrow(
      `lock directory ${file} is not a directory`,
    );
  });

  it('names a file system whose locks fail or are not exclusive', async () => {
    const failing = locker({
      lockPrimitive: {
        tryLock() {
          throw Object.assign(new Error('no locks'), { code: 'ENOLCK' });
        },
        unlock() {},
      },
    });
    await expect(failing.check()).rejects.toThrow(
      `lock directory ${dir} is on a file system without working locks (locking a file failed: ENOLCK)`,
    );
    const shared = locker({ lockPrimitive: { tryLock: () => true, unlock() {} } });
    await expect(shared.check()).rejects.toThrow(/without working locks \(a second descriptor was granted/);
  });

  it('names a directory it cannot write to (as a user without root)', async () => {
    if (process.getuid?.() === 0) {
      // root writes anywhere: the e2e test runs the broker as an unprivileged user for this case.
      return;
    }
    const ro = path.join(dir, 'ro');
    mkdirSync(ro, { mode: 0o555 });
    await expect(locker({ directory: ro }).check()).rejects.toThrow(
      new RegExp(`lock directory ${ro} is not writable \\(EACCES`),
    );
  });

  it('passes on a local file system and leaves no probe file behind', async () => {
    await locker().check();
    expect(readdirSync(dir)).toEqual([LOCK_FILE]);
  });
});
