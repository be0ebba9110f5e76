/**
 * The reconnect schedule of the failover transport: jittered, capped exponential backoff.
 *
 * ActiveMQ's FailoverTransport tries every URI of the list once per "attempt" (a pass over the
 * list). The first pass after a drop starts at once; before every later pass it sleeps
 * `initialReconnectDelay`, multiplied by `backOffMultiplier` after each failed pass when
 * `useExponentialBackOff` is set, never more than `maxReconnectDelay`. Keel adds
 * `reconnectDelayJitterPercent` so that many clients of a broker that died do not all redial in
 * the same millisecond.
 */
export interface BackoffOptions {
  /** ActiveMQ `initialReconnectDelay`, ms. */
  initialReconnectDelay: number;
  /** ActiveMQ `maxReconnectDelay`, ms. */
  maxReconnectDelay: number;
  /** ActiveMQ `useExponentialBackOff`. */
  useExponentialBackOff: boolean;
  /** ActiveMQ `backOffMultiplier`. */
  backOffMultiplier: number;
  /** Keel: the delay varies by up to ± this many percent (0 = no jitter). */
  reconnectDelayJitterPercent: number;
}

/** A source of uniform numbers in [0, 1); `Math.random` by default, injected in tests. */
export type RandomSource = () => number;

/**
 * The delay before pass number `pass` over the URI list (0-based; pass 0, the first try after a
 * drop, has no delay). The result is never negative and never more than `maxReconnectDelay`.
 */
export function reconnectDelayMs(
  pass: number,
  options: BackoffOptions,
  random: RandomSource = Math.random,
): number {
  if (pass <= 0) return 0;
  const max = options.maxReconnectDelay;
  let base = options.initialReconnectDelay;
  if (options.useExponentialBackOff) {
    // initial * multiplier^(pass-1), computed without overflowing to Infinity for large passes.
    for (let i = 1; i < pass && base < max; i++) base *= options.backOffMultiplier;
  }
  base = Math.min(base, max);
  const jitter = options.reconnectDelayJitterPercent / 100;
  const factor = 1 + jitter * (2 * random() - 1);
  return Math.max(0, Math.min(max, Math.round(base * factor)));
}
