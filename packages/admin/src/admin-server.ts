import type { SecureContextOptions } from 'node:tls';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import { type Broker, type ConnectionSummary, checkActiveMqSend, scheduledJobInfo } from '@keel/core';
import {
  InvalidArgumentError,
  KeelError,
  MAX_DESTINATION_NAME_LENGTH,
  type Message,
  NotMasterError,
  type Properties,
} from '@keel/protocol';
import Fastify, {
  type FastifyError,
  type FastifyInstance,
  type FastifyPluginAsync,
  type FastifyReply,
} from 'fastify';
import { registerAdminAudit, setAuditUser } from './admin-audit';
import { ADMIN_AUTH_REALM, AdminAuth, type AdminAuthOptions, type RouteAccess } from './admin-auth';
import type { AdminContext, QueueView } from './admin-context';
import * as S from './admin-schemas';
import { registerBrowserGuards } from './browser-guards';
import { consoleRoutes } from './console-routes';
import type { ConsoleStreamOptions } from './console-stream';
import { type AdminLogger, fastifyLogger } from './fastify-logger';
import { KeelMetrics } from './keel-metrics';
import { messageView } from './message-view';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Who may call the route (see RouteAccess); absent means open. */
    access?: RouteAccess;
  }
}

export const DEFAULT_ADMIN_HOST = '127.0.0.1';
/** ActiveMQ's web console port. */
export const DEFAULT_ADMIN_PORT = 8161;
/** Request bodies: a 4 MiB message in base64 fits. */
export const DEFAULT_ADMIN_BODY_LIMIT_BYTES = 8 * 1024 * 1024;

export interface AdminServerOptions extends AdminAuthOptions {
  /** Request logs and errors go here (a pino logger or the core Logger). Silent when absent. */
  logger?: AdminLogger;
  /** Shown in the OpenAPI document; defaults to ctx.node().version. */
  version?: string;
  /** The server's metrics (it feeds them from the broker); a fresh KeelMetrics when absent. */
  metrics?: KeelMetrics;
  bodyLimitBytes?: number;
  /** The web console's live stream (tick interval). */
  consoleStream?: ConsoleStreamOptions;
  /** Serve https with these (the node's certificate and key); plain http when absent. */
  https?: SecureContextOptions;
}

export interface ListenOptions {
  host?: string;
  /** 0: any free port. */
  port?: number;
}

export interface StartedAdminServer {
  app: FastifyInstance;
  /** `http://host:port` actually bound. */
  url: string;
}

/** HTTP status for an error code (codes in docs/errors.md). */
const STATUS_BY_CODE: Record<string, number> = {
  INVALID_ARGUMENT: 400,
  NOT_SUPPORTED: 400,
  PROTOCOL_ERROR: 400,
  AUTH_FAILED: 401,
  NOT_AUTHORIZED: 403,
  NOT_FOUND: 404,
  UNKNOWN_DESTINATION: 404,
  UNKNOWN_MESSAGE: 404,
  UNKNOWN_SCHEDULED_JOB: 404,
  UNKNOWN_CONSUMER: 404,
  NOT_MASTER: 409,
  FENCED: 409,
  DESTINATION_IN_USE: 409,
  RESOURCE_LIMIT: 413,
  NOT_IMPLEMENTED: 501,
  STORE_UNAVAILABLE: 503,
  TIMEOUT: 503,
};

const REASONS: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  409: 'Conflict',
  413: 'Payload Too Large',
  429: 'Too Many Requests',
  415: 'Unsupported Media Type',
  500: 'Internal Server Error',
  501: 'Not Implemented',
  503: 'Service Unavailable',
};

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/**
 * Build the admin API (not listening): REST under /api, /healthz, /readyz, /metrics and OpenAPI
 * at /docs. Reads answer from the broker on the serving master and from the store elsewhere
 * (marked readOnly); changes need the admin role and a serving master (409 naming the master).
 */
