/**
 * What the broker does with client ids today (docs/protocol.md, section 3): it does not check them
 * for uniqueness yet (ActiveMQ's InvalidClientIDException is issue #21), and a durable subscription
 * takes one active consumer at a time and is removed by name only while none is active (section 5).
 */
import { Broker } from './broker';
import { MemoryDatabase, MemoryStore } from './store/memory-store';

describe('client ids', () => {
  let broker: Broker;
  beforeEach(async () => {
    const store = new MemoryStore({ database: new MemoryDatabase(), cluster: 'test' });
    await store.open();
    await store.takeOver('node-1', 'test');
    broker = new Broker({ nodeName: 'node-1', store, recoveryHoldMs: 0 });
    await broker.start();
  });
  afterEach(async () => {
    await broker.stop();
  });

  it('accepts a second connection with a client id that is connected (not unique yet: issue #21)', () => {
    const a = broker.openConnection({ protocol: 'internal', clientId: 'app' });
    const b = broker.openConnection({ protocol: 'internal', clientId: 'app' });
    expect([a.clientId, b.clientId]).toEqual(['app', 'app']);
    expect(broker.listConnections().filter((c) => c.clientId === 'app')).toHaveLength(2);
  });

  it('refuses a second active consumer on one durable subscription with INVALID_ARGUMENT', async () => {
    const a = broker.openConnection({ protocol: 'internal', clientId: 'app' });
    const b = broker.openConnection({ protocol: 'internal', clientId: 'app' });
    const sub = { destination: 'topic://news', prefetch: 10, durableName: 'sub1' };
    await broker.subscribe(a, { consumerId: 'c1', ...sub }, () => {});
    await expect(broker.subscribe(b, { consumerId: 'c2', ...sub }, () => {})).rejects.toMatchObject({
      code: 'INVALID_ARGUMENT',
      message: expect.stringContaining('already has an active consumer'),
    });
  });

  it('removes a durable subscription by name only while no consumer is active on it', async () => {
    const a = broker.openConnection({ protocol: 'internal', clientId: 'app' });
    const sub = { consumerId: 'c1', destination: 'topic://news', prefetch: 10, durableName: 'sub1' };
    await broker.subscribe(a, sub, () => {});
    await expect(broker.removeDurable('app', 'sub1')).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    broker.unsubscribe(a, 'c1');
    await broker.removeDurable('app', 'sub1');
    expect(broker.listDurables()).toHaveLength(0);
    await expect(broker.removeDurable('app', 'sub1')).rejects.toMatchObject({ code: 'UNKNOWN_DESTINATION' });
  });
});
