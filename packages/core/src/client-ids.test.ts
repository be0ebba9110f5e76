/**
 * What the broker does with client ids (docs/protocol.md, section 3): one live connection per client
 * id (ActiveMQ's InvalidClientIDException, issue #21) unless the holder is dead or the newcomer may
 * steal the link (allowLinkStealing); a durable subscription takes one active consumer at a time and
 * is removed by name only while none is active (section 5).
 */
import type { KeelError } from '@keel/protocol';
import { Broker } from './broker';
import type { ConnectionTransport } from './connection';
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

  /** A transport whose liveness the test sets, recording the ERROR it was closed with. */
  function transport(alive = true): ConnectionTransport & { up: boolean; closedWith: KeelError | null } {
    const t = {
      up: alive,
      closedWith: null as KeelError | null,
      alive: () => t.up,
      close: (err: KeelError) => {
        t.closedWith = err;
      },
    };
    return t;
  }

  it('refuses a second connection with a client id that is connected (INVALID_CLIENT_ID)', () => {
    const first = transport();
    const a = broker.openConnection({
      protocol: 'stomp',
      clientId: 'app',
      transport: first,
      remoteAddress: '10.0.0.1',
    });
    expect(() =>
      broker.openConnection({ protocol: 'native', clientId: 'app', transport: transport() }),
    ).toThrow(
      expect.objectContaining({
        code: 'INVALID_CLIENT_ID',
        message: 'Broker: node-1 - Client: app already connected from 10.0.0.1',
      }),
    );
    expect(first.closedWith).toBeNull();
    expect(broker.listConnections().filter((c) => c.clientId === 'app')).toHaveLength(1);
    // Once the first is gone, the id is free again; generated ids never clash.
    broker.closeConnection(a);
    expect(broker.openConnection({ protocol: 'native', clientId: 'app' }).clientId).toBe('app');
    expect(broker.openConnection({ protocol: 'native' }).clientId).toMatch(/^ID:/);
    expect(broker.openConnection({ protocol: 'native', clientId: '' }).clientId).toMatch(/^ID:/);
  });

  it('accepts the newer connection when the first one is dead (its transport gone or silent)', () => {
    const first = transport();
    const a = broker.openConnection({ protocol: 'stomp', clientId: 'app', transport: first });
    first.up = false;
    const b = broker.openConnection({ protocol: 'stomp', clientId: 'app', transport: transport() });
    expect(a.closed).toBe(true);
    expect(first.closedWith?.code).toBe('INVALID_CLIENT_ID');
    expect(broker.listConnections().map((c) => c.id)).toEqual([b.id]);
  });

  it('lets the newer connection take the id over with allowLinkStealing (the older closed with an ERROR)', () => {
    const first = transport();
    const a = broker.openConnection({ protocol: 'native', clientId: 'app', transport: first });
    const b = broker.openConnection({
      protocol: 'native',
      clientId: 'app',
      transport: transport(),
      allowLinkStealing: true,
    });
    expect(a.closed).toBe(true);
    expect(first.closedWith?.code).toBe('INVALID_CLIENT_ID');
    expect(first.closedWith?.message).toContain('allowLinkStealing');
    expect(broker.listConnections().map((c) => c.id)).toEqual([b.id]);
  });

  it('refuses a second active consumer on one durable subscription with INVALID_ARGUMENT', async () => {
    // One connection per client id now, so the second consumer comes on the same connection.
    const a = broker.openConnection({ protocol: 'internal', clientId: 'app' });
    const sub = { destination: 'topic://news', prefetch: 10, durableName: 'sub1' };
    await broker.subscribe(a, { consumerId: 'c1', ...sub }, () => {});
    await expect(broker.subscribe(a, { consumerId: 'c2', ...sub }, () => {})).rejects.toMatchObject({
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