export function buildAdminServer(ctx: AdminContext, options: AdminServerOptions = {}): FastifyInstance {
  const auth = new AdminAuth(options);
  const metrics = options.metrics ?? new KeelMetrics();
  if (metrics.boundContext !== ctx) metrics.bindContext(ctx);
  const bodyLimit = options.bodyLimitBytes ?? DEFAULT_ADMIN_BODY_LIMIT_BYTES;
  if (!Number.isInteger(bodyLimit) || bodyLimit < 1024) {
    throw new InvalidArgumentError(`bodyLimitBytes must be an integer >= 1024 (got ${bodyLimit})`);
  }

  const app = Fastify({
    ...(options.https ? ({ https: options.https } as object) : {}),
    ...(options.logger ? { loggerInstance: fastifyLogger(options.logger) } : { logger: false }),
    bodyLimit,
    // Percent-encoded destination names may be up to 3 bytes per character.
    routerOptions: { maxParamLength: MAX_DESTINATION_NAME_LENGTH * 3 },
    // Unknown properties are refused (400), not silently dropped.
    ajv: {
      customOptions: {
        removeAdditional: false,
        coerceTypes: 'array',
        useDefaults: true,
        allErrors: false,
        allowUnionTypes: true,
      },
    },
    schemaErrorFormatter: (errors, dataVar) =>
      new Error(errors.map((e) => describeSchemaError(dataVar, e)).join('; ')),
  });

  app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'Keel admin API',
        description:
          'Inspect and manage a Keel broker node. State-changing routes need HTTP Basic credentials of the admin role ' +
          'and answer 409 on a node that is not the serving master.',
        version: options.version ?? ctx.node().version,
      },
      components: { securitySchemes: { basicAuth: { type: 'http', scheme: 'basic' } } },
    },
  });
  app.register(swaggerUi, { routePrefix: '/docs' });
  registerAdminAudit(app); // who changed what, when (issue #23.4): admin-audit.ts
  registerBrowserGuards(app); // CSRF: cross-site state changes refused (browser-guards.ts)
  app.register(adminRoutes(ctx, auth, metrics, options.consoleStream));
  return app;
}

/** Build the admin API and listen (default 127.0.0.1:8161). */
export async function startAdminServer(
  ctx: AdminContext,
  options: AdminServerOptions & ListenOptions = {},
): Promise<StartedAdminServer> {
  const app = buildAdminServer(ctx, options);
  try {
    await app.listen({ host: options.host ?? DEFAULT_ADMIN_HOST, port: options.port ?? DEFAULT_ADMIN_PORT });
  } catch (err) {
    await app.close();
    throw err;
  }
  const addr = app.server.address();
  const url =
    addr && typeof addr === 'object'
      ? `${options.https ? 'https' : 'http'}://${addr.family === 'IPv6' ? `[${addr.address}]` : addr.address}:${addr.port}`
      : String(addr);
  return { app, url };
}

interface NameParams {
  name: string;
}
interface MessageParams {
  name: string;
  id: string;
}
interface BrowseQuery {
  limit: number;
  offset: number;
  previewBytes: number;
}
export interface SendBody {
  body: string;
  encoding: 'utf8' | 'base64';
  persistent: boolean;
  priority: number;
  timeToLiveMs: number;
  correlationId?: string;
  replyTo?: string;
  type?: string;
  properties?: Properties;
}

