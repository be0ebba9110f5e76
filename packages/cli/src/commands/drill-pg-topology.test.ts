/**
 * The hook topology (how a Patroni or other existing topology plugs into the pg-failover drill),
 * against a real primary + standby: the kill hook is a shell command that finds the primary's
 * postmaster by KEEL_DRILL_PRIMARY's port; promotion and re-join happen outside the drill (as
 * Patroni would do them) and the topology waits for them.
 */
import { type PostgresPair, startPostgresPair } from '@keel/testkit';
import { HookTopology } from './drill-pg-topology';

jest.setTimeout(90_000);

let pair: PostgresPair | undefined;
afterAll(async () => {
  await pair?.stop();
});

it('kills the primary by hook, waits for a promotion and for the old primary back in recovery', async () => {
  pair = await startPostgresPair({ synchronous: false });
  const p = pair;
  const [first, second] = p.nodes;
  const dir = first.dataDir.slice(0, first.dataDir.lastIndexOf('/'));
  // postmaster.pid: line 1 the pid, line 4 the port.
  const kill = `port=\${KEEL_DRILL_PRIMARY##*:}; for f in ${dir}/*/postmaster.pid; do [ "$(sed -n 4p "$f")" = "$port" ] && kill -KILL "$(head -1 "$f")"; done; true`;
  const topology = new HookTopology(`postgres://postgres@${p.hostList}/postgres`, { killPrimary: kill });
  const hostOf = (n: { port: number }) => `127.0.0.1:${n.port}`;
  expect(topology.hosts).toEqual([hostOf(first), hostOf(second)]);
  expect(await topology.primaries()).toEqual([hostOf(first)]);

  const old = await topology.killPrimary();
  expect(old).toBe(hostOf(first));
  // What Patroni would do: promote the standby; the topology only waits for a new read-write host.
  const [promoted] = await Promise.all([topology.promote(old), p.promoteStandby()]);
  expect(promoted.host).toBe(hostOf(second));
  const [rejoin] = await Promise.all([topology.rejoin(old), p.rejoinOldPrimary()]);
  expect(rejoin.method).toBe('hook');
  expect(await topology.primaries()).toEqual([hostOf(second)]);
});
