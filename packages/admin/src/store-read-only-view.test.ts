import { emptyBatch, MemoryDatabase, MemoryStore } from '@keel/core';
import { storeReadOnlyView } from './store-read-only-view';

async function seeded(): Promise<{ reader: MemoryStore; writer: MemoryStore }> {
  const db = new MemoryDatabase();
  const writer = new MemoryStore({ database: db, cluster: 'c' });
  await writer.open();
  await writer.takeOver('w', 'test');
  const q = await writer.ensureDestination('queue', 'orders');
  await writer.ensureDestination('queue', 'empty');
  const t = await writer.ensureDestination('topic', 'news');
  const sub = await writer.ensureDurableSubscription({
    clientId: 'app',
    name: 's',
    destId: t,
    selector: null,
    noLocal: false,
  });
  const b = emptyBatch();
  // 1200 messages: priorities 9 then 4, so delivery order is not insertion order.
  for (let i = 1; i <= 1200; i++) {
    const priority = i % 2 === 0 ? 9 : 4;
    b.inserts.push({
      id: i,
      destId: q,
      priority,
      expiration: 0,
      deliveryCount: i === 2 ? 1 : 0,
      headers: {
        destination: 'queue://orders',
        persistent: true,
        priority,
        timestamp: i,
        expiration: 0,
        properties: { i },
      },
      body: Buffer.from(`m${i}`),
    });
  }
  b.inserts.push({
    id: 5000,
    destId: t,
    priority: 4,
    expiration: 0,
    deliveryCount: 0,
    headers: {
      destination: 'topic://news',
      persistent: true,
      priority: 4,
      timestamp: 1,
      expiration: 0,
      properties: {},
    },
    body: Buffer.from('n'),
  });
  b.subEntries.push({ subId: sub.id, msgId: 5000, priority: 4 });
  await writer.commit(b);
  const reader = new MemoryStore({ database: db, cluster: 'c' });
  await reader.open();
  return { reader, writer };
}

describe('storeReadOnlyView', () => {
  it('lists queues with depths, topics and durable subscriptions from the store', async () => {
    const { reader, writer } = await seeded();
    const view = storeReadOnlyView(reader);
    expect((await view.listQueues()).map((q) => [q.name, q.depth, q.enqueued])).toEqual([
      ['empty', 0, null],
      ['orders', 1200, null],
    ]);
    expect(await view.getQueue('nope')).toBeNull();
    expect(await view.listTopics()).toEqual([
      { name: 'news', temporary: false, enqueued: null, subscribers: null, durableSubscriptions: 1 },
    ]);
    expect(await view.listDurables()).toEqual([
      { clientId: 'app', name: 's', topic: 'news', active: null, pending: 1, inflight: null },
    ]);
    await Promise.all([reader.close(), writer.close()]);
  });

  it('browses in delivery order with an offset that spans several store pages', async () => {
    const { reader, writer } = await seeded();
    const view = storeReadOnlyView(reader);
    const first = await view.browse('orders', 3, 0);
    expect(first!.map((m) => m.id)).toEqual(['2', '4', '6']); // priority 9 first, then id order
    expect(first![0]).toMatchObject({ deliveryCount: 1, redelivered: true });
    expect(first![0]!.message).toMatchObject({
      messageId: '2',
      destination: 'queue://orders',
      properties: { i: 2 },
    });
    expect(first![0]!.message.body.toString()).toBe('m2');
    // 600 even ids (priority 9), then odd ones: offset 1199 is the last odd one.
    expect((await view.browse('orders', 2, 599))!.map((m) => m.id)).toEqual(['1200', '1']);
    expect((await view.browse('orders', 5, 1199))!.map((m) => m.id)).toEqual(['1199']);
    expect(await view.browse('orders', 5, 5000)).toEqual([]);
    expect(await view.browse('nope', 5, 0)).toBeNull();
    await Promise.all([reader.close(), writer.close()]);
  });
});
