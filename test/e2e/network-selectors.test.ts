/**
 * Selectors in networks of brokers (issue #21.1, ActiveMQ's demand forwarding carries the consumer's
 * selector): two real broker processes, A with a network connector to B. A consumer on B with a
 * selector makes A forward only the matching messages; the others stay on A for its own consumers.
 * Two consumers on B with different selectors: A forwards the union (OR); one without a selector:
 * everything. Counts sent, received, lost and duplicated.
 */
import type { Connection, Consumer } from '@keel/client';
import type { BrokerProcess } from '@keel/testkit';
import {
  isLog,
  networkTestResources,
  pollUntil,
  queueDepth,
  startNetNode,
  Tally,
  waitForLogs,
} from './helpers/network';

jest.setTimeout(120_000);

const { clients, database } = networkTestResources();
const OPTS = 'initialReconnectDelay=100&maxReconnectDelay=500&prefetchSize=20';

let A: BrokerProcess;
let B: BrokerProcess;
let onA: Connection;
let onB: Connection;

beforeAll(async () => {
  const [dbA, dbB] = await Promise.all([database(), database()]);
  B = await startNetNode({ db: dbB.url, cluster: 'selB' });
  A = await startNetNode({
    db: dbA.url,
    cluster: 'selA',
    connectors: [`static:(tcp://127.0.0.1:${B.port})?${OPTS}`],
  });
  await waitForLogs(A, isLog('network bridge connected'));
  onA = await clients.open(`tcp://127.0.0.1:${A.port}`);
  onB = await clients.open(`tcp://127.0.0.1:${B.port}`);
});

/** `count` persistent messages, colour red / green / blue in turn, property k = `<prefix>-<i>`. */
async function produceColours(prefix: string, count: number): Promise<Map<string, string>> {
  const s = await onA.createSession();
  const p = s.createProducer(`queue://${prefix}`, { persistent: true });
  const colours = ['red', 'green', 'blue'];
  const sent = new Map<string, string>();
  for (let i = 0; i < count; i++) {
    const k = `${prefix}-${i}`;
    const colour = colours[i % 3]!;
    sent.set(k, colour);
    await p.send(`body ${k}`, { properties: { k, colour } });
  }
  return sent;
}

async function consumeOn(
  conn: Connection,
  label: string,
  queue: string,
  tally: Tally,
  selector?: string,
): Promise<Consumer> {
  const s = await conn.createSession({ ackMode: 'individual' });
  const c = await s.createConsumer(`queue://${queue}`, { prefetch: 50, ...(selector ? { selector } : {}) });
  c.onMessage(async (m) => {
    await m.ack();
    tally.add(`${label}:${String(m.properties.colour)}`, m);
  });
  return c;
}

const keysOf = (sent: Map<string, string>, ...colours: string[]): string[] =>
  [...sent].filter(([, c]) => colours.includes(c)).map(([k]) => k);

test("a consumer's selector travels with the demand: only matching messages are forwarded", async () => {
  const tally = new Tally();
  const mark = A.mark();
  await consumeOn(onB, 'B', 'net.sel1', tally, "colour = 'red'");
  await waitForLogs(
    A,
    isLog('network bridge: forwarding on demand', {
      destination: 'queue://net.sel1',
      selector: "colour = 'red'",
    }),
    1,
    mark,
  );
  const sent = await produceColours('net.sel1', 60);
  const red = keysOf(sent, 'red');
  await tally.until(red.length);
  // The others stay on A, not forwarded into B's store where no consumer of B wants them.
  await pollUntil('40 left on A', async () => (await queueDepth(A, 'net.sel1')) === 40);
  expect(await queueDepth(B, 'net.sel1')).toBe(0);
  expect(tally.counts(red)).toEqual({ sent: 20, received: 20, lost: 0, duplicated: 0 });
  expect(tally.byBroker.get('B:red')).toBe(20);
  // A's own consumer without a selector takes what stayed.
  const local = new Tally();
  await consumeOn(onA, 'A', 'net.sel1', local);
  await local.until(40);
  expect(local.counts(keysOf(sent, 'green', 'blue'))).toEqual({
    sent: 40,
    received: 40,
    lost: 0,
    duplicated: 0,
  });
});

test('two consumers with different selectors: the union is forwarded; one without a selector: everything', async () => {
  const tally = new Tally();
  let mark = A.mark();
  await consumeOn(onB, 'B', 'net.sel2', tally, "colour = 'red'");
  await consumeOn(onB, 'B', 'net.sel2', tally, "colour = 'green'");
  await waitForLogs(
    A,
    isLog('network bridge: forwarding on demand', {
      destination: 'queue://net.sel2',
      selector: "(colour = 'green') OR (colour = 'red')",
    }),
    1,
    mark,
  );
  const sent = await produceColours('net.sel2', 60);
  const wanted = keysOf(sent, 'red', 'green');
  await tally.until(wanted.length);
  await pollUntil('the 20 blue ones left on A', async () => (await queueDepth(A, 'net.sel2')) === 20);
  expect(tally.counts(wanted)).toEqual({ sent: 40, received: 40, lost: 0, duplicated: 0 });

  // A consumer on B without a selector: A forwards everything, the blue ones that waited too.
  mark = A.mark();
  await consumeOn(onB, 'B', 'net.sel2', tally);
  await waitForLogs(
    A,
    isLog('network bridge: forwarding on demand', { destination: 'queue://net.sel2', selector: null }),
    1,
    mark,
  );
  await tally.until(60);
  expect(tally.counts([...sent.keys()])).toEqual({ sent: 60, received: 60, lost: 0, duplicated: 0 });
  expect(tally.byBroker.get('B:blue')).toBe(20);
  await pollUntil('A drained', async () => (await queueDepth(A, 'net.sel2')) === 0);
});
