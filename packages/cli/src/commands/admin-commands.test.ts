import { createServer as createHttpServer } from 'node:http';
import { createServer } from 'node:net';
import {
  type AdminContext,
  type NodeInfo,
  type NodeRole,
  startAdminServer,
  storeReadOnlyView,
} from '@keel/admin';
import { Broker, MemoryDatabase, MemoryStore } from '@keel/core';
import { CommanderError } from 'commander';
import { bufferOutput } from '../output';
import { buildProgram } from '../program';
import { reportError } from '../report-error';
import { AdminApiError, DEFAULT_ADMIN_URL, resolveAdminConnection } from './admin-client';
import {
  type AdminCommandOptions,
  type BrowseOptions,
  runBrowse,
  runHandover,
  runPurge,
  runQueues,
  runStatus,
} from './admin-commands';

const ADMIN = { user: 'root', password: 's3cret' };
/** Test stand-in for the server's scrypt hashes: `plain:<password>`. */
const auth = {
  adminUser: ADMIN.user,
  adminPasswordHash: `plain:${ADMIN.password}`,
  verifyPassword: async (password: string, hash: string) => hash === `plain:${password}`,
};

interface TestNode {
  url: string;
  state: { role: NodeRole; lockHolder: string | null };
  broker: Broker | null;
  stop(): Promise<void>;
}

/**
 * A node's admin API on an ephemeral port: a real Broker over the core MemoryStore when master,
 * the store's read-only view when slave (as the server wires it).
 */
async function startNode(
  db: MemoryDatabase,
  name: string,
  role: 'master' | 'slave',
  options: { withAdminUser?: boolean } = {},
): Promise<TestNode> {
  const store = new MemoryStore({ database: db, cluster: 'test' });
  await store.open();
  const epoch = role === 'master' ? await store.takeOver(name, 'test start') : await store.readEpoch();
  const broker = role === 'master' ? new Broker({ nodeName: name, store }) : null;
  await broker?.start();
  const state: TestNode['state'] = { role, lockHolder: role === 'master' ? name : 'node-a' };
  const startedAt = new Date(Date.now() - 5000);
  const view = storeReadOnlyView(store);
  const node = (): NodeInfo => ({
    name,
    cluster: 'test',
    role: state.role,
    epoch,
    nodeEpoch: role === 'master' ? epoch : null,
    startedAt,
    version: '0.1.0-test',
    lockHolder: state.lockHolder,
    listeners: {
      native: state.role === 'master' ? 'tcp://127.0.0.1:61616' : null,
      stomp: null,
      admin: 'http://127.0.0.1:8161',
    },
  });
  const ctx: AdminContext = {
    node,
    broker: () => (state.role === 'master' ? broker : null),
    readOnly: () => view,
    takeovers: (limit) => store.takeovers(limit),
    clusterEpoch: () => store.readEpoch(),
    clusterNodes: () => [
      {
        name: 'node-a',
        role: name === 'node-a' ? state.role : 'master',
        lastSeen: new Date(Date.now() - 3000),
      },
      {
        name: 'node-b',
        role: name === 'node-b' ? state.role : 'slave',
        lastSeen: new Date(Date.now() - 3000),
      },
    ],
    storeHealth: async () => ({ deadRows: {}, tableBytes: {}, oldestTransactionAgeSeconds: null }),
    handover: async () => {
      await broker?.stop({ drain: true });
      state.role = 'slave';
      state.lockHolder = null;
    },
  };
  const server = await startAdminServer(ctx, {
    host: '127.0.0.1',
    port: 0,
    ...(options.withAdminUser === false ? {} : auth),
  });
  return {
    url: server.url,
    state,
    broker,
    stop: async () => {
      await server.app.close();
      if (broker?.isRunning) await broker.stop();
      await store.close();
    },
  };
}

async function send(broker: Broker, queue: string, body: string, priority = 4): Promise<string> {
  const r = await broker.sendInternal({
    destination: `queue://${queue}`,
    persistent: true,
    priority,
    timestamp: Date.now(),
    expiration: 0,
    properties: {},
    body: Buffer.from(body),
  });
  return r.messageId;
}

