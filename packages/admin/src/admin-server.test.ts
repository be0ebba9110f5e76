import { type Delivery, MemoryStore } from '@keel/core';
import type { FastifyInstance } from 'fastify';
import {
  ADMIN,
  authOptions,
  basic,
  MemoryDatabase,
  masterNode,
  READER,
  RecordingLogger,
  slaveNode,
  type TestNode,
} from './__tests__/admin-fixtures';
import { ADMIN_NOT_CONFIGURED_MESSAGE } from './admin-auth';
import { buildAdminServer, startAdminServer } from './admin-server';
import { KeelMetrics } from './keel-metrics';

const admin = basic(ADMIN.user, ADMIN.password);
const reader = basic(READER.user, READER.password);

interface QueueJson {
  name: string;
  depth: number;
  enqueued: number | null;
  consumers: number | null;
}
interface MessageJson {
  id: string;
  destination: string;
  bodyPreview: string;
  bodyEncoding: string;
  bodySize: number;
  bodyTruncated: boolean;
  properties: Record<string, unknown>;
  correlationId?: string;
  originalDestination?: string;
  dlqReason?: string;
  priority: number;
  deliveryCount: number;
}

describe('admin API on a master and a slave sharing one store', () => {
  let db: MemoryDatabase;
  let master: TestNode;
  let slave: TestNode;
  let masterApp: FastifyInstance;
  let slaveApp: FastifyInstance;
  let masterLog: RecordingLogger;
  let brokerLog: RecordingLogger;
  let metrics: KeelMetrics;

  beforeEach(async () => {
    db = new MemoryDatabase();
    brokerLog = new RecordingLogger();
    metrics = new KeelMetrics({ processMetrics: false });
    master = await masterNode(db, {
      logger: brokerLog,
      redelivery: { maximumRedeliveries: 0, initialRedeliveryDelay: 0, redeliveryDelay: 0 },
      onCommit: (s) => metrics.observeCommit(s),
    });
    metrics.attachBroker(master.broker!);
    slave = await slaveNode(db);
    masterLog = new RecordingLogger();
    masterApp = buildAdminServer(master.ctx, { ...authOptions, logger: masterLog, metrics });
    slaveApp = buildAdminServer(slave.ctx, { ...authOptions });
  });

  afterEach(async () => {
    await masterApp.close();
    await slaveApp.close();
    await master.stop();
    await slave.stop();
  });

  async function send(queue: string, body: string, extra: Record<string, unknown> = {}): Promise<string> {
    const res = await masterApp.inject({
      method: 'POST',
      url: `/api/queues/${encodeURIComponent(queue)}/messages`,
      headers: admin,
      payload: { body, ...extra },
    });
    expect(res.statusCode).toBe(201);
    return res.json().messageId;
  }

  it('tells master from slave: role, readOnly and readiness', async () => {
    const m = await masterApp.inject('/api/broker');
    expect(m.statusCode).toBe(200);
    expect(m.json()).toMatchObject({
      name: 'node-a',
      cluster: 'test',
      role: 'master',
      epoch: 1,
      version: '0.1.0-test',
      lockHolder: 'node-a',
      readOnly: false,
      listeners: {
        native: 'tcp://127.0.0.1:61616',
        stomp: 'stomp://127.0.0.1:61613',
        admin: 'http://127.0.0.1:8161',
      },
    });
    expect(m.json().uptimeSeconds).toBeGreaterThanOrEqual(5);
    const s = await slaveApp.inject('/api/broker');
    expect(s.json()).toMatchObject({
      name: 'node-b',
      role: 'slave',
      epoch: 1,
      lockHolder: 'node-a',
      readOnly: true,
    });
    expect(s.json().listeners.native).toBeNull();

    expect((await masterApp.inject('/readyz')).statusCode).toBe(200);
    const notReady = await slaveApp.inject('/readyz');
    expect(notReady.statusCode).toBe(503);
    expect(notReady.json()).toEqual({ status: 'not ready', role: 'slave', node: 'node-b' });
    for (const app of [masterApp, slaveApp]) {
      const h = await app.inject('/healthz');
      expect(h.statusCode).toBe(200);
      expect(h.json().status).toBe('ok');
    }
  });

  it("shows a slave the cluster's current epoch, read from the store, and its own apart (issue #18.3)", async () => {
    // Another node takes over twice after the slave started with epoch 1 in view.
    const other = new MemoryStore({ database: db, cluster: 'test' });
    await other.open();
    await other.takeOver('node-c', 'drill');
    await other.takeOver('node-c', 'drill again');
    expect((await slaveApp.inject('/api/broker')).json()).toMatchObject({
      role: 'slave',
      epoch: 3,
      nodeEpoch: null,
    });
    expect((await slaveApp.inject('/api/cluster')).json().epoch).toBe(3);
    // The old master's own epoch stays what it served at, beside the cluster's.
    expect((await masterApp.inject('/api/broker')).json()).toMatchObject({ epoch: 3, nodeEpoch: 1 });
  });

  it('shows the cluster: nodes and takeover history', async () => {
    const res = await slaveApp.inject('/api/cluster?limit=5');
    expect(res.statusCode).toBe(200);
    const body = res.json();
    expect(body).toMatchObject({ cluster: 'test', master: 'node-a', epoch: 1 });
    expect(body.nodes.map((n: { name: string }) => n.name)).toEqual(['node-a', 'node-b']);
    expect(body.nodes[0].lastSeen).toBeNull();
    expect(body.takeovers).toHaveLength(1);
    expect(body.takeovers[0]).toMatchObject({ node: 'node-a', epoch: 1, reason: 'test start' });
    expect(new Date(body.takeovers[0].at).getTime()).toBeGreaterThan(0);
  });

  it('sends and browses without removing, on the master and (read-only) on the slave', async () => {
    const id = await send('orders', 'hello world', {
      correlationId: 'c-1',
      properties: { region: 'eu', n: 3 },
      priority: 7,
    });
    await send('orders', Buffer.from([0xff, 0x00, 0xfe]).toString('base64'), { encoding: 'base64' });
    await send('orders', 'x'.repeat(100));

    for (let round = 0; round < 2; round++) {
      const res = await masterApp.inject('/api/queues/orders/messages?limit=10&previewBytes=20');
      expect(res.statusCode).toBe(200);
      const body = res.json();
      expect(body).toMatchObject({ queue: 'orders', readOnly: false, offset: 0, limit: 10 });
      const msgs: MessageJson[] = body.messages;
      expect(msgs).toHaveLength(3);
      expect(msgs[0]).toMatchObject({
        id,
        destination: 'queue://orders',
        priority: 7,
        correlationId: 'c-1',
        properties: { region: 'eu', n: 3 },
        bodyEncoding: 'utf8',
        bodyPreview: 'hello world',
        bodySize: 11,
        bodyTruncated: false,
      });
      expect(msgs[1]).toMatchObject({ bodyEncoding: 'base64', bodyPreview: '/wD+', bodySize: 3 });
      expect(msgs[2]).toMatchObject({ bodyPreview: 'x'.repeat(20), bodySize: 100, bodyTruncated: true });
    }
    const q = await masterApp.inject('/api/queues/orders');
    expect(q.json()).toMatchObject({ readOnly: false, name: 'orders', depth: 3, enqueued: 3, consumers: 0 });

    // The slave answers from the store: same messages, marked read-only, counters unknown.
    const sb = await slaveApp.inject('/api/queues/orders/messages?offset=1&limit=1');
    expect(sb.statusCode).toBe(200);
    expect(sb.json()).toMatchObject({ queue: 'orders', readOnly: true, offset: 1, limit: 1 });
    expect(sb.json().messages.map((m: MessageJson) => m.bodyPreview)).toEqual(['/wD+']);
    const sq = await slaveApp.inject('/api/queues');
    expect(sq.json().readOnly).toBe(true);
    expect(sq.json().queues.find((x: QueueJson) => x.name === 'orders')).toMatchObject({
      depth: 3,
      enqueued: null,
      consumers: null,
    });
    const one = await slaveApp.inject('/api/queues/orders');
    expect(one.json()).toMatchObject({ readOnly: true, depth: 3 });
    expect((await masterApp.inject('/api/queues')).json().readOnly).toBe(false);
  });

  it('answers 409 naming the master for every change on the slave', async () => {
    await send('orders', 'a');
    const [m] = (await masterApp.inject('/api/queues/orders/messages')).json().messages as MessageJson[];
    const changes = [
      { method: 'POST' as const, url: '/api/queues/orders/messages', payload: { body: 'x' } },
      { method: 'DELETE' as const, url: '/api/queues/orders/messages' },
      { method: 'DELETE' as const, url: '/api/queues/orders' },
      { method: 'POST' as const, url: `/api/queues/orders/messages/${m!.id}/move`, payload: { to: 'other' } },
      { method: 'POST' as const, url: `/api/queues/orders/messages/${m!.id}/retry` },
      { method: 'DELETE' as const, url: '/api/subscriptions/app/sub1' },
      { method: 'POST' as const, url: '/api/broker/handover' },
    ];
    for (const c of changes) {
      const res = await slaveApp.inject({ ...c, headers: admin });
      expect({ url: c.url, status: res.statusCode }).toEqual({ url: c.url, status: 409 });
      expect(res.json()).toMatchObject({ code: 'NOT_MASTER', master: 'node-a' });
      expect(res.json().message).toBe(
        'node node-b is not the serving master (role slave), its admin API is read-only: send changes to the master node-a',
      );
    }
    expect((await slaveApp.inject('/api/queues/orders')).json().depth).toBe(1);
  });

  it('authenticates changes: none configured, wrong password, read-only user, admin', async () => {
    const open = buildAdminServer(master.ctx, {});
    try {
      const res = await open.inject({ method: 'DELETE', url: '/api/queues/orders/messages' });
      expect(res.statusCode).toBe(401);
      expect(res.json().message).toBe(ADMIN_NOT_CONFIGURED_MESSAGE);
      expect(res.json().message).toMatch(
        /--admin-user.*--admin-password.*KEEL_ADMIN_USER.*KEEL_ADMIN_PASSWORD/,
      );
      expect((await open.inject('/api/queues')).statusCode).toBe(200); // reads open by default
    } finally {
      await open.close();
    }
    const url = '/api/queues/orders/messages';
    const none = await masterApp.inject({ method: 'POST', url, payload: { body: 'x' } });
    expect(none.statusCode).toBe(401);
    expect(none.headers['www-authenticate']).toMatch(/^Basic realm="keel"/);
    const wrong = await masterApp.inject({
      method: 'POST',
      url,
      payload: { body: 'x' },
      headers: basic(ADMIN.user, 'nope'),
    });
    expect(wrong.statusCode).toBe(401);
    expect(wrong.json()).toMatchObject({ code: 'AUTH_FAILED', message: 'invalid user name or password' });
    const unknown = await masterApp.inject({
      method: 'POST',
      url,
      payload: { body: 'x' },
      headers: basic('mallory', ADMIN.password),
    });
    expect(unknown.statusCode).toBe(401);
    const ro = await masterApp.inject({ method: 'POST', url, payload: { body: 'x' }, headers: reader });
    expect(ro.statusCode).toBe(403);
    expect(ro.json()).toMatchObject({ code: 'NOT_AUTHORIZED' });
    expect((await masterApp.inject('/api/queues/orders')).statusCode).toBe(404); // nothing was sent
    await send('orders', 'by admin');
    expect((await masterApp.inject('/api/queues/orders')).json().depth).toBe(1);
  });

  it('closes reads when readAuth is on', async () => {
    const closed = buildAdminServer(master.ctx, { ...authOptions, readAuth: true });
    try {
      expect((await closed.inject('/api/queues')).statusCode).toBe(401);
      expect((await closed.inject('/metrics')).statusCode).toBe(401);
      expect(
        (await closed.inject({ url: '/api/queues', headers: basic(READER.user, 'bad') })).statusCode,
      ).toBe(401);
      expect((await closed.inject({ url: '/api/queues', headers: reader })).statusCode).toBe(200);
      expect((await closed.inject({ url: '/api/broker', headers: admin })).statusCode).toBe(200);
      expect((await closed.inject('/healthz')).statusCode).toBe(200); // probes stay open
      expect((await closed.inject('/readyz')).statusCode).toBe(200);
    } finally {
      await closed.close();
    }
  });

  it('purges, moves and deletes', async () => {
    await send('orders', 'one');
    await send('orders', 'two');
    await send('orders', 'three');
    const msgs: MessageJson[] = (await masterApp.inject('/api/queues/orders/messages')).json().messages;
    const mv = await masterApp.inject({
      method: 'POST',
      url: `/api/queues/orders/messages/${msgs[1]!.id}/move`,
      headers: admin,
      payload: { to: 'archive' },
    });
    expect(mv.statusCode).toBe(200);
    expect(mv.json()).toEqual({ messageId: msgs[1]!.id, from: 'orders', to: 'archive' });
    const archived: MessageJson[] = (await masterApp.inject('/api/queues/archive/messages')).json().messages;
    expect(archived.map((m) => m.bodyPreview)).toEqual(['two']);
    // The move is committed: the slave sees it in the store.
    expect((await slaveApp.inject('/api/queues/archive')).json().depth).toBe(1);

    const again = await masterApp.inject({
      method: 'POST',
      url: `/api/queues/orders/messages/${msgs[1]!.id}/move`,
      headers: admin,
      payload: { to: 'archive' },
    });
    expect(again.statusCode).toBe(404);
    expect(again.json().code).toBe('UNKNOWN_MESSAGE');

    const purge = await masterApp.inject({
      method: 'DELETE',
      url: '/api/queues/orders/messages',
      headers: admin,
    });
    expect(purge.statusCode).toBe(200);
    expect(purge.json()).toEqual({ queue: 'orders', purged: 2 });
    expect((await masterApp.inject('/api/queues/orders')).json().depth).toBe(0);

    const del = await masterApp.inject({ method: 'DELETE', url: '/api/queues/archive', headers: admin });
    expect(del.statusCode).toBe(200);
    expect(del.json()).toEqual({ deleted: 'queue://archive' });
    expect((await masterApp.inject('/api/queues/archive')).statusCode).toBe(404);
    expect((await slaveApp.inject('/api/queues/archive')).statusCode).toBe(404);
  });

  it('refuses to delete a queue with consumers (409)', async () => {
    const conn = master.broker!.openConnection({ protocol: 'internal', clientId: 'app' });
    await master.broker!.subscribe(
      conn,
      { consumerId: 'k', destination: 'queue://busy', prefetch: 1 },
      () => {},
    );
    const res = await masterApp.inject({ method: 'DELETE', url: '/api/queues/busy', headers: admin });
    expect(res.statusCode).toBe(409);
    expect(res.json().code).toBe('DESTINATION_IN_USE');
    const consumers = (await masterApp.inject('/api/consumers')).json();
    expect(consumers.consumers).toEqual([
      expect.objectContaining({
        clientId: 'app',
        consumerId: 'k',
        destinations: ['queue://busy'],
        inflight: 0,
      }),
    ]);
    const connections = (await masterApp.inject('/api/connections')).json();
    expect(connections.connections).toEqual([
      expect.objectContaining({ clientId: 'app', protocol: 'internal', consumers: 1 }),
    ]);
    expect((await slaveApp.inject('/api/consumers')).json()).toEqual({ readOnly: true, consumers: [] });
  });

  it('retries a dead-lettered message back to its original queue', async () => {
    const broker = master.broker!;
    const conn = broker.openConnection({ protocol: 'internal', clientId: 'worker' });
    const delivered: Delivery[] = [];
    let onDelivery: () => void = () => {};
    await broker.subscribe(conn, { consumerId: 'k', destination: 'queue://jobs', prefetch: 1 }, (d) => {
      delivered.push(d);
      onDelivery();
    });
    const first = new Promise<void>((r) => {
      onDelivery = r;
    });
    await send('jobs', 'poison');
    await first;
    const deadLettered = brokerLog.next('message dead-lettered');
    broker.nack(conn, 'k', [delivered[0]!.message.messageId]); // maximumRedeliveries 0: straight to the DLQ
    await deadLettered;
    broker.unsubscribe(conn, 'k');

    const dlq: MessageJson[] = (await masterApp.inject('/api/queues/ActiveMQ.DLQ/messages')).json().messages;
    expect(dlq).toHaveLength(1);
    expect(dlq[0]).toMatchObject({ originalDestination: 'queue://jobs', bodyPreview: 'poison' });
    expect(dlq[0]!.dlqReason).toMatch(/maximumRedeliveries=0/);

    const res = await masterApp.inject({
      method: 'POST',
      url: `/api/queues/ActiveMQ.DLQ/messages/${dlq[0]!.id}/retry`,
      headers: admin,
    });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ messageId: dlq[0]!.id, from: 'ActiveMQ.DLQ', to: 'jobs' });
    expect((await masterApp.inject('/api/queues/ActiveMQ.DLQ')).json().depth).toBe(0);
    const back: MessageJson[] = (await masterApp.inject('/api/queues/jobs/messages')).json().messages;
    expect(back).toHaveLength(1);
    expect(back[0]).toMatchObject({ destination: 'queue://jobs', bodyPreview: 'poison', deliveryCount: 0 });
    expect(back[0]!.dlqReason).toBeUndefined();
    // A message that was never dead-lettered has no original queue to go back to.
    const plain = await send('jobs', 'fine');
    const bad = await masterApp.inject({
      method: 'POST',
      url: `/api/queues/jobs/messages/${plain}/retry`,
      headers: admin,
    });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().message).toMatch(/no original queue/);
  });

  it('answers 400 with a clear message on bad input and 404 on unknown names', async () => {
    await send('orders', 'a');
    const cases: { url: string; method?: 'GET' | 'POST'; payload?: unknown; message: RegExp }[] = [
      { url: '/api/queues/orders/messages?limit=-1', message: /querystring\/limit must be >= 1/ },
      { url: '/api/queues/orders/messages?limit=abc', message: /querystring\/limit must be integer/ },
      { url: '/api/queues/orders/messages?offset=-5', message: /querystring\/offset must be >= 0/ },
      { url: '/api/queues/orders/messages?colour=red', message: /unknown property "colour"/ },
      {
        url: '/api/queues/bad%01name',
        message: /params\/name must be a destination name without control characters/,
      },
      {
        url: `/api/queues/${'q'.repeat(201)}`,
        message: /params\/name must NOT have more than 200 characters/,
      },
      {
        url: '/api/queues/orders/messages',
        method: 'POST',
        payload: {},
        message: /body must have required property 'body'/,
      },
      {
        url: '/api/queues/orders/messages',
        method: 'POST',
        payload: { body: 'x', priority: 12 },
        message: /body\/priority must be <= 9/,
      },
      {
        url: '/api/queues/orders/messages',
        method: 'POST',
        payload: { body: 'x', ttl: 5 },
        message: /unknown property "ttl"/,
      },
      {
        url: '/api/queues/orders/messages',
        method: 'POST',
        payload: { body: '***', encoding: 'base64' },
        message: /not valid base64/,
      },
      {
        url: '/api/queues/orders/messages/abc/move',
        method: 'POST',
        payload: { to: 'x' },
        message: /params\/id must be a decimal message id/,
      },
      {
        url: '/api/queues/orders/messages/1/move',
        method: 'POST',
        payload: { to: 'orders' },
        message: /must differ/,
      },
    ];
    for (const c of cases) {
      const res = await masterApp.inject({
        method: c.method ?? 'GET',
        url: c.url,
        payload: c.payload as object,
        headers: admin,
      });
      expect({ url: c.url, status: res.statusCode }).toEqual({ url: c.url, status: 400 });
      expect(res.json()).toMatchObject({ statusCode: 400, error: 'Bad Request', code: 'INVALID_ARGUMENT' });
      expect(res.json().message).toMatch(c.message);
    }
    const badJson = await masterApp.inject({
      method: 'POST',
      url: '/api/queues/orders/messages',
      headers: { ...admin, 'content-type': 'application/json' },
      payload: '{"body":',
    });
    expect(badJson.statusCode).toBe(400);

    for (const app of [masterApp, slaveApp]) {
      for (const url of ['/api/queues/nope', '/api/queues/nope/messages', '/api/topics/nope']) {
        const res = await app.inject(url);
        expect({ url, status: res.statusCode }).toEqual({ url, status: 404 });
        expect(res.json().code).toBe('UNKNOWN_DESTINATION');
      }
    }
    for (const [method, url] of [
      ['DELETE', '/api/queues/nope/messages'],
      ['DELETE', '/api/queues/nope'],
      ['POST', '/api/queues/nope/messages/1/retry'],
      ['DELETE', '/api/subscriptions/app/nope'],
    ] as const) {
      const res = await masterApp.inject({ method, url, headers: admin });
      expect({ url, status: res.statusCode }).toEqual({ url, status: 404 });
    }
    const noRoute = await masterApp.inject('/api/nothing');
    expect(noRoute.statusCode).toBe(404);
    expect(noRoute.json().code).toBe('NOT_FOUND');
  });

  it('lists topics and durable subscriptions, and removes an inactive one', async () => {
    const broker = master.broker!;
    const conn = broker.openConnection({ protocol: 'internal', clientId: 'app' });
    await broker.subscribe(
      conn,
      { consumerId: 'd', destination: 'topic://news', prefetch: 10, durableName: 'sub1' },
      () => {},
    );
    broker.unsubscribe(conn, 'd');
    await broker.sendInternal({
      destination: 'topic://news',
      persistent: true,
      priority: 4,
      timestamp: Date.now(),
      expiration: 0,
      properties: {},
      body: Buffer.from('n1'),
    });
    const topics = (await masterApp.inject('/api/topics')).json();
    expect(topics.readOnly).toBe(false);
    expect(topics.topics).toEqual([
      { name: 'news', temporary: false, enqueued: 1, subscribers: 0, durableSubscriptions: 1 },
    ]);
    const topic = (await masterApp.inject('/api/topics/news')).json();
    expect(topic.subscriptions).toEqual([
      { clientId: 'app', name: 'sub1', topic: 'news', active: false, pending: 1, inflight: 0 },
    ]);
    const slaveSubs = (await slaveApp.inject('/api/subscriptions')).json();
    expect(slaveSubs).toEqual({
      readOnly: true,
      subscriptions: [
        { clientId: 'app', name: 'sub1', topic: 'news', active: null, pending: 1, inflight: null },
      ],
    });
    expect((await slaveApp.inject('/api/topics')).json().topics).toEqual([
      { name: 'news', temporary: false, enqueued: null, subscribers: null, durableSubscriptions: 1 },
    ]);
    const del = await masterApp.inject({
      method: 'DELETE',
      url: '/api/subscriptions/app/sub1',
      headers: admin,
    });
    expect(del.statusCode).toBe(200);
    expect((await masterApp.inject('/api/subscriptions')).json().subscriptions).toEqual([]);
  });

  it('exports Prometheus metrics from the context and the broker', async () => {
    await send('orders', 'a');
    await send('orders', 'b');
    const res = await masterApp.inject('/metrics');
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/);
    const text = res.body;
    for (const name of [
      'keel_messages_in_total',
      'keel_messages_out_total',
      'keel_queue_depth',
      'keel_store_commit_batch_operations',
      'keel_store_commit_duration_seconds',
      'keel_store_commit_inserts_total',
      'keel_role',
      'keel_epoch',
      'keel_takeovers_total',
      'keel_connections',
      'keel_store_dead_rows',
      'keel_store_table_bytes',
      'keel_store_oldest_transaction_age_seconds',
    ]) {
      expect(text).toContain(`# TYPE ${name} `);
    }
    expect(text).toContain('keel_messages_in_total{destination="queue://orders"} 2');
    expect(text).toContain('keel_queue_depth{queue="orders"} 2');
    expect(text).toContain('keel_role{role="master"} 1');
    expect(text).toContain('keel_role{role="slave"} 0');
    expect(text).toContain('keel_epoch 1');
    expect(text).toContain('keel_store_commit_inserts_total 2');
    expect(text).toMatch(/keel_store_commit_batch_operations_count [1-9]/);
    expect(text).toContain('keel_store_dead_rows{table="keel_messages"} 12');
    expect(text).toContain('keel_store_table_bytes{table="keel_sub_entries"} 16384');
    expect(text).toContain('keel_store_oldest_transaction_age_seconds 1.5');
    expect(text).toContain('keel_store_health_up 1');
    // Store health is cached between scrapes (its SQL is not free).
    await masterApp.inject('/metrics');
    expect(master.healthCalls).toBe(1);

    const s = (await slaveApp.inject('/metrics')).body;
    expect(s).toContain('keel_role{role="slave"} 1');
    expect(s).toContain('keel_queue_depth{queue="orders"} 2'); // from the store
    expect(s).toMatch(/^process_cpu_user_seconds_total /m); // process metrics on by default
  });

  it('publishes OpenAPI at /docs/json and a browsable page at /docs', async () => {
    const res = await masterApp.inject('/docs/json');
    expect(res.statusCode).toBe(200);
    const doc = res.json();
    expect(doc.openapi).toBe('3.1.0');
    expect(doc.info).toMatchObject({ title: 'Keel admin API', version: '0.1.0-test' });
    expect(doc.components.securitySchemes.basicAuth).toEqual({ type: 'http', scheme: 'basic' });
    const expected: Record<string, string[]> = {
      '/api/broker': ['get'],
      '/api/broker/handover': ['post'],
      '/api/cluster': ['get'],
      '/api/queues': ['get'],
      '/api/queues/{name}': ['get', 'delete'],
      '/api/queues/{name}/messages': ['get', 'post', 'delete'],
      '/api/queues/{name}/messages/{id}/move': ['post'],
      '/api/queues/{name}/messages/{id}/retry': ['post'],
      '/api/queues/{name}/messages/{id}/copy': ['post'],
      '/api/topics/{name}/messages': ['post'],
      '/api/store': ['get'],
      '/api/stream': ['get'],
      '/api/console/session': ['get'],
      '/api/topics': ['get'],
      '/api/topics/{name}': ['get'],
      '/api/subscriptions': ['get'],
      '/api/subscriptions/{clientId}/{name}': ['delete'],
      '/api/connections': ['get'],
      '/api/consumers': ['get'],
      '/api/bridges': ['get'],
      '/api/scheduled': ['get'],
      '/api/scheduled/{id}': ['get', 'delete'],
      '/healthz': ['get'],
      '/readyz': ['get'],
      '/metrics': ['get'],
    };
    expect(Object.keys(doc.paths).sort()).toEqual(Object.keys(expected).sort());
    for (const [path, methods] of Object.entries(expected)) {
      for (const method of methods) {
        const op = doc.paths[path][method];
        expect(op).toBeDefined();
        expect(Object.keys(op.responses).length).toBeGreaterThan(0);
        for (const [status, r] of Object.entries(op.responses as Record<string, { description?: string }>)) {
          expect({ path, method, status, hasDescription: typeof r.description === 'string' }).toMatchObject({
            hasDescription: true,
          });
        }
        if (method !== 'get') expect(op.security).toEqual([{ basicAuth: [] }]);
      }
    }
    const browse = doc.paths['/api/queues/{name}/messages'].get;
    expect(browse.parameters.map((p: { in: string; name: string }) => `${p.in}:${p.name}`).sort()).toEqual(
      ['path:name', 'query:limit', 'query:offset', 'query:previewBytes'].sort(),
    );
    expect(
      doc.paths['/api/queues/{name}/messages'].post.requestBody.content['application/json'].schema.required,
    ).toEqual(['body']);

    const page = await masterApp.inject('/docs');
    const html = page.statusCode === 302 ? await masterApp.inject(String(page.headers.location)) : page;
    expect(html.statusCode).toBe(200);
    expect(html.headers['content-type']).toMatch(/text\/html/);
    expect(html.body).toMatch(/swagger/i);
  });

  it('logs requests through the given logger', async () => {
    await masterApp.inject('/api/broker');
    const completed = masterLog.entries.find((e) => e.msg === 'request completed');
    expect(completed).toBeDefined();
    expect(completed!.obj).toMatchObject({ res: { statusCode: 200 } });
    expect(masterLog.entries.find((e) => e.msg === 'incoming request')!.obj).toMatchObject({
      req: { method: 'GET', url: '/api/broker' },
    });
  });
});

