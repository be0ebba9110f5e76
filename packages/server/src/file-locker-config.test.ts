import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ConfigError, DEFAULT_LOCK_ACQUIRE_SLEEP_INTERVAL, loadConfig } from './config';

/** The file locker's configuration (issue #19.1): flags, KEEL_*, and ActiveMQ's `locker: {type: file, ...}`. */
const DB = 'postgres://keel@127.0.0.1:5432/keel';
let dir: string;
beforeAll(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'keel-file-locker-config-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function issues(fn: () => unknown): string[] {
  try {
    fn();
  } catch (err) {
    if (err instanceof ConfigError) return err.issues.map((i) => `${i.setting}: ${i.message}`);
    throw err;
  }
  throw new Error('expected a ConfigError');
}

describe('file locker configuration', () => {
  it('takes --locker file --lock-dir DIR, with ActiveMQ defaults (lockAcquireSleepInterval 10000 ms, no lease)', () => {
    const cfg = loadConfig({ argv: { db: DB, locker: 'file', lockDir: '/shared/keel lock' }, env: {} });
    expect(cfg.locker).toBe('file');
    expect(cfg.fileLocker).toEqual({
      directory: '/shared/keel lock',
      lockAcquireSleepInterval: DEFAULT_LOCK_ACQUIRE_SLEEP_INTERVAL,
      lockKeepAlivePeriod: 1000,
      leaseDuration: 0,
      fenceCommand: null,
    });
    expect(DEFAULT_LOCK_ACQUIRE_SLEEP_INTERVAL).toBe(10_000);
  });

  it('reads KEEL_LOCKER, KEEL_LOCK_DIR and the lease settings from the environment', () => {
    const cfg = loadConfig({
      argv: { db: DB },
      env: {
        KEEL_LOCKER: 'file',
        KEEL_LOCK_DIR: '/shared',
        KEEL_LOCK_ACQUIRE_SLEEP_INTERVAL: '500',
        KEEL_LOCK_KEEP_ALIVE_PERIOD: '200',
        KEEL_LEASE_DURATION: '3000',
        KEEL_FENCE_COMMAND: 'fence-node "$KEEL_FENCE_HOST"',
      },
    });
    expect(cfg.fileLocker).toEqual({
      directory: '/shared',
      lockAcquireSleepInterval: 500,
      lockKeepAlivePeriod: 200,
      leaseDuration: 3000,
      fenceCommand: 'fence-node "$KEEL_FENCE_HOST"',
    });
  });

  it("reads ActiveMQ's locker: {type: file, directory, lockAcquireSleepInterval, ...} from a file", () => {
    const yaml = path.join(dir, 'keel.yaml');
    writeFileSync(
      yaml,
      `db: ${DB}\nlocker:\n  type: file\n  directory: /mnt/nfs/keel\n  lockAcquireSleepInterval: 2000\n  leaseDuration: 5000\n`,
    );
    const cfg = loadConfig({ file: yaml, env: {} });
    expect(cfg.locker).toBe('file');
    expect(cfg.fileLocker).toMatchObject({
      directory: '/mnt/nfs/keel',
      lockAcquireSleepInterval: 2000,
      leaseDuration: 5000,
    });
    // A flag still wins over the file.
    expect(loadConfig({ file: yaml, argv: { lockDir: '/other' }, env: {} }).fileLocker.directory).toBe(
      '/other',
    );
  });

  it('keeps the string form locker: row | lease', () => {
    const yaml = path.join(dir, 'lease.yaml');
    writeFileSync(yaml, `db: ${DB}\nlocker: lease\n`);
    expect(loadConfig({ file: yaml, env: {} }).locker).toBe('lease');
  });

  it('names what is wrong: no directory, settings of a locker not in use, a lease not longer than the keep-alive, unknown keys', () => {
    expect(issues(() => loadConfig({ argv: { db: DB, locker: 'file' }, env: {} }))).toEqual([
      'locker.directory: is required with locker file: set --lock-dir, KEEL_LOCK_DIR or locker.directory',
    ]);
    expect(issues(() => loadConfig({ argv: { db: DB, lockDir: '/x' }, env: {} }))).toEqual([
      'locker.directory: is a setting of the file locker, but the locker is row (set --locker file)',
    ]);
    expect(
      issues(() =>
        loadConfig({
          argv: { db: DB, locker: 'file', lockDir: '/x', lockKeepAlivePeriod: '1000', leaseDuration: '1000' },
          env: {},
        }),
      ),
    ).toEqual([
      'locker.leaseDuration: must be greater than locker.lockKeepAlivePeriod (1000), or 0 for no lease',
    ]);
    const yaml = path.join(dir, 'unknown.yaml');
    writeFileSync(yaml, `db: ${DB}\nlocker: {type: file, directory: /x, lockDirectory: /y}\n`);
    expect(issues(() => loadConfig({ file: yaml, env: {} }))).toEqual([
      'locker.lockDirectory: is not a known setting',
    ]);
  });
});
