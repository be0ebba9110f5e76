/**
 * Issue #23.2 through a network bridge: B's bridge logs in to A as user `bridge` and is authorized
 * there like any client. A grants `bridges` write on `net.ok.>` but not on `net.no.>`: B's messages
 * for net.ok.q reach A's consumer (0 lost, 0 duplicated), those for net.no.q are refused by A
 * (NOT_AUTHORIZED) and none reaches A.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePorts } from '@keel/testkit';
import {
  consume,
  networkTestResources,
  produce,
  queueDepth,
  startNetNode,
  Tally,
  waitForLogs,
} from './helpers/network';

jest.setTimeout(120_000);

const { clients, database } = networkTestResources();

const CONFIG_A = `
users:
  - {name: app, password: app-pw, groups: [apps]}
  - {name: bridge, password: bridge-pw, groups: [bridges]}
authorization:
  - {queue: "net.ok.>", read: apps, write: "apps,bridges", admin: "apps,bridges"}
  - {queue: "net.no.>", read: apps, write: apps, admin: apps}
  - {topic: "ActiveMQ.Advisory.>", read: "apps,bridges", write: "apps,bridges", admin: "apps,bridges"}
`;

test('a bridge is authorized as its user on the peer: allowed queues forwarded, the others refused', async () => {
  const file = join(mkdtempSync(join(tmpdir(), 'keel-net-authz-')), 'a.yaml');
  writeFileSync(file, CONFIG_A);
  const [pa] = (await freePorts(1)) as [number];
  const a = await startNetNode({
    db: (await database()).url,
    cluster: 'authzA',
    port: pa,
    env: { KEEL_CONFIG: file },
  });
  const b = await startNetNode({
    db: (await database()).url,
    cluster: 'authzB',
    connectors: [
      `static:(tcp://127.0.0.1:${pa})?initialReconnectDelay=100&maxReconnectDelay=500&userName=bridge&password=bridge-pw`,
    ],
  });
  await waitForLogs(b, (e) => e.msg === 'network bridge connected', 1);

  const okTally = new Tally();
  const noTally = new Tally();
  const appOnA = await clients.open(`tcp://127.0.0.1:${pa}`, { username: 'app', password: 'app-pw' });
  await consume(appOnA, 'A', 'queue://net.ok.q', okTally);
  await consume(appOnA, 'A', 'queue://net.no.q', noTally);
  await waitForLogs(
    b,
    (e) => e.msg === 'network bridge: forwarding on demand' && e.destination === 'queue://net.ok.q',
    1,
  );
  await waitForLogs(
    b,
    (e) => e.msg === 'network bridge: forwarding on demand' && e.destination === 'queue://net.no.q',
    1,
  );

  const onB = await clients.open(`tcp://127.0.0.1:${b.port}`);
  const sentOk = await produce(onB, 'queue://net.ok.q', 'ok', 50);
  const sentNo = await produce(onB, 'queue://net.no.q', 'no', 20);
  await okTally.until(sentOk.length);
  expect(okTally.counts(sentOk)).toEqual({ sent: 50, received: 50, lost: 0, duplicated: 0 });

  const refused = await waitForLogs(
    b,
    (e) => e.msg === 'network bridge: peer refused a message' && e.destination === 'queue://net.no.q',
    1,
  );
  expect(String(refused.err)).toBe(
    'user bridge is not authorized to write to queue://net.no.q: the write right is missing',
  );
  // A stored none of them; they are still B's (on the queue or, after the redeliveries, its DLQ).
  expect(noTally.total).toBe(0);
  expect(await queueDepth(a, 'net.no.q')).toBe(0);
  const onBStill = (await queueDepth(b, 'net.no.q')) + (await queueDepth(b, 'ActiveMQ.DLQ'));
  expect(onBStill).toBeGreaterThan(0);
  expect(sentNo).toHaveLength(20);
});
