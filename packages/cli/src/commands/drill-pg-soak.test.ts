import { InvalidArgumentError } from '@keel/protocol';
import {
  longestLived,
  pgSoakSettings,
  type SoakSample,
  soakSample,
  soakSamplesLine,
  soakTable,
  streamsTable,
} from './drill-pg-soak';
import { renderSeriesChart } from './drill-series-chart';

function errorOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    if (err instanceof InvalidArgumentError) return err.message;
    throw err;
  }
  throw new Error('expected an InvalidArgumentError');
}

describe('keel drill --mode pg-soak', () => {
  it("defaults to the issue's soak: 30 min, master kill every 2 min, promotion every 10", () => {
    expect(pgSoakSettings({})).toEqual({
      minutes: 30,
      masterKillEveryS: 120,
      promoteEveryS: 600,
      sampleEveryS: 10,
      standby: 'sync',
      nodes: 2,
      ratePerS: 200,
      chartFile: 'keel-soak-pg.svg',
    });
    expect(pgSoakSettings({ minutes: '5', masterKillEvery: '24', promoteEvery: '120' })).toMatchObject({
      minutes: 5,
      masterKillEveryS: 24,
      promoteEveryS: 120,
    });
    expect(errorOf(() => pgSoakSettings({ minutes: '0' }))).toBe(
      '--minutes must be an integer 1..1440 (got "0")',
    );
    expect(errorOf(() => pgSoakSettings({ pgUrl: 'postgres://a,b/p' }))).toMatch(/drop --pg-url/);
  });

  it('tables the faults and summarises the samples', () => {
    const table = soakTable([
      {
        kind: 'master-kill',
        detail: 'n1 → n2',
        faultAtMs: 24_000,
        brokerPauseMs: 300,
        clientPauseMs: 500,
        receipted: 4800,
        lost: 0,
        duplicated: 0,
      },
    ]);
    expect(table.split('\n')[1]).toMatch(/^24 s +master-kill +n1 → n2 +300 ms +500 ms +4800 +0 +0$/);
    const s = (atMs: number, rss: number, dead: number): SoakSample => ({
      atMs,
      rssMiB: { n1: rss },
      deadTuples: dead,
      liveTuples: 10,
      tableMiB: 1.5,
    });
    expect(soakSamplesLine([s(0, 100, 5), s(60_000, 104, 9)])).toBe(
      'broker RSS MiB: first n1 100; last n1 104; max 104\nmessage tables: first 1.5 MiB, 5 dead; last 1.5 MiB, 9 dead; max 1.5 MiB, 9 dead (2 samples)',
    );
  });

  it('draws one panel per quantity with its series and the fault markers', () => {
    const svg = renderSeriesChart({
      title: 'soak <test>',
      durationMs: 120_000,
      markers: [{ atMs: 60_000, label: 'kill' }],
      panels: [
        {
          title: 'broker RSS',
          unit: 'MiB',
          series: [
            {
              name: 'n1',
              points: [
                { atMs: 0, value: 100 },
                { atMs: 120_000, value: 110 },
              ],
            },
          ],
        },
        { title: 'size', unit: 'MiB', series: [{ name: 'size', points: [] }] },
      ],
    });
    expect(svg.startsWith('<svg')).toBe(true);
    expect(svg).toContain('soak &lt;test&gt;');
    expect(svg).toContain('broker RSS (MiB)');
    expect(svg.match(/<path /g)).toHaveLength(1);
    expect(svg.match(/stroke-dasharray/g)).toHaveLength(2);
  });

  it("tables each stream's ledger and the sum", () => {
    const t = {
      sent: 1000,
      receipted: 999,
      failed: 1,
      delivered: 999,
      lost: 0,
      duplicated: 0,
      deliveredWithoutReceipt: 0,
    };
    const lines = streamsTable({
      queue: { destination: 'queue://q', ...t },
      topic: { destination: 'topic://t', ...t, duplicated: 2 },
    }).split('\n');
    expect(lines[0]).toMatch(/^STREAM +SENT +RECEIPTED +RECEIVED +LOST +DUPLICATED +FAILED$/);
    expect(lines[1]).toMatch(/^queue \(queue:\/\/q\) +1000 +999 +999 +0 +0 +1$/);
    expect(lines[2]).toMatch(/^topic \(topic:\/\/t\) +1000 +999 +999 +0 +2 +1$/);
    expect(lines[3]).toMatch(/^total +2000 +1998 +1998 +0 +2 +2$/);
  });

  it('sums the message tables into a sample, NaN when the primary did not answer', () => {
    const s = soakSample(5_000, [{ name: 'n1', pid: 42, rssMiB: 120.5 }], {
      keel_messages: { mib: 1.25, deadTuples: 100, liveTuples: 10, autovacuums: 2 },
      keel_sub_entries: { mib: 0.5, deadTuples: 30, liveTuples: 3, autovacuums: 1 },
    });
    expect(s).toMatchObject({
      atMs: 5_000,
      rssMiB: { n1: 120.5 },
      pids: { n1: 42 },
      deadTuples: 130,
      liveTuples: 13,
      tableMiB: 1.75,
    });
    const none = soakSample(6_000, [], null);
    expect(Number.isNaN(none.tableMiB) && Number.isNaN(none.deadTuples)).toBe(true);
    expect(none.tables).toBeUndefined();
  });

  it('finds the broker process sampled longest (a killed node restarts under another pid)', () => {
    const at = (atMs: number, n1: [number, number], n2?: [number, number]): SoakSample =>
      soakSample(
        atMs,
        [
          { name: 'n1', pid: n1[0], rssMiB: n1[1] },
          ...(n2 ? [{ name: 'n2', pid: n2[0], rssMiB: n2[1] }] : []),
        ],
        null,
      );
    const samples = [
      at(0, [10, 100], [20, 90]),
      at(10_000, [10, 110], [20, 95]),
      at(20_000, [11, 80], [20, 97]), // n1 was killed and came back as pid 11
      at(30_000, [11, 85], [20, 96]),
      at(40_000, [11, 86]),
    ];
    expect(longestLived(samples)).toEqual({
      node: 'n2',
      pid: 20,
      fromMs: 0,
      toMs: 30_000,
      firstMiB: 90,
      lastMiB: 96,
      maxMiB: 97,
    });
    expect(longestLived([])).toBeNull();
  });
});
