/**
 * `keel drill --locker file` as a real process (the built CLI): two broker nodes on a shared
 * temporary directory under a steady persistent load, the master faulted twice per drill, and the
 * drill's own count of sent, receipted, delivered, lost and duplicated (issue #19.4).
 *
 * - mode b (`--store shared`): the master runs Postgres on the shared directory; SIGKILL of the
 *   master, SIGSTOP past the lease (the new master fences it), SIGKILL of the master's Postgres;
 * - mode a (`--store db`): the file lock decides, one Postgres stores (KEEL_TEST_DATABASE_URL).
 *
 * Kept CI-sized: 2 rounds, 2 nodes, 100 msg/s. Every drill must lose and duplicate nothing.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { runDrillCli } from './helpers/drill-cli';

jest.setTimeout(240_000);

interface DrillJson {
  rounds: { mode: string; takeoverMs: number; pauseMs: number; lost: number; duplicated: number }[];
  totals: {
    sent: number;
    receipted: number;
    failed: number;
    delivered: number;
    lost: number;
    duplicated: number;
  };
  backlog?: { stored: number; afterRounds: number | null };
}

let out: string;
beforeAll(() => {
  out = mkdtempSync(path.join(os.tmpdir(), 'keel-file-drill-'));
});
afterAll(() => rmSync(out, { recursive: true, force: true }));

/** Runs `keel drill` (2 rounds, 2 nodes, 100 msg/s) to its end; resolves with its JSON result. */
function drill(name: string, args: string[]): Promise<{ result: DrillJson; output: string }> {
  return runDrillCli<DrillJson>(out, name, ['--kills', '2', '--nodes', '2', '--rate', '100', ...args]);
}

function expectNoLoss({ result, output }: { result: DrillJson; output: string }, mode: string): void {
  process.stdout.write(`${output.slice(output.indexOf('ROUND'))}\n`);
  expect(result.rounds.map((r) => r.mode)).toEqual([mode, mode]);
  const t = result.totals;
  expect({ lost: t.lost, duplicated: t.duplicated, failed: t.failed }).toEqual({
    lost: 0,
    duplicated: 0,
    failed: 0,
  });
  expect(t.delivered).toBe(t.receipted);
  expect(t.receipted).toBeGreaterThan(0);
  // Every round recovered (bounded, not a speed claim: other jobs share the CI machine).
  for (const r of result.rounds) expect(r.takeoverMs).toBeLessThan(30_000);
}

describe('keel drill --locker file', () => {
  it('mode b: SIGKILL of the master, 2 rounds, 2,000 messages stored before: 0 lost, 0 duplicated, the backlog intact', async () => {
    const run = await drill('b-kill', [
      '--locker',
      'file',
      '--store',
      'shared',
      '--mode',
      'kill',
      '--backlog',
      '2000',
    ]);
    expectNoLoss(run, 'kill');
    expect(run.result.backlog).toMatchObject({ stored: 2000, afterRounds: 2000 });
  });

  it("mode b: SIGKILL of the master's Postgres, 2 rounds: the master steps down, 0 lost, 0 duplicated", async () => {
    const run = await drill('b-pg-kill', ['--locker', 'file', '--store', 'shared', '--mode', 'pg-kill']);
    expectNoLoss(run, 'pg-kill');
    expect(run.output).toContain(
      'the shared-store Postgres stopped unexpectedly (postmaster killed by SIGKILL)',
    );
  });

  it('mode b: SIGSTOP of the master past the lease, fenced by the new master, 2 rounds: 0 lost, 0 duplicated', async () => {
    const run = await drill('b-stop', ['--locker', 'file', '--store', 'shared', '--mode', 'stop']);
    expectNoLoss(run, 'stop');
    expect(run.output).toMatch(/restarting n\d \(fenced by the new master \(SIGKILL\)\)/);
  });

  it('mode a (file lock, one Postgres): SIGKILL of the master, 2 rounds: 0 lost, 0 duplicated', async () => {
    const pgUrl = process.env.KEEL_TEST_DATABASE_URL;
    expectNoLoss(
      await drill('a-kill', ['--locker', 'file', '--mode', 'kill', ...(pgUrl ? ['--pg-url', pgUrl] : [])]),
      'kill',
    );
  });
});