function adminRoutes(
  ctx: AdminContext,
  auth: AdminAuth,
  metrics: KeelMetrics,
  consoleStream?: ConsoleStreamOptions,
): FastifyPluginAsync {
  return async (app) => {
    const errors = { '4xx': S.errorReply, '5xx': S.errorReply };
    const readSecurity = auth.readAuth ? [{ basicAuth: [] }] : undefined;
    const adminSecurity = [{ basicAuth: [] }];
    const read = { config: { access: 'read' as const } };
    const change = { config: { access: 'admin' as const } };

    /** The broker when this node is the serving master, else null (answer from the store). */
    const serving = (): Broker | null => {
      const b = ctx.broker();
      return b?.isRunning ? b : null;
    };
    /** The cluster's current epoch (a slave reads it from the store; issue #18.3). */
    const clusterEpoch = (): Promise<number> => ctx.clusterEpoch?.() ?? Promise.resolve(ctx.node().epoch);
    /** The serving broker, or a 409 naming the master. */
    const master = (): Broker => {
      const b = serving();
      if (b) return b;
      const n = ctx.node();
      throw new NotMasterError(
        `node ${n.name} is not the serving master (role ${n.role}), its admin API is read-only: ` +
          (n.lockHolder && n.lockHolder !== n.name
            ? `send changes to the master ${n.lockHolder}`
            : 'no master is known at the moment'),
      );
    };
    const notFound = (what: string): KeelError => new KeelError('UNKNOWN_DESTINATION', `unknown ${what}`);

    app.addHook('onRequest', async (request, reply) => {
      const access = request.routeOptions.config?.access ?? 'open';
      const decision = await auth.check(access, request.headers.authorization, request.ip);
      if (decision.ok) {
        setAuditUser(request, decision.user);
        return;
      }
      if (decision.status === 401)
        reply.header('www-authenticate', `Basic realm="${ADMIN_AUTH_REALM}", charset="UTF-8"`);
      if (decision.retryAfterMs !== undefined)
        reply.header('retry-after', String(Math.ceil(decision.retryAfterMs / 1000)));
      request.log.info({ access, status: decision.status }, 'admin request refused');
      return reply.code(decision.status).send({
        statusCode: decision.status,
        error: REASONS[decision.status],
        code: decision.code,
        message: decision.message,
      });
    });

    app.setErrorHandler((err: FastifyError | KeelError, request, reply) =>
      sendError(ctx, err, request.log, reply),
    );
    app.setNotFoundHandler((request, reply) =>
      reply.code(404).send({
        statusCode: 404,
        error: 'Not Found',
        code: 'NOT_FOUND',
        message: `no route ${request.method} ${request.url}`,
      }),
    );

    // ----- probes and metrics -----------------------------------------------------------------

    app.get(
      '/healthz',
      { schema: { tags: ['health'], summary: 'The process is alive.', response: { 200: S.healthReply } } },
      async () => {
        const n = ctx.node();
        return { status: 'ok', role: n.role, node: n.name };
      },
    );

    app.get(
      '/readyz',
      {
        schema: {
          tags: ['health'],
          summary: 'Ready to serve clients: 200 only on the serving master, 503 otherwise.',
          response: { 200: S.healthReply, 503: S.healthReply },
        },
      },
      async (_request, reply) => {
        const n = ctx.node();
        const ready = n.role === 'master' && serving() !== null;
        return reply
          .code(ready ? 200 : 503)
          .send({ status: ready ? 'ready' : 'not ready', role: n.role, node: n.name });
      },
    );

    app.get(
      '/metrics',
      {
        ...read,
        schema: {
          tags: ['health'],
          summary: 'Prometheus metrics (text exposition format).',
          security: readSecurity,
          response: { 200: { type: 'string' }, ...errors },
        },
      },
      async (_request, reply) => {
        const text = await metrics.scrape();
        return reply.type(metrics.contentType).send(text);
      },
    );

    // ----- broker and cluster -------------------------------------------------------------------

    app.get(
      '/api/broker',
      {
        ...read,
        schema: {
          tags: ['broker'],
          summary: 'This node: role, epoch, lock holder, listeners.',
          security: readSecurity,
          response: { 200: S.brokerReply, ...errors },
        },
      },
      async () => {
        const n = ctx.node();
        return {
          name: n.name,
          cluster: n.cluster,
          role: n.role,
          epoch: await clusterEpoch(),
          nodeEpoch: n.nodeEpoch ?? null,
          startedAt: n.startedAt.toISOString(),
          uptimeSeconds: Math.max(0, (Date.now() - n.startedAt.getTime()) / 1000),
          version: n.version,
          lockHolder: n.lockHolder,
          ...(n.locker ? { locker: n.locker } : {}),
          readOnly: serving() === null,
          listeners: n.listeners,
          postgres: n.postgres ?? [],
        };
      },
    );

    app.get<{ Querystring: { limit: number } }>(
      '/api/cluster',
      {
        ...read,
        schema: {
          tags: ['broker'],
          summary: 'The nodes this node knows of and the takeover history (newest first).',
          security: readSecurity,
          querystring: S.takeoverQuery,
          response: { 200: S.clusterReply, ...errors },
        },
      },
      async (request) => {
        const n = ctx.node();
        const [nodes, takeovers] = await Promise.all([
          ctx.clusterNodes(),
          ctx.takeovers(request.query.limit),
        ]);
        return {
          cluster: n.cluster,
          master: n.lockHolder,
          epoch: await clusterEpoch(),
          nodes: nodes.map((x) => ({
            name: x.name,
            role: x.role,
            lastSeen: x.lastSeen ? x.lastSeen.toISOString() : null,
          })),
          takeovers: takeovers.map((t) => ({
            node: t.node,
            epoch: t.epoch,
            reason: t.reason,
            at: t.at.toISOString(),
          })),
        };
      },
    );

    app.post(
      '/api/broker/handover',
      {
        ...change,
        schema: {
          tags: ['broker'],
          summary: 'Give up the master lock so that another node takes over (master only).',
          security: adminSecurity,
          response: { 200: S.handoverReply, ...errors },
        },
      },
      async () => {
        master();
        if (!ctx.handover) throw new KeelError('NOT_IMPLEMENTED', 'this node does not support handover');
        await ctx.handover();
        return { node: ctx.node().name, handedOver: true };
      },
    );

    // ----- queues -------------------------------------------------------------------------------

    app.get(
      '/api/queues',
      {
        ...read,
        schema: {
          tags: ['queues'],
          summary: 'Queues with depth, counters, consumers, in-flight and the age of the oldest message.',
          security: readSecurity,
          response: { 200: S.queueListReply, ...errors },
        },
      },
      async () => {
        const b = serving();
        const queues: QueueView[] = b ? b.listQueues() : await ctx.readOnly().listQueues();
        return { readOnly: b === null, queues };
      },
    );

    app.get<{ Params: NameParams }>(
      '/api/queues/:name',
      {
        ...read,
        schema: {
          tags: ['queues'],
          summary: 'One queue.',
          security: readSecurity,
          params: S.nameParams,
          response: { 200: S.queueReply, ...errors },
        },
      },
      async (request) => {
        const b = serving();
        const q = b ? b.getQueue(request.params.name) : await ctx.readOnly().getQueue(request.params.name);
        if (!q) throw notFound(`queue ${request.params.name}`);
        return { readOnly: b === null, ...q };
      },
    );

    app.get<{ Params: NameParams; Querystring: BrowseQuery }>(
      '/api/queues/:name/messages',
      {
        ...read,
        schema: {
          tags: ['queues'],
          summary: 'Browse pending messages in delivery order (never removes them).',
          security: readSecurity,
          params: S.nameParams,
          querystring: S.browseQuery,
          response: { 200: S.browseReply, ...errors },
        },
      },
      async (request) => {
        const { name } = request.params;
        const { limit, offset, previewBytes } = request.query;
        const b = serving();
        const found = b
          ? await b.browseQueue(name, limit, offset)
          : await ctx.readOnly().browse(name, limit, offset);
        if (!found) throw notFound(`queue ${name}`);
        return {
          queue: name,
          readOnly: b === null,
          offset,
          limit,
          messages: found.map((m) => messageView(m, previewBytes)),
        };
      },
    );

    app.post<{ Params: NameParams; Body: SendBody }>(
      '/api/queues/:name/messages',
      {
        ...change,
        schema: {
          tags: ['queues'],
          summary: 'Send a message to a queue (created on first use).',
          security: adminSecurity,
          params: S.nameParams,
          body: S.sendBody,
          response: { 201: S.sendReply, ...errors },
        },
      },
      async (request, reply) => {
        const b = master();
        const destination = `queue://${request.params.name}`;
        const result = await b.sendInternal(toMessage(destination, request.body));
        return reply
          .code(201)
          .send({ messageId: result.messageId, destination, duplicate: result.duplicate });
      },
    );

    app.delete<{ Params: NameParams }>(
      '/api/queues/:name/messages',
      {
        ...change,
        schema: {
          tags: ['queues'],
          summary: 'Purge: remove every pending message not in flight.',
          security: adminSecurity,
          params: S.nameParams,
          response: { 200: S.purgeReply, ...errors },
        },
      },
      async (request) => {
        const b = master();
        const purged = await b.purgeQueue(request.params.name);
        request.log.info({ queue: request.params.name, purged }, 'queue purged');
        return { queue: request.params.name, purged };
      },
    );

    app.delete<{ Params: NameParams }>(
      '/api/queues/:name',
      {
        ...change,
        schema: {
          tags: ['queues'],
          summary: 'Delete a queue and its messages (409 while it has consumers).',
          security: adminSecurity,
          params: S.nameParams,
          response: { 200: S.deletedReply, ...errors },
        },
      },
      async (request) => {
        const b = master();
        await b.deleteQueue(request.params.name);
        request.log.info({ queue: request.params.name }, 'queue deleted');
        return { deleted: `queue://${request.params.name}` };
      },
    );

    app.post<{ Params: MessageParams; Body: { to: string } }>(
      '/api/queues/:name/messages/:id/move',
      {
        ...change,
        schema: {
          tags: ['queues'],
          summary: 'Move a pending message to another queue.',
          security: adminSecurity,
          params: S.messageParams,
          body: S.moveBody,
          response: { 200: S.moveReply, ...errors },
        },
      },
      async (request) => {
        const { name, id } = request.params;
        const to = request.body.to;
        if (to === name) throw new InvalidArgumentError(`body/to must differ from the source queue ${name}`);
        const b = master();
        const messageId = await b.moveMessage(name, id, to);
        request.log.info({ from: name, to, messageId }, 'message moved');
        return { messageId, from: name, to };
      },
    );

    app.post<{ Params: MessageParams }>(
      '/api/queues/:name/messages/:id/retry',
      {
        ...change,
        schema: {
          tags: ['queues'],
          summary: 'Send a dead-lettered message back to its original queue (delivery count reset).',
          security: adminSecurity,
          params: S.messageParams,
          response: { 200: S.moveReply, ...errors },
        },
      },
      async (request) => {
        const { name, id } = request.params;
        const b = master();
        if (!b.getQueue(name)) throw notFound(`queue ${name}`);
        const stored = await b.store.getMessage(Number(id));
        const original = stored?.headers.originalDestination;
        const to = original?.startsWith('queue://') ? original.slice('queue://'.length) : null;
        const messageId = await b.moveMessage(name, id, null);
        request.log.info({ from: name, to, messageId }, 'dead-lettered message retried');
        return { messageId, from: name, to };
      },
    );

    // ----- scheduled delivery (AMQ_SCHEDULED_*; jobs are rows in the store, read on the master) ----

    app.get<{ Querystring: { limit: number; after?: string } }>(
      '/api/scheduled',
      {
        ...read,
        schema: {
          tags: ['scheduled'],
          summary: 'Scheduled-delivery jobs, earliest due first, a page at a time (`next` → `after`).',
          security: readSecurity,
          querystring: S.scheduledQuery,
          response: { 200: S.scheduledListReply, ...errors },
        },
      },
      async (request) => {
        const { limit, after } = request.query;
        const colon = after?.indexOf(':') ?? -1;
        const cursor = after
          ? { nextDue: Number(after.slice(0, colon)), jobId: after.slice(colon + 1) }
          : null;
        const jobs = await master().scheduler.list(cursor, limit);
        const last = jobs[jobs.length - 1];
        return {
          jobs: jobs.map(scheduledJobInfo),
          next: jobs.length === limit && last ? `${last.nextDue}:${last.jobId}` : null,
        };
      },
    );

    app.get<{ Params: { id: string } }>(
      '/api/scheduled/:id',
      {
        ...read,
        schema: {
          tags: ['scheduled'],
          summary: 'One scheduled-delivery job.',
          security: readSecurity,
          params: S.jobParams,
          response: { 200: S.scheduledJob, ...errors },
        },
      },
      async (request) => {
        const job = await master().scheduler.get(request.params.id);
        if (!job) throw new KeelError('UNKNOWN_SCHEDULED_JOB', `unknown scheduled job ${request.params.id}`);
        return scheduledJobInfo(job);
      },
    );

    app.delete<{ Params: { id: string } }>(
      '/api/scheduled/:id',
      {
        ...change,
        schema: {
          tags: ['scheduled'],
          summary: 'Cancel a scheduled-delivery job (no further firing).',
          security: adminSecurity,
          params: S.jobParams,
          response: { 200: S.scheduledCancelReply, ...errors },
        },
      },
      async (request) => {
        const { id } = request.params;
        if (!(await master().scheduler.cancel(id)))
          throw new KeelError('UNKNOWN_SCHEDULED_JOB', `unknown scheduled job ${id}`);
        request.log.info({ jobId: id }, 'scheduled job cancelled');
        return { cancelled: id };
      },
    );

    // ----- topics, subscriptions, connections, consumers ----------------------------------------

    app.get(
      '/api/topics',
      {
        ...read,
        schema: {
          tags: ['topics'],
          summary: 'Topics.',
          security: readSecurity,
          response: { 200: S.topicListReply, ...errors },
        },
      },
      async () => {
        const b = serving();
        return { readOnly: b === null, topics: b ? b.listTopics() : await ctx.readOnly().listTopics() };
      },
    );

    app.get<{ Params: NameParams }>(
      '/api/topics/:name',
      {
        ...read,
        schema: {
          tags: ['topics'],
          summary: 'One topic with its durable subscriptions.',
          security: readSecurity,
          params: S.nameParams,
          response: { 200: S.topicReply, ...errors },
        },
      },
      async (request) => {
        const b = serving();
        const view = b ?? ctx.readOnly();
        const [topics, durables] = await Promise.all([view.listTopics(), view.listDurables()]);
        const t = topics.find((x) => x.name === request.params.name);
        if (!t) throw notFound(`topic ${request.params.name}`);
        return { readOnly: b === null, ...t, subscriptions: durables.filter((d) => d.topic === t.name) };
      },
    );

    app.get(
      '/api/subscriptions',
      {
        ...read,
        schema: {
          tags: ['topics'],
          summary: 'Durable topic subscriptions.',
          security: readSecurity,
          response: { 200: S.durableListReply, ...errors },
        },
      },
      async () => {
        const b = serving();
        return {
          readOnly: b === null,
          subscriptions: b ? b.listDurables() : await ctx.readOnly().listDurables(),
        };
      },
    );

    app.delete<{ Params: { clientId: string; name: string } }>(
      '/api/subscriptions/:clientId/:name',
      {
        ...change,
        schema: {
          tags: ['topics'],
          summary: 'Remove an inactive durable subscription and its pending messages.',
          security: adminSecurity,
          params: S.durableParams,
          response: { 200: S.deletedReply, ...errors },
        },
      },
      async (request) => {
        const { clientId, name } = request.params;
        const b = master();
        const d = b.listDurables().find((x) => x.clientId === clientId && x.name === name);
        if (!d) throw notFound(`durable subscription ${name} of client ${clientId}`);
        if (d.active)
          throw new KeelError(
            'DESTINATION_IN_USE',
            `durable subscription ${name} of client ${clientId} is active`,
          );
        await b.removeDurable(clientId, name);
        request.log.info({ clientId, name }, 'durable subscription removed');
        return { deleted: `${clientId}:${name}` };
      },
    );

    app.get(
      '/api/connections',
      {
        ...read,
        schema: {
          tags: ['clients'],
          summary: 'Client connections (none on a slave).',
          security: readSecurity,
          response: { 200: S.connectionListReply, ...errors },
        },
      },
      async () => {
        const b = serving();
        return { readOnly: b === null, connections: b ? clientConnections(b) : [] };
      },
    );

    app.get(
      '/api/consumers',
      {
        ...read,
        schema: {
          tags: ['clients'],
          summary: 'Consumers (none on a slave).',
          security: readSecurity,
          response: { 200: S.consumerListReply, ...errors },
        },
      },
      async () => {
        const b = serving();
        return { readOnly: b === null, consumers: b ? b.listConsumers() : [] };
      },
    );

    app.get(
      '/api/bridges',
      {
        ...read,
        schema: {
          tags: ['network'],
          summary:
            'Network bridges of this node (networks of brokers): peer, state, messages forwarded, demand.',
          security: readSecurity,
          response: { 200: S.bridgeListReply, ...errors },
        },
      },
      async () => ({ readOnly: serving() === null, bridges: ctx.bridges ? ctx.bridges() : [] }),
    );

    // ----- the web console (console-routes.ts) --------------------------------------------------
    app.register(consoleRoutes({ ctx, auth, master, toMessage, stream: consoleStream }));
  };
}

