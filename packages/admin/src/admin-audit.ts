import type { FastifyInstance, FastifyRequest } from 'fastify';
import { parseBasic } from './admin-auth';

/** The message of every audit line (level info, one per state-changing request). */
export const ADMIN_AUDIT_MESSAGE = 'admin audit';

/** One audit line's `audit` field: who, what, when, on what, and how it ended. */
export interface AdminAuditRecord {
  /** The authenticated user; null when the request was refused before (then `claimedUser`). */
  user: string | null;
  /** The user name the request's Basic credentials carried, if any (for refused requests). */
  claimedUser: string | null;
  address: string;
  /** `METHOD /route/:pattern`. */
  action: string;
  /** The route's parameters: the queue, message, subscription or job acted on. */
  target: Record<string, string>;
  status: number;
  outcome: 'done' | 'refused' | 'failed';
  /** ISO 8601 time of the response. */
  at: string;
}

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);
const users = new WeakMap<FastifyRequest, string | null>();

/** Records the user the admin auth hook let through, for the audit line. */
export function setAuditUser(request: FastifyRequest, user: string | null): void {
  users.set(request, user);
}

/**
 * Issue #23.4: one audit line for every request that may change state — a route that needs the
 * admin role, or any method other than GET/HEAD/OPTIONS — whether it was done, refused (401, 403,
 * 429) or failed, logged when the response has been sent.
 */
export function registerAdminAudit(app: FastifyInstance): void {
  app.addHook('onResponse', async (request, reply) => {
    const access = request.routeOptions.config?.access;
    if (access !== 'admin' && SAFE_METHODS.has(request.method)) return;
    const status = reply.statusCode;
    const record: AdminAuditRecord = {
      user: users.get(request) ?? null,
      claimedUser: parseBasic(request.headers.authorization)?.user ?? null,
      address: request.ip,
      action: `${request.method} ${request.routeOptions.url ?? request.url.split('?')[0]}`,
      target: { ...((request.params as Record<string, string> | undefined) ?? {}) },
      status,
      outcome:
        status < 400 ? 'done' : status === 401 || status === 403 || status === 429 ? 'refused' : 'failed',
      at: new Date().toISOString(),
    };
    request.log.info({ audit: record }, ADMIN_AUDIT_MESSAGE);
  });
}
