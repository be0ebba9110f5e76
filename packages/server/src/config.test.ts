import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { InvalidArgumentError, KeelError } from '@keel/protocol';
import {
  ConfigError,
  DEFAULT_ADMIN_PORT,
  DEFAULT_PORT,
  DEFAULT_REDELIVERY,
  DEFAULT_STOMP_PORT,
  hashPassword,
  isPasswordHash,
  loadConfig,
  redactConfig,
  redactUrl,
  splitList,
  verifyPassword,
} from './config';

const DB = 'postgres://keel:secret@127.0.0.1:5432/keel';
// Cheap scrypt parameters keep the hashing tests fast; loadConfig uses the defaults.
const FAST = { N: 1024 };

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'keel-config-'));
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

function file(name: string, text: string): string {
  const p = path.join(dir, name);
  writeFileSync(p, text);
  return p;
}

function configError(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (err) {
    if (err instanceof ConfigError) return err;
    throw err;
  }
  throw new Error('expected a ConfigError');
}

describe('loadConfig defaults', () => {
  it('fills every default and derives the lock database and the name', () => {
    const cfg = loadConfig({ argv: { db: DB }, env: {} });
    expect(cfg).toMatchObject({
      cluster: 'default',
      db: DB,
      lockDb: 'postgres://keel:secret@127.0.0.1:5432/keel_lock',
      locker: 'row',
      host: '127.0.0.1',
      port: DEFAULT_PORT,
      stompPort: DEFAULT_STOMP_PORT,
      adminPort: DEFAULT_ADMIN_PORT,
      advertisedUrls: [],
      users: [],
      adminUser: null,
      adminPasswordHash: null,
      adminReadAuth: false,
      maxFrameSize: 4 * 1024 * 1024,
      heartbeatMs: 10_000,
      lock: {
        keepAliveMs: 500,
        leaseMs: 2000,
        waitingPollMs: 500,
        outageGraceMs: 5000,
        recoveryHoldMs: 1000,
      },
      store: {
        maxBatchSize: 1000,
        pageSize: 2000,
        concurrentStoreAndDispatchQueues: true,
        concurrentStoreAndDispatchHoldMs: 30,
        producerRetentionMs: 3_600_000,
      },
      redelivery: {
        maximumRedeliveries: 6,
        initialRedeliveryDelay: 1000,
        redeliveryDelay: 1000,
        useExponentialBackOff: false,
        backOffMultiplier: 5,
        maximumRedeliveryDelay: -1,
      },
      deadLetter: { strategy: 'shared', deadLetterQueue: 'ActiveMQ.DLQ', processExpired: true },
      networkConnectors: [],
      logLevel: 'info',
    });
    expect(cfg.name).toBe(`${os.hostname()}-61616`);
    expect(cfg.redelivery).toEqual(DEFAULT_REDELIVERY);
  });

  it('requires db and says how to set it', () => {
    const err = configError(() => loadConfig({ env: {} }));
    expect(err.message).toBe(
      'invalid configuration: db: is required: set --db, KEEL_DB or db in the configuration file (or --store-dir with --locker file)',
    );
    expect(err.code).toBe('CONFIG_INVALID');
    expect(err).toBeInstanceOf(InvalidArgumentError);
    expect(KeelError.isInstance(err)).toBe(true);
    expect(err.issues).toEqual([
      { setting: 'db', message: expect.stringContaining('is required'), source: undefined },
    ]);
  });
});

