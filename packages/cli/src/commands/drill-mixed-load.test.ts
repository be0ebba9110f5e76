/**
 * The soak's mixed load (issue #20.5): body sizes, how the streams' counts add up, and the load
 * itself on two real broker nodes (the built CLI, this file's own database) across a SIGKILL of
 * the master: the queue stream and the durable topic stream each count 0 lost, 0 duplicated.
 */
import { type BrokerProcess, startBroker, useTestDatabase } from '@keel/testkit';
import { bufferOutput } from '../output';
import {
  DrillMixedLoad,
  MIXED_BODY_MAX_BYTES,
  MIXED_BODY_MIN_BYTES,
  mixedBodyBytes,
  sumTotals,
  sumWindowCounts,
} from './drill-mixed-load';
import { DrillRun } from './drill-run';

jest.setTimeout(120_000);

describe('mixed load: body sizes and sums', () => {
  it('spreads bodies log-uniformly from 100 B to 16 KiB, the same for a seq on every run', () => {
    const sizes = Array.from({ length: 10_000 }, (_, i) => mixedBodyBytes(i + 1));
    const sorted = [...sizes].sort((a, b) => a - b);
    expect(sorted[0]).toBeGreaterThanOrEqual(MIXED_BODY_MIN_BYTES);
    expect(sorted[0]).toBeLessThan(110);
    expect(sorted[sorted.length - 1]).toBeLessThanOrEqual(MIXED_BODY_MAX_BYTES);
    expect(sorted[sorted.length - 1]).toBeGreaterThan(15_000);
    // Log-uniform: the median is near the geometric mean, sqrt(100 × 16384) ≈ 1280 B.
    const median = sorted[5_000] as number;
    expect(median).toBeGreaterThan(1_150);
    expect(median).toBeLessThan(1_420);
    // Consecutive messages differ (no long runs of one size).
    expect(new Set(sizes.slice(0, 20)).size).toBe(20);
    expect(mixedBodyBytes(1234)).toBe(mixedBodyBytes(1234));
  });

  it('adds the streams: counts summed, pauses the longest of any stream', () => {
    expect(
      sumWindowCounts([
        { pauseMs: 800, deliveryPauseMs: 900, receipted: 10, delivered: 10, lost: 0, duplicated: 1 },
        { pauseMs: 1200, deliveryPauseMs: 700, receipted: 5, delivered: 4, lost: 1, duplicated: 0 },
      ]),
    ).toEqual({ pauseMs: 1200, deliveryPauseMs: 900, receipted: 15, delivered: 14, lost: 1, duplicated: 1 });
    const t = {
      sent: 3,
      receipted: 2,
      failed: 1,
      delivered: 2,
      lost: 0,
      duplicated: 0,
      deliveredWithoutReceipt: 0,
    };
    expect(sumTotals([t, { ...t, lost: 2 }])).toEqual({
      sent: 6,
      receipted: 4,
      failed: 2,
      delivered: 4,
      lost: 2,
      duplicated: 0,
      deliveredWithoutReceipt: 0,
    });
  });
});

describe('mixed load on two real nodes across a SIGKILL of the master', () => {
  const db = useTestDatabase();
  const nodes: BrokerProcess[] = [];
  afterAll(async () => {
    await Promise.all(nodes.map((n) => n.stop()));
  });

  it('queue and durable topic: every receipted message received once, on both streams', async () => {
    const cluster = `mixed-${process.pid}`;
    nodes.push(await startBroker({ db: db.url, name: 'm1', cluster }));
    await nodes[0]?.waitForRole('master', 30_000);
    nodes.push(await startBroker({ db: db.url, name: 'm2', cluster }));
    await nodes[1]?.waitForRole('slave', 30_000);
    const [m1, m2] = nodes as [BrokerProcess, BrokerProcess];
    const url = `failover:(tcp://127.0.0.1:${m1.port},tcp://127.0.0.1:${m2.port})?randomize=false&maxReconnectDelay=500`;

    const output = bufferOutput();
    const run = new DrillRun(output, undefined, 'mixed-load test');
    try {
      const load = await DrillMixedLoad.start(run, url, 100, 500);
      const kill = Date.now();
      m1.kill('SIGKILL');
      await m2.waitForRole('master', 60_000);
      await run.waitFor(
        () => load.resumedAfter(kill),
        60_000,
        () => 'the load did not resume on both streams',
      );
      await run.sleep(500);
      await load.stopAndDrain();

      const streams = load.streamTotals();
      expect(Object.keys(streams)).toEqual(['queue', 'topic']);
      expect(streams.queue?.destination).toMatch(/^queue:\/\/keel-drill-/);
      expect(streams.topic?.destination).toMatch(/^topic:\/\/keel-drill-/);
      for (const t of Object.values(streams)) {
        expect(t.receipted).toBeGreaterThan(0);
        expect({ lost: t.lost, duplicated: t.duplicated }).toEqual({ lost: 0, duplicated: 0 });
        expect(t.delivered).toBeGreaterThanOrEqual(t.receipted);
      }
      expect(load.totals()).toEqual(sumTotals(Object.values(streams)));
      // The durable subscriber rode through the kill on the failover client, under its client id.
      const events = load.relativeClientEvents();
      expect(events.some((e) => e.client === 'topic subscriber' && e.event === 'resumed')).toBe(true);
      expect(output.stderr()).toMatch(/durable subscription keel-soak-[0-9a-f]{6}:keel-soak/);
      const counts = load.roundCounts([{ faultAt: kill, endAt: Date.now() }]);
      expect(counts[0]?.receipted).toBe(load.totals().receipted);
    } finally {
      await run.finish();
    }
  });
});
