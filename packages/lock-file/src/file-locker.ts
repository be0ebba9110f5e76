/**
 * ActiveMQ's shared file system master/slave (SharedFileLocker) for Keel: every node takes an
 * exclusive kernel lock on `<directory>/lock`; the holder is master, the others try again every
 * `lockAcquireSleepInterval` ms (ActiveMQ's name and default, 10000). The kernel drops the lock
 * when the holder's process dies, so a SIGKILL hands over without waiting for any lease.
 *
 * The lock is taken through fs-native-extensions: on Linux fcntl(F_OFD_SETLK), an
 * open-file-description lock (POSIX byte-range semantics, honoured by NFS v4, not dropped when
 * another descriptor of the same process closes the file); on macOS flock(LOCK_EX | LOCK_NB).
 *
 * Beside it, `<directory>/lock.json` (written to a temporary file and renamed, never renaming over
 * `lock` itself) records the holder: name, host, pid, epoch and acquiredAt, plus a random token of
 * this acquisition. The master checks every `lockKeepAlivePeriod` ms that `lock` is still the file
 * it locked (same device and inode) and that lock.json still names it; otherwise it lost the lock
 * (someone removed or replaced the file, or took over after fencing it) and says so at once.
 *
 * A frozen master (SIGSTOP) keeps its kernel lock, and ActiveMQ never fails over then. With
 * `leaseDuration` > 0 the master also renews a lease in lock.json (a sequence number) every
 * keep-alive; a waiting node that sees the sequence unchanged for leaseDuration by its own
 * monotonic clock (no clock comparison across hosts) may take over, but only after fencing the
 * holder: on the same host (same hostname recorded) by SIGKILL of its recorded pid (and the
 * fence hooks, e.g. its postmaster), on another host only when the configured `fenceCommand` exits
 * 0 (a STONITH script). Otherwise it logs why it waits. A master that finds its own lease overrun
 * (it was frozen longer than leaseDuration) steps down at once.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { constants as fsConstants, readFileSync } from 'node:fs';
import { type FileHandle, open, readFile, rename, stat, unlink, writeFile } from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import type { LeaseState, Locker, LockHolder } from '@keel/core';
import { InvalidArgumentError } from '@keel/protocol';
import * as fsx from 'fs-native-extensions';

export interface FileLockerLogger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
}

/** The kernel lock calls (fs-native-extensions); replaceable in tests of the start-up check only. */
export interface LockPrimitive {
  /** true: granted; false: another open file description holds it; throws when locks do not work. */
  tryLock(fd: number): boolean;
  unlock(fd: number): void;
}

/** Runs after the stale holder's pid was killed on this host, before this node takes the lock. */
export type FenceHook = (holder: LockRecord) => Promise<void> | void;

export interface FileLockerOptions {
  /** The shared directory (ActiveMQ: `directory`); the lock is `<directory>/lock`. */
  directory: string;
  /** This node's name, recorded as the holder. */
  node: string;
  cluster?: string;
  /** ms between a waiting node's attempts (ActiveMQ's SharedFileLocker name; default 10000). */
  lockAcquireSleepInterval?: number;
  /** ms between the master's checks of its lock file (and lease renewals); ActiveMQ's name. */
  lockKeepAlivePeriod?: number;
  /** ms; 0 (default): no lease, a frozen master keeps the lock as in ActiveMQ. */
  leaseDuration?: number;
  /**
   * Shell command that fences a stale holder on another host (exit 0 = fenced), run with
   * KEEL_FENCE_NAME, KEEL_FENCE_HOST, KEEL_FENCE_PID, KEEL_FENCE_EPOCH and KEEL_FENCE_DIRECTORY.
   */
  fenceCommand?: string | null;
  /** How long fenceCommand may run (ms) before it counts as failed. */
  fenceTimeoutMs?: number;
  /** Same-host fencing steps after the SIGKILL of the holder's pid (see addFenceHook). */
  fenceHooks?: FenceHook[];
  /** Recorded host name; default os.hostname(). */
  host?: string;
  logger?: FileLockerLogger;
  /** Tests of the start-up check only. */
  lockPrimitive?: LockPrimitive;
}