describe('loadConfig precedence: flag > env > file > default', () => {
  it('takes each setting from the highest source that has it', () => {
    const yaml = file(
      'precedence.yaml',
      [
        'db: postgres://file@127.0.0.1/filedb',
        'port: 1001',
        'stompPort: 1002',
        'adminPort: 1003',
        'cluster: from-file',
      ].join('\n'),
    );
    const env = { KEEL_PORT: '2001', KEEL_STOMP_PORT: '2002', KEEL_DB: 'postgres://env@127.0.0.1/envdb' };
    const cfg = loadConfig({ argv: { port: '3001', config: yaml }, env });
    expect(cfg.port).toBe(3001); // flag over env and file
    expect(cfg.stompPort).toBe(2002); // env over file
    expect(cfg.db).toBe('postgres://env@127.0.0.1/envdb'); // env over file
    expect(cfg.adminPort).toBe(1003); // file over default
    expect(cfg.cluster).toBe('from-file');
    expect(cfg.host).toBe('127.0.0.1'); // default
  });

  it('reads the file named by KEEL_CONFIG, and options.file over argv.config', () => {
    const a = file('a.yaml', `db: ${DB}\ncluster: a\n`);
    const b = file('b.yaml', `db: ${DB}\ncluster: b\n`);
    expect(loadConfig({ env: { KEEL_CONFIG: a } }).cluster).toBe('a');
    expect(loadConfig({ argv: { config: a }, env: { KEEL_CONFIG: b } }).cluster).toBe('a');
    expect(loadConfig({ file: b, argv: { config: a }, env: {} }).cluster).toBe('b');
  });

  it('ignores empty environment variables and undefined or empty flags', () => {
    const cfg = loadConfig({
      argv: { db: DB, port: undefined, user: [] },
      env: { KEEL_PORT: '', KEEL_HOST: '  ' },
    });
    expect(cfg.port).toBe(DEFAULT_PORT);
    expect(cfg.host).toBe('127.0.0.1');
    expect(cfg.users).toEqual([]);
  });

  it('replaces lists as a whole: --network-connector over KEEL_NETWORK_CONNECTORS', () => {
    const env = { KEEL_NETWORK_CONNECTORS: 'static:(tcp://a:1,tcp://b:2) multicast://default' };
    expect(loadConfig({ argv: { db: DB }, env }).networkConnectors).toEqual([
      'static:(tcp://a:1,tcp://b:2)',
      'multicast://default',
    ]);
    expect(
      loadConfig({ argv: { db: DB, networkConnector: ['static:(tcp://c:3)'] }, env }).networkConnectors,
    ).toEqual(['static:(tcp://c:3)']);
  });
});

describe('loadConfig files', () => {
  it('reads a nested YAML file', () => {
    const yaml = file(
      'full.yaml',
      `
name: node-1
cluster: prod
db: ${DB}
lockDb: postgres://keel:secret@127.0.0.1:5432/locks
locker: lease
host: 0.0.0.0
port: 0
stompPort: false
adminPort: 9000
advertisedUrls:
  - tcp://broker-1.example:61616
users:
  - name: alice
    password: wonderland
    roles: [admin]
  - name: bob
    passwordHash: ${hashPassword('builder', FAST)}
lock:
  keepAliveMs: 200
  leaseMs: 2000
  waitingPollMs: 100
store:
  maxBatchSize: 500
  pageSize: 100
redelivery:
  maximumRedeliveries: -1
  useExponentialBackOff: true
  backOffMultiplier: 2.5
deadLetter:
  strategy: individual
  processExpired: false
networkConnectors:
  - static:(tcp://other:61616)
logLevel: debug
`,
    );
    const cfg = loadConfig({ file: yaml, env: {} });
    expect(cfg).toMatchObject({
      name: 'node-1',
      cluster: 'prod',
      lockDb: 'postgres://keel:secret@127.0.0.1:5432/locks',
      locker: 'lease',
      host: '0.0.0.0',
      port: 0,
      stompPort: false,
      adminPort: 9000,
      advertisedUrls: ['tcp://broker-1.example:61616'],
      lock: { keepAliveMs: 200, leaseMs: 2000, waitingPollMs: 100 },
      store: {
        maxBatchSize: 500,
        pageSize: 100,
        concurrentStoreAndDispatchQueues: true,
        concurrentStoreAndDispatchHoldMs: 30,
        producerRetentionMs: 3_600_000,
      },
      redelivery: {
        ...DEFAULT_REDELIVERY,
        maximumRedeliveries: -1,
        useExponentialBackOff: true,
        backOffMultiplier: 2.5,
      },
      deadLetter: { strategy: 'individual', queuePrefix: 'DLQ.', processExpired: false },
      networkConnectors: ['static:(tcp://other:61616)'],
      logLevel: 'debug',
    });
    expect(cfg.users.map((u) => [u.name, u.roles])).toEqual([
      ['alice', ['admin']],
      ['bob', ['producer', 'consumer']],
    ]);
  });

  it('reads a JSON file', () => {
    const json = file(
      'c.json',
      JSON.stringify({ db: DB, port: 1234, deadLetter: { deadLetterQueue: 'MY.DLQ' } }),
    );
    const cfg = loadConfig({ file: json, env: {} });
    expect(cfg.port).toBe(1234);
    expect(cfg.deadLetter).toEqual({ strategy: 'shared', deadLetterQueue: 'MY.DLQ', processExpired: true });
  });

  it('names unknown settings, unreadable and unparsable files', () => {
    const unknown = file('unknown.yaml', `db: ${DB}\nprot: 1\nlock:\n  leaseMS: 3\n`);
    expect(configError(() => loadConfig({ file: unknown, env: {} })).message).toBe(
      `invalid configuration: prot: is not a known setting from config file ${unknown}; ` +
        `lock.leaseMS: is not a known setting from config file ${unknown}`,
    );
    const missing = path.join(dir, 'missing.yaml');
    expect(configError(() => loadConfig({ file: missing, env: {} })).message).toMatch(
      /^invalid configuration: config: cannot read .*missing\.yaml: ENOENT/,
    );
    const broken = file('broken.yaml', 'db: [unclosed\n');
    expect(configError(() => loadConfig({ file: broken, env: {} })).message).toMatch(
      /^invalid configuration: config: cannot parse .*broken\.yaml: /,
    );
    const scalar = file('scalar.yaml', '42\n');
    expect(configError(() => loadConfig({ file: scalar, env: {} })).message).toMatch(
      /must hold a mapping of settings/,
    );
  });
});