/**
 * Runs `keel ARGS` through the real program (parser, registration, commands) with the variables in
 * `env` only, and returns the exit status main.ts would set and what was written.
 */
async function keel(
  args: string[],
  env: NodeJS.ProcessEnv = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  const output = bufferOutput();
  const withEnv = <T extends AdminCommandOptions>(o: T): T => ({ ...o, env });
  const program = buildProgram({
    output,
    exitOverride: true,
    actions: {
      status: (o, out) => runStatus(withEnv(o), out),
      queues: (o, out) => runQueues(withEnv(o), out),
      browse: (q, o: BrowseOptions, out) => runBrowse(q, withEnv(o), out),
      purge: (q, o, out) => runPurge(q, withEnv(o), out),
      handover: (o, out) => runHandover(withEnv(o), out),
    },
  });
  let code = 0;
  try {
    await program.parseAsync(args, { from: 'user' });
  } catch (err) {
    code = err instanceof CommanderError ? err.exitCode : reportError(err, output.err);
  }
  return { code, stdout: output.stdout(), stderr: output.stderr() };
}

/** A port nothing listens on (bound, then released). */
async function closedPort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const addr = srv.address();
  await new Promise<void>((resolve, reject) => srv.close((e) => (e ? reject(e) : resolve())));
  if (!addr || typeof addr !== 'object') throw new Error('no port');
  return addr.port;
}

