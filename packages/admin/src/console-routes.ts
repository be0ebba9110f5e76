import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import fastifyStatic from '@fastify/static';
import type { Broker } from '@keel/core';
import { KeelError, type Message } from '@keel/protocol';
import type { FastifyPluginAsync } from 'fastify';
import { type AdminAuth, parseBasic } from './admin-auth';
import type { AdminContext } from './admin-context';
import * as S from './admin-schemas';
import type { SendBody } from './admin-server';
import { ConsoleStream, type ConsoleStreamOptions } from './console-stream';

/** The console's own files (packages/admin/console), beside src/ and dist/. */
export const CONSOLE_DIR = path.resolve(__dirname, '..', 'console');

/** Third-party browser modules the console loads, served from the installed packages (no CDN). */
const VENDOR_FILES: Record<string, { pkg: string; file: string; type: string }> = {
  'preact.mjs': { pkg: 'preact', file: 'dist/preact.mjs', type: 'text/javascript' },
  'hooks.mjs': { pkg: 'preact', file: 'hooks/dist/hooks.mjs', type: 'text/javascript' },
  'htm.mjs': { pkg: 'htm', file: 'dist/htm.mjs', type: 'text/javascript' },
  'uPlot.esm.js': { pkg: 'uplot', file: 'dist/uPlot.esm.js', type: 'text/javascript' },
  'uPlot.min.css': { pkg: 'uplot', file: 'dist/uPlot.min.css', type: 'text/css' },
};

/** A package's directory: up from its main file to the package.json (not every package exports it). */
function packageDir(pkg: string): string {
  let dir = path.dirname(require.resolve(pkg));
  while (!existsSync(path.join(dir, 'package.json')) && path.dirname(dir) !== dir) dir = path.dirname(dir);
  return dir;
}

/** Vendor file name -> its path on disk, resolved once (a missing package fails at start, not per request). */
function vendorPaths(): Map<string, string> {
  return new Map(
    Object.entries(VENDOR_FILES).map(([name, v]) => [name, path.join(packageDir(v.pkg), v.file)]),
  );
}

/** The index page and its Content-Security-Policy (the inline import map allowed by its hash). */
function indexPage(): { html: string; csp: string } {
  const html = readFileSync(path.join(CONSOLE_DIR, 'index.html'), 'utf8');
  const hashes = [...html.matchAll(/<script type="importmap">([\s\S]*?)<\/script>/g)].map(
    (m) =>
      `'sha256-${createHash('sha256')
        .update(m[1] as string)
        .digest('base64')}'`,
  );
  const csp = [
    "default-src 'self'",
    `script-src 'self' ${hashes.join(' ')}`,
    "style-src 'self'",
    "img-src 'self' data:",
    "connect-src 'self'",
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
  ].join('; ');
  return { html, csp };
}

const numberMap = { type: 'object', additionalProperties: { type: 'number' } } as const;

const consoleSessionReply = {
  type: 'object',
  required: ['user', 'role', 'adminConfigured', 'readAuth', 'node'],
  properties: {
    user: { type: ['string', 'null'] },
    role: { type: ['string', 'null'], enum: ['admin', 'read-only', null] },
    adminConfigured: { type: 'boolean' },
    readAuth: { type: 'boolean' },
    node: { type: 'string' },
  },
} as const;

const storeReply = {
  type: 'object',
  required: ['postgres', 'deadRows', 'tableBytes', 'oldestTransactionAgeSeconds'],
  properties: {
    postgres: {
      type: 'array',
      items: {
        type: 'object',
        properties: {
          name: { type: 'string' },
          target: { type: 'string' },
          hosts: { type: 'array', items: { type: 'string' } },
          current: { type: ['string', 'null'] },
          rejected: { type: 'object', additionalProperties: { type: 'string' } },
        },
      },
    },
    deadRows: numberMap,
    liveRows: numberMap,
    tableBytes: numberMap,
    oldestTransactionAgeSeconds: { type: ['number', 'null'] },
  },
} as const;

export interface ConsoleRoutesOptions {
  ctx: AdminContext;
  auth: AdminAuth;
  /** The serving broker, or a NOT_MASTER error naming the master (admin-server's). */
  master: () => Broker;
  /** A SendBody to a Message (admin-server's, with its checks). */
  toMessage: (destination: string, body: SendBody) => Message;
  stream?: ConsoleStreamOptions;
}

/**
 * The web console (issue #24) and the routes only it needed: `/` and its assets, the live stream
 * `/api/stream`, who the caller is, the store's health, copy a message, send to a topic.
 * Registered inside the admin routes, so the same auth hook and error handler apply.
 */
