import { InvalidArgumentError } from '@keel/protocol';
import { type PgFailoverRound, pgFailoverDrillSettings, pgFailoverTable } from './drill-pg-failover';

function errorOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    if (err instanceof InvalidArgumentError) return err.message;
    throw err;
  }
  throw new Error('expected an InvalidArgumentError');
}

describe('keel drill --mode pg-failover options and table', () => {
  it('fills in the defaults: 3 rounds, a synchronous local standby, 2 nodes', () => {
    expect(pgFailoverDrillSettings({ mode: 'pg-failover' })).toEqual({
      rounds: 3,
      standby: 'sync',
      nodes: 2,
      ratePerS: 200,
      chartFile: 'keel-drill-pg-failover.svg',
    });
    expect(pgFailoverDrillSettings({ rounds: '5', standby: 'async', json: 'r.json' })).toMatchObject({
      rounds: 5,
      standby: 'async',
      jsonFile: 'r.json',
    });
    expect(pgFailoverDrillSettings({ kills: '2' }).rounds).toBe(2);
  });

  it('takes existing servers as a multi-host URL with hooks (a Patroni topology plugs in there)', () => {
    expect(
      pgFailoverDrillSettings({
        pgUrl: 'postgres://postgres@h1:5432,h2:5432/postgres',
        killPrimaryCmd: 'patronictl kill',
      }),
    ).toMatchObject({
      pgUrl: 'postgres://postgres@h1:5432,h2:5432/postgres',
      hooks: { killPrimary: 'patronictl kill' },
    });
  });

  it('refuses bad combinations, naming the option', () => {
    expect(errorOf(() => pgFailoverDrillSettings({ standby: 'semi' }))).toBe(
      '--standby must be one of sync, async (got "semi")',
    );
    expect(errorOf(() => pgFailoverDrillSettings({ rounds: '2', kills: '2' }))).toBe(
      '--rounds and --kills are the same here: give one',
    );
    expect(errorOf(() => pgFailoverDrillSettings({ rounds: '0' }))).toBe(
      '--rounds must be an integer 1..1000 (got "0")',
    );
    expect(errorOf(() => pgFailoverDrillSettings({ store: 'shared' }))).toMatch(/takes no --store/);
    expect(errorOf(() => pgFailoverDrillSettings({ pgUrl: 'postgres://h1/postgres' }))).toMatch(
      /--pg-url must list the primary and its standbys/,
    );
    expect(errorOf(() => pgFailoverDrillSettings({ pgUrl: 'postgres://h1,h2/postgres' }))).toBe(
      '--pg-url with --mode pg-failover needs --kill-primary-cmd',
    );
    expect(errorOf(() => pgFailoverDrillSettings({ promoteCmd: 'x' }))).toMatch(/need --pg-url/);
  });

  it('prints one row per promotion and the maxima', () => {
    const round: PgFailoverRound = {
      round: 1,
      oldPrimary: '127.0.0.1:5001',
      newPrimary: '127.0.0.1:5002',
      promoteMs: 600,
      brokerPauseMs: 1400,
      newMaster: 'n2',
      clientPauseMs: 2900,
      deliveryPauseMs: 2950,
      rejoin: { method: 'pg_rewind', ms: 9000 },
      receipted: 2000,
      received: 2000,
      lost: 0,
      duplicated: 0,
      faultAtMs: 3000,
      recoveredAtMs: 6000,
    };
    const table = pgFailoverTable([round, { ...round, round: 2, brokerPauseMs: null }], {
      sent: 4000,
      receipted: 4000,
      failed: 0,
      delivered: 4000,
      lost: 0,
      duplicated: 0,
      deliveredWithoutReceipt: 0,
    });
    const lines = table.split('\n');
    expect(lines[0]).toMatch(/^ROUND +PRIMARY +PROMOTE +BROKER PAUSE +CLIENT PAUSE +REJOIN +RECEIPTED/);
    expect(lines[1]).toContain('127.0.0.1:5001 → 127.0.0.1:5002');
    expect(lines[1]).toContain('pg_rewind 9000 ms');
    expect(lines[2]).toMatch(/ - /);
    expect(lines[3]).toMatch(/^total +max: +600 ms +1400 ms +2900 ms +4000 +4000 +0 +0$/);
  });
});