describe('keel admin commands over HTTP against a real admin API', () => {
  let db: MemoryDatabase;
  let master: TestNode;
  let slave: TestNode;
  const creds = ['--user', ADMIN.user, '--password', ADMIN.password];

  beforeEach(async () => {
    db = new MemoryDatabase();
    master = await startNode(db, 'node-a', 'master');
    slave = await startNode(db, 'node-b', 'slave');
  });

  afterEach(async () => {
    await master.stop();
    await slave.stop();
  });

  describe('keel status', () => {
    it('prints the node, its cluster, the nodes seen and the takeovers', async () => {
      const r = await keel(['status', '--admin', master.url]);
      expect(r).toMatchObject({ code: 0, stderr: '' });
      expect(r.stdout).toMatch(/^node +node-a$/m);
      expect(r.stdout).toMatch(/^cluster +test$/m);
      expect(r.stdout).toMatch(/^role +master \(serving\)$/m);
      expect(r.stdout).toMatch(/^cluster epoch +1$/m);
      expect(r.stdout).toMatch(/^node epoch +1$/m);
      expect(r.stdout).toMatch(/^lock holder +node-a$/m);
      expect(r.stdout).toMatch(/^uptime +[5-9]s \(since \d{4}-\d\d-\d\dT/m);
      expect(r.stdout).toMatch(/^native +tcp:\/\/127\.0\.0\.1:61616$/m);
      expect(r.stdout).toMatch(/^stomp +not listening$/m);
      expect(r.stdout).toContain('nodes of cluster test (master: node-a):');
      expect(r.stdout).toMatch(/^NAME +ROLE +LAST SEEN$/m);
      expect(r.stdout).toMatch(/^node-b +slave +\d+s ago$/m);
      expect(r.stdout).toMatch(/^EPOCH +NODE +AT +REASON$/m);
      expect(r.stdout).toMatch(/^ +1 +node-a +\d{4}-\S+ +test start$/m);
    });

    it('tells a slave apart', async () => {
      const r = await keel(['status', '--admin', slave.url]);
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(/^node +node-b$/m);
      expect(r.stdout).toMatch(/^role +slave \(read-only\)$/m);
      expect(r.stdout).toMatch(/^lock holder +node-a$/m);
      expect(r.stdout).toMatch(/^native +not listening$/m);
    });

    it("shows a slave the cluster's current epoch, not its own stale one, and its own apart (issue #18.3)", async () => {
      // Two more takeovers after the slave started (its own view of the epoch was 1).
      const other = new MemoryStore({ database: db, cluster: 'test' });
      await other.open();
      await other.takeOver('node-c', 'drill');
      await other.takeOver('node-c', 'drill again');
      const r = await keel(['status', '--admin', slave.url]);
      expect(r.stdout).toMatch(/^cluster epoch +3$/m);
      expect(r.stdout).toMatch(/^node epoch +never master$/m);
      const json = JSON.parse((await keel(['status', '--admin', slave.url, '--json'])).stdout);
      expect(json.broker).toMatchObject({ epoch: 3, nodeEpoch: null });
      expect(json.cluster.epoch).toBe(3);
    });

    it('--json prints the broker and cluster answers', async () => {
      const r = await keel(['status', '--admin', master.url, '--json']);
      expect(r.code).toBe(0);
      const json = JSON.parse(r.stdout);
      expect(json.broker).toMatchObject({ name: 'node-a', role: 'master', epoch: 1, readOnly: false });
      expect(json.cluster.takeovers).toEqual([
        expect.objectContaining({ node: 'node-a', epoch: 1, reason: 'test start' }),
      ]);
      expect(json.cluster.nodes.map((n: { name: string }) => n.name)).toEqual(['node-a', 'node-b']);
    });

    it('reads the URL from KEEL_ADMIN_URL, and --admin wins over it', async () => {
      const fromEnv = await keel(['status', '--json'], { KEEL_ADMIN_URL: slave.url });
      expect(JSON.parse(fromEnv.stdout).broker.name).toBe('node-b');
      const fromFlag = await keel(['status', '--json', '--admin', master.url], { KEEL_ADMIN_URL: slave.url });
      expect(JSON.parse(fromFlag.stdout).broker.name).toBe('node-a');
    });
  });

  describe('keel queues', () => {
    it('prints a table with depth, counters, consumers, in-flight and the oldest age', async () => {
      const broker = master.broker as Broker;
      await send(broker, 'orders', 'one');
      await send(broker, 'orders', 'two');
      await send(broker, 'audit', 'x');
      const r = await keel(['queues', '--admin', master.url]);
      expect(r.code).toBe(0);
      const lines = r.stdout.trimEnd().split('\n');
      expect(lines[0]).toMatch(/^NAME +DEPTH +ENQUEUED +DEQUEUED +CONSUMERS +IN-FLIGHT +OLDEST$/);
      expect(r.stdout).toMatch(/^orders +2 +2 +0 +0 +0 +\d+(ms|s)$/m);
      expect(r.stdout).toMatch(/^audit +1 +1 +0 +0 +0 +\d+(ms|s)$/m);
      expect(r.stdout).not.toContain('read-only');
    });

    it('notes a read-only answer from a slave, with the counters it lacks as -', async () => {
      await send(master.broker as Broker, 'orders', 'one');
      const r = await keel(['queues', '--admin', slave.url]);
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(/^orders +1 +- +- +- +- +/m);
      expect(r.stdout).toContain(`(read-only: ${slave.url} is not the serving master;`);
    });

    it('--json prints the answer as is', async () => {
      await send(master.broker as Broker, 'orders', 'one');
      const r = await keel(['queues', '--admin', master.url, '--json']);
      const json = JSON.parse(r.stdout);
      expect(json.readOnly).toBe(false);
      expect(json.queues).toEqual([
        expect.objectContaining({ name: 'orders', depth: 1, enqueued: 1, consumers: 0 }),
      ]);
    });

    it('says so when there are no queues', async () => {
      const r = await keel(['queues', '--admin', master.url]);
      expect(r.stdout).toBe('no queues\n');
    });
  });

  describe('keel browse', () => {
    it('shows id, priority, timestamp, redelivered, size and a one-line body preview', async () => {
      const broker = master.broker as Broker;
      const first = await send(broker, 'orders', 'line one\nline two', 4);
      const second = await send(broker, 'orders', 'x'.repeat(100), 9);
      const r = await keel(['browse', 'orders', '--admin', master.url]);
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(/^ *ID +PRIORITY +TIMESTAMP +REDELIVERED +SIZE +BODY$/m);
      // delivery order: priority 9 first
      const rows = r.stdout.split('\n').filter((l) => /^\s*\d+ /.test(l));
      expect(rows).toHaveLength(2);
      expect(rows[0]).toMatch(new RegExp(`^ *${second} +9 +\\d{4}-\\S+Z +no +100 B +x{57}\\.\\.\\.$`));
      expect(rows[1]).toMatch(new RegExp(`^ *${first} +4 +\\S+ +no +17 B +line one\\\\nline two$`));
      expect(r.stdout).toContain('messages 1-2 of queue orders\n');
    });

    it('pages with --limit and --offset', async () => {
      const broker = master.broker as Broker;
      const ids: string[] = [];
      for (const body of ['a', 'b', 'c']) ids.push(await send(broker, 'orders', body));
      const page1 = await keel(['browse', 'orders', '--limit', '2', '--admin', master.url]);
      expect(page1.stdout).toContain('messages 1-2 of queue orders; more may follow: --offset 2\n');
      const page2 = await keel([
        'browse',
        'orders',
        '--limit',
        '2',
        '--offset',
        '2',
        '--admin',
        master.url,
        '--json',
      ]);
      const json = JSON.parse(page2.stdout);
      expect(json).toMatchObject({ queue: 'orders', offset: 2, limit: 2, readOnly: false });
      expect(json.messages.map((m: { id: string; bodyPreview: string }) => [m.id, m.bodyPreview])).toEqual([
        [ids[2], 'c'],
      ]);
    });

    it('browses from a slave (read-only) too', async () => {
      await send(master.broker as Broker, 'orders', 'hello');
      const r = await keel(['browse', 'orders', '--admin', slave.url]);
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(/ hello$/m);
      expect(r.stdout).toContain('(read-only:');
    });

    it('fails with 404 on an unknown queue', async () => {
      const r = await keel(['browse', 'nope', '--admin', master.url]);
      expect(r.code).toBe(1);
      expect(r.stdout).toBe('');
      expect(r.stderr).toBe('keel: 404 Not Found: unknown queue nope [UNKNOWN_DESTINATION]\n');
    });

    it('refuses a bad --limit before asking', async () => {
      const r = await keel(['browse', 'orders', '--limit', '0', '--admin', master.url]);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain("option '--limit <n>' argument '0' is invalid. expected an integer >= 1");
    });
  });

  describe('keel purge', () => {
    it('removes the pending messages and prints how many', async () => {
      const broker = master.broker as Broker;
      for (const body of ['a', 'b', 'c']) await send(broker, 'orders', body);
      const r = await keel(['purge', 'orders', '--admin', master.url, ...creds]);
      expect(r).toEqual({ code: 0, stdout: 'purged 3 messages from queue orders\n', stderr: '' });
      expect(broker.getQueue('orders')?.depth).toBe(0);
    });

    it('takes the credentials from KEEL_ADMIN_USER / KEEL_ADMIN_PASSWORD, with --json', async () => {
      await send(master.broker as Broker, 'orders', 'a');
      const r = await keel(['purge', 'orders', '--json'], {
        KEEL_ADMIN_URL: master.url,
        KEEL_ADMIN_USER: ADMIN.user,
        KEEL_ADMIN_PASSWORD: ADMIN.password,
      });
      expect(r.code).toBe(0);
      expect(JSON.parse(r.stdout)).toEqual({ queue: 'orders', purged: 1 });
    });

    it('answers 401 without credentials, saying how to pass them, and removes nothing', async () => {
      const broker = master.broker as Broker;
      await send(broker, 'orders', 'a');
      const r = await keel(['purge', 'orders', '--admin', master.url]);
      expect(r.code).toBe(1);
      expect(r.stdout).toBe('');
      expect(r.stderr).toBe(
        'keel: 401 Unauthorized: credentials required (HTTP Basic authentication); pass --user NAME --password PASSWORD ' +
          '(or set KEEL_ADMIN_USER and KEEL_ADMIN_PASSWORD) [AUTH_FAILED]\n',
      );
      expect(broker.getQueue('orders')?.depth).toBe(1);
    });

    it('answers 401 on a wrong password', async () => {
      const r = await keel([
        'purge',
        'orders',
        '--admin',
        master.url,
        '--user',
        ADMIN.user,
        '--password',
        'wrong',
      ]);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(
        'keel: 401 Unauthorized: invalid user name or password (check --user/--password',
      );
    });

    it('answers 401 explaining how to configure a node that has no admin user', async () => {
      const bare = await startNode(new MemoryDatabase(), 'node-c', 'master', { withAdminUser: false });
      try {
        const r = await keel(['purge', 'orders', '--admin', bare.url, ...creds]);
        expect(r.code).toBe(1);
        expect(r.stderr).toContain('keel: 401 Unauthorized: no admin user is configured');
        expect(r.stderr).toContain('--admin-user NAME --admin-password PASSWORD');
      } finally {
        await bare.stop();
      }
    });

    it('answers 404 on an unknown queue', async () => {
      const r = await keel(['purge', 'nope', '--admin', master.url, ...creds]);
      expect(r.code).toBe(1);
      expect(r.stderr).toBe('keel: 404 Not Found: unknown queue nope [UNKNOWN_DESTINATION]\n');
    });

    it('answers 409 on a slave, naming the master', async () => {
      await send(master.broker as Broker, 'orders', 'a');
      const r = await keel(['purge', 'orders', '--admin', slave.url, ...creds]);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/^keel: 409 Conflict: node node-b .*the master node-a.* \[NOT_MASTER\]\n$/);
      expect(master.broker?.getQueue('orders')?.depth).toBe(1);
    });

    it('throws an AdminApiError with the status and the server body', async () => {
      const err = await runPurge('orders', { admin: slave.url, ...ADMIN, env: {} }, bufferOutput()).catch(
        (e) => e,
      );
      expect(err).toBeInstanceOf(AdminApiError);
      expect(err).toMatchObject({ status: 409, code: 'NOT_MASTER', body: { master: 'node-a' } });
    });
  });

  describe('keel handover', () => {
    it('hands the master lock over and prints the new state', async () => {
      const r = await keel(['handover', '--admin', master.url, ...creds]);
      expect(r.code).toBe(0);
      expect(r.stdout).toContain('node-a handed over the master lock\n');
      expect(r.stdout).toMatch(/^role +slave \(read-only\)$/m);
      expect(r.stdout).toMatch(/^lock holder +not known yet/m);
      expect(master.broker?.isRunning).toBe(false);
      expect(master.state.role).toBe('slave');
    });

    it('--json prints the hand-over and the state after it', async () => {
      const r = await keel(['handover', '--admin', master.url, '--json', ...creds]);
      const json = JSON.parse(r.stdout);
      expect(json.handover).toEqual({ node: 'node-a', handedOver: true });
      expect(json.broker).toMatchObject({ name: 'node-a', role: 'slave', readOnly: true });
    });

    it('answers 409 on a slave and 401 without credentials', async () => {
      const onSlave = await keel(['handover', '--admin', slave.url, ...creds]);
      expect(onSlave.code).toBe(1);
      expect(onSlave.stderr).toContain('409 Conflict');
      expect(onSlave.stderr).toContain('node-a');
      const noCreds = await keel(['handover', '--admin', master.url]);
      expect(noCreds.code).toBe(1);
      expect(noCreds.stderr).toContain('401 Unauthorized');
      expect(master.broker?.isRunning).toBe(true);
    });
  });
});

