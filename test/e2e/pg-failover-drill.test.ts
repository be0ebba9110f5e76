/**
 * Issue #20.3: `keel drill --mode pg-failover` as a real process (the built CLI), three promotions
 * with a synchronous standby: a primary and a streaming standby on loopback (initdb
 * --data-checksums, pg_basebackup -R), two Keel nodes on the multi-host URL under steady persistent
 * load; each round SIGKILLs the primary's postmaster, promotes the standby with `pg_ctl promote`
 * and re-joins the old primary as a standby (pg_rewind), so the next round promotes back the other
 * way. The drill's own ledger: 0 lost, 0 duplicated, and never two primaries.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { findPostgresBindir } from '@keel/testkit';
import { runDrillCli } from './helpers/drill-cli';

jest.setTimeout(180_000);

interface PgDrillJson {
  mode: string;
  rounds: {
    oldPrimary: string;
    newPrimary: string;
    promoteMs: number;
    brokerPauseMs: number | null;
    clientPauseMs: number;
    rejoin: { method: string; ms: number };
    lost: number;
    duplicated: number;
  }[];
  totals: {
    sent: number;
    receipted: number;
    failed: number;
    delivered: number;
    lost: number;
    duplicated: number;
  };
}

let out: string;
beforeAll(() => {
  out = mkdtempSync(path.join(os.tmpdir(), 'keel-pg-drill-'));
});
afterAll(() => rmSync(out, { recursive: true, force: true }));

const binaries = findPostgresBindir() ? test : test.skip;

binaries(
  'three promotions with a synchronous standby: 0 lost, 0 duplicated, the old primary re-joins each time',
  async () => {
    const { result, output } = await runDrillCli<PgDrillJson>(
      out,
      'pg-failover-sync',
      ['--mode', 'pg-failover', '--rounds', '3', '--standby', 'sync', '--nodes', '2', '--rate', '100'],
      170_000,
    );
    process.stdout.write(`${output.slice(output.indexOf('ROUND'))}\n`);
    expect(result.mode).toBe('pg-failover');
    expect(result.rounds).toHaveLength(3);
    // Each round promotes the other way: a → b, b → a, a → b.
    const [r1, r2, r3] = result.rounds;
    expect(r2?.oldPrimary).toBe(r1?.newPrimary);
    expect(r2?.newPrimary).toBe(r1?.oldPrimary);
    expect(r3?.oldPrimary).toBe(r2?.newPrimary);
    for (const r of result.rounds) {
      expect(['pg_rewind', 'clone']).toContain(r.rejoin.method);
      // A master took the lock again after every kill (bounded, not a speed claim: CI is shared).
      expect(r.brokerPauseMs).not.toBeNull();
      expect(r.clientPauseMs).toBeLessThan(30_000);
    }
    const t = result.totals;
    expect({ lost: t.lost, duplicated: t.duplicated, failed: t.failed }).toEqual({
      lost: 0,
      duplicated: 0,
      failed: 0,
    });
    expect(t.delivered).toBe(t.receipted);
    expect(t.receipted).toBeGreaterThan(0);
  },
);
