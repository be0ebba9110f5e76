/**
 * A small HTTP client for a node's admin API (packages/admin): JSON over fetch, HTTP Basic
 * credentials (RFC 7617), and errors that say what to do. The reply types mirror the admin API's
 * JSON schemas (packages/admin/src/admin-schemas.ts); the CLI talks to the API over the wire only,
 * so it does not import @keel/admin.
 */

import {
  ConnectionError,
  InvalidArgumentError,
  KeelError,
  ProtocolError,
  TimeoutError,
} from '@keel/protocol';
import { DEFAULT_ADMIN_PORT } from '@keel/server';

/** Where a node's admin API listens unless told otherwise (ActiveMQ's web console port). */
export const DEFAULT_ADMIN_URL = `http://127.0.0.1:${DEFAULT_ADMIN_PORT}`;
/** How long one request may take; a hand-over waits for in-flight commits, so this is generous. */
export const DEFAULT_ADMIN_TIMEOUT_MS = 30_000;

export const ADMIN_URL_ENV = 'KEEL_ADMIN_URL';
export const ADMIN_USER_ENV = 'KEEL_ADMIN_USER';
export const ADMIN_PASSWORD_ENV = 'KEEL_ADMIN_PASSWORD';

/** What every admin command takes: where the API is and who is asking. */
export interface AdminConnectionOptions {
  /** Base URL of the admin API (KEEL_ADMIN_URL; default http://127.0.0.1:8161). */
  admin?: string;
  /** HTTP Basic user (KEEL_ADMIN_USER). */
  user?: string;
  /** HTTP Basic password (KEEL_ADMIN_PASSWORD). */
  password?: string;
  /** Per-request timeout. */
  timeoutMs?: number;
  /** Environment for the KEEL_ADMIN_* variables; defaults to process.env (tests). */
  env?: NodeJS.ProcessEnv;
}

// ----- replies (see packages/admin/src/admin-schemas.ts) -----------------------------------------

export interface BrokerReply {
  name: string;
  cluster: string;
  role: string;
  /** The cluster's current epoch. */
  epoch: number;
  /** The epoch this node last served at; null when it never was master. */
  nodeEpoch: number | null;
  startedAt: string;
  uptimeSeconds: number;
  version: string;
  lockHolder: string | null;
  /** The master lock (absent from older nodes). */
  locker?: {
    kind: string;
    directory: string | null;
    holder: { name: string; host: string; pid: number; epoch: number; acquiredAt: string } | null;
    /** The master's lease (lease locker, file locker with a lease); absent from older nodes. */
    lease?: { holder: string | null; renewedAt: string; expiresAt: string; durationMs: number } | null;
  };
  readOnly: boolean;
  listeners: { native: string | null; stomp: string | null; admin: string };
  /** The node's Postgres pools and the host each uses (absent from older nodes). */
  postgres?: {
    name: string;
    target: string;
    hosts: string[];
    current: string | null;
    rejected: Record<string, string>;
  }[];
}

export interface ClusterReply {
  cluster: string;
  master: string | null;
  epoch: number;
  nodes: { name: string; role: string; lastSeen: string | null }[];
  takeovers: { node: string; epoch: number; reason: string; at: string }[];
}

export interface QueueReply {
  name: string;
  temporary: boolean;
  depth: number;
  enqueued: number | null;
  dequeued: number | null;
  expired: number | null;
  deadLettered: number | null;
  consumers: number | null;
  inflight: number | null;
  oldestMessageAgeMs: number | null;
}

export interface QueueListReply {
  readOnly: boolean;
  queues: QueueReply[];
}

export interface BrowsedMessageReply {
  id: string;
  destination: string;
  persistent: boolean;
  priority: number;
  timestamp: number;
  expiration: number;
  correlationId?: string;
  replyTo?: string;
  type?: string;
  producerId?: string;
  originalDestination?: string;
  dlqReason?: string;
  properties: Record<string, string | number | boolean | null>;
  deliveryCount: number;
  redelivered: boolean;
  bodySize: number;
  bodyEncoding: 'utf8' | 'base64';
  bodyPreview: string;
  bodyTruncated: boolean;
}

