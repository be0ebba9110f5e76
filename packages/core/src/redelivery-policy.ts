import { InvalidArgumentError } from '@keel/protocol';

/**
 * ActiveMQ's RedeliveryPolicy, option names and defaults
 * (org.apache.activemq.RedeliveryPolicy): maximumRedeliveries 6, initialRedeliveryDelay 1000 ms,
 * redeliveryDelay 1000 ms, useExponentialBackOff false, backOffMultiplier 5,
 * maximumRedeliveryDelay -1 (no cap). -1 maximumRedeliveries means redeliver forever.
 */
export interface RedeliveryPolicy {
  maximumRedeliveries: number;
  initialRedeliveryDelay: number;
  redeliveryDelay: number;
  useExponentialBackOff: boolean;
  backOffMultiplier: number;
  maximumRedeliveryDelay: number;
}

export const DEFAULT_REDELIVERY_POLICY: Readonly<RedeliveryPolicy> = Object.freeze({
  maximumRedeliveries: 6,
  initialRedeliveryDelay: 1000,
  redeliveryDelay: 1000,
  useExponentialBackOff: false,
  backOffMultiplier: 5,
  maximumRedeliveryDelay: -1,
});

export function redeliveryPolicy(options: Partial<RedeliveryPolicy> = {}): RedeliveryPolicy {
  const p = { ...DEFAULT_REDELIVERY_POLICY, ...options };
  for (const key of ['initialRedeliveryDelay', 'redeliveryDelay'] as const) {
    if (!Number.isFinite(p[key]) || p[key] < 0) {
      throw new InvalidArgumentError(`redeliveryPolicy.${key} must be >= 0 (got ${p[key]})`);
    }
  }
  if (!Number.isInteger(p.maximumRedeliveries) || p.maximumRedeliveries < -1) {
    throw new InvalidArgumentError(`redeliveryPolicy.maximumRedeliveries must be an integer >= -1`);
  }
  if (!(p.backOffMultiplier >= 1)) {
    throw new InvalidArgumentError(`redeliveryPolicy.backOffMultiplier must be >= 1`);
  }
  return p;
}

/** Delay before redelivery number `redeliveryCount` (1 for the first redelivery). */
export function redeliveryDelayMs(policy: RedeliveryPolicy, redeliveryCount: number): number {
  if (redeliveryCount <= 0) return 0;
  let delay = redeliveryCount === 1 ? policy.initialRedeliveryDelay : policy.redeliveryDelay;
  if (policy.useExponentialBackOff && redeliveryCount > 1) {
    delay = policy.initialRedeliveryDelay * policy.backOffMultiplier ** (redeliveryCount - 1);
  }
  if (policy.maximumRedeliveryDelay >= 0) delay = Math.min(delay, policy.maximumRedeliveryDelay);
  return delay;
}

/** True when a message delivered `deliveryCount` times already must go to the dead-letter queue. */
export function exceedsRedeliveries(policy: RedeliveryPolicy, deliveryCount: number): boolean {
  return policy.maximumRedeliveries >= 0 && deliveryCount > policy.maximumRedeliveries;
}
