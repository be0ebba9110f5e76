import type { BenchReport, ConnectionsRunResult, ManyQueuesRunResult } from './bench-result';
import { connectionsTables, linearVerdict, manyQueuesTables, scaleSteps } from './scale-summary';
import type { LatencySummary } from './stats';

describe('scaleSteps', () => {
  it('is the RSS each added unit cost between consecutive sizes, in any order', () => {
    expect(
      scaleSteps([
        { n: 1000, deltaKiB: 100_000 },
        { n: 100, deltaKiB: 10_000 },
        { n: 300, deltaKiB: 30_000 },
      ]),
    ).toEqual([
      { from: 100, to: 300, perUnitKiB: 100 },
      { from: 300, to: 1000, perUnitKiB: 100 },
    ]);
    expect(
      scaleSteps([
        { n: 1, deltaKiB: null },
        { n: 2, deltaKiB: 5 },
      ]),
    ).toEqual([{ from: 1, to: 2, perUnitKiB: null }]);
  });
});

describe('linearVerdict', () => {
  const steps = (...perUnit: (number | null)[]) =>
    perUnit.map((p, i) => ({ from: i, to: i + 1, perUnitKiB: p }));
  it('linear when no later step costs more per unit than 1.5× the first', () => {
    expect(linearVerdict(steps(100, 100))).toBe('linear or better');
    expect(linearVerdict(steps(100, 150))).toBe('linear or better');
    expect(linearVerdict(steps(100, 40))).toBe('linear or better');
    expect(linearVerdict(steps(-5, -1))).toBe('linear or better');
  });
  it('faster than linear when a later step costs more, beyond the RSS noise', () => {
    // Steps of 1 unit: 8 MiB of excess are noise, more are not.
    const wide = (a: number, b: number) => [
      { from: 0, to: 100, perUnitKiB: a },
      { from: 100, to: 1100, perUnitKiB: b },
    ];
    expect(linearVerdict(wide(100, 151))).toBe('faster than linear');
    expect(linearVerdict(wide(-5, 10))).toBe('faster than linear');
    expect(linearVerdict(wide(-5, 8))).toBe('linear or better'); // 8 MiB over 1,000 units
    expect(linearVerdict(steps(100, 8000))).toBe('linear or better'); // 7.9 MiB over one unit
    expect(linearVerdict(steps(100, 8400))).toBe('faster than linear');
  });
  it('not measured without two known steps', () => {
    expect(linearVerdict(steps(100))).toBe('not measured');
    expect(linearVerdict(steps(100, null))).toBe('not measured');
  });
});

const lat = (p50: number, p99: number): LatencySummary => ({ count: 1, p50, p99, max: p99, mean: p50 });

function report(
  target: string,
  protocol: string,
  run: ManyQueuesRunResult | ConnectionsRunResult,
): BenchReport {
  return {
    tool: 'keel-bench',
    formatVersion: 1,
    scenario: run.kind === 'many-queues' ? 'many-queues' : 'connections',
    target,
    protocol,
    runs: [run],
  } as unknown as BenchReport;
}

function mq(
  queues: number,
  baselineKiB: number,
  idleKiB: number,
  steadyKiB: number,
  cpu: number,
): ManyQueuesRunResult {
  return {
    kind: 'many-queues',
    run: 1,
    destinationPrefix: '/queue/x',
    queues,
    consumersPerQueue: 4,
    subscriptions: queues * 4,
    subscribeMs: 1500,
    sent: 1000,
    sendFailed: 0,
    received: 1000,
    missing: 0,
    duplicates: 0,
    durationMs: 1000,
    sendRate: 1000,
    receiveRate: 1000,
    latencyMs: lat(2, 20),
    receiptLatencyMs: lat(1, 10),
    cost: { messages: 1000, wallMs: 1000, brokerCpuUsPerMsg: cpu, totals: { loadCpuS: 0 } },
    rss: { baselineKiB, idleKiB, peakKiB: steadyKiB + 1024, steadyKiB, idlePerQueueKiB: null, samples: [] },
    errors: [],
  };
}

function conns(requested: number, beforeKiB: number, withIdleKiB: number): ConnectionsRunResult {
  const phase = {
    sent: 100,
    received: 100,
    durationMs: 1000,
    sendRate: 100,
    latencyMs: lat(1, 5),
    receiptLatencyMs: lat(1, 4),
  };
  return {
    kind: 'connections',
    run: 1,
    destination: '/queue/x',
    idle: {
      requested,
      opened: requested,
      failed: 0,
      subscribed: false,
      batch: 200,
      rampMs: 2000,
      connectMs: lat(3, 30),
      closeMs: 100,
      errors: [],
    },
    before: phase,
    ramp: phase,
    withIdle: { ...phase, latencyMs: lat(1.5, 7) },
    sendFailed: 0,
    missing: 0,
    duplicates: 0,
    rss: {
      beforeKiB,
      withIdleKiB,
      peakKiB: withIdleKiB,
      perIdleConnectionKiB: (withIdleKiB - beforeKiB) / requested,
      samples: [],
    },
    errors: [],
  };
}

describe('manyQueuesTables', () => {
  it('a row per broker and size, then KiB per queue step by step and the verdict', () => {
    const md = manyQueuesTables([
      report('keel', 'native', mq(300, 60_000, 60_000 + 300 * 50, 90_000, 40)),
      report('keel', 'native', mq(100, 60_000, 60_000 + 100 * 50, 80_000, 40)),
      report('keel', 'native', mq(1000, 61_000, 61_000 + 1000 * 50, 120_000, 44)),
      report('rabbitmq-amqp', 'amqp', mq(100, 100_000, 110_000, 120_000, 90)),
      report('rabbitmq-amqp', 'amqp', mq(300, 100_000, 130_000, 140_000, 90)),
      report('rabbitmq-amqp', 'amqp', mq(1000, 100_000, 500_000, 510_000, 90)),
    ]);
    const lines = md.split('\n');
    expect(lines[2]).toBe(
      '| Keel (native) | 100 × 4 | 1.5 | 1,000 | 2.0 / 20.0 | 40.0 | 58.6 | 63.5 | 50.0 | 78.1 | 79.1 | 0 |',
    );
    expect(lines[4]).toMatch(/^\| Keel \(native\) \| 1,000 × 4 /);
    expect(md).toContain('| Keel (native) | 50.0 (100→300), 50.0 (300→1,000) |');
    expect(md).toContain('| 40.0 → 40.0 → 44.0 | idle: **linear or better**');
    expect(md).toContain('| RabbitMQ AMQP (classic) | 100.0 (100→300), 528.6 (300→1,000) |');
    expect(md).toContain('idle: **faster than linear**');
  });
});

describe('connectionsTables', () => {
  it('a row per broker and size, then KiB per connection step by step and the verdict', () => {
    const md = connectionsTables([
      report('keel', 'native', conns(1000, 50_000, 60_000)),
      report('keel', 'native', conns(3000, 50_000, 80_000)),
      report('keel', 'native', conns(10_000, 50_000, 150_000)),
    ]);
    expect(md.split('\n')[2]).toBe(
      '| Keel (native) | 1,000 (1,000) | 2.0 | 30.0 | 48.8 | 58.6 | 10.0 | 58.6 | 1.00 / 5.00 | 1.50 / 7.00 | 0 |',
    );
    expect(md).toContain(
      '| Keel (native) | 10.0 (1,000→3,000), 10.0 (3,000→10,000) | **linear or better** |',
    );
  });
});