export const FILE_LOCKER_DEFAULTS = Object.freeze({
  /** ActiveMQ's SharedFileLocker.lockAcquireSleepInterval default. */
  lockAcquireSleepInterval: 10_000,
  lockKeepAlivePeriod: 1_000,
  leaseDuration: 0,
  fenceTimeoutMs: 30_000,
});

/** What lock.json holds. */
export interface LockRecord extends LockHolder {
  cluster: string;
  /** Random, one per acquisition: tells this holder's record from a later one of the same node. */
  token: string;
  /** Lease renewals of this acquisition (only counts with a lease). */
  seq: number;
  /** ISO 8601, last renewal. */
  renewedAt: string;
  /** Linux: the holder process's start time (/proc/PID/stat), so a reused pid is not killed. */
  procStart: string | null;
}

export const LOCK_FILE = 'lock';
export const LOCK_RECORD_FILE = 'lock.json';
/** Held (kernel lock) by a node while it fences a stale holder: one fencer at a time. */
const FENCE_LOCK_FILE = 'lock.fence';

const SILENT: FileLockerLogger = { debug() {}, info() {}, warn() {} };
const NATIVE: LockPrimitive = { tryLock: (fd) => fsx.tryLock(fd), unlock: (fd) => fsx.unlock(fd) };
const RW_CREATE = fsConstants.O_RDWR | fsConstants.O_CREAT;

/** The directory cannot hold the lock: missing, not writable, or without working locks. */
export function lockDirectoryError(directory: string, reason: string): InvalidArgumentError {
  return new InvalidArgumentError(`lock directory ${directory} ${reason}`, 'LOCK_DIRECTORY_INVALID');
}

/** lock.json of a lock directory, or null when absent or unreadable (being replaced, say). */
export async function readLockRecord(directory: string): Promise<LockRecord | null> {
  try {
    const parsed = JSON.parse(await readFile(path.join(directory, LOCK_RECORD_FILE), 'utf8'));
    return typeof parsed?.name === 'string' && typeof parsed?.token === 'string' ? parsed : null;
  } catch {
    return null;
  }
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const onAbort = (): void => {
      clearTimeout(t);
      resolve();
    };
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

function errCode(err: unknown): string {
  return (err as NodeJS.ErrnoException)?.code ?? (err as Error)?.message ?? String(err);
}

/** Linux: field 22 (starttime) of /proc/PID/stat; null elsewhere or when the process is gone. */
function processStart(pid: number): string | null {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may hold spaces and parentheses: count fields after the last ')'.
    return text.slice(text.lastIndexOf(')') + 2).split(' ')[19] ?? null;
  } catch {
    return null;
  }
}

function holderOf(r: LockRecord): Record<string, unknown> {
  return { holder: r.name, host: r.host, pid: r.pid, epoch: r.epoch };
}

export class FileLocker implements Locker {
  readonly kind = 'file' as const;
  readonly directory: string;
  readonly lockPath: string;
  private readonly recordPath: string;
  private readonly opts: {
    node: string;
    cluster: string;
    host: string;
    lockAcquireSleepInterval: number;
    lockKeepAlivePeriod: number;
    leaseDuration: number;
    fenceCommand: string | null;
    fenceTimeoutMs: number;
  };
  private readonly log: FileLockerLogger;
  private readonly prim: LockPrimitive;
  private readonly fenceHooks: FenceHook[];
  private checked: Promise<void> | null = null;
  private handle: FileHandle | null = null;
  private record: LockRecord | null = null;
  private heldFlag = false;
  private keepAliveTimer: NodeJS.Timeout | null = null;
  private lastKeepAliveOk = 0;
  private lostHandlers: ((reason: string) => void)[] = [];
  /** A waiting node's view of the holder's lease: the last (token, seq) seen and since when. */
  private seen: { key: string; at: number } | null = null;
  /** What the waiting node last said about the holder (logged on change, not every attempt). */
  private lastSaid = '';

