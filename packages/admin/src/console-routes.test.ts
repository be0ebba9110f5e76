import type { FastifyInstance } from 'fastify';
import {
  ADMIN,
  authOptions,
  basic,
  MemoryDatabase,
  masterNode,
  READER,
  slaveNode,
  type TestNode,
} from './__tests__/admin-fixtures';
import { buildAdminServer, startAdminServer } from './admin-server';
import { crossSiteRefusal } from './browser-guards';
import { type ConsoleSnapshot, diffSnapshots, isEmptyDelta } from './console-stream';

const admin = basic(ADMIN.user, ADMIN.password);
const reader = basic(READER.user, READER.password);
const json = { 'content-type': 'application/json' };

/** Reads server-sent events from a fetch body: next() resolves with the next event. */
function sseReader(body: ReadableStream<Uint8Array>) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  return {
    async next(): Promise<{ event: string; data: any }> {
      for (;;) {
        const end = buffer.indexOf('\n\n');
        if (end >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const event = /^event: (.*)$/m.exec(block)?.[1];
          const data = /^data: (.*)$/m.exec(block)?.[1];
          if (event && data) return { event, data: JSON.parse(data) };
          continue;
        }
        const { value, done } = await reader.read();
        if (done) throw new Error('stream ended');
        buffer += value;
      }
    },
    cancel: () => reader.cancel(),
  };
}