/** Connections, without the one the broker opens for its own sends (admin sends). */
export function clientConnections(b: Broker): ConnectionSummary[] {
  const own = `${b.nodeName}-internal`;
  return b.listConnections().filter((c) => !(c.protocol === 'internal' && c.clientId === own));
}

export function toMessage(destination: string, body: SendBody): Message {
  if (body.encoding === 'base64' && !BASE64.test(body.body)) {
    throw new InvalidArgumentError('body/body is not valid base64 (encoding is base64)');
  }
  const now = Date.now();
  const message: Message = {
    destination,
    persistent: body.persistent,
    priority: body.priority,
    timestamp: now,
    expiration: body.timeToLiveMs > 0 ? now + body.timeToLiveMs : 0,
    properties: body.properties ?? {},
    body: Buffer.from(body.body, body.encoding === 'base64' ? 'base64' : 'utf8'),
  };
  if (body.correlationId !== undefined) message.correlationId = body.correlationId;
  if (body.replyTo !== undefined) message.replyTo = body.replyTo;
  if (body.type !== undefined) message.type = body.type;
  checkActiveMqSend(message); // NOT_SUPPORTED: message groups, scheduling, ActiveMQ.Statistics.* …
  return message;
}

interface SchemaError {
  instancePath: string;
  keyword: string;
  message?: string;
  params: Record<string, unknown>;
}

