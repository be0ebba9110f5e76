import { connect } from '@keel/client';
import { type BrokerProcess, startBroker, stopAll, useTestDatabase } from '@keel/testkit';

/**
 * The admin API on real nodes (a master and a slave, real Postgres, real HTTP): the roles are told
 * apart, the slave answers reads from Postgres and refuses changes naming the master, metrics carry
 * the store's health.
 */
describe('admin API on a master and a slave', () => {
  const db = useTestDatabase();
  let master: BrokerProcess;
  let slave: BrokerProcess;
  const auth = `Basic ${Buffer.from('admin:s3cret').toString('base64')}`;
  const admin = ['--admin-user', 'admin', '--admin-password', 's3cret'];

  beforeAll(async () => {
    master = await startBroker({ db: db.url, name: 'adm-a', cluster: 'adm', args: admin });
    await master.waitForRole('master', 30_000);
    slave = await startBroker({ db: db.url, name: 'adm-b', cluster: 'adm', args: admin });
    await slave.waitForRole('slave', 30_000);
  });
  afterAll(async () => {
    await stopAll();
  });

  const get = async (p: BrokerProcess, path: string, init: RequestInit = {}) => {
    const res = await fetch(`http://127.0.0.1:${p.adminPort}${path}`, init);
    const text = await res.text();
    let body: any = text;
    try {
      body = JSON.parse(text);
    } catch {
      // metrics are text
    }
    return { status: res.status, body };
  };

  it('tells master from slave in /api/broker and /readyz', async () => {
    const a = await get(master, '/api/broker');
    const b = await get(slave, '/api/broker');
    expect(a.body).toMatchObject({ name: 'adm-a', cluster: 'adm', role: 'master', lockHolder: 'adm-a' });
    expect(a.body.epoch).toBeGreaterThanOrEqual(1);
    expect(a.body.listeners.native).toMatch(/^tcp:\/\//);
    expect(b.body).toMatchObject({ name: 'adm-b', role: 'slave', lockHolder: 'adm-a', readOnly: true });
    expect(b.body.listeners.native).toBeNull();
    // The cluster's epoch on both, and each node's own apart: the slave never served (issue #18.3).
    expect(a.body.nodeEpoch).toBe(a.body.epoch);
    expect(b.body).toMatchObject({ epoch: a.body.epoch, nodeEpoch: null });
    expect((await get(master, '/readyz')).status).toBe(200);
    expect((await get(slave, '/readyz')).status).toBe(503);
    expect((await get(slave, '/healthz')).status).toBe(200);
    const cluster = await get(slave, '/api/cluster');
    expect(cluster.body.takeovers[0]).toMatchObject({ node: 'adm-a' });
    expect(cluster.body.nodes.map((n: { name: string }) => n.name).sort()).toEqual(['adm-a', 'adm-b']);
  });

  it('answers queue reads on the slave from Postgres and refuses changes naming the master', async () => {
    const conn = await connect(`tcp://127.0.0.1:${master.port}`);
    const session = await conn.createSession();
    const producer = session.createProducer('queue://admin.orders');
    for (let i = 0; i < 5; i++) await producer.send(`order ${i}`, { properties: { n: i } });
    await conn.close();

    const onMaster = await get(master, '/api/queues/admin.orders');
    expect(onMaster.body).toMatchObject({ name: 'admin.orders', depth: 5, enqueued: 5, readOnly: false });
    const onSlave = await get(slave, '/api/queues/admin.orders');
    expect(onSlave.body).toMatchObject({ name: 'admin.orders', depth: 5, readOnly: true });
    const browse = await get(slave, '/api/queues/admin.orders/messages?limit=2');
    expect(browse.status).toBe(200);
    expect(browse.body.readOnly).toBe(true);
    expect(browse.body.messages).toHaveLength(2);
    expect(browse.body.messages[0].properties).toEqual({ n: 0 });

    const purgeOnSlave = await get(slave, '/api/queues/admin.orders/messages', {
      method: 'DELETE',
      headers: { authorization: auth },
    });
    expect(purgeOnSlave.status).toBe(409);
    expect(JSON.stringify(purgeOnSlave.body)).toContain('adm-a');
    const unauth = await get(master, '/api/queues/admin.orders/messages', { method: 'DELETE' });
    expect(unauth.status).toBe(401);
    const purge = await get(master, '/api/queues/admin.orders/messages', {
      method: 'DELETE',
      headers: { authorization: auth },
    });
    expect(purge.status).toBe(200);
    expect((await get(slave, '/api/queues/admin.orders')).body.depth).toBe(0);
    expect((await get(master, '/api/queues/nope')).status).toBe(404);
    expect((await get(master, '/api/queues/admin.orders/messages?limit=-1')).status).toBe(400);
  });

  it('hands the master lock over on request (rolling upgrade) with nothing lost', async () => {
    const url = `failover:(tcp://127.0.0.1:${master.port},tcp://127.0.0.1:${slave.port})?randomize=false&initialReconnectDelay=10&maxReconnectDelay=100`;
    const conn = await connect(url, { heartbeatMs: 1000 });
    try {
      const session = await conn.createSession();
      const producer = session.createProducer('queue://admin.handover');
      const sent: string[] = [];
      for (let i = 0; i < 50; i++) {
        await producer.send(`h${i}`);
        sent.push(`h${i}`);
      }
      const refused = await get(slave, '/api/broker/handover', {
        method: 'POST',
        headers: { authorization: auth },
      });
      expect(refused.status).toBe(409);
      const handover = await get(master, '/api/broker/handover', {
        method: 'POST',
        headers: { authorization: auth },
      });
      expect(handover.status).toBeLessThan(300);
      await slave.waitForRole('master', 15_000);
      const oldMaster = (await get(master, '/api/broker')).body;
      const newMaster = (await get(slave, '/api/broker')).body;
      expect(oldMaster.role).toBe('slave');
      // The old master, now a slave, shows the cluster's epoch (the new master's), not its own stale one.
      expect(newMaster.nodeEpoch).toBe(newMaster.epoch);
      expect(oldMaster.epoch).toBe(newMaster.epoch);
      expect(oldMaster.nodeEpoch).toBeLessThan(newMaster.epoch);
      expect((await get(master, '/api/cluster')).body.epoch).toBe(newMaster.epoch);
      for (let i = 50; i < 100; i++) {
        await producer.send(`h${i}`);
        sent.push(`h${i}`);
      }
      const consumer = await session.createConsumer('queue://admin.handover', { prefetch: 200 });
      const seen = new Map<string, number>();
      for await (const m of consumer) {
        seen.set(m.text(), (seen.get(m.text()) ?? 0) + 1);
        if (seen.size === sent.length) break;
      }
      const duplicated = [...seen.values()].reduce((n, c) => n + c - 1, 0);
      expect({ delivered: seen.size, lost: sent.filter((k) => !seen.has(k)).length, duplicated }).toEqual({
        delivered: 100,
        lost: 0,
        duplicated: 0,
      });
    } finally {
      await conn.close();
    }
  });

  it('exposes Prometheus metrics with role, epoch and the store health', async () => {
    // After the hand-over above, adm-b is the master and adm-a the slave.
    const m = await get(slave, '/metrics');
    expect(m.status).toBe(200);
    expect(m.body).toMatch(/keel_role\{[^}]*role="master"[^}]*\} 1/);
    expect(m.body).toMatch(/keel_epoch\{[^}]*\} [1-9]/);
    expect(m.body).toMatch(/keel_store_dead_rows\{[^}]*table="keel_messages"/);
    expect(m.body).toMatch(/keel_store_commit_duration_seconds_count/);
    expect(m.body).toMatch(/keel_takeovers_total\{[^}]*\} [1-9]/);
    const s = await get(master, '/metrics');
    expect(s.body).toMatch(/keel_role\{[^}]*role="slave"[^}]*\} 1/);
  });
});

