/**
 * Issue #23.4: every route of the admin API's OpenAPI document, walked with no credentials, wrong
 * credentials and read-only credentials: each state-changing route refuses all three (401, 401,
 * 403), and no state-changing route is missing from the document or open. Then the rate limit on
 * failed logins (429 LOGIN_THROTTLED) and the audit line of every change.
 */
import type { FastifyInstance, HTTPMethods } from 'fastify';
import {
  ADMIN,
  authOptions,
  basic,
  MemoryDatabase,
  masterNode,
  READER,
  RecordingLogger,
  type TestNode,
} from './__tests__/admin-fixtures';
import { ADMIN_AUDIT_MESSAGE, type AdminAuditRecord } from './admin-audit';
import { buildAdminServer } from './admin-server';

const SAFE = new Set(['GET', 'HEAD', 'OPTIONS']);

interface Operation {
  method: HTTPMethods;
  /** The OpenAPI path with its parameters filled in. */
  url: string;
  path: string;
}

/** `/api/queues/{name}/messages/{id}` → `/api/queues/walk.q/messages/1`. */
function fill(path: string): string {
  return path.replace(/\{([^}]+)\}/g, (_m, p: string) => (p === 'id' ? '1' : `walk.${p}`));
}

async function operations(app: FastifyInstance): Promise<Operation[]> {
  const res = await app.inject({ method: 'GET', url: '/docs/json' });
  expect(res.statusCode).toBe(200);
  const doc = res.json() as { paths: Record<string, Record<string, unknown>> };
  const out: Operation[] = [];
  for (const [path, methods] of Object.entries(doc.paths)) {
    for (const m of Object.keys(methods))
      out.push({ method: m.toUpperCase() as HTTPMethods, url: fill(path), path });
  }
  return out;
}

describe('admin API route access (walks the OpenAPI document)', () => {
  let node: TestNode;
  let app: FastifyInstance;
  const declared: { method: string; url: string; access: string }[] = [];

  beforeAll(async () => {
    node = await masterNode(new MemoryDatabase());
    app = buildAdminServer(node.ctx, { ...authOptions, readAuth: true });
    app.addHook('onRoute', (r) => {
      for (const method of [r.method].flat())
        declared.push({ method, url: r.url, access: r.config?.access ?? 'open' });
    });
    await app.ready();
  });

  afterAll(async () => {
    await app.close();
    await node.stop();
  });

  test('every state-changing route is in the OpenAPI document, needs the admin role and says so', async () => {
    const ops = await operations(app);
    const documented = new Set(ops.map((o) => `${o.method} ${o.path.replace(/\{([^}]+)\}/g, ':$1')}`));
    const changing = declared.filter((r) => !SAFE.has(r.method));
    expect(changing.length).toBeGreaterThan(5);
    for (const r of changing) {
      expect({ route: `${r.method} ${r.url}`, access: r.access }).toEqual({
        route: `${r.method} ${r.url}`,
        access: 'admin',
      });
      expect({ route: `${r.method} ${r.url}`, documented: documented.has(`${r.method} ${r.url}`) }).toEqual({
        route: `${r.method} ${r.url}`,
        documented: true,
      });
    }
  });

  test('no, wrong and read-only credentials: every change refused, every read needs a user', async () => {
    const ops = await operations(app);
    const changes = ops.filter((o) => !SAFE.has(o.method));
    // Reads that need a user with readAuth on (open routes — probes, the console's session — do not).
    const readRoutes = new Set(
      declared.filter((r) => r.access === 'read').map((r) => `${r.method} ${r.url}`),
    );
    const reads = ops.filter(
      (o) => SAFE.has(o.method) && readRoutes.has(`${o.method} ${o.path.replace(/\{([^}]+)\}/g, ':$1')}`),
    );
    expect(reads.length).toBeGreaterThan(5);
    expect(changes.length).toBeGreaterThan(5);
    const results: string[] = [];
    const call = async (o: Operation, headers: Record<string, string>) => {
      const res = await app.inject({
        method: o.method,
        url: o.url,
        headers,
        remoteAddress: `10.1.${results.length % 250}.1`,
      });
      const json = res.headers['content-type']?.toString().includes('json');
      return { status: res.statusCode, code: json ? (res.json() as { code?: string }).code : undefined };
    };
    for (const o of changes) {
      const none = await call(o, {});
      const wrong = await call(o, basic(ADMIN.user, 'wrong'));
      const reader = await call(o, basic(READER.user, READER.password));
      results.push(`${o.method} ${o.path}: ${none.status} ${wrong.status} ${reader.status} ${reader.code}`);
      expect({ op: `${o.method} ${o.path}`, none, wrong, reader }).toEqual({
        op: `${o.method} ${o.path}`,
        none: { status: 401, code: 'AUTH_FAILED' },
        wrong: { status: 401, code: 'AUTH_FAILED' },
        reader: { status: 403, code: 'NOT_AUTHORIZED' },
      });
    }
    for (const o of reads) {
      const none = await call(o, {});
      const wrong = await call(o, basic(READER.user, 'wrong'));
      expect({ op: `${o.method} ${o.path}`, none: none.status, wrong: wrong.status }).toEqual({
        op: `${o.method} ${o.path}`,
        none: 401,
        wrong: 401,
      });
      // A server-sent-event stream never ends: its reader answer is not awaited here.
      if (o.path === '/api/stream') continue;
      const reader = await call(o, basic(READER.user, READER.password));
      expect([401, 403]).not.toContain(reader.status);
    }
  });
});