describe('keel admin commands without a node', () => {
  it('says it cannot reach the admin API, for every command', async () => {
    const url = `http://127.0.0.1:${await closedPort()}`;
    for (const args of [['status'], ['queues'], ['browse', 'q'], ['purge', 'q'], ['handover']]) {
      const r = await keel([...args, '--admin', url]);
      expect(r.code).toBe(1);
      expect(r.stdout).toBe('');
      expect(r.stderr).toBe(
        `keel: cannot reach admin API at ${url}: connection refused (ECONNREFUSED) (is the node running? set --admin URL or KEEL_ADMIN_URL) [CONNECTION_LOST]\n`,
      );
    }
  });

  it('lists the admin commands and their options in --help', async () => {
    const r = await keel(['--help']);
    for (const c of ['status', 'queues', 'browse', 'purge', 'handover'])
      expect(r.stdout).toMatch(new RegExp(`^ {2}${c}\\b`, 'm'));
    const browse = (await keel(['browse', '--help'])).stdout.replace(/\s+/g, ' ');
    for (const flag of [
      '--admin <url>',
      '--user <name>',
      '--password <password>',
      '--json',
      '--limit <n>',
      '--offset <n>',
    ])
      expect(browse).toContain(flag);
    expect(browse).toContain(`KEEL_ADMIN_URL; default: ${DEFAULT_ADMIN_URL}`);
  });
});

