import {
  AuthorizationMap,
  type Logger,
  LoginThrottle,
  type LoginThrottleOptions,
  silentLogger,
} from '@keel/core';
import { AuthError } from '@keel/protocol';
import { dummyPasswordHash, type NodeConfig, type UserConfig, verifyPassword } from './config';
import { PasswordCheckGate } from './password-check-gate';

export interface ClientLoginOptions {
  users: readonly UserConfig[];
  throttle?: LoginThrottleOptions;
  /** The node's gate for password checks (shared with the admin API); default a gate of its own. */
  gate?: PasswordCheckGate;
  logger?: Logger;
}

/**
 * The login of STOMP and native clients: checks a user's password (scrypt, off the event loop),
 * spending as long on an unknown user as on a known one (a check against a dummy hash), refusing
 * logins from an address that failed too often (LoginThrottle: exponential, per address, bounded
 * memory) without checking anything, and capping concurrent checks (PasswordCheckGate).
 */
export class ClientLogin {
  private readonly users: Map<string, UserConfig>;
  private readonly dummyHash: string | null;
  readonly throttle: LoginThrottle;
  private readonly gate: PasswordCheckGate;
  private readonly logger: Logger;

  constructor(options: ClientLoginOptions) {
    this.users = new Map(options.users.map((u) => [u.name, u]));
    this.dummyHash = options.users.length > 0 ? dummyPasswordHash(options.users[0]!.passwordHash) : null;
    this.throttle = new LoginThrottle(options.throttle);
    this.gate = options.gate ?? new PasswordCheckGate();
    this.logger = options.logger ?? silentLogger;
  }

  /** The groups of a user, for the AuthorizationMap (unknown: none). */
  groupsOf = (user: string): readonly string[] => this.users.get(user)?.groups ?? [];

  /**
   * True when `username` / `password` are right, or no users are configured. Throws AuthError
   * LOGIN_THROTTLED when the address is blocked or too many checks are pending.
   */
  check = async (username?: string, password?: string, remoteAddress?: string): Promise<boolean> => {
    const dummyHash = this.dummyHash;
    if (dummyHash === null) return true;
    const address = remoteAddress ?? 'unknown';
    const wait = this.throttle.retryAfterMs(address);
    if (wait > 0) {
      throw new AuthError(
        `too many failed logins from ${address}: login refused, retry in ${Math.ceil(wait / 1000)} s`,
        'LOGIN_THROTTLED',
      );
    }
    const user = username === undefined ? undefined : this.users.get(username);
    const ok = await this.gate.run(address, async () => {
      // Unknown user or no password: the same scrypt work on a dummy hash, then false.
      const matched = await verifyPassword(password ?? '', user?.passwordHash ?? dummyHash);
      return matched && user !== undefined && typeof password === 'string';
    });
    if (ok) this.throttle.succeeded(address);
    else {
      this.throttle.failed(address);
      this.logger.debug({ address, blockedMs: this.throttle.retryAfterMs(address) }, 'client login failed');
    }
    return ok;
  };

  /** An AuthorizationMap over `config`'s entries and these users' groups; null without entries. */
  authorizationMap(
    config: Pick<NodeConfig, 'authorization' | 'tempDestinationAuthorization'>,
  ): AuthorizationMap | null {
    if (config.authorization === null) return null;
    return new AuthorizationMap({
      entries: config.authorization,
      tempDestinations: config.tempDestinationAuthorization,
      groupsOf: this.groupsOf,
    });
  }
}