  constructor(options: FileLockerOptions) {
    const n = (v: number | undefined, d: number) => v ?? d;
    const lockAcquireSleepInterval = n(
      options.lockAcquireSleepInterval,
      FILE_LOCKER_DEFAULTS.lockAcquireSleepInterval,
    );
    const lockKeepAlivePeriod = n(options.lockKeepAlivePeriod, FILE_LOCKER_DEFAULTS.lockKeepAlivePeriod);
    const leaseDuration = n(options.leaseDuration, FILE_LOCKER_DEFAULTS.leaseDuration);
    if (!options.directory) throw new InvalidArgumentError('file locker: directory is required');
    if (!(lockAcquireSleepInterval > 0))
      throw new InvalidArgumentError('file locker: lockAcquireSleepInterval must be > 0');
    if (!(lockKeepAlivePeriod > 0))
      throw new InvalidArgumentError('file locker: lockKeepAlivePeriod must be > 0');
    if (!(leaseDuration >= 0)) throw new InvalidArgumentError('file locker: leaseDuration must be >= 0');
    if (leaseDuration > 0 && !(leaseDuration > lockKeepAlivePeriod))
      throw new InvalidArgumentError(
        'file locker: leaseDuration must be greater than lockKeepAlivePeriod (or 0: no lease)',
      );
    this.directory = path.resolve(options.directory);
    this.lockPath = path.join(this.directory, LOCK_FILE);
    this.recordPath = path.join(this.directory, LOCK_RECORD_FILE);
    this.opts = {
      node: options.node,
      cluster: options.cluster ?? 'default',
      host: options.host ?? os.hostname(),
      lockAcquireSleepInterval,
      lockKeepAlivePeriod,
      leaseDuration,
      fenceCommand: options.fenceCommand || null,
      fenceTimeoutMs: n(options.fenceTimeoutMs, FILE_LOCKER_DEFAULTS.fenceTimeoutMs),
    };
    this.log = options.logger ?? SILENT;
    this.prim = options.lockPrimitive ?? NATIVE;
    this.fenceHooks = [...(options.fenceHooks ?? [])];
  }

  get held(): boolean {
    return this.heldFlag;
  }

  /** The epoch this node holds the lock at (0 when it does not). */
  get epoch(): number {
    return this.heldFlag ? (this.record?.epoch ?? 0) : 0;
  }

  onLost(handler: (reason: string) => void): void {
    this.lostHandlers.push(handler);
  }

  /** A same-host fencing step run after the stale holder's pid was killed (e.g. stop its postmaster). */
  addFenceHook(hook: FenceHook): void {
    this.fenceHooks.push(hook);
  }

  /**
   * Checks the directory once: it exists, this node can create files in it, and the file system's
   * locks work (a fresh file can be locked, and a second descriptor is then refused the lock).
   * Throws LOCK_DIRECTORY_INVALID naming the directory and the reason. acquire() calls it too.
   */
  check(): Promise<void> {
    this.checked ??= this.checkDirectory();
    return this.checked;
  }

  private async checkDirectory(): Promise<void> {
    const dir = this.directory;
    try {
      if (!(await stat(dir)).isDirectory()) throw lockDirectoryError(dir, 'is not a directory');
    } catch (err) {
      if ((err as { code?: string }).code === 'LOCK_DIRECTORY_INVALID') throw err;
      const code = errCode(err);
      throw lockDirectoryError(dir, code === 'ENOENT' ? 'does not exist' : `cannot be read (${code})`);
    }
    const notWritable = (err: unknown, file: string) =>
      lockDirectoryError(dir, `is not writable (${errCode(err)} creating ${file})`);
    try {
      await (await open(this.lockPath, RW_CREATE, 0o644)).close();
    } catch (err) {
      throw notWritable(err, this.lockPath);
    }
    const probe = path.join(dir, `.lock-probe-${process.pid}-${randomBytes(4).toString('hex')}`);
    let first: FileHandle;
    try {
      first = await open(probe, 'wx+', 0o644);
    } catch (err) {
      throw notWritable(err, probe);
    }
    let second: FileHandle | null = null;
    try {
      second = await open(probe, 'r+');
      const noLocks = (detail: string) =>
        lockDirectoryError(dir, `is on a file system without working locks (${detail})`);
      const attempt = (fd: number): boolean => {
        try {
          return this.prim.tryLock(fd);
        } catch (err) {
          throw noLocks(`locking a file failed: ${errCode(err)}`);
        }
      };
      if (!attempt(first.fd)) throw noLocks('a fresh file could not be locked');
      if (attempt(second.fd))
        throw noLocks('a second descriptor was granted the same exclusive lock: the locks are not exclusive');
    } finally {
      await second?.close().catch(() => {});
      await first.close().catch(() => {});
      await unlink(probe).catch(() => {});
    }
  }

