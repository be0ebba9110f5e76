import { LoginThrottle, type LoginThrottleOptions } from '@keel/core';
import { InvalidArgumentError } from '@keel/protocol';

/** `admin` may change state; `read-only` may only look. */
export type AdminRole = 'admin' | 'read-only';

/** What a route requires: `open` (probes), `read` (open unless readAuth), `admin` (state changes). */
export type RouteAccess = 'open' | 'read' | 'admin';

export interface AdminUserCredentials {
  name: string;
  /** A hash checked with `verifyPassword` (the server passes its scrypt hashes). */
  passwordHash: string;
}

export interface AdminAuthOptions {
  /** The admin user (HTTP Basic). Without one, every state-changing route answers 401. */
  adminUser?: string | null;
  adminPasswordHash?: string | null;
  /** Users that may read but not change (403 on state-changing routes). */
  readOnlyUsers?: readonly AdminUserCredentials[];
  /** Checks a password against a stored hash; required when any hash is configured. */
  verifyPassword?: (password: string, hash: string) => Promise<boolean>;
  /**
   * Full replacement for the above: returns the role of a user with this password, or null.
   * With it, the admin role counts as configured. It may refuse to check at all by throwing an
   * error whose `code` is LOGIN_THROTTLED (too many checks pending): the request gets 429.
   */
  authenticate?: (user: string, password: string, address?: string) => Promise<AdminRole | null>;
  /** Read routes need credentials too (any role). Default false: reads are open. */
  readAuth?: boolean;
  /**
   * Failed logins per client address (issue #23.4): after a few, the address is refused (429,
   * LOGIN_THROTTLED) for an exponentially growing time without any password being checked.
   */
  loginThrottle?: LoginThrottleOptions;
}

export const ADMIN_AUTH_REALM = 'keel';

/** The answer to a state-changing request on a node with no admin user. */
export const ADMIN_NOT_CONFIGURED_MESSAGE =
  'no admin user is configured, so the admin API cannot change anything: start the node with ' +
  '--admin-user NAME --admin-password PASSWORD (or set KEEL_ADMIN_USER and KEEL_ADMIN_PASSWORD)';

export type AuthDecision =
  | { ok: true; user: string | null; role: AdminRole | null }
  | {
      ok: false;
      status: 401 | 403 | 429;
      code: 'AUTH_FAILED' | 'NOT_AUTHORIZED' | 'LOGIN_THROTTLED';
      message: string;
      /** 429: when the address may try again. */
      retryAfterMs?: number;
    };

/** HTTP Basic (RFC 7617) for the admin API: who may read and who may change. */
export class AdminAuth {
  private readonly opts: AdminAuthOptions;
  readonly readAuth: boolean;
  /** An admin role exists (else state changes answer 401 with ADMIN_NOT_CONFIGURED_MESSAGE). */
  readonly adminConfigured: boolean;
  private readonly anyUser: boolean;
  readonly throttle: LoginThrottle;

  constructor(options: AdminAuthOptions = {}) {
    this.opts = options;
    this.throttle = new LoginThrottle(options.loginThrottle);
    this.readAuth = options.readAuth === true;
    if (options.adminUser && !options.adminPasswordHash && !options.authenticate) {
      throw new InvalidArgumentError('adminPasswordHash is required when adminUser is set');
    }
    if (!options.adminUser && options.adminPasswordHash) {
      throw new InvalidArgumentError('adminUser is required when adminPasswordHash is set');
    }
    const hashes = (options.adminPasswordHash ? 1 : 0) + (options.readOnlyUsers?.length ?? 0);
    if (hashes > 0 && !options.verifyPassword && !options.authenticate) {
      throw new InvalidArgumentError(
        'verifyPassword is required when adminPasswordHash or readOnlyUsers are set',
      );
    }
    for (const [i, u] of (options.readOnlyUsers ?? []).entries()) {
      if (!u.name || !u.passwordHash)
        throw new InvalidArgumentError(`readOnlyUsers[${i}] needs a name and a passwordHash`);
    }
    this.adminConfigured = Boolean(options.authenticate) || Boolean(options.adminUser);
    this.anyUser = this.adminConfigured || (options.readOnlyUsers?.length ?? 0) > 0;
  }

