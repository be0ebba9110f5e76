import type { Broker } from '@keel/core';
import { Gauge, type Registry } from 'prom-client';

/**
 * Resource limits in /metrics (issue #23.3): memoryUsage and storeUsage against their limits (as
 * ActiveMQ's MemoryPercentUsage/StorePercentUsage), sends waiting for space, sends refused, slow
 * consumers aborted. Read from the serving broker at scrape time; zero on a slave.
 */
export class UsageMetrics {
  private readonly usage: Gauge<'usage'>;
  private readonly limit: Gauge<'usage'>;
  private readonly blocked: Gauge;
  private readonly refused: Gauge;
  private readonly aborted: Gauge;

  constructor(registers: Registry[]) {
    this.usage = new Gauge({
      name: 'keel_usage_bytes',
      help: 'memoryUsage (bytes of messages held in memory) and storeUsage (bytes of stored messages, as last measured).',
      labelNames: ['usage'],
      registers,
    });
    this.limit = new Gauge({
      name: 'keel_usage_limit_bytes',
      help: 'The memoryUsage and storeUsage limits (0: none).',
      labelNames: ['usage'],
      registers,
    });
    this.blocked = new Gauge({
      name: 'keel_producer_flow_control_waiting_sends',
      help: 'Sends waiting for memory or store space (producer flow control).',
      registers,
    });
    this.refused = new Gauge({
      name: 'keel_producer_flow_control_refused_sends',
      help: 'Sends refused with RESOURCE_LIMIT (sendFailIfNoSpace, sendFailIfNoSpaceAfterTimeout) by the serving broker.',
      registers,
    });
    this.aborted = new Gauge({
      name: 'keel_slow_consumers_aborted',
      help: 'Consumers aborted by the slow-consumer strategy (maxSlowDuration) by the serving broker.',
      registers,
    });
  }

  refresh(broker: Broker | null): void {
    const u = broker?.usage;
    this.usage.set({ usage: 'memory' }, u ? u.memoryBytes() : 0);
    this.usage.set({ usage: 'store' }, u ? u.storeUsageBytes : 0);
    this.limit.set({ usage: 'memory' }, u ? u.memoryLimitBytes : 0);
    this.limit.set({ usage: 'store' }, u ? u.storeLimitBytes : 0);
    this.blocked.set(u ? u.waiting : 0);
    this.refused.set(u ? u.refusedSends : 0);
    this.aborted.set(broker ? broker.slowConsumers.aborted : 0);
  }
}