  async acquire(signal: AbortSignal): Promise<void> {
    if (this.heldFlag) return;
    await this.check();
    while (!signal.aborted) {
      try {
        const got = await this.tryLockFile();
        if (got?.created && !(await this.waitOutRemovedLockFile(got.handle, signal))) {
          await this.closeHandle(got.handle);
        } else if (got) {
          if (signal.aborted) {
            await this.closeHandle(got.handle);
            break;
          }
          await this.becomeHolder(got.handle, 'acquired the lock');
          return;
        }
        if (await this.considerStaleHolder()) return;
      } catch (err) {
        this.log.warn(
          { directory: this.directory, err: (err as Error).message },
          'lock attempt failed; retrying',
        );
      }
      await sleep(this.opts.lockAcquireSleepInterval, signal);
    }
    throw signal.reason ?? new Error('lock acquisition aborted');
  }

  /**
   * Opens `lock` (creating it if missing: `created`) and tries the kernel lock; the handle when
   * granted on the file now at that path.
   */
  private async tryLockFile(): Promise<{ handle: FileHandle; created: boolean } | null> {
    let handle: FileHandle;
    let created = false;
    try {
      handle = await open(this.lockPath, fsConstants.O_RDWR);
    } catch (err) {
      if (errCode(err) !== 'ENOENT') throw err;
      try {
        handle = await open(this.lockPath, RW_CREATE | fsConstants.O_EXCL, 0o644);
        created = true;
      } catch (again) {
        if (errCode(again) !== 'EEXIST') throw again;
        handle = await open(this.lockPath, fsConstants.O_RDWR);
      }
    }
    let granted = false;
    try {
      granted = this.prim.tryLock(handle.fd);
      // Granted on a file that was removed or replaced between open and lock: not the lock.
      if (granted && (await this.sameFile(handle)) !== true) granted = false;
    } finally {
      if (!granted) await this.closeHandle(handle);
    }
    return granted ? { handle, created } : null;
  }

  /**
   * This node created `lock` while lock.json names an earlier holder: the lock file was removed,
   * and that holder may still run, holding a lock on the removed file until its next keep-alive
   * finds it gone. Hold the new lock for two keep-alive periods before serving, so it steps down
   * first. True when the lock is still ours on the file at `lock` afterwards.
   */
  private async waitOutRemovedLockFile(handle: FileHandle, signal: AbortSignal): Promise<boolean> {
    const previous = await readLockRecord(this.directory);
    if (!previous) return true; // the first lock in this directory
    const waitMs = 2 * this.opts.lockKeepAlivePeriod;
    this.log.warn(
      { directory: this.directory, ...holderOf(previous), waitMs },
      'lock file was missing: created it, waiting for a holder that may still run to notice and step down',
    );
    await sleep(waitMs, signal);
    return !signal.aborted && (await this.sameFile(handle)) === true;
  }

  /** true: `lock` is the file of `handle`; otherwise why not. */
  private async sameFile(handle: FileHandle): Promise<true | string> {
    const [ours, onDisk] = await Promise.all([
      handle.stat(),
      stat(this.lockPath).catch((err: unknown) => ({ failed: errCode(err) })),
    ]);
    if ('failed' in onDisk) {
      return onDisk.failed === 'ENOENT'
        ? `lock file ${this.lockPath} was removed`
        : `lock file ${this.lockPath} cannot be checked (${onDisk.failed})`;
    }
    if (onDisk.ino !== ours.ino || onDisk.dev !== ours.dev)
      return `lock file ${this.lockPath} was replaced (inode ${ours.ino} → ${onDisk.ino})`;
    return true;
  }

  private async closeHandle(handle: FileHandle): Promise<void> {
    try {
      this.prim.unlock(handle.fd);
    } catch {
      // closing drops the lock anyway
    }
    await handle.close().catch(() => {});
  }

