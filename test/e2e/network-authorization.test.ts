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
  isLog,
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

const CONFIG_DUPLEX = `
users:
  - {name: app, password: app-pw, groups: [apps]}
  - {name: bridge, password: bridge-pw, groups: [bridges]}
authorization:
  - {queue: "dx.ok.>", read: "apps,bridges", write: "apps,bridges", admin: "apps,bridges"}
  - {queue: "dx.no.>", read: apps, write: apps, admin: apps}
  - {topic: "ActiveMQ.Advisory.>", read: "apps,bridges", write: "apps,bridges", admin: "apps,bridges"}
tempDestinationAuthorization: {read: "apps,bridges", write: "apps,bridges", admin: "apps,bridges"}
`;

test('duplex: the accepting side forwards to its peer only what the bridge user may read', async () => {
  const file = join(mkdtempSync(join(tmpdir(), 'keel-dx-authz-')), 'b.yaml');
  writeFileSync(file, CONFIG_DUPLEX);
  const [pb] = (await freePorts(1)) as [number];
  const b = await startNetNode({
    db: (await database()).url,
    cluster: 'dxAuthzB',
    port: pb,
    env: { KEEL_CONFIG: file },
  });
  const a = await startNetNode({
    db: (await database()).url,
    cluster: 'dxAuthzA',
    connectors: [
      `static:(tcp://127.0.0.1:${pb})?duplex=true&initialReconnectDelay=100&maxReconnectDelay=500&userName=bridge&password=bridge-pw`,
    ],
  });
  await waitForLogs(a, isLog('duplex bridge: the peer forwards over this link'));
  await waitForLogs(b, isLog('duplex bridge accepted', { remote: 'dxAuthzA' }));

  // The queues exist on B (app may create them), then consumers on A make demand that B learns.
  const appOnB = await clients.open(`tcp://127.0.0.1:${pb}`, { username: 'app', password: 'app-pw' });
  const okTally = new Tally();
  const noTally = new Tally();
  const onA = await clients.open(`tcp://127.0.0.1:${a.port}`);
  await consume(onA, 'A', 'queue://dx.ok.q', okTally);
  await consume(onA, 'A', 'queue://dx.no.q', noTally);
  await waitForLogs(b, isLog('network bridge: forwarding on demand', { destination: 'queue://dx.ok.q' }));
  const refused = await waitForLogs(
    b,
    isLog('network bridge: cannot consume locally', { destination: 'queue://dx.no.q' }),
  );
  expect(String(refused.err)).toBe(
    'user bridge is not authorized to read from queue://dx.no.q: the read right is missing',
  );

  const sentOk = await produce(appOnB, 'queue://dx.ok.q', 'ok', 30);
  const sentNo = await produce(appOnB, 'queue://dx.no.q', 'no', 10);
  await okTally.until(sentOk.length);
  expect(okTally.counts(sentOk)).toEqual({ sent: 30, received: 30, lost: 0, duplicated: 0 });
  expect(noTally.total).toBe(0);
  expect(await queueDepth(b, 'dx.no.q')).toBe(sentNo.length);
});
