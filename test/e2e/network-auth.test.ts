import { createTestDatabase, freePorts } from '@keel/testkit';
import {
  consume,
  isLog,
  networkTestResources,
  produce,
  startNetNode,
  Tally,
  waitForLogs,
} from './helpers/network';

/** A peer that requires credentials: the bridge presents the connector's userName / password. */
const { clients, dbs } = networkTestResources();

test('a bridge authenticates to a peer that requires users; the wrong password forwards nothing', async () => {
  dbs.push(await createTestDatabase(), await createTestDatabase(), await createTestDatabase());
  const [pa, pb, pc] = (await freePorts(3)) as [number, number, number];
  const opts = 'initialReconnectDelay=100&maxReconnectDelay=500';
  await startNetNode({
    db: dbs[0]!.url,
    cluster: 'authA',
    port: pa,
    env: { KEEL_USERS: 'app:app-pw,bridge:bridge-pw' },
  });
  const b = await startNetNode({
    db: dbs[1]!.url,
    cluster: 'authB',
    port: pb,
    connectors: [`static:(tcp://127.0.0.1:${pa})?${opts}&userName=bridge&password=bridge-pw`],
  });
  const c = await startNetNode({
    db: dbs[2]!.url,
    cluster: 'authC',
    port: pc,
    connectors: [`static:(tcp://127.0.0.1:${pa})?${opts}&userName=bridge&password=wrong`],
  });
  await waitForLogs(b, isLog('network bridge connected'), 1);

  const tally = new Tally();
  await consume(
    await clients.open(`tcp://127.0.0.1:${pa}`, { username: 'app', password: 'app-pw' }),
    'A',
    'queue://auth.q',
    tally,
  );
  await waitForLogs(b, isLog('network bridge: forwarding on demand', { destination: 'queue://auth.q' }), 1);
  const sent = await produce(await clients.open(`tcp://127.0.0.1:${pb}`), 'queue://auth.q', 'b', 100);
  await tally.until(sent.length);
  expect(tally.counts(sent)).toEqual({ sent: 100, received: 100, lost: 0, duplicated: 0 });

  // C's bridge is refused (AUTH_FAILED): its messages stay on C.
  const fromC = await produce(await clients.open(`tcp://127.0.0.1:${pc}`), 'queue://auth.q', 'c', 20);
  await new Promise((r) => setTimeout(r, 1500));
  expect(fromC.filter((k) => tally.seen.has(k))).toEqual([]);
  expect(
    c.logs.some((e) => String(e.msg).includes('network bridge') && JSON.stringify(e).includes('AUTH')),
  ).toBe(true);
});