/** `querystring/limit must be >= 1`, with friendlier words for our patterns. */
function describeSchemaError(dataVar: string, e: SchemaError): string {
  const where = `${dataVar}${e.instancePath}`;
  if (e.keyword === 'additionalProperties')
    return `${where} has an unknown property "${String(e.params.additionalProperty)}"`;
  if (e.keyword === 'pattern') {
    if (e.params.pattern === S.destinationName.pattern)
      return `${where} must be a destination name without control characters`;
    if (e.params.pattern === S.messageParams.properties.id.pattern)
      return `${where} must be a decimal message id`;
  }
  return `${where} ${e.message ?? 'is invalid'}`;
}

type LogLike = { warn(obj: object, msg?: string): void; error(obj: object, msg?: string): void };

function sendError(
  ctx: AdminContext,
  err: FastifyError | KeelError,
  log: LogLike,
  reply: FastifyReply,
): FastifyReply {
  const fe = err as FastifyError;
  if (fe.validation) {
    return reply
      .code(400)
      .send({ statusCode: 400, error: REASONS[400], code: 'INVALID_ARGUMENT', message: err.message });
  }
  if (KeelError.isInstance(err)) {
    const status = STATUS_BY_CODE[err.code] ?? 500;
    if (status >= 500) log.error({ err, code: err.code }, 'admin request failed');
    const body: Record<string, unknown> = {
      statusCode: status,
      error: REASONS[status] ?? 'Error',
      code: err.code,
      message: err.message,
    };
    if (err.code === 'NOT_MASTER') {
      const n = ctx.node();
      body.master = n.lockHolder && n.lockHolder !== n.name ? n.lockHolder : null;
    }
    return reply.code(status).send(body);
  }
  // fastify's own client errors: bad JSON, wrong content type, body too large ...
  const status =
    typeof fe.statusCode === 'number' && fe.statusCode >= 400 && fe.statusCode < 500 ? fe.statusCode : 500;
  if (status === 500) {
    log.error({ err }, 'admin request failed');
    return reply.code(500).send({
      statusCode: 500,
      error: REASONS[500],
      code: 'INTERNAL',
      message: 'internal error (see the node log)',
    });
  }
  return reply.code(status).send({
    statusCode: status,
    error: REASONS[status] ?? 'Error',
    code: status === 413 ? 'RESOURCE_LIMIT' : 'INVALID_ARGUMENT',
    message: err.message,
  });
}
