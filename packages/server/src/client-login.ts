import {
  AuthorizationMap,
  type Logger,
  LoginThrottle,
  type LoginThrottleOptions,
  silentLogger,
} from '@keel/core';
import { AuthError, InvalidArgumentError } from '@keel/protocol';
import { dummyPasswordHash, type NodeConfig, type UserConfig, verifyPassword } from './config';

/**
 * scrypt runs on libuv's thread pool (4 threads by default, shared with fs and dns): at most this
 * many password checks run at once, so a flood of logins cannot take the pool from everything else.
 */
export const DEFAULT_MAX_CONCURRENT_HASHES = 2;
/** Password checks waiting for a slot at most; beyond, a login is refused at once (LOGIN_THROTTLED). */
export const DEFAULT_MAX_WAITING_HASHES = 64;
/** Password checks of one address running or waiting at most; beyond, refused at once. */
export const DEFAULT_MAX_HASHES_PER_ADDRESS = 2;

export interface ClientLoginOptions {
  users: readonly UserConfig[];
  throttle?: LoginThrottleOptions;
  maxConcurrentHashes?: number;
  maxWaitingHashes?: number;
  maxHashesPerAddress?: number;
  logger?: Logger;
}

/**
 * The login of STOMP and native clients: checks a user's password (scrypt, off the event loop),
 * spending as long on an unknown user as on a known one (a check against a dummy hash), refusing
 * logins from an address that failed too often (LoginThrottle: exponential, per address, bounded
 * memory) without checking anything, and capping concurrent checks (globally and per address).
 */
export class ClientLogin {
  private readonly users: Map<string, UserConfig>;
  private readonly dummyHash: string | null;
  readonly throttle: LoginThrottle;
  private readonly maxConcurrent: number;
  private readonly maxWaiting: number;
  private readonly maxPerAddress: number;
  private readonly logger: Logger;
  private running = 0;
  private readonly waiting: (() => void)[] = [];
  private readonly perAddress = new Map<string, number>();

  constructor(options: ClientLoginOptions) {
    this.users = new Map(options.users.map((u) => [u.name, u]));
    this.dummyHash = options.users.length > 0 ? dummyPasswordHash(options.users[0]!.passwordHash) : null;
    this.throttle = new LoginThrottle(options.throttle);
    this.maxConcurrent = options.maxConcurrentHashes ?? DEFAULT_MAX_CONCURRENT_HASHES;
    this.maxWaiting = options.maxWaitingHashes ?? DEFAULT_MAX_WAITING_HASHES;
    this.maxPerAddress = options.maxHashesPerAddress ?? DEFAULT_MAX_HASHES_PER_ADDRESS;
    this.logger = options.logger ?? silentLogger;
    for (const [k, v] of [
      ['maxConcurrentHashes', this.maxConcurrent],
      ['maxWaitingHashes', this.maxWaiting],
      ['maxHashesPerAddress', this.maxPerAddress],
    ] as const) {
      if (!Number.isInteger(v) || v < 1)
        throw new InvalidArgumentError(`ClientLogin: option ${k} must be an integer >= 1`);
    }
  }

  /** The groups of a user, for the AuthorizationMap (unknown: none). */
  groupsOf = (user: string): readonly string[] => this.users.get(user)?.groups ?? [];

  /**
   * True when `username` / `password` are right, or no users are configured. Throws AuthError
   * LOGIN_THROTTLED when the address is blocked or too many checks are pending.
   */
  check = async (username?: string, password?: string, remoteAddress?: string): Promise<boolean> => {
    if (this.dummyHash === null) return true;
    const address = remoteAddress ?? 'unknown';
    const wait = this.throttle.retryAfterMs(address);
    if (wait > 0) {
      throw new AuthError(
        `too many failed logins from ${address}: login refused, retry in ${Math.ceil(wait / 1000)} s`,
        'LOGIN_THROTTLED',
      );
    }
    const mine = this.perAddress.get(address) ?? 0;
    if (
      mine >= this.maxPerAddress ||
      (this.running >= this.maxConcurrent && this.waiting.length >= this.maxWaiting)
    ) {
      throw new AuthError(
        `too many logins pending from ${address}: login refused, retry later`,
        'LOGIN_THROTTLED',
      );
    }
    const user = username === undefined ? undefined : this.users.get(username);
    this.perAddress.set(address, mine + 1);
    let ok: boolean;
    try {
      await this.slot();
      try {
        // Unknown user or no password: the same scrypt work on a dummy hash, then false.
        const matched = await verifyPassword(password ?? '', user?.passwordHash ?? this.dummyHash);
        ok = matched && user !== undefined && typeof password === 'string';
      } finally {
        this.release();
      }
    } finally {
      const n = (this.perAddress.get(address) ?? 1) - 1;
      if (n <= 0) this.perAddress.delete(address);
      else this.perAddress.set(address, n);
    }
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

  private slot(): Promise<void> {
    if (this.running < this.maxConcurrent) {
      this.running += 1;
      return Promise.resolve();
    }
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  private release(): void {
    const next = this.waiting.shift();
    if (next)
      next(); // the slot passes on: running stays the same
    else this.running -= 1;
  }
}