  /**
   * Decide a request needing `access`, given its Authorization header and the client's address
   * (failed logins from one address are throttled).
   */
  async check(
    access: RouteAccess,
    authorization: string | undefined,
    address = 'unknown',
  ): Promise<AuthDecision> {
    if (access === 'open' || (access === 'read' && !this.readAuth))
      return { ok: true, user: null, role: null };
    if (access === 'admin' && !this.adminConfigured) {
      return { ok: false, status: 401, code: 'AUTH_FAILED', message: ADMIN_NOT_CONFIGURED_MESSAGE };
    }
    if (!this.anyUser) {
      return {
        ok: false,
        status: 401,
        code: 'AUTH_FAILED',
        message: `readAuth is on but no user is configured: ${ADMIN_NOT_CONFIGURED_MESSAGE.replace(/^[^:]*: /, '')}`,
      };
    }
    const creds = parseBasic(authorization);
    if (!creds) {
      return {
        ok: false,
        status: 401,
        code: 'AUTH_FAILED',
        message: 'credentials required (HTTP Basic authentication)',
      };
    }
    const wait = this.throttle.retryAfterMs(address);
    if (wait > 0) {
      return {
        ok: false,
        status: 429,
        code: 'LOGIN_THROTTLED',
        message: `too many failed logins from ${address}: retry in ${Math.ceil(wait / 1000)} s`,
        retryAfterMs: wait,
      };
    }
    let role: AdminRole | null;
    try {
      role = await this.roleOf(creds.user, creds.password, address);
    } catch (err) {
      if ((err as { code?: unknown }).code !== 'LOGIN_THROTTLED') throw err;
      return {
        ok: false,
        status: 429,
        code: 'LOGIN_THROTTLED',
        message: (err as Error).message,
        retryAfterMs: 1000,
      };
    }
    if (role === null) {
      this.throttle.failed(address);
      return { ok: false, status: 401, code: 'AUTH_FAILED', message: 'invalid user name or password' };
    }
    this.throttle.succeeded(address);
    if (access === 'admin' && role !== 'admin') {
      return {
        ok: false,
        status: 403,
        code: 'NOT_AUTHORIZED',
        message: `user ${creds.user} has the read-only role; changes need the admin role`,
      };
    }
    return { ok: true, user: creds.user, role };
  }

  private async roleOf(user: string, password: string, address: string): Promise<AdminRole | null> {
    const o = this.opts;
    if (o.authenticate) return o.authenticate(user, password, address);
    const verify = o.verifyPassword;
    if (!verify) return null;
    if (o.adminUser && o.adminPasswordHash && user === o.adminUser) {
      return (await verify(password, o.adminPasswordHash)) ? 'admin' : null;
    }
    const reader = o.readOnlyUsers?.find((u) => u.name === user);
    if (reader) return (await verify(password, reader.passwordHash)) ? 'read-only' : null;
    // Unknown user: spend the same time as a known one, so that timing does not tell names apart.
    const someHash = o.adminPasswordHash ?? o.readOnlyUsers?.[0]?.passwordHash;
    if (someHash) await verify(password, someHash).catch(() => false);
    return null;
  }
}

/** `Authorization: Basic base64(user:password)`; the user name ends at the first colon (RFC 7617 §2). */
export function parseBasic(header: string | undefined): { user: string; password: string } | null {
  if (!header) return null;
  const m = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(header);
  if (!m) return null;
  const decoded = Buffer.from(m[1] as string, 'base64').toString('utf8');
  const i = decoded.indexOf(':');
  if (i < 0) return null;
  return { user: decoded.slice(0, i), password: decoded.slice(i + 1) };
}