describe('loadConfig validation names the setting, the reason, the value and its source', () => {
  it('port from a flag', () => {
    expect(configError(() => loadConfig({ argv: { db: DB, port: 'abc' }, env: {} })).message).toBe(
      'invalid configuration: port: must be an integer between 0 and 65535 (got "abc") from --port',
    );
  });

  it('from the environment and from a file, all issues at once', () => {
    const yaml = file('bad.yaml', `db: ${DB}\nlocker: mutex\nlock:\n  leaseMs: -5\n`);
    const err = configError(() =>
      loadConfig({ file: yaml, env: { KEEL_ADMIN_PORT: '70000', KEEL_LOG_LEVEL: 'loud' } }),
    );
    expect(err.issues.map((i) => `${i.setting} <- ${i.source}`).sort()).toEqual([
      `adminPort <- KEEL_ADMIN_PORT`,
      `lock.leaseMs <- config file ${yaml}`,
      `locker <- config file ${yaml}`,
      `logLevel <- KEEL_LOG_LEVEL`,
    ]);
    expect(err.message).toContain(
      'adminPort: must be an integer between 0 and 65535 (got "70000") from KEEL_ADMIN_PORT',
    );
    expect(err.message).toContain(
      `locker: must be 'row', 'lease' or 'file' (got "mutex") from config file ${yaml}`,
    );
  });

  it('rejects non-integers, bad URLs and bad connector URIs', () => {
    const cases: [Record<string, unknown>, string][] = [
      [{ db: DB, heartbeatMs: '1.5' }, 'heartbeatMs: must be an integer number of milliseconds'],
      [
        { db: 'mysql://x/y' },
        'db: must be a postgres:// URL that names a database (got "mysql://x/y") from --db',
      ],
      [{ db: 'postgres://127.0.0.1' }, 'db: must be a postgres:// URL that names a database'],
      // Multi-host URLs (libpq's host list, issue #20): a malformed list is refused naming the field.
      [
        { db: 'postgres://h1:5432,,h2:5432/keel' },
        'db: must be a postgres:// URL that names a database (got "postgres://h1:5432,,h2:5432/keel"): empty host in the host list from --db',
      ],
      [
        { db: DB, lockDb: 'postgres://h1:5432,h2:port/keel_lock' },
        'lockDb: must be a postgres:// URL that names a database (got "postgres://h1:5432,h2:port/keel_lock"): invalid port "port" in host "h2:port" from --lock-db',
      ],
      [
        { db: 'postgres://h1,h2/keel?target_session_attrs=master' },
        'db: must be a postgres:// URL that names a database (got "postgres://h1,h2/keel?target_session_attrs=master"): target_session_attrs must be one of any, read-write, read-only, primary, standby, prefer-standby (got "master")',
      ],
      [{ db: DB, networkConnector: ['http://x'] }, 'networkConnectors: must be a list of connector URIs'],
      [{ db: DB, advertisedUrl: ['tcp://host'] }, 'advertisedUrls: must be a list of tcp://host:port'],
      [
        { db: DB, locker: 'lease', maxFrameSize: '10' },
        'maxFrameSize: must be an integer number of bytes between 1024',
      ],
    ];
    for (const [argv, message] of cases) {
      expect(configError(() => loadConfig({ argv, env: {} })).message).toContain(message);
    }
  });

  it('takes multi-host URLs and derives the lock database on the same host list', () => {
    const db =
      'postgres://keel@10.0.0.1:5432,[::1]:5433/keel?target_session_attrs=read-write&connect_timeout=2';
    const cfg = loadConfig({ argv: { db }, env: {} });
    expect(cfg.db).toBe(db);
    expect(cfg.lockDb).toBe(
      'postgres://keel@10.0.0.1:5432,[::1]:5433/keel_lock?target_session_attrs=read-write&connect_timeout=2',
    );
    expect(
      configError(() => loadConfig({ argv: { db, lockDb: 'postgres://keel@[::1]:5433/keel' }, env: {} }))
        .message,
    ).toContain('lockDb: must be another database than db');
  });

  it('checks settings against each other', () => {
    expect(configError(() => loadConfig({ argv: { db: DB, stompPort: '61616' }, env: {} })).message).toBe(
      'invalid configuration: stompPort: must differ from port (both 61616) from --stomp-port',
    );
    expect(configError(() => loadConfig({ argv: { db: DB, lockDb: DB }, env: {} })).message).toMatch(
      /^invalid configuration: lockDb: must be another database than db .* from --lock-db$/,
    );
    expect(
      configError(() => loadConfig({ argv: { db: DB }, env: { KEEL_LOCK_KEEP_ALIVE_MS: '6000' } })).message,
    ).toContain('lock.keepAliveMs: lock.keepAliveMs (6000) must be less than lock.leaseMs (2000)');
    expect(
      configError(() => loadConfig({ argv: { db: DB, adminUser: 'admin' }, env: {} })).message,
    ).toContain('adminPassword: is required when adminUser is set');
  });

  it('disables STOMP with 0 or false from any source', () => {
    expect(loadConfig({ argv: { db: DB, stompPort: '0' }, env: {} }).stompPort).toBe(false);
    expect(loadConfig({ argv: { db: DB }, env: { KEEL_STOMP_PORT: 'false' } }).stompPort).toBe(false);
    expect(loadConfig({ argv: { db: DB, stompPort: 0 }, env: {} }).stompPort).toBe(false);
  });

  it('parses booleans and numbers from the environment', () => {
    const cfg = loadConfig({
      argv: { db: DB },
      env: {
        KEEL_USE_EXPONENTIAL_BACK_OFF: 'yes',
        KEEL_BACK_OFF_MULTIPLIER: '1.5',
        KEEL_PROCESS_EXPIRED: 'off',
      },
    });
    expect(cfg.redelivery.useExponentialBackOff).toBe(true);
    expect(cfg.redelivery.backOffMultiplier).toBe(1.5);
    expect(cfg.deadLetter.processExpired).toBe(false);
    expect(
      configError(() => loadConfig({ argv: { db: DB }, env: { KEEL_PROCESS_EXPIRED: 'maybe' } })).message,
    ).toBe(
      'invalid configuration: deadLetter.processExpired: must be true or false (got "maybe") from KEEL_PROCESS_EXPIRED',
    );
  });
});

