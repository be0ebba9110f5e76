import { AuthError, InvalidArgumentError } from '@keel/protocol';

/**
 * scrypt runs on libuv's thread pool (4 threads by default, shared with fs and dns): at most this
 * many password checks run at once, so a flood of logins cannot take the pool from everything else.
 */
export const DEFAULT_MAX_CONCURRENT_HASHES = 2;
/** Password checks waiting for a slot at most; beyond, a login is refused at once (LOGIN_THROTTLED). */
export const DEFAULT_MAX_WAITING_HASHES = 64;
/** Password checks of one address running or waiting at most; beyond, refused at once. */
export const DEFAULT_MAX_HASHES_PER_ADDRESS = 2;

export interface PasswordCheckGateOptions {
  maxConcurrentHashes?: number;
  maxWaitingHashes?: number;
  maxHashesPerAddress?: number;
}

/**
 * The one place a node's password checks (client logins and the admin API's Basic auth) queue for
 * the thread pool: a bounded number run at once, a bounded number wait, and one address may hold
 * only a few of either. A check past a bound is refused at once with AuthError LOGIN_THROTTLED.
 */
export class PasswordCheckGate {
  private readonly maxConcurrent: number;
  private readonly maxWaiting: number;
  private readonly maxPerAddress: number;
  private running = 0;
  private readonly waiting: (() => void)[] = [];
  private readonly perAddress = new Map<string, number>();

  constructor(options: PasswordCheckGateOptions = {}) {
    this.maxConcurrent = options.maxConcurrentHashes ?? DEFAULT_MAX_CONCURRENT_HASHES;
    this.maxWaiting = options.maxWaitingHashes ?? DEFAULT_MAX_WAITING_HASHES;
    this.maxPerAddress = options.maxHashesPerAddress ?? DEFAULT_MAX_HASHES_PER_ADDRESS;
    for (const [k, v] of [
      ['maxConcurrentHashes', this.maxConcurrent],
      ['maxWaitingHashes', this.maxWaiting],
      ['maxHashesPerAddress', this.maxPerAddress],
    ] as const) {
      if (!Number.isInteger(v) || v < 1)
        throw new InvalidArgumentError(`password checks: option ${k} must be an integer >= 1`);
    }
  }

  /** Run `check` when a slot is free; refuses (LOGIN_THROTTLED) when `address` or the queue is full. */
  async run<T>(address: string, check: () => Promise<T>): Promise<T> {
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
    this.perAddress.set(address, mine + 1);
    try {
      await this.slot();
      try {
        return await check();
      } finally {
        this.release();
      }
    } finally {
      const n = (this.perAddress.get(address) ?? 1) - 1;
      if (n <= 0) this.perAddress.delete(address);
      else this.perAddress.set(address, n);
    }
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