  private async becomeHolder(handle: FileHandle, how: string): Promise<void> {
    const previous = await readLockRecord(this.directory);
    const now = new Date().toISOString();
    const record: LockRecord = {
      name: this.opts.node,
      host: this.opts.host,
      pid: process.pid,
      // Provisional: the node records the store's epoch once its takeover committed (recordEpoch).
      epoch: (previous?.epoch ?? 0) + 1,
      acquiredAt: now,
      cluster: this.opts.cluster,
      token: randomBytes(8).toString('hex'),
      seq: 0,
      renewedAt: now,
      procStart: processStart(process.pid),
    };
    try {
      await this.writeRecord(record);
    } catch (err) {
      await this.closeHandle(handle);
      throw err;
    }
    this.handle = handle;
    this.record = record;
    this.heldFlag = true;
    this.seen = null;
    this.lastSaid = '';
    this.lastKeepAliveOk = performance.now();
    this.startKeepAlive();
    this.log.info(
      {
        directory: this.directory,
        epoch: record.epoch,
        previous: previous ? { name: previous.name, host: previous.host, pid: previous.pid } : null,
        how,
      },
      'master lock acquired',
    );
  }

  /** lock.json through a temporary file and a rename: readers see the old record or the new one. */
  private async writeRecord(record: LockRecord): Promise<void> {
    const tmp = `${this.recordPath}.${record.token}.tmp`;
    await writeFile(tmp, `${JSON.stringify(record)}\n`, { mode: 0o644 });
    await rename(tmp, this.recordPath);
  }

  async recordEpoch(epoch: number): Promise<void> {
    if (!this.heldFlag || !this.record) return;
    this.record = { ...this.record, epoch };
    await this.writeRecord(this.record);
    this.log.info({ directory: this.directory, epoch }, 'epoch recorded in the lock file');
  }

  async holder(): Promise<LockHolder | null> {
    const r = this.heldFlag ? this.record : await readLockRecord(this.directory);
    return r ? { name: r.name, host: r.host, pid: r.pid, epoch: r.epoch, acquiredAt: r.acquiredAt } : null;
  }

  /** With a leaseDuration: the holder's last renewal in lock.json (by its clock) and when it runs out. */
  async lease(): Promise<LeaseState | null> {
    const durationMs = this.opts.leaseDuration;
    if (durationMs <= 0) return null;
    const r = this.heldFlag ? this.record : await readLockRecord(this.directory);
    if (!r) return null;
    const renewed = Date.parse(r.renewedAt);
    if (Number.isNaN(renewed)) return null;
    return {
      holder: r.name,
      renewedAt: r.renewedAt,
      expiresAt: new Date(renewed + durationMs).toISOString(),
      durationMs,
    };
  }

  // ---- the master's keep-alive --------------------------------------------------------------------

  private startKeepAlive(): void {
    this.stopKeepAlive();
    this.keepAliveTimer = setTimeout(() => void this.keepAlive(), this.opts.lockKeepAlivePeriod);
  }

  private stopKeepAlive(): void {
    if (this.keepAliveTimer) clearTimeout(this.keepAliveTimer);
    this.keepAliveTimer = null;
  }

  private async keepAlive(): Promise<void> {
    const handle = this.handle;
    const mine = this.record;
    if (!this.heldFlag || !handle || !mine) return;
    const { leaseDuration } = this.opts;
    const started = performance.now();
    const overrun = (at: number) =>
      leaseDuration > 0 && at - this.lastKeepAliveOk > leaseDuration
        ? `lease overrun: ${Math.round(at - this.lastKeepAliveOk)} ms since the last keep-alive (leaseDuration ${leaseDuration} ms); another node may have fenced this one and taken over`
        : null;
    const late = overrun(started);
    if (late) return this.lose(late);
    // A check that hangs (a stuck NFS server) must not keep a master past its lease.
    const guard =
      leaseDuration > 0
        ? setTimeout(
            () => this.lose(`keep-alive did not finish within the lease (${leaseDuration} ms)`),
            Math.max(0, this.lastKeepAliveOk + leaseDuration - started),
          )
        : null;
    try {
      const same = await this.sameFile(handle);
      if (same !== true) return this.lose(same);
      const onDisk = await readLockRecord(this.directory);
      if (!onDisk) return this.lose(`lock record ${this.recordPath} was removed or is unreadable`);
      if (onDisk.token !== mine.token)
        return this.lose(
          `lock record ${this.recordPath} now names ${onDisk.name} (host ${onDisk.host}, pid ${onDisk.pid}, epoch ${onDisk.epoch})`,
        );
      if (leaseDuration > 0 && this.heldFlag) {
        const renewed = { ...mine, seq: mine.seq + 1, renewedAt: new Date().toISOString() };
        await this.writeRecord(renewed);
        if (this.record === mine) this.record = renewed;
      }
      const after = overrun(performance.now());
      if (after) return this.lose(after);
      this.lastKeepAliveOk = started;
    } catch (err) {
      return this.lose(`keep-alive failed: ${(err as Error).message}`);
    } finally {
      if (guard) clearTimeout(guard);
    }
    if (this.heldFlag) this.startKeepAlive();
  }

