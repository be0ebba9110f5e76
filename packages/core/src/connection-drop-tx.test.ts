/**
 * docs/protocol.md, section 8: a transaction open on a connection that drops is rolled back by the
 * broker: its sends are discarded and the messages it acknowledged are delivered again.
 */
import type { DeliveredMessage, Message } from '@keel/protocol';
import { Broker } from './broker';
import { MemoryDatabase, MemoryStore } from './store/memory-store';

function msg(destination: string, text: string): Message {
  return {
    destination,
    persistent: true,
    priority: 4,
    timestamp: Date.now(),
    expiration: 0,
    properties: {},
    body: Buffer.from(text),
  };
}

function firstDelivery(): {
  sink: (d: { message: DeliveredMessage }) => void;
  next: Promise<DeliveredMessage>;
} {
  let resolve!: (m: DeliveredMessage) => void;
  const next = new Promise<DeliveredMessage>((r) => {
    resolve = r;
  });
  return { sink: (d) => resolve(d.message), next };
}

describe('a connection that drops with a transaction open', () => {
  let broker: Broker;
  afterEach(async () => {
    await broker?.stop();
  });

  it('has the transaction rolled back: sends discarded, acknowledged messages delivered again', async () => {
    const store = new MemoryStore({ database: new MemoryDatabase(), cluster: 'test' });
    await store.open();
    await store.takeOver('node-1', 'test');
    broker = new Broker({ nodeName: 'node-1', store, recoveryHoldMs: 0 });
    await broker.start();
    const a = broker.openConnection({ protocol: 'internal' });
    await broker.send(a, msg('queue://in', 'input'));
    const onA = firstDelivery();
    await broker.subscribe(a, { consumerId: 'k', destination: 'queue://in', prefetch: 1 }, onA.sink);
    const m = await onA.next;
    broker.begin(a, 'tx1');
    await broker.ack(a, 'k', [m.messageId], { txId: 'tx1' });
    await broker.send(a, msg('queue://out', 'output'), 'tx1');

    broker.closeConnection(a);

    const b = broker.openConnection({ protocol: 'internal' });
    const onB = firstDelivery();
    await broker.subscribe(b, { consumerId: 'k2', destination: 'queue://in', prefetch: 1 }, onB.sink);
    const again = await onB.next;
    expect(again).toMatchObject({ messageId: m.messageId, redelivered: true });
    expect(broker.getQueue('out')?.depth ?? 0).toBe(0);
    expect(await broker.txOutcome('tx1')).toBe('unknown');
  });
});