describe('resolveAdminConnection', () => {
  const basic = (s: string) => `Basic ${Buffer.from(s).toString('base64')}`;

  it('defaults to http://127.0.0.1:8161 without credentials', () => {
    expect(resolveAdminConnection({ env: {} })).toEqual({
      baseUrl: 'http://127.0.0.1:8161',
      authorization: null,
      timeoutMs: 30_000,
    });
  });

  it('takes flags over variables and accepts host:port', () => {
    const env = { KEEL_ADMIN_URL: 'http://a:1', KEEL_ADMIN_USER: 'u', KEEL_ADMIN_PASSWORD: 'p' };
    expect(resolveAdminConnection({ env })).toMatchObject({
      baseUrl: 'http://a:1',
      authorization: basic('u:p'),
    });
    expect(resolveAdminConnection({ env, admin: 'b:2/', user: 'v', password: 'q' })).toMatchObject({
      baseUrl: 'http://b:2',
      authorization: basic('v:q'),
    });
  });

  it('moves credentials out of the URL into Basic', () => {
    expect(resolveAdminConnection({ env: {}, admin: 'https://me:p%40ss@h:9/admin' })).toEqual({
      baseUrl: 'https://h:9/admin',
      authorization: basic('me:p@ss'),
      timeoutMs: 30_000,
    });
  });

  it('refuses half credentials and other schemes', () => {
    expect(() => resolveAdminConnection({ env: {}, user: 'u' })).toThrow('--user u needs --password');
    expect(() => resolveAdminConnection({ env: { KEEL_ADMIN_PASSWORD: 'p' } })).toThrow('needs --user');
    expect(() => resolveAdminConnection({ env: {}, admin: 'tcp://h:1' })).toThrow('not tcp:');
    expect(() => resolveAdminConnection({ env: {}, user: 'a:b', password: 'p' })).toThrow(
      'cannot contain ":"',
    );
  });

  it('reports an answer that is not JSON, and a node that does not answer in time', async () => {
    const sockets = new Set<import('node:net').Socket>();
    const srv = createHttpServer((req, res) => {
      if (req.url === '/api/queues') res.writeHead(200, { 'content-type': 'text/html' }).end('<html></html>');
      // any other path: never answer
    });
    srv.on('connection', (s) => sockets.add(s));
    await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
    const { port } = srv.address() as import('node:net').AddressInfo;
    try {
      const output = bufferOutput();
      const opts = { env: {}, admin: `http://127.0.0.1:${port}`, timeoutMs: 300 };
      await expect(runQueues(opts, output)).rejects.toMatchObject({
        code: 'PROTOCOL_ERROR',
        message: expect.stringContaining('200 text/html, not JSON (is this a Keel admin API?)'),
      });
      await expect(runStatus(opts, output)).rejects.toMatchObject({
        code: 'TIMEOUT',
        message: `admin API at http://127.0.0.1:${port} did not answer within 300 ms`,
      });
      expect(output.stdout()).toBe('');
    } finally {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => srv.close(() => resolve()));
    }
  });
});