  private lose(reason: string): void {
    if (!this.heldFlag) return;
    this.heldFlag = false;
    this.stopKeepAlive();
    const handle = this.handle;
    this.handle = null;
    this.log.warn({ directory: this.directory, reason }, 'master lock lost');
    for (const h of this.lostHandlers) {
      try {
        h(reason);
      } catch {
        // handlers must not break the locker
      }
    }
    if (handle) void this.closeHandle(handle);
  }

  // ---- a waiting node: who holds it, and is its lease stale? --------------------------------------

  /** Logs the holder when it changes; with a lease, fences a stale holder and takes over (true). */
  private async considerStaleHolder(): Promise<boolean> {
    const rec = await readLockRecord(this.directory);
    if (!rec) {
      this.say('no record', {}, 'master lock held, but the lock file names no holder yet; waiting');
      return false;
    }
    const { leaseDuration, lockAcquireSleepInterval } = this.opts;
    if (leaseDuration === 0) {
      this.say(
        `held:${rec.token}`,
        { ...holderOf(rec), retryMs: lockAcquireSleepInterval },
        'master lock held by another node; waiting (no lease: a frozen holder keeps the lock, set leaseDuration to fail over from one)',
      );
      return false;
    }
    const key = `${rec.token}:${rec.seq}`;
    const now = performance.now();
    if (this.seen?.key !== key) {
      this.seen = { key, at: now };
      this.say(
        `held:${rec.token}`,
        { ...holderOf(rec), retryMs: lockAcquireSleepInterval, leaseDuration },
        'master lock held by another node; waiting',
      );
      return false;
    }
    const staleMs = Math.round(now - this.seen.at);
    if (staleMs < leaseDuration) return false;
    return this.fenceAndTakeOver(rec, key, staleMs);
  }

  private say(what: string, details: Record<string, unknown>, msg: string, warn = false): void {
    if (what === this.lastSaid) return;
    this.lastSaid = what;
    (warn ? this.log.warn : this.log.info).call(this.log, { directory: this.directory, ...details }, msg);
  }

  /**
   * The holder's lease is stale. Fence it (same host: SIGKILL of its pid, then the fence hooks;
   * another host: fenceCommand), then take the lock. One waiting node at a time fences: it holds
   * the kernel lock of lock.fence meanwhile, and re-reads the record under it.
   */
  private async fenceAndTakeOver(seen: LockRecord, key: string, staleMs: number): Promise<boolean> {
    const fenceHandle = await open(path.join(this.directory, FENCE_LOCK_FILE), RW_CREATE, 0o644);
    try {
      if (!this.prim.tryLock(fenceHandle.fd)) return false; // another node is fencing
      const rec = await readLockRecord(this.directory);
      if (!rec || `${rec.token}:${rec.seq}` !== key) return false; // renewed or replaced meanwhile
      const stale = { ...holderOf(seen), staleMs, leaseDuration: this.opts.leaseDuration };
      let fenced: string;
      if (rec.host === this.opts.host) {
        const why = this.killLocal(rec);
        if (why !== null) {
          this.say(
            `cannot-fence:${key}`,
            { ...stale, why },
            'lease of the master is stale but it cannot be fenced; waiting',
            true,
          );
          return false;
        }
        for (const hook of this.fenceHooks) await hook(rec);
        fenced = `SIGKILL of pid ${rec.pid} on this host`;
      } else if (this.opts.fenceCommand) {
        const outcome = await this.runFenceCommand(rec);
        if (outcome !== null) {
          this.say(
            `fence-failed:${key}`,
            { ...stale, why: outcome },
            'lease of the master is stale but fenceCommand failed; waiting',
            true,
          );
          return false;
        }
        fenced = 'fenceCommand';
      } else {
        this.say(
          `no-fence:${key}`,
          { ...stale, ourHost: this.opts.host },
          `lease of the master is stale, but it runs on another host (${rec.host}) and no fenceCommand is configured: waiting (it may only be frozen, and it still holds its kernel lock)`,
          true,
        );
        return false;
      }
      this.log.warn({ directory: this.directory, ...stale, fencedBy: fenced }, 'fenced the stale master');
      const handle = (await this.waitForRelease()) ?? (await this.replaceLockFile());
      await this.becomeHolder(handle, `took over from ${rec.name} after fencing it (${fenced})`);
      return true;
    } finally {
      await this.closeHandle(fenceHandle);
    }
  }