describe('admin API login rate limit and audit', () => {
  let node: TestNode;
  let app: FastifyInstance;
  const logger = new RecordingLogger();

  beforeAll(async () => {
    node = await masterNode(new MemoryDatabase());
    app = buildAdminServer(node.ctx, {
      ...authOptions,
      logger,
      loginThrottle: { freeFailures: 3, baseDelayMs: 60_000 },
    });
    await app.ready();
  });

  afterAll(async () => {
    await app.close();
    await node.stop();
  });

  const audits = (): AdminAuditRecord[] =>
    logger.entries
      .filter((e) => e.msg === ADMIN_AUDIT_MESSAGE)
      .map((e) => (e.obj as { audit: AdminAuditRecord }).audit);

  test('failed logins from one address are throttled (429, retry-after), even with the right password then', async () => {
    const purge = (headers: Record<string, string>, remoteAddress: string) =>
      app.inject({ method: 'DELETE', url: '/api/queues/rl.q/messages', headers, remoteAddress });
    const statuses: number[] = [];
    for (let i = 0; i < 5; i++)
      statuses.push((await purge(basic(ADMIN.user, `guess${i}`), '10.9.9.9')).statusCode);
    // Three free failures; the fourth blocks the address.
    expect(statuses).toEqual([401, 401, 401, 401, 429]);
    const right = await purge(basic(ADMIN.user, ADMIN.password), '10.9.9.9');
    expect(right.statusCode).toBe(429);
    expect(right.json()).toMatchObject({ code: 'LOGIN_THROTTLED' });
    expect(Number(right.headers['retry-after'])).toBeGreaterThan(0);
    // Another address is not affected.
    expect((await purge(basic(ADMIN.user, ADMIN.password), '10.9.9.10')).statusCode).not.toBe(429);
  });

  test('an audit line (who, what, when, target, outcome) for every change, done or refused; none for reads', async () => {
    const before = audits().length;
    await node.broker!.ensureQueue({ type: 'queue', name: 'audit.q' });
    const done = await app.inject({
      method: 'DELETE',
      url: '/api/queues/audit.q/messages',
      headers: basic(ADMIN.user, ADMIN.password),
      remoteAddress: '10.2.2.2',
    });
    expect(done.statusCode).toBeLessThan(300);
    const refused = await app.inject({
      method: 'DELETE',
      url: '/api/queues/audit.q',
      headers: basic(READER.user, READER.password),
      remoteAddress: '10.2.2.3',
    });
    expect(refused.statusCode).toBe(403);
    await app.inject({ method: 'GET', url: '/api/queues', remoteAddress: '10.2.2.2' });
    const lines = audits().slice(before);
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatchObject({
      user: ADMIN.user,
      address: '10.2.2.2',
      action: 'DELETE /api/queues/:name/messages',
      target: { name: 'audit.q' },
      outcome: 'done',
    });
    expect(Date.parse(lines[0]!.at)).toBeGreaterThan(Date.now() - 60_000);
    expect(lines[1]).toMatchObject({
      user: null,
      claimedUser: READER.user,
      action: 'DELETE /api/queues/:name',
      target: { name: 'audit.q' },
      status: 403,
      outcome: 'refused',
    });
  });
});