describe('web console routes', () => {
  let db: MemoryDatabase;
  let master: TestNode;
  let slave: TestNode;
  let app: FastifyInstance;
  let slaveApp: FastifyInstance;

  beforeEach(async () => {
    db = new MemoryDatabase();
    master = await masterNode(db);
    slave = await slaveNode(db);
    app = buildAdminServer(master.ctx, authOptions);
    slaveApp = buildAdminServer(slave.ctx, authOptions);
  });
  afterEach(async () => {
    await app.close();
    await slaveApp.close();
    await slave.stop();
    await master.stop();
  });

  const send = (name: string, body: string, to = app) =>
    to.inject({
      method: 'POST',
      url: `/api/queues/${encodeURIComponent(name)}/messages`,
      headers: { ...admin, ...json },
      payload: { body },
    });

  it('serves the page with a CSP, its own files and the vendored libraries (no CDN)', async () => {
    const page = await app.inject('/');
    expect(page.statusCode).toBe(200);
    expect(page.headers['content-type']).toMatch(/^text\/html/);
    expect(page.headers['content-security-policy']).toMatch(/script-src 'self' 'sha256-[A-Za-z0-9+/=]+'/);
    expect(page.body).not.toMatch(/https?:\/\//); // nothing from elsewhere
    for (const url of [
      '/console/app.js',
      '/vendor/preact.mjs',
      '/vendor/hooks.mjs',
      '/vendor/htm.mjs',
      '/vendor/uPlot.esm.js',
    ]) {
      const r = await app.inject(url);
      expect({ url, status: r.statusCode, type: r.headers['content-type'] }).toEqual({
        url,
        status: 200,
        type: expect.stringMatching(/javascript/),
      });
    }
    expect((await app.inject('/vendor/uPlot.min.css')).headers['content-type']).toMatch(/text\/css/);
    expect((await app.inject('/vendor/secrets.txt')).statusCode).toBe(404);
    expect((await app.inject('/console/../package.json')).statusCode).toBe(404);
  });

  it('tells the caller its role, never with a Basic prompt to the console', async () => {
    const who = async (headers: Record<string, string>) => {
      const r = await app.inject({ url: '/api/console/session', headers });
      return { status: r.statusCode, body: r.json(), prompt: r.headers['www-authenticate'] };
    };
    expect((await who({})).body).toMatchObject({ user: null, role: null, adminConfigured: true });
    expect((await who(admin)).body).toMatchObject({ user: ADMIN.user, role: 'admin' });
    expect((await who(reader)).body).toMatchObject({ user: READER.user, role: 'read-only' });
    const wrong = await who({ ...basic(ADMIN.user, 'nope'), 'x-keel-console': '1' });
    expect(wrong.status).toBe(401);
    expect(wrong.prompt).toBeUndefined();
    // The console's 401s from the API carry no WWW-Authenticate either; other clients' do.
    const purge = { method: 'DELETE' as const, url: '/api/queues/q/messages' };
    expect(
      (await app.inject({ ...purge, headers: { 'x-keel-console': '1' } })).headers['www-authenticate'],
    ).toBeUndefined();
    expect((await app.inject(purge)).headers['www-authenticate']).toMatch(/^Basic/);
  });

  it('refuses cross-site state changes (CSRF) and lets same-origin and non-browser ones through', async () => {
    const host = { host: '127.0.0.1:8161' };
    const purge = (headers: Record<string, string>) =>
      app.inject({
        method: 'DELETE',
        url: '/api/queues/q/messages',
        headers: { ...admin, ...host, ...headers },
      });
    const evil = await purge({ origin: 'http://evil.example' });
    expect(evil.statusCode).toBe(403);
    expect(evil.json()).toMatchObject({
      code: 'NOT_AUTHORIZED',
      message: expect.stringMatching(/cross-site/),
    });
    expect((await purge({ 'sec-fetch-site': 'cross-site' })).statusCode).toBe(403);
    expect((await purge({ 'sec-fetch-site': 'same-site' })).statusCode).toBe(403);
    // Same origin and no Origin at all (curl, the CLI) reach the route (404: no such queue).
    expect(
      (await purge({ origin: 'http://127.0.0.1:8161', 'sec-fetch-site': 'same-origin' })).statusCode,
    ).toBe(404);
    expect((await purge({})).statusCode).toBe(404);
    // Reads are not state changes.
    expect(
      (await app.inject({ url: '/api/queues', headers: { origin: 'http://evil.example', ...host } }))
        .statusCode,
    ).toBe(200);
    expect(crossSiteRefusal('POST', { origin: 'null', host: 'a:1' })).toMatch(/not a URL/);
  });

  it('copies a message (the original stays) and publishes to a topic; the slave refuses both', async () => {
    expect((await send('orders', 'one')).statusCode).toBe(201);
    const browse = await app.inject('/api/queues/orders/messages');
    const id = browse.json().messages[0].id as string;
    const copy = await app.inject({
      method: 'POST',
      url: `/api/queues/orders/messages/${id}/copy`,
      headers: { ...admin, ...json },
      payload: { to: 'orders.copy' },
    });
    expect(copy.statusCode).toBe(201);
    expect(copy.json()).toMatchObject({ from: 'orders', to: 'orders.copy' });
    expect(copy.json().messageId).not.toBe(id);
    const copied = (await app.inject('/api/queues/orders.copy/messages')).json().messages;
    expect(copied.map((m: { bodyPreview: string }) => m.bodyPreview)).toEqual(['one']);
    expect((await app.inject('/api/queues/orders')).json().depth).toBe(1);
    const missing = await app.inject({
      method: 'POST',
      url: '/api/queues/orders/messages/999999/copy',
      headers: { ...admin, ...json },
      payload: { to: 'x' },
    });
    expect(missing.json().code).toBe('UNKNOWN_MESSAGE');
    const byReader = await app.inject({
      method: 'POST',
      url: `/api/queues/orders/messages/${id}/copy`,
      headers: { ...reader, ...json },
      payload: { to: 'x' },
    });
    expect(byReader.statusCode).toBe(403);

    const publish = await app.inject({
      method: 'POST',
      url: '/api/topics/prices/messages',
      headers: { ...admin, ...json },
      payload: { body: 'p' },
    });
    expect(publish.statusCode).toBe(201);
    expect(publish.json().destination).toBe('topic://prices');
    const onSlave = await slaveApp.inject({
      method: 'POST',
      url: '/api/topics/prices/messages',
      headers: { ...admin, ...json },
      payload: { body: 'p' },
    });
    expect(onSlave.statusCode).toBe(409);
  });

  it('reports the store health with the Postgres hosts', async () => {
    const r = await app.inject('/api/store');
    expect(r.statusCode).toBe(200);
    expect(r.json()).toMatchObject({
      postgres: [],
      deadRows: { keel_messages: 12 },
      tableBytes: { keel_messages: 81920 },
      oldestTransactionAgeSeconds: 1.5,
    });
  });
});

describe('console stream', () => {
  it('sends a snapshot, then deltas with only what changed, a tick apart', async () => {
    const db = new MemoryDatabase();
    const master = await masterNode(db);
    const started = await startAdminServer(master.ctx, {
      ...authOptions,
      host: '127.0.0.1',
      port: 0,
      consoleStream: { intervalMs: 100 },
    });
    try {
      const res = await fetch(`${started.url}/api/stream`);
      expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
      const events = sseReader(res.body as ReadableStream<Uint8Array>);
      const first = await events.next();
      expect(first.event).toBe('snapshot');
      expect(first.data.node).toMatchObject({ name: 'node-a', role: 'master', readOnly: false });
      expect(first.data.cluster.nodes.map((n: { name: string }) => n.name)).toEqual(['node-a', 'node-b']);
      expect(first.data.store.deadRows.keel_messages).toBe(12);
      const t0 = first.data.at as number;
      await master.broker!.sendInternal({
        destination: 'queue://live',
        persistent: true,
        priority: 4,
        timestamp: Date.now(),
        expiration: 0,
        properties: {},
        body: Buffer.from('x'),
      });
      let delta: { event: string; data: any };
      do delta = await events.next();
      while (!delta.data.lists?.queues);
      expect(delta.event).toBe('delta');
      expect(delta.data.lists.queues.upsert).toEqual([expect.objectContaining({ name: 'live', depth: 1 })]);
      // Unchanged sections are not sent (the fixture's node and cluster change every call).
      expect(delta.data.set.consumers).toBeUndefined();
      expect(delta.data.lists.topics).toBeUndefined();
      expect(delta.data.at - t0).toBeLessThan(2000);
      await events.cancel();
    } finally {
      await started.app.close();
      await master.stop();
    }
  });

  it('diffs by name: an unchanged snapshot is empty, a gone queue is removed', () => {
    const base: ConsoleSnapshot = {
      at: 1,
      node: { name: 'a' },
      cluster: { cluster: 'c', master: 'a', epoch: 1, nodes: [], takeovers: [] },
      queues: [q('x', 1), q('y', 2)],
      topics: [],
      subscriptions: [],
      connections: [],
      consumers: [],
      bridges: [],
      store: null,
      errors: {},
    };
    expect(isEmptyDelta(diffSnapshots(base, { ...base, at: 2 }))).toBe(true);
    const next = { ...base, at: 2, queues: [q('x', 5)], cluster: { ...base.cluster, master: 'b' } };
    const d = diffSnapshots(base, next);
    expect(d.lists.queues).toEqual({ upsert: [q('x', 5)], remove: ['y'] });
    expect(d.set).toEqual({ cluster: next.cluster });
  });
});

function q(name: string, depth: number) {
  return {
    name,
    temporary: false,
    depth,
    enqueued: depth,
    dequeued: 0,
    expired: 0,
    deadLettered: 0,
    consumers: 0,
    inflight: 0,
    oldestMessageAt: null,
  };
}