describe('startAdminServer', () => {
  it('listens on an ephemeral port and answers over real HTTP', async () => {
    const db = new MemoryDatabase();
    const master = await masterNode(db);
    const { app, url } = await startAdminServer(master.ctx, { ...authOptions, host: '127.0.0.1', port: 0 });
    try {
      expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
      const broker = await fetch(`${url}/api/broker`);
      expect(broker.status).toBe(200);
      expect(((await broker.json()) as { role: string }).role).toBe('master');
      const sent = await fetch(`${url}/api/queues/live/messages`, {
        method: 'POST',
        headers: { ...admin, 'content-type': 'application/json' },
        body: JSON.stringify({ body: 'over the wire' }),
      });
      expect(sent.status).toBe(201);
      const refused = await fetch(`${url}/api/queues/live`, { method: 'DELETE' });
      expect(refused.status).toBe(401);
      await refused.arrayBuffer();
      const browse = (await (await fetch(`${url}/api/queues/live/messages`)).json()) as {
        messages: MessageJson[];
      };
      expect(browse.messages.map((m) => m.bodyPreview)).toEqual(['over the wire']);
      const metrics = await fetch(`${url}/metrics`);
      expect(await metrics.text()).toContain('keel_queue_depth{queue="live"} 1');
    } finally {
      await app.close();
      await master.stop();
    }
  });

  it('refuses bad options, naming the property', () => {
    const ctx = {} as never;
    expect(() => buildAdminServer(ctx, { adminUser: 'root' })).toThrow(
      /adminPasswordHash is required when adminUser is set/,
    );
    expect(() => buildAdminServer(ctx, { adminUser: 'root', adminPasswordHash: 'h' })).toThrow(
      /verifyPassword is required/,
    );
  });
});
