import type { BenchReport, FailoverRunResult, FlowRunResult } from './bench-result';
import {
  barChartSvg,
  groupReports,
  type PgLimitReport,
  renderBenchmarksMarkdown,
  renderTargetsSection,
  spliceSection,
} from './render-report';

const lat = (p50: number, p99: number) => ({ count: 10, p50, p99, max: p99 * 2, mean: p50 });

function flowRun(run: number, receiveRate: number, p99: number): FlowRunResult {
  return {
    kind: 'flow',
    run,
    destination: '/queue/q',
    sent: 1000,
    sendFailed: 0,
    expected: 1000,
    received: 1000,
    missing: 0,
    duplicates: 0,
    stale: 0,
    durationMs: 1000,
    sendRate: receiveRate,
    receiveRate,
    latencyMs: lat(1, p99),
    receiptLatencyMs: lat(0.5, 1),
    errors: [],
  };
}

function report(
  target: BenchReport['target'],
  inFlight: number,
  runs: Array<FlowRunResult | FailoverRunResult>,
  protocol: 'stomp' | 'native' | 'amqp' = 'stomp',
  scenario: BenchReport['scenario'] = 'throughput',
): BenchReport {
  return {
    tool: 'keel-bench',
    formatVersion: 1,
    scenario,
    target,
    protocol,
    startedAt: '2025-01-02T03:04:05.000Z',
    config: {
      scenario,
      target,
      protocol,
      url: 'stomp://127.0.0.1:61613',
      urls: ['stomp://127.0.0.1:61613'],
      host: '127.0.0.1',
      port: 61613,
      producers: 4,
      consumers: 4,
      inFlight,
      sizeBytes: 1024,
      count: 1000,
      durationMs: 60000,
      drainTimeoutMs: 30000,
      prefetch: 1000,
      ratePerS: 0,
      killAfterMs: 10_000,
      adminUrls: [],
      idleConnections: 5000,
      connectBatch: 200,
      idleSubscribe: false,
      queues: 100,
      consumersPerQueue: 4,
      idleSettleMs: 5000,
      runs: runs.length,
      costSettleMs: 0,
    },
    machine: { nproc: 2, cpuModel: 'Test CPU', memoryBytes: 24 * 1024 ** 3, kernel: '6.1', node: 'v20.0.0' },
    runs,
    median: {},
  };
}

describe('renderBenchmarksMarkdown', () => {
  const reports = [
    report('keel', 1, [flowRun(1, 100, 5)]),
    report('activemq', 1, [flowRun(1, 300, 9)]),
    report('keel', 1, [flowRun(2, 200, 7), flowRun(3, 900, 1)]),
    report('keel', 64, [flowRun(1, 5000, 20)]),
  ];

  it('groups by case and takes the median of every run of a broker', () => {
    const groups = groupReports(reports);
    expect(groups.map((g) => g.slug)).toEqual(['throughput-p4-c4-w1-s1024', 'throughput-p4-c4-w64-s1024']);
    expect(groups[0]!.byTarget.get('keel')!.length).toBe(3);
  });

  it('writes one table row per broker with medians, the machine, and chart links', () => {
    const { markdown, svgs } = renderBenchmarksMarkdown(reports, {
      svgHref: 'benchmarks',
      setup: { Postgres: '15' },
    });
    expect(markdown).toContain('2 CPUs (Test CPU), 24.0 GiB memory');
    expect(markdown).toContain('- Postgres: 15');
    expect(markdown).toContain('Keel, ActiveMQ ran on the same machine');
    const keelOnly = renderBenchmarksMarkdown([reports[0]!], { svgHref: '.' }).markdown;
    expect(keelOnly).toContain('Only Keel was measured');
    expect(markdown).toContain('## throughput: 4 producers, 4 consumers, window 1, 1024 B');
    // Keel window 1: receive rates 100, 200, 900 -> median 200; p99 5, 7, 1 -> 5.
    expect(markdown).toContain('| Keel | 3 | 200 | 200 | 1.00 | 5.00 | 10.0 | 1.00 |');
    expect(markdown).toContain('| ActiveMQ | 1 | 300 | 300 |');
    expect(markdown.indexOf('| Keel | 3')).toBeLessThan(markdown.indexOf('| ActiveMQ | 1'));
    expect(markdown).toContain('](benchmarks/throughput-p4-c4-w1-s1024.svg)');
    expect(Object.keys(svgs).sort()).toEqual([
      'throughput-p4-c4-w1-s1024-p99.svg',
      'throughput-p4-c4-w1-s1024.svg',
      'throughput-p4-c4-w64-s1024-p99.svg',
      'throughput-p4-c4-w64-s1024.svg',
    ]);
  });

  it('refuses to render nothing', () => {
    expect(() => renderBenchmarksMarkdown([], { svgHref: '.' })).toThrow(RangeError);
  });
});

