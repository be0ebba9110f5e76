import { InvalidArgumentError } from '@keel/protocol';
import { type DrillRound, drillSettings, drillTable } from './drill';

function errorOf(fn: () => unknown): InvalidArgumentError {
  try {
    fn();
  } catch (err) {
    if (err instanceof InvalidArgumentError) return err;
    throw err;
  }
  throw new Error('expected an InvalidArgumentError');
}

describe('keel drill options and table', () => {
  it('fills in the defaults and checks each option by name', () => {
    expect(drillSettings({})).toEqual({
      kills: 3,
      mode: 'kill',
      nodes: 3,
      ratePerS: 200,
      chartFile: 'keel-drill.svg',
    });
    expect(
      drillSettings({
        kills: '2',
        mode: 'db-cut',
        nodes: '5',
        rate: '50',
        chart: 'c.svg',
        json: 'r.json',
        pgUrl: 'postgres://h/db',
      }),
    ).toEqual({
      kills: 2,
      mode: 'db-cut',
      nodes: 5,
      ratePerS: 50,
      chartFile: 'c.svg',
      jsonFile: 'r.json',
      pgUrl: 'postgres://h/db',
    });
    expect(errorOf(() => drillSettings({ kills: '0' })).message).toBe(
      '--kills must be an integer 1..1000 (got "0")',
    );
    expect(errorOf(() => drillSettings({ nodes: '1' })).message).toBe(
      '--nodes must be an integer 2..9 (got "1")',
    );
    expect(errorOf(() => drillSettings({ mode: 'nuke' })).message).toBe(
      '--mode must be one of kill, stop, db-cut (got "nuke")',
    );
    expect(errorOf(() => drillSettings({ rate: 'x' })).message).toMatch(/^--rate /);
    expect(errorOf(() => drillSettings({ chart: ' ' })).message).toBe('--chart needs a file name');
    expect(errorOf(() => drillSettings({ pgUrl: 'mysql://x' })).message).toMatch(
      /^--pg-url must be a postgres:\/\/ URL/,
    );
  });

  it('prints one row per round and a total row', () => {
    const round = (n: number, takeoverMs: number, pauseMs: number): DrillRound => ({
      round: n,
      mode: 'kill',
      oldMaster: `n${n}`,
      newMaster: `n${n + 1}`,
      takeoverMs,
      pauseMs,
      deliveryPauseMs: pauseMs,
      rejoinMs: 3000,
      stepDownMs: null,
      receipted: 1000 * n,
      delivered: 1000 * n,
      lost: 0,
      duplicated: n - 1,
      faultAtMs: 0,
      newMasterAtMs: takeoverMs,
    });
    const table = drillTable([round(1, 201, 260), round(2, 1108, 1126)], {
      sent: 3000,
      receipted: 3000,
      failed: 0,
      delivered: 3000,
      lost: 0,
      duplicated: 1,
      deliveredWithoutReceipt: 0,
    }).split('\n');
    expect(table).toEqual([
      'ROUND  MODE  OLD MASTER  NEW MASTER  TAKEOVER  PAUSE    RECEIPTED  DELIVERED  LOST  DUPLICATED',
      '    1  kill  n1          n2            201 ms   260 ms       1000       1000     0           0',
      '    2  kill  n2          n3           1108 ms  1126 ms       2000       2000     0           1',
      'total                    max:         1108 ms  1126 ms       3000       3000     0           1',
    ]);
  });
});
