import { Broker, MemoryDatabase, MemoryStore } from '@keel/core';
import { Registry } from 'prom-client';
import { UsageMetrics } from './usage-metrics';

describe('UsageMetrics (issue #23.3)', () => {
  it('shows memoryUsage and its limit from the serving broker, zeros without one', async () => {
    const store = new MemoryStore({ database: new MemoryDatabase(), cluster: 'test' });
    await store.open();
    await store.takeOver('node-1', 'test');
    const broker = new Broker({ nodeName: 'node-1', store, systemUsage: { memoryLimitBytes: 1024 * 1024 } });
    await broker.start();
    try {
      const conn = broker.openConnection({ protocol: 'internal' });
      await broker.send(conn, {
        destination: 'queue://q',
        persistent: false,
        priority: 4,
        timestamp: Date.now(),
        expiration: 0,
        properties: {},
        body: Buffer.alloc(1000),
      });
      const registry = new Registry();
      const metrics = new UsageMetrics([registry]);
      metrics.refresh(broker);
      let text = await registry.metrics();
      expect(text).toMatch(/keel_usage_bytes\{usage="memory"\} 1256/);
      expect(text).toMatch(/keel_usage_limit_bytes\{usage="memory"\} 1048576/);
      expect(text).toMatch(/keel_producer_flow_control_waiting_sends 0/);
      metrics.refresh(null);
      text = await registry.metrics();
      expect(text).toMatch(/keel_usage_bytes\{usage="memory"\} 0/);
    } finally {
      await broker.stop();
    }
  });
});