describe('admin API users from the configuration file', () => {
  const db = useTestDatabase();
  afterAll(() => stopAll());

  it('admits admin and read-only users by role, and closes read routes with adminReadAuth', async () => {
    const { mkdtempSync, writeFileSync } = await import('node:fs');
    const { join } = await import('node:path');
    const { tmpdir } = await import('node:os');
    const file = join(mkdtempSync(join(tmpdir(), 'keel-admin-')), 'keel.yaml');
    writeFileSync(
      file,
      [
        'adminReadAuth: true',
        'users:',
        '  - { name: ops, password: ops-secret, roles: [admin] }',
        '  - { name: viewer, password: view-secret, roles: [admin-read] }',
        '  - { name: app, password: app-secret }',
      ].join('\n'),
    );
    const node = await startBroker({
      db: db.url,
      name: 'adm-file',
      cluster: 'adm-file',
      args: ['--config', file],
    });
    await node.waitForRole('master', 30_000);
    const call = async (path: string, user?: string, password?: string, method = 'GET') => {
      const headers: Record<string, string> = {};
      if (user) headers.authorization = `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
      return (await fetch(`http://127.0.0.1:${node.adminPort}${path}`, { method, headers })).status;
    };
    expect(await call('/api/queues')).toBe(401); // read routes closed
    expect(await call('/api/queues', 'viewer', 'view-secret')).toBe(200);
    expect(await call('/api/queues', 'viewer', 'wrong')).toBe(401);
    expect(await call('/api/queues', 'app', 'app-secret')).toBe(401); // a client user is no admin user
    expect(await call('/api/broker/handover', 'viewer', 'view-secret', 'POST')).toBe(403);
    expect(await call('/api/queues/nope/messages', 'ops', 'ops-secret', 'DELETE')).toBe(404); // admitted
    expect(await call('/healthz')).toBe(200);
  });
});
