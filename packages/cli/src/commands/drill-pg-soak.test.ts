import { InvalidArgumentError } from '@keel/protocol';
import { pgSoakSettings, type SoakSample, soakSamplesLine, soakTable } from './drill-pg-soak';
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
});