export interface BrowseReply {
  queue: string;
  readOnly: boolean;
  offset: number;
  limit: number;
  messages: BrowsedMessageReply[];
}

export interface PurgeReply {
  queue: string;
  purged: number;
}

export interface HandoverReply {
  node: string;
  handedOver: boolean;
}

/** The admin API's error body. */
export interface AdminErrorBody {
  statusCode: number;
  error: string;
  code: string;
  message: string;
  /** On 409 NOT_MASTER: the node holding the master lock, if known. */
  master?: string | null;
}

/**
 * The admin API answered with an HTTP error. `code` is the server's stable code (docs/errors.md),
 * `status` the HTTP status; the message starts with the status and carries the server's words.
 */
export class AdminApiError extends KeelError {
  readonly status: number;
  readonly body: AdminErrorBody | null;

  constructor(status: number, code: string, message: string, body: AdminErrorBody | null) {
    super(code, message);
    this.status = status;
    this.body = body;
  }
}

interface ResolvedConnection {
  baseUrl: string;
  authorization: string | null;
  timeoutMs: number;
}

/** Flags win over KEEL_ADMIN_* variables, which win over the default URL. */
export function resolveAdminConnection(options: AdminConnectionOptions): ResolvedConnection {
  const env = options.env ?? process.env;
  const raw = (options.admin ?? env[ADMIN_URL_ENV] ?? DEFAULT_ADMIN_URL).trim();
  // Accept `host:port` as well as a URL.
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(raw) ? raw : `http://${raw}`;
  let url: URL;
  try {
    url = new URL(withScheme);
  } catch {
    throw new InvalidArgumentError(`--admin: not a URL: ${raw}`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new InvalidArgumentError(
      `--admin: the admin API speaks http or https, not ${url.protocol} (${raw})`,
    );
  }
  // fetch refuses URLs with credentials in them: take them out and send them as Basic instead.
  let user =
    options.user ?? env[ADMIN_USER_ENV] ?? (url.username ? decodeURIComponent(url.username) : undefined);
  let password =
    options.password ??
    env[ADMIN_PASSWORD_ENV] ??
    (url.password ? decodeURIComponent(url.password) : undefined);
  url.username = '';
  url.password = '';
  if (user === '') user = undefined;
  if (password !== undefined && user === undefined) {
    throw new InvalidArgumentError(
      `--password (or ${ADMIN_PASSWORD_ENV}) needs --user (or ${ADMIN_USER_ENV})`,
    );
  }
  if (user !== undefined && password === undefined) {
    throw new InvalidArgumentError(`--user ${user} needs --password (or ${ADMIN_PASSWORD_ENV})`);
  }
  if (user?.includes(':')) {
    // RFC 7617 §2: the user-id cannot contain a colon.
    throw new InvalidArgumentError('--user: an HTTP Basic user name cannot contain ":"');
  }
  password ??= '';
  const timeoutMs = options.timeoutMs ?? DEFAULT_ADMIN_TIMEOUT_MS;
  if (!Number.isInteger(timeoutMs) || timeoutMs <= 0) {
    throw new InvalidArgumentError(`timeoutMs must be a positive integer (got ${timeoutMs})`);
  }
  return {
    baseUrl: url.toString().replace(/\/+$/, ''),
    authorization:
      user === undefined ? null : `Basic ${Buffer.from(`${user}:${password}`, 'utf8').toString('base64')}`,
    timeoutMs,
  };
}

/** One admin API: `get`, `post` and `delete` return the parsed JSON or throw a KeelError. */
export class AdminClient {
  readonly baseUrl: string;
  private readonly authorization: string | null;
  private readonly timeoutMs: number;

  constructor(options: AdminConnectionOptions = {}) {
    const resolved = resolveAdminConnection(options);
    this.baseUrl = resolved.baseUrl;
    this.authorization = resolved.authorization;
    this.timeoutMs = resolved.timeoutMs;
  }

  /** Whether credentials are sent. */
  get hasCredentials(): boolean {
    return this.authorization !== null;
  }

  get<T>(path: string, query?: Record<string, string | number | undefined>): Promise<T> {
    return this.request<T>('GET', path, query);
  }

  post<T>(path: string): Promise<T> {
    return this.request<T>('POST', path);
  }

  delete<T>(path: string): Promise<T> {
    return this.request<T>('DELETE', path);
  }

  private async request<T>(
    method: string,
    path: string,
    query?: Record<string, string | number | undefined>,
  ): Promise<T> {
    const url = new URL(`${this.baseUrl}${path}`);
    for (const [k, v] of Object.entries(query ?? {})) {
      if (v !== undefined) url.searchParams.set(k, String(v));
    }
    const headers: Record<string, string> = { accept: 'application/json' };
    if (this.authorization) headers.authorization = this.authorization;
    let res: Response;
    try {
      res = await fetch(url, { method, headers, signal: AbortSignal.timeout(this.timeoutMs) });
    } catch (err) {
      throw this.transportError(err);
    }
    let text: string;
    try {
      text = await res.text();
    } catch (err) {
      throw this.transportError(err);
    }
    const json = parseJson(text);
    if (res.ok) {
      if (json === undefined) {
        throw new ProtocolError(
          `unexpected answer from ${this.baseUrl} to ${method} ${path}: ${res.status} ${res.headers.get('content-type') ?? 'without content type'}, not JSON (is this a Keel admin API?)`,
        );
      }
      return json as T;
    }
    throw this.httpError(res.status, res.statusText, json);
  }

  private httpError(status: number, statusText: string, json: unknown): AdminApiError {
    const body = isErrorBody(json) ? json : null;
    const code = body?.code ?? `HTTP_${status}`;
    let message = `${status} ${body?.error ?? statusText}: ${body?.message ?? `from ${this.baseUrl}`}`;
    if (status === 401 && body?.code === 'AUTH_FAILED') {
      if (!this.hasCredentials && /credentials required/i.test(body.message)) {
        message += `; pass --user NAME --password PASSWORD (or set ${ADMIN_USER_ENV} and ${ADMIN_PASSWORD_ENV})`;
      } else if (this.hasCredentials && /invalid user name or password/i.test(body.message)) {
        message += ` (check --user/--password or ${ADMIN_USER_ENV}/${ADMIN_PASSWORD_ENV})`;
      }
    }
    if (status === 409 && body?.master && !body.message.includes(body.master)) {
      message += ` (the master is ${body.master})`;
    }
    return new AdminApiError(status, code, message, body);
  }

  private transportError(err: unknown): KeelError {
    const e = err as Error & { cause?: { code?: string; message?: string } };
    if (e?.name === 'TimeoutError' || e?.name === 'AbortError') {
      return new TimeoutError(
        `admin API at ${this.baseUrl} did not answer within ${this.timeoutMs} ms`,
        'TIMEOUT',
        {
          cause: err,
        },
      );
    }
    const code = e?.cause?.code;
    const why = code ? describeSocketError(code) : (e?.cause?.message ?? e?.message ?? String(err));
    return new ConnectionError(
      `cannot reach admin API at ${this.baseUrl}: ${why} (is the node running? set --admin URL or ${ADMIN_URL_ENV})`,
      'CONNECTION_LOST',
      { cause: err },
    );
  }
}

function describeSocketError(code: string): string {
  switch (code) {
    case 'ECONNREFUSED':
      return 'connection refused (ECONNREFUSED)';
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return `host not found (${code})`;
    case 'ECONNRESET':
    case 'UND_ERR_SOCKET':
      return `connection reset (${code})`;
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
      return `unreachable (${code})`;
    default:
      return code;
  }
}

function parseJson(text: string): unknown {
  if (text.length === 0) return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

function isErrorBody(value: unknown): value is AdminErrorBody {
  if (typeof value !== 'object' || value === null) return false;
  const v = value as Record<string, unknown>;
  return typeof v.code === 'string' && typeof v.message === 'string';
}