describe('users', () => {
  it('takes repeatable --user NAME:PASSWORD and stores only scrypt hashes', async () => {
    const cfg = loadConfig({ argv: { db: DB, user: ['alice:s3cret', 'bob:pa:ss:word'] }, env: {} });
    expect(cfg.users.map((u) => u.name)).toEqual(['alice', 'bob']);
    expect(cfg.users.map((u) => u.roles)).toEqual([
      ['producer', 'consumer'],
      ['producer', 'consumer'],
    ]);
    const [alice, bob] = cfg.users;
    expect(alice?.passwordHash).toMatch(/^scrypt\$16384\$8\$1\$[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+$/);
    expect(JSON.stringify(cfg)).not.toContain('s3cret');
    await expect(verifyPassword('s3cret', alice?.passwordHash as string)).resolves.toBe(true);
    await expect(verifyPassword('pa:ss:word', bob?.passwordHash as string)).resolves.toBe(true);
    await expect(verifyPassword('wrong', alice?.passwordHash as string)).resolves.toBe(false);
  });

  it('reads KEEL_USERS, and a flag replaces it', () => {
    const env = { KEEL_USERS: 'a:1,b:2' };
    expect(loadConfig({ argv: { db: DB }, env }).users.map((u) => u.name)).toEqual(['a', 'b']);
    expect(loadConfig({ argv: { db: DB, user: 'c:3' }, env }).users.map((u) => u.name)).toEqual(['c']);
  });

  it('names bad users without echoing their passwords', () => {
    const err = configError(() =>
      loadConfig({ argv: { db: DB, user: ['nopassword', 'x:1', 'x:2', 'sp ace:p'] }, env: {} }),
    );
    expect(err.message).toBe(
      'invalid configuration: users[0]: must be NAME:PASSWORD (got "nopassword") from --user; ' +
        'users[2]: user "x" is given twice from --user; ' +
        'users[3]: name must be 1 to 128 characters without spaces or colons (got "sp ace") from --user',
    );
    const yaml = file(
      'users.yaml',
      `db: ${DB}\nusers:\n  - name: a\n  - name: b\n    passwordHash: md5abc\n`,
    );
    const fileErr = configError(() => loadConfig({ file: yaml, env: {} }));
    expect(fileErr.issues.map((i) => i.message)).toEqual([
      'must have exactly one of password and passwordHash (user "a")',
      'passwordHash must be scrypt$N$r$p$salt$hash as made by hashPassword (user "b")',
    ]);
  });

  it('hashes the admin password', async () => {
    const cfg = loadConfig({
      argv: { db: DB },
      env: { KEEL_ADMIN_USER: 'admin', KEEL_ADMIN_PASSWORD: 'hunter2' },
    });
    expect(cfg.adminUser).toBe('admin');
    await expect(verifyPassword('hunter2', cfg.adminPasswordHash as string)).resolves.toBe(true);
    expect(JSON.stringify(cfg)).not.toContain('hunter2');
  });
});

describe('hashPassword / verifyPassword', () => {
  it('salts every hash and verifies only the right password', async () => {
    const a = hashPassword('correct horse', FAST);
    const b = hashPassword('correct horse', FAST);
    expect(a).not.toBe(b);
    expect(a.startsWith('scrypt$1024$8$1$')).toBe(true);
    expect(isPasswordHash(a)).toBe(true);
    await expect(verifyPassword('correct horse', a)).resolves.toBe(true);
    await expect(verifyPassword('correct horse', b)).resolves.toBe(true);
    await expect(verifyPassword('correct horse ', a)).resolves.toBe(false);
    await expect(verifyPassword('', a)).resolves.toBe(false);
  });

  it('verifies nothing against a malformed or hostile hash', async () => {
    const good = hashPassword('pw', FAST);
    for (const bad of [
      '',
      'plain',
      good.replace('scrypt$', 'bcrypt$'),
      good.replace('$1024$', '$1000$'),
      'scrypt$1073741824$8$1$AAAA$AAAAAAAAAAAAAAAAAAAAAAAA',
    ]) {
      expect(isPasswordHash(bad)).toBe(false);
      await expect(verifyPassword('pw', bad)).resolves.toBe(false);
    }
  });
});

describe('redaction', () => {
  it('hides password hashes and URL passwords, keeps everything else', () => {
    const cfg = loadConfig({
      argv: {
        db: DB,
        user: ['alice:s3cret'],
        adminUser: 'admin',
        adminPassword: 'hunter2',
        networkConnector: ['static:(tcp://u:pw@other:61616)?password=pw2'],
      },
      env: {},
    });
    const red = redactConfig(cfg);
    expect(red.db).toBe('postgres://keel:***@127.0.0.1:5432/keel');
    expect(red.lockDb).toBe('postgres://keel:***@127.0.0.1:5432/keel_lock');
    expect(red.users).toEqual([
      {
        name: 'alice',
        passwordHash: '***',
        roles: ['producer', 'consumer'],
        groups: ['producer', 'consumer'],
      },
    ]);
    expect(red.adminUser).toBe('admin');
    expect(red.adminPasswordHash).toBe('***');
    expect(red.networkConnectors).toEqual(['static:(tcp://u:***@other:61616)?password=***']);
    const text = JSON.stringify(red);
    for (const secret of ['secret', 's3cret', 'hunter2', 'pw2', 'scrypt$'])
      expect(text).not.toContain(secret);
    expect(red.port).toBe(cfg.port);
    // The original is untouched.
    expect(cfg.db).toBe(DB);
    expect(cfg.users[0]?.passwordHash.startsWith('scrypt$')).toBe(true);
  });

  it('leaves URLs without passwords alone', () => {
    expect(redactUrl('postgres://keel@127.0.0.1/keel')).toBe('postgres://keel@127.0.0.1/keel');
    expect(redactUrl('postgres://127.0.0.1:5432/keel')).toBe('postgres://127.0.0.1:5432/keel');
  });
});

describe('splitList', () => {
  it('splits at commas and whitespace outside parentheses', () => {
    expect(splitList('a, b\nc')).toEqual(['a', 'b', 'c']);
    expect(splitList('static:(tcp://a:1, tcp://b:2),multicast://default')).toEqual([
      'static:(tcp://a:1, tcp://b:2)',
      'multicast://default',
    ]);
    expect(splitList('')).toEqual([]);
  });
});