export function consoleRoutes(o: ConsoleRoutesOptions): FastifyPluginAsync {
  return async (app) => {
    const { ctx, auth } = o;
    const errors = { '4xx': S.errorReply, '5xx': S.errorReply };
    const readSecurity = auth.readAuth ? [{ basicAuth: [] }] : undefined;
    const adminSecurity = [{ basicAuth: [] }];
    const read = { config: { access: 'read' as const } };
    const change = { config: { access: 'admin' as const } };
    const index = indexPage();
    const vendor = vendorPaths();
    const stream = new ConsoleStream(ctx, o.stream);
    app.addHook('preClose', async () => stream.close());

    await app.register(fastifyStatic, { root: CONSOLE_DIR, prefix: '/console/', index: false });

    app.get('/', { schema: { hide: true } }, async (_request, reply) =>
      reply
        .type('text/html; charset=utf-8')
        .header('content-security-policy', index.csp)
        .header('cache-control', 'no-cache')
        .header('x-content-type-options', 'nosniff')
        .header('referrer-policy', 'no-referrer')
        .send(index.html),
    );

    app.get<{ Params: { file: string } }>(
      '/vendor/:file',
      { schema: { hide: true } },
      async (request, reply) => {
        const file = vendor.get(request.params.file);
        if (!file) return reply.callNotFound();
        const type = VENDOR_FILES[request.params.file]?.type ?? 'application/octet-stream';
        return reply.type(type).sendFile(path.basename(file), path.dirname(file));
      },
    );

    app.get(
      '/api/console/session',
      {
        schema: {
          tags: ['console'],
          summary:
            'Who the caller is: the role of the given Basic credentials (401 when wrong), whether an admin exists, whether reads need credentials.',
          response: { 200: consoleSessionReply, ...errors },
        },
      },
      async (request, reply) => {
        const header = request.headers.authorization;
        const base = {
          adminConfigured: auth.adminConfigured,
          readAuth: auth.readAuth,
          node: ctx.node().name,
        };
        if (!header) return { ...base, user: null, role: null };
        // `admin` access tells the roles apart: ok for admin, 403 for read-only, 401 for neither.
        const decision = await auth.check('admin', header);
        if (decision.ok) return { ...base, user: decision.user, role: 'admin' };
        // 403: the credentials are right, the role is read-only.
        if (decision.status === 403)
          return { ...base, user: parseBasic(header)?.user ?? null, role: 'read-only' };
        return reply
          .code(401)
          .send({ statusCode: 401, error: 'Unauthorized', code: decision.code, message: decision.message });
      },
    );

    app.get(
      '/api/stream',
      {
        ...read,
        schema: {
          tags: ['console'],
          summary:
            'Server-sent events: a `snapshot` of the node (cluster, queues, topics, connections, consumers, bridges, store) and then a `delta` a second.',
          security: readSecurity,
          produces: ['text/event-stream'],
          response: {
            200: {
              description: 'text/event-stream: `snapshot` and `delta` events (JSON data)',
              type: 'string',
            },
            ...errors,
          },
        },
      },
      async (request, reply) => {
        reply.hijack();
        reply.raw.writeHead(200, {
          'content-type': 'text/event-stream; charset=utf-8',
          'cache-control': 'no-store',
          connection: 'keep-alive',
          'x-accel-buffering': 'no',
        });
        reply.raw.write(': keel console stream\nretry: 1000\n\n');
        stream.subscribe(reply.raw);
        request.log.debug({ listeners: stream.listeners }, 'console stream opened');
      },
    );

    app.get(
      '/api/store',
      {
        ...read,
        schema: {
          tags: ['broker'],
          summary:
            'The store as Postgres sees it: hosts per pool, table sizes, dead and live rows, the oldest open transaction (what holds back xmin and VACUUM).',
          security: readSecurity,
          response: { 200: storeReply, ...errors },
        },
      },
      async () => {
        const health = await ctx.storeHealth();
        return { postgres: ctx.node().postgres ?? [], ...health };
      },
    );

    app.post<{ Params: { name: string; id: string }; Body: { to: string } }>(
      '/api/queues/:name/messages/:id/copy',
      {
        ...change,
        schema: {
          tags: ['queues'],
          summary: 'Copy a pending message to another queue (a new message; the original stays).',
          security: adminSecurity,
          params: S.messageParams,
          body: S.moveBody,
          response: { 201: S.moveReply, ...errors },
        },
      },
      async (request, reply) => {
        const { name, id } = request.params;
        const to = request.body.to;
        const b = o.master();
        const original = await findPending(b, name, id);
        if (!original)
          throw new KeelError('UNKNOWN_MESSAGE', `message ${id} is not pending on queue ${name}`);
        // A new message: the broker gives it an id; no producer identity, so no duplicate check hits.
        const { messageId: _m, producerId: _p, producerSeq: _s, brokerPath: _b, ...rest } = original;
        const result = await b.sendInternal({ ...rest, destination: `queue://${to}` });
        request.log.info({ from: name, to, messageId: id, copy: result.messageId }, 'message copied');
        return reply.code(201).send({ messageId: result.messageId, from: name, to });
      },
    );

    app.post<{ Params: { name: string }; Body: SendBody }>(
      '/api/topics/:name/messages',
      {
        ...change,
        schema: {
          tags: ['topics'],
          summary: 'Publish a message to a topic (its current subscribers get it).',
          security: adminSecurity,
          params: S.nameParams,
          body: S.sendBody,
          response: { 201: S.sendReply, ...errors },
        },
      },
      async (request, reply) => {
        const b = o.master();
        const destination = `topic://${request.params.name}`;
        const result = await b.sendInternal(o.toMessage(destination, request.body));
        return reply
          .code(201)
          .send({ messageId: result.messageId, destination, duplicate: result.duplicate });
      },
    );
  };
}

/** A pending message of a queue by id: its stored row, else the first page in memory (non-persistent). */
async function findPending(b: Broker, queue: string, id: string): Promise<Message | null> {
  if (!b.getQueue(queue)) throw new KeelError('UNKNOWN_DESTINATION', `unknown queue ${queue}`);
  const row = await b.store.getMessage(Number(id));
  if (row && row.headers.destination === `queue://${queue}`) return { ...row.headers, body: row.body };
  const page = await b.browseQueue(queue, 1000, 0);
  return page.find((m) => m.id === id)?.message ?? null;
}