describe('barChartSvg', () => {
  it('draws one bar per value, scaled to the largest, with escaped labels', () => {
    const svg = barChartSvg('a <b>', 'msg/s', [
      { label: 'Keel', value: 50 },
      { label: 'R&D', value: 100 },
    ]);
    expect(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"')).toBe(true);
    expect(svg).toContain('a &lt;b&gt;');
    expect(svg).toContain('R&amp;D');
    const widths = [...svg.matchAll(/<rect x="110" y="\d+" width="([\d.]+)"/g)].map((m) => Number(m[1]));
    expect(widths).toEqual([205, 410]);
    expect(svg).toContain('50 msg/s');
  });
});

describe('renderTargetsSection', () => {
  it("checks the issue's targets against the medians", () => {
    const groups = groupReports([
      report('keel', 64, [flowRun(1, 6000, 40)]),
      report('rabbitmq', 64, [flowRun(1, 2000, 30)]),
      report('activemq', 64, [flowRun(1, 1000, 900)]),
      report('keel', 1, [flowRun(1, 1500, 4)]),
      report('rabbitmq', 1, [flowRun(1, 1000, 2)]),
    ]);
    const text = renderTargetsSection(groups).join('\n');
    // 6000 / 2000 = 3 >= 2: met; 6000 / 1000 = 6 < 10: not met; p99 40 < 50: met.
    expect(text).toContain(
      '| window 64: Keel ≥ 2× RabbitMQ | Keel 6,000 msg/s, RabbitMQ 2,000 msg/s: 3.00× | **met** |',
    );
    expect(text).toContain(
      '| window 64: Keel ≥ 10× ActiveMQ | Keel 6,000 msg/s, ActiveMQ 1,000 msg/s: 6.00× | **not met** |',
    );
    expect(text).toContain('| window 64: Keel p99 < 50 ms | 40.00 ms | **met** |');
    expect(text).toContain(
      '| window 1: Keel ≥ 2× RabbitMQ | Keel 1,500 msg/s, RabbitMQ 1,000 msg/s: 1.50× | **not met** |',
    );
    expect(text).toContain('| window 1: Keel p99 < 3 ms | 4.00 ms | **not met** |');
    expect(text).toContain('| backlog drain: Keel ≥ 2× RabbitMQ | - | not measured |');
  });
});

function failoverRun(run: number, takeoverMs: number, firstReceipt: number, lost = 0): FailoverRunResult {
  return {
    kind: 'failover',
    run,
    destination: '/queue/q',
    killedPid: 1234,
    killAtMs: 10_000,
    takeoverMs,
    newMasterAdmin: 'http://127.0.0.1:8162',
    firstReceiptAfterKillMs: firstReceipt,
    firstDeliveryAfterKillMs: firstReceipt,
    receiptPauseMs: firstReceipt + 5,
    deliveryPauseMs: firstReceipt + 5,
    sent: 6000,
    receipted: 6000,
    failed: 0,
    received: 6000 - lost,
    lost,
    duplicated: 0,
    deliveredWithoutReceipt: 0,
    durationMs: 30_000,
    latencyMs: lat(1, 3),
    receiptLatencyMs: lat(1, 3),
    timeline: { bucketMs: 100, receipts: [], deliveries: [] },
    events: [],
    errors: [],
  };
}

describe('native rows and failover', () => {
  const reports = [
    report('keel', 64, [flowRun(1, 4000, 40)]),
    report('keel', 64, [flowRun(1, 6000, 20)], 'native'),
    report('keel', 1, [flowRun(1, 900, 4)]),
    report('keel', 1, [flowRun(1, 800, 5)], 'native'),
    report(
      'keel',
      1,
      [failoverRun(1, 40, 120), failoverRun(2, 60, 140), failoverRun(3, 200, 300)],
      'native',
      'failover',
    ),
  ];

  it('puts Keel over the native protocol in its own row of the same case', () => {
    const groups = groupReports(reports);
    expect(groups.map((g) => g.scenario)).toEqual(['throughput', 'throughput', 'failover']);
    expect([...groups[1]!.byTarget.keys()].sort()).toEqual(['keel', 'keel-native']);
    const { markdown, svgs } = renderBenchmarksMarkdown(reports, { svgHref: '.' });
    expect(markdown).toContain('over STOMP and over its native protocol (rows `Keel (native)`');
    expect(markdown.indexOf('| Keel (native) | 1 | 6,000')).toBeGreaterThan(0);
    expect(markdown).toContain(
      '## failover: master SIGKILLed under load, 4 producers, 4 consumers, window 1, 1024 B',
    );
    // takeover 40, 60, 200 -> median 60; first receipt 120, 140, 300 -> 140.
    expect(markdown).toContain('| Keel (native) | 3 | 60 | 140 | 145 | 145 | 6,000 | 6,000 | 0 | 0 |');
    expect(Object.keys(svgs)).toContain('failover-p4-c4-w1-s1024-r0.svg');
  });

  it('checks "faster still over native" and the 150 ms takeover', () => {
    const text = renderTargetsSection(groupReports(reports)).join('\n');
    expect(text).toContain(
      '| window 64: Keel native faster than Keel over STOMP | native 6,000 msg/s, STOMP 4,000 msg/s: 1.50× | **met** |',
    );
    expect(text).toContain(
      '| window 1: Keel native faster than Keel over STOMP | native 800 msg/s, STOMP 900 msg/s: 0.89× | **not met** |',
    );
    expect(text).toContain(
      "| failover: a slave serves within 150 ms of the master's SIGKILL | takeover 60 ms (admin API), first receipt after the kill 140 ms (Keel (native)) | **met** |",
    );
  });
});

describe('physical-limit section', () => {
  it('tabulates pg-limit.json and relates Keel to the best insert + delete rate', () => {
    const phase = (kind: 'insert' | 'delete', rowsPerSecond: number) => ({
      kind,
      clients: 4,
      batch: 100,
      rows: 1000,
      commits: 10,
      durationMs: 1000,
      rowsPerSecond,
      commitsPerSecond: rowsPerSecond / 100,
      commitP50Ms: 1,
      commitP99Ms: 2,
    });
    const pgLimit: PgLimitReport = {
      tool: 'keel-pg-limit',
      startedAt: '2025-01-02T03:04:05.000Z',
      postgres: '15.0',
      settings: { synchronous_commit: 'on' },
      sizeBytes: 1024,
      durationMs: 10000,
      maxRows: 300000,
      results: [
        {
          batch: 100,
          clients: 4,
          insert: phase('insert', 20000),
          delete: phase('delete', 80000),
          insertPlusDeletePerSecond: 16000,
        },
      ],
    };
    const { markdown } = renderBenchmarksMarkdown([report('keel', 64, [flowRun(1, 4000, 40)])], {
      svgHref: '.',
      pgLimit,
      notes: '## Notes\n\nby hand\n',
    });
    expect(markdown).toContain('| 100 | 4 | 20,000 | 200 | 2.00 | 80,000 | 800 | 16,000 |');
    expect(markdown).toContain('Keel window 64 reaches 4,000 msg/s, 25 % of it');
    expect(markdown.trimEnd().endsWith('by hand')).toBe(true);
  });
});

describe('Keel vs RabbitMQ AMQP 0-9-1 (issue #25)', () => {
  const costed = (run: number, rate: number, p99: number, brokerUs: number): FlowRunResult => ({
    ...flowRun(run, rate, p99),
    cost: {
      messages: 1000,
      wallMs: 1000,
      brokerCpuUsPerMsg: brokerUs,
      brokerWritesPerMsg: 0.25,
      brokerReadsPerMsg: 0.5,
      pgCpuUsPerMsg: 40,
      loadCpuUsPerMsg: 30,
      walBytesPerMsg: 1500,
      walSyncsPerMsg: 0.05,
      totals: { loadCpuS: 0.03 },
    },
  });
  const reports = [
    report('keel', 64, [costed(1, 20_000, 30, 90)], 'native'),
    report('keel', 64, [costed(1, 18_500, 35, 100)]),
    report('rabbitmq-amqp', 64, [costed(1, 10_000, 40, 120)], 'amqp'),
    report('rabbitmq-quorum', 64, [costed(1, 9_000, 45, 150)], 'amqp'),
    report('keel', 1, [costed(1, 5_000, 2, 200)], 'native'),
    report('rabbitmq-amqp', 1, [costed(1, 2_500, 3, 300)], 'amqp'),
  ];

  it('puts the AMQP rows in the same tables, with a cost-per-message table', () => {
    const { markdown } = renderBenchmarksMarkdown(reports, { svgHref: '.' });
    expect(markdown).toContain(
      'each driven over STOMP, Keel over its native protocol (rows `Keel (native)`, @keel/client), RabbitMQ over AMQP 0-9-1 (rows `RabbitMQ AMQP`, amqplib) by the same load generator',
    );
    expect(markdown).toContain('- AMQP 0-9-1 rows: a confirm channel per producer');
    expect(markdown).toContain('| RabbitMQ AMQP (classic) | 1 | 10,000 | 10,000 |');
    expect(markdown).toContain('| RabbitMQ AMQP (quorum) | 1 | 9,000 |');
    expect(markdown).toContain(
      '| broker | broker CPU µs/msg | broker write syscalls/msg | broker read syscalls/msg | Postgres CPU µs/msg |',
    );
    expect(markdown).toContain('| Keel (native) | 90.0 | 0.25 | 0.50 | 40.0 | 30.0 | 1,500 | 0.050 |');
    expect(markdown).toContain('| RabbitMQ AMQP (quorum) | 150.0 |');
  });

  it("checks issue #25's targets: 2× at window 64 with p99 no worse, 2.5× at window 1, STOMP within 10 %", () => {
    const { markdown } = renderBenchmarksMarkdown(reports, { svgHref: '.' });
    expect(markdown).toContain('## Against the targets of issue #25');
    expect(markdown).toContain(
      '| window 64: Keel native ≥ 2× RabbitMQ AMQP (classic) | Keel 20,000 msg/s, RabbitMQ 10,000 msg/s: 2.00× | **met** |',
    );
    expect(markdown).toContain(
      "| window 64: Keel native p99 latency no worse than RabbitMQ AMQP's | Keel 30.00 ms, RabbitMQ 40.00 ms | **met** |",
    );
    expect(markdown).toContain(
      '| window 1: Keel native ≥ 2.5× RabbitMQ AMQP (classic) | Keel 5,000 msg/s, RabbitMQ 2,500 msg/s: 2.00× | **not met** |',
    );
    expect(markdown).toContain(
      '| window 64: Keel over STOMP within 10 % of native | STOMP 18,500 msg/s, native 20,000 msg/s: 93 % | **met** |',
    );
    expect(markdown).toContain('| window 1: Keel over STOMP within 10 % of native | - | not measured |');
    expect(markdown).not.toContain('## Against the targets of the issue\n');
  });
});

describe('spliceSection', () => {
  const generated = '# Benchmarks\n\nintro\n\n## Setup\n\n- x\n';

  it('appends the report as a level-2 section, its headings one level down, between markers', () => {
    const out = spliceSection('# Doc\n\nkept\n', 'Keel vs X', generated);
    expect(out).toBe(
      '# Doc\n\nkept\n\n<!-- bench-section: Keel vs X -->\n## Keel vs X\n\nintro\n\n### Setup\n\n- x\n<!-- /bench-section: Keel vs X -->\n',
    );
  });

  it('leaves lines in fenced code blocks alone', () => {
    const out = spliceSection('', 'S', '# B\n\n## Run\n\n```sh\n# a comment\nrun\n```\n');
    expect(out).toContain('### Run\n\n```sh\n# a comment\nrun\n```');
  });

  it('replaces the section it wrote before and keeps everything around it', () => {
    const once = `${spliceSection('# Doc\n', 'S', generated)}\n## After\n`;
    const twice = spliceSection(once, 'S', '# Benchmarks\n\nnew\n');
    expect(twice).toContain('## S\n\nnew\n<!-- /bench-section: S -->');
    expect(twice).not.toContain('intro');
    expect(twice.startsWith('# Doc\n')).toBe(true);
    expect(twice.endsWith('## After\n')).toBe(true);
  });
});
