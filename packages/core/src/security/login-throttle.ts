import { InvalidArgumentError } from '@keel/protocol';

/** Failed logins an address may make before it is slowed down. */
export const DEFAULT_LOGIN_FREE_FAILURES = 3;
/** The first delay after the free failures; it doubles with each further failure. */
export const DEFAULT_LOGIN_BASE_DELAY_MS = 250;
export const DEFAULT_LOGIN_MAX_DELAY_MS = 30_000;
/** Addresses remembered at most (the least recently failed are forgotten first): bounded memory. */
export const DEFAULT_LOGIN_MAX_ADDRESSES = 10_000;
/** An address with no failure for this long starts afresh. */
export const DEFAULT_LOGIN_FORGET_AFTER_MS = 15 * 60_000;

export interface LoginThrottleOptions {
  freeFailures?: number;
  baseDelayMs?: number;
  maxDelayMs?: number;
  maxAddresses?: number;
  forgetAfterMs?: number;
  now?: () => number;
}

interface Record {
  failures: number;
  lastFailureAt: number;
  /** No login from this address is checked before this time. */
  blockedUntil: number;
}

/**
 * Slows down repeated failed logins from one address: after `freeFailures` failures each further
 * one blocks the address for an exponentially growing time (base · 2^k, capped), during which its
 * logins are refused without checking the password (so guessing costs the broker nothing). A
 * successful login clears the address. Memory is bounded by `maxAddresses`.
 */
export class LoginThrottle {
  private readonly o: Required<LoginThrottleOptions>;
  private readonly byAddress = new Map<string, Record>();

  constructor(options: LoginThrottleOptions = {}) {
    this.o = {
      freeFailures: options.freeFailures ?? DEFAULT_LOGIN_FREE_FAILURES,
      baseDelayMs: options.baseDelayMs ?? DEFAULT_LOGIN_BASE_DELAY_MS,
      maxDelayMs: options.maxDelayMs ?? DEFAULT_LOGIN_MAX_DELAY_MS,
      maxAddresses: options.maxAddresses ?? DEFAULT_LOGIN_MAX_ADDRESSES,
      forgetAfterMs: options.forgetAfterMs ?? DEFAULT_LOGIN_FORGET_AFTER_MS,
      now: options.now ?? Date.now,
    };
    for (const k of ['freeFailures', 'baseDelayMs', 'maxDelayMs', 'maxAddresses', 'forgetAfterMs'] as const) {
      const v = this.o[k];
      if (!Number.isInteger(v) || v < 0 || (k === 'maxAddresses' && v < 1)) {
        throw new InvalidArgumentError(
          `LoginThrottle: option ${k} must be a non-negative integer (got ${v})`,
        );
      }
    }
  }

  /** Addresses currently remembered. */
  get size(): number {
    return this.byAddress.size;
  }

  /** 0 when a login from `address` may be checked now, else the ms until it may. */
  retryAfterMs(address: string): number {
    const r = this.current(address);
    return r ? Math.max(0, r.blockedUntil - this.o.now()) : 0;
  }

  failed(address: string): void {
    const now = this.o.now();
    const r = this.current(address) ?? { failures: 0, lastFailureAt: now, blockedUntil: 0 };
    r.failures += 1;
    r.lastFailureAt = now;
    const over = r.failures - this.o.freeFailures;
    if (over > 0) {
      r.blockedUntil = now + Math.min(this.o.maxDelayMs, this.o.baseDelayMs * 2 ** Math.min(over - 1, 30));
    }
    // Most recently failed last: the first key is the one to forget.
    this.byAddress.delete(address);
    this.byAddress.set(address, r);
    while (this.byAddress.size > this.o.maxAddresses) {
      const oldest = this.byAddress.keys().next().value as string;
      this.byAddress.delete(oldest);
    }
  }

  succeeded(address: string): void {
    this.byAddress.delete(address);
  }

  private current(address: string): Record | undefined {
    const r = this.byAddress.get(address);
    if (r && this.o.now() - r.lastFailureAt > this.o.forgetAfterMs && r.blockedUntil <= this.o.now()) {
      this.byAddress.delete(address);
      return undefined;
    }
    return r;
  }
}