  /** SIGKILLs the recorded pid on this host; null when done (or already gone), else why not. */
  private killLocal(rec: LockRecord): string | null {
    if (!Number.isInteger(rec.pid) || rec.pid <= 1) return `recorded pid ${rec.pid} is not a process to kill`;
    if (rec.pid === process.pid) return 'the record names this very process';
    const start = processStart(rec.pid);
    if (start === null) return null; // gone already (or no /proc): its kernel lock goes with it
    if (rec.procStart && start !== rec.procStart)
      return `pid ${rec.pid} is now another process (start time ${start}, recorded ${rec.procStart})`;
    try {
      process.kill(rec.pid, 'SIGKILL');
      return null;
    } catch (err) {
      return errCode(err) === 'ESRCH' ? null : `kill(${rec.pid}, SIGKILL) failed: ${errCode(err)}`;
    }
  }

  /** null: exit 0 (fenced); otherwise why it failed. */
  private runFenceCommand(rec: LockRecord): Promise<string | null> {
    return new Promise((resolve) => {
      const child = spawn('/bin/sh', ['-c', this.opts.fenceCommand as string], {
        env: {
          ...process.env,
          KEEL_FENCE_NAME: rec.name,
          KEEL_FENCE_HOST: rec.host,
          KEEL_FENCE_PID: String(rec.pid),
          KEEL_FENCE_EPOCH: String(rec.epoch),
          KEEL_FENCE_DIRECTORY: this.directory,
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let output = '';
      const keep = (b: Buffer) => {
        output = (output + b.toString()).slice(-500);
      };
      child.stdout.on('data', keep);
      child.stderr.on('data', keep);
      const timer = setTimeout(() => child.kill('SIGKILL'), this.opts.fenceTimeoutMs);
      child.on('error', (err) => {
        clearTimeout(timer);
        resolve(`fenceCommand could not run: ${err.message}`);
      });
      child.on('close', (code, signal) => {
        clearTimeout(timer);
        const tail = output.trim() ? `: ${output.trim()}` : '';
        resolve(code === 0 ? null : `fenceCommand exited ${code ?? signal}${tail}`);
      });
    });
  }

  /** After a kill on this host the kernel drops the lock at the process's exit: wait briefly for it. */
  private async waitForRelease(): Promise<FileHandle | null> {
    const until = performance.now() + 2_000;
    do {
      const got = await this.tryLockFile();
      if (got) return got.handle;
      await sleep(25);
    } while (performance.now() < until);
    return null;
  }

  /**
   * The fenced holder's lock did not go (another host: its NFS lock lasts until the server's lease
   * of that client expires): lock a new file and rename it over `lock`. Should the fenced holder
   * still run, its next keep-alive finds its file replaced and it steps down.
   */
  private async replaceLockFile(): Promise<FileHandle> {
    const fresh = `${this.lockPath}.${randomBytes(6).toString('hex')}.new`;
    const handle = await open(fresh, fsConstants.O_RDWR | fsConstants.O_CREAT | fsConstants.O_EXCL, 0o644);
    try {
      if (!this.prim.tryLock(handle.fd)) throw new Error(`could not lock the new lock file ${fresh}`);
      await rename(fresh, this.lockPath);
    } catch (err) {
      await this.closeHandle(handle);
      await unlink(fresh).catch(() => {});
      throw err;
    }
    this.log.warn({ directory: this.directory }, 'replaced the lock file held by the fenced master');
    return handle;
  }

  async release(): Promise<void> {
    const wasHeld = this.heldFlag;
    this.heldFlag = false;
    this.stopKeepAlive();
    const handle = this.handle;
    this.handle = null;
    if (handle) await this.closeHandle(handle);
    if (wasHeld) this.log.info({ directory: this.directory }, 'master lock released');
  }

  async close(): Promise<void> {
    await this.release();
  }
}
