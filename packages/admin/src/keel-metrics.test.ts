import { type Broker, DestinationCounters } from '@keel/core';
import type { AdminContext } from './admin-context';
import { KeelMetrics } from './keel-metrics';

function ctx(
  health: () =>
    | Promise<never>
    | Promise<{
        deadRows: Record<string, number>;
        tableBytes: Record<string, number>;
        oldestTransactionAgeSeconds: number | null;
      }>,
): AdminContext {
  return {
    node: () => ({
      name: 'n',
      cluster: 'c',
      role: 'fenced',
      epoch: 7,
      startedAt: new Date(),
      version: 'v',
      lockHolder: null,
      listeners: { native: null, stomp: null, admin: 'http://127.0.0.1:1' },
    }),
    broker: () => null,
    readOnly: () => ({
      listQueues: async () => [],
      getQueue: async () => null,
      browse: async () => null,
      listTopics: async () => [],
      listDurables: async () => [],
    }),
    takeovers: async () => [],
    clusterNodes: () => [],
    storeHealth: health,
  };
}

describe('KeelMetrics', () => {
  it('keeps registries apart and reports a failing store health query', async () => {
    let calls = 0;
    const a = new KeelMetrics({
      processMetrics: false,
      storeHealthCacheMs: 60_000,
      defaultLabels: { node: 'n' },
    });
    const b = new KeelMetrics({ processMetrics: false });
    a.bindContext(
      ctx(() => {
        calls += 1;
        return Promise.reject(new Error('connection refused'));
      }),
    );
    a.observeTakeover();
    a.observeCommit({ operations: 40, inserts: 30, durationMs: 12 });
    const text = await a.scrape();
    expect(text).toContain('keel_store_health_up{node="n"} 0');
    expect(text).toContain('keel_role{role="fenced",node="n"} 1');
    expect(text).toContain('keel_epoch{node="n"} 7');
    expect(text).toContain('keel_takeovers_total{node="n"} 1');
    expect(text).toContain('keel_store_commit_inserts_total{node="n"} 30');
    expect(text).toContain('keel_store_commit_duration_seconds_bucket{le="0.025",node="n"} 1');
    expect(text).not.toMatch(/^keel_store_dead_rows\{/m);
    await a.scrape();
    expect(calls).toBe(2); // failures are not cached
    expect(await b.scrape()).not.toContain('keel_takeovers_total 1');
  });

  it('reads the scheduled firing lag at 1, 2, 5, 10, 15, 20, 25, 30, 40, 50, 75, 100 ms (issue #22.4)', async () => {
    const m = new KeelMetrics({ processMetrics: false });
    for (const ms of [0.5, 14, 37, 48, 60]) m.observeScheduledFiring(ms);
    const text = await m.scrape();
    const le = (bound: string): number =>
      Number(
        new RegExp(`keel_scheduled_firing_lag_seconds_bucket\\{le="${bound}"\\} (\\d+)`).exec(text)?.[1],
      );
    expect([le('0.001'), le('0.015'), le('0.03'), le('0.04'), le('0.05'), le('0.075')]).toEqual([
      1, 2, 2, 3, 4, 5,
    ]);
  });

  it('validates its options', () => {
    expect(() => new KeelMetrics({ storeHealthCacheMs: -1 })).toThrow(/storeHealthCacheMs/);
  });

  it("counts messages per destination, folds temporary ones, and keeps a detached broker's counts", async () => {
    const metrics = new KeelMetrics({ processMetrics: false });
    // Only the broker's counters are read by the metrics.
    const first = { counters: new DestinationCounters() } as unknown as Broker;
    const second = { counters: new DestinationCounters() } as unknown as Broker;
    const detach = metrics.attachBroker(first);
    first.counters.countIn('queue://orders');
    first.counters.countIn('queue://orders');
    first.counters.countOut('queue://orders');
    first.counters.countIn('temp-queue://c1.1');
    first.counters.countIn('temp-queue://c2.7');
    let text = await metrics.scrape();
    expect(text).toContain('keel_messages_in_total{destination="queue://orders"} 2');
    expect(text).toContain('keel_messages_out_total{destination="queue://orders"} 1');
    expect(text).toContain('keel_messages_in_total{destination="temp-queue://*"} 2');
    detach();
    detach();
    metrics.attachBroker(second);
    second.counters.countIn('queue://orders');
    text = await metrics.scrape();
    expect(text).toContain('keel_messages_in_total{destination="queue://orders"} 3');
    expect(text).toContain('keel_messages_out_total{destination="queue://orders"} 1');
  });

  it('shows redeliveries, dead letters and expiries per destination, at 0 from its creation', async () => {
    const metrics = new KeelMetrics({ processMetrics: false });
    const first = { counters: new DestinationCounters() } as unknown as Broker;
    const second = { counters: new DestinationCounters() } as unknown as Broker;
    const detach = metrics.attachBroker(first);
    first.counters.touch('queue://orders'); // the broker created (or recovered) the queue
    let text = await metrics.scrape();
    for (const name of [
      'keel_messages_in_total',
      'keel_messages_out_total',
      'keel_messages_redelivered_total',
      'keel_messages_dead_lettered_total',
      'keel_messages_expired_total',
    ])
      expect(text).toContain(`${name}{destination="queue://orders"} 0`);
    first.counters.countRedelivered('queue://orders');
    first.counters.countRedelivered('queue://orders');
    first.counters.countDeadLettered('queue://orders');
    first.counters.countExpired('temp-queue://c1.1');
    detach();
    metrics.attachBroker(second);
    second.counters.countRedelivered('queue://orders');
    text = await metrics.scrape();
    expect(text).toContain('keel_messages_redelivered_total{destination="queue://orders"} 3');
    expect(text).toContain('keel_messages_dead_lettered_total{destination="queue://orders"} 1');
    expect(text).toContain('keel_messages_expired_total{destination="queue://orders"} 0');
    expect(text).toContain('keel_messages_expired_total{destination="temp-queue://*"} 1');
  });

  it('keeps the connections gauge at 0 per protocol instead of dropping it', async () => {
    const metrics = new KeelMetrics({ processMetrics: false });
    metrics.bindContext(
      ctx(() => Promise.resolve({ deadRows: {}, tableBytes: {}, oldestTransactionAgeSeconds: null })),
    );
    const text = await metrics.scrape();
    for (const protocol of ['native', 'stomp', 'network'])
      expect(text).toContain(`keel_connections{protocol="${protocol}"} 0`);
  });
});
