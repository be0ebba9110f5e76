import { InvalidArgumentError } from '@keel/protocol';
import { type DrillRound, drillLockerWiring, drillSettings, drillTable } from './drill';

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
      locker: 'row',
      store: 'db',
      backlog: 0,
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
      locker: 'row',
      store: 'db',
      backlog: 0,
    });
    expect(errorOf(() => drillSettings({ kills: '0' })).message).toBe(
      '--kills must be an integer 1..1000 (got "0")',
    );
    expect(errorOf(() => drillSettings({ nodes: '1' })).message).toBe(
      '--nodes must be an integer 2..9 (got "1")',
    );
    expect(errorOf(() => drillSettings({ mode: 'nuke' })).message).toBe(
      '--mode must be one of kill, stop, db-cut, pg-kill (got "nuke")',
    );
    expect(errorOf(() => drillSettings({ rate: 'x' })).message).toMatch(/^--rate /);
    expect(errorOf(() => drillSettings({ chart: ' ' })).message).toBe('--chart needs a file name');
    expect(errorOf(() => drillSettings({ pgUrl: 'mysql://x' })).message).toMatch(
      /^--pg-url must be a postgres:\/\/ URL/,
    );
  });

  it('--locker file, --store shared (mode b), pg-kill and --backlog, and the combinations refused', () => {
    expect(
      drillSettings({ locker: 'file', store: 'shared', mode: 'pg-kill', backlog: '100_000' }),
    ).toMatchObject({
      locker: 'file',
      store: 'shared',
      mode: 'pg-kill',
      backlog: 100_000,
    });
    expect(drillSettings({ locker: 'file', mode: 'stop' })).toMatchObject({ locker: 'file', store: 'db' });
    expect(errorOf(() => drillSettings({ locker: 'zk' })).message).toBe(
      '--locker must be one of row, lease, file (got "zk")',
    );
    expect(errorOf(() => drillSettings({ store: 'nfs' })).message).toBe(
      '--store must be one of db, shared (got "nfs")',
    );
    expect(errorOf(() => drillSettings({ store: 'shared' })).message).toMatch(
      /^--store shared needs --locker file/,
    );
    expect(
      errorOf(() => drillSettings({ locker: 'file', store: 'shared', pgUrl: 'postgres://h/db' })).message,
    ).toMatch(/drop --pg-url/);
    expect(errorOf(() => drillSettings({ mode: 'pg-kill', locker: 'file' })).message).toMatch(
      /^--mode pg-kill .* needs --store shared/,
    );
    expect(errorOf(() => drillSettings({ mode: 'db-cut', locker: 'file' })).message).toMatch(
      /^--mode db-cut needs --locker row or lease/,
    );
    expect(errorOf(() => drillSettings({ backlog: '-1' })).message).toMatch(/^--backlog must be an integer/);
  });

  it('wires file-locker nodes to the shared directory; a lease only in stop mode', () => {
    expect(drillLockerWiring({ locker: 'lease', store: 'db', mode: 'kill' }, null, null)).toEqual({
      env: { KEEL_LOCKER: 'lease' },
    });
    const b = drillLockerWiring({ locker: 'file', store: 'shared', mode: 'kill' }, '/s/lock', '/s/store');
    expect(b.args).toEqual(['--locker', 'file', '--lock-dir', '/s/lock', '--store-dir', '/s/store']);
    expect(b.env).not.toHaveProperty('KEEL_LEASE_DURATION');
    const stop = drillLockerWiring({ locker: 'file', store: 'db', mode: 'stop' }, '/s/lock', null);
    expect(stop.args).toEqual(['--locker', 'file', '--lock-dir', '/s/lock']);
    expect(stop.env).toHaveProperty('KEEL_LEASE_DURATION');
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
