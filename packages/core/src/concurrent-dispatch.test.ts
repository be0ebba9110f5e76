import type { DeliveredMessage, Message } from '@keel/protocol';
import { StoreError } from '@keel/protocol';
import { Broker, type BrokerOptions } from './broker';
import type { ConnectionState } from './connection';
import type { Delivery } from './consumer';
import { MemoryDatabase, MemoryStore } from './store/memory-store';
import type { StoreBatch } from './store/store';

/** A memory store whose commits wait for the test to open a gate, and that records inserted ids. */
class GatedStore extends MemoryStore {
  readonly insertedIds: number[] = [];
  commits = 0;
  private gate: Promise<void> | null = null;
  private openGate: (() => void) | null = null;
  failNext: Error | null = null;

  close_(): void {
    this.openGate?.();
    this.gate = null;
    this.openGate = null;
  }

  hold(): void {
    this.gate = new Promise((resolve) => {
      this.openGate = resolve;
    });
  }

  override async commit(batch: StoreBatch): Promise<void> {
    this.commits += 1;
    const gate = this.gate;
    if (gate) await gate;
    if (this.failNext) {
      const err = this.failNext;
      this.failNext = null;
      throw err;
    }
    for (const m of batch.inserts) this.insertedIds.push(m.id);
    await super.commit(batch);
  }
}

function msg(text: string): Message {
  return {
    destination: 'queue://work',
    persistent: true,
    priority: 4,
    timestamp: Date.now(),
    expiration: 0,
    properties: {},
    body: Buffer.from(text),
  };
}

const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

describe('concurrent store and dispatch (concurrentStoreAndDispatchQueues)', () => {
  let broker: Broker;
  let store: GatedStore;
  let db: MemoryDatabase;
  let conn: ConnectionState;
  const received: DeliveredMessage[] = [];

  async function start(opts: Partial<BrokerOptions> = {}, autoAck = false, prefetch = 100): Promise<void> {
    received.length = 0;
    db = new MemoryDatabase();
    store = new GatedStore({ database: db, cluster: 'test' });
    await store.open();
    await store.takeOver('node-1', 'test');
    // Rounds start on the next turn of the loop (no hold): the tests step through them with ticks.
    broker = new Broker({
      nodeName: 'node-1',
      store,
      recoveryHoldMs: 0,
      concurrentStoreAndDispatchHoldMs: 0,
      ...opts,
    });
    await broker.start();
    conn = broker.openConnection({ protocol: 'internal' });
    await broker.subscribe(
      conn,
      { consumerId: 'c', destination: 'queue://work', prefetch },
      (d: Delivery) => {
        received.push(d.message);
        if (autoAck) void broker.ack(conn, 'c', [d.message.messageId]);
      },
    );
  }

  afterEach(async () => {
    store.close_();
    await broker?.stop();
  });

  it('never writes a message its consumer acknowledged before the commit round started', async () => {
    await start({}, true);
    store.hold();
    // The first send starts a round that waits at the gate; the second gathers into the next round.
    const first = broker.send(conn, msg('first'));
    await tick();
    const second = broker.send(conn, msg('second'));
    await second; // resolved by the acknowledgement, while the first round is still in the gate
    expect(received.map((m) => m.body.toString())).toEqual(['first', 'second']);
    await first; // acknowledged too
    const secondId = Number(received[1].messageId);
    store.close_();
    await broker.writer!.drain();
    expect(store.insertedIds).not.toContain(secondId);
    expect(db.messages.size).toBe(0);
    expect(broker.getQueue('work')!.depth).toBe(0);
  });

  it('deletes a message acknowledged while its insert was being written, once the insert commits', async () => {
    await start();
    store.hold();
    const sent = broker.send(conn, msg('in-flight'));
    await tick();
    await tick();
    expect(store.commits).toBe(1); // the round holding the insert is at the gate
    const id = Number(received[0].messageId);
    const acked = broker.ack(conn, 'c', [received[0].messageId]);
    await sent; // the acknowledgement made the send safe
    store.close_();
    await broker.writer!.drain();
    await acked;
    expect(store.insertedIds).toContain(id);
    expect(db.messages.has(id)).toBe(false);
  });

  it('completes a send that no consumer acknowledges only once its insert committed', async () => {
    await start();
    store.hold();
    let done = false;
    const sent = broker.send(conn, msg('unacked')).then(() => {
      done = true;
    });
    await tick();
    await tick();
    expect(received).toHaveLength(1); // dispatched before the commit
    expect(done).toBe(false);
    store.close_();
    await sent;
    expect(db.messages.has(Number(received[0].messageId))).toBe(true);
  });

  it('fails the send and withdraws a waiting message when its insert fails', async () => {
    await start({}, false, 1); // the second message waits in the queue
    await broker.send(conn, msg('held by the consumer'));
    store.hold();
    store.failNext = new StoreError('disk on fire', 'STORE_UNAVAILABLE', { retryable: true });
    const failing = broker.send(conn, msg('waiting'));
    await tick();
    expect(broker.getQueue('work')!.depth).toBe(2);
    store.close_();
    await expect(failing).rejects.toMatchObject({ code: 'STORE_UNAVAILABLE' });
    expect(broker.getQueue('work')!.depth).toBe(1);
    expect(received.map((m) => m.body.toString())).toEqual(['held by the consumer']);
  });

  it('stores the resend of a send refused STORE_UNAVAILABLE although a later send of its producer committed since', async () => {
    await start({}, false, 1); // the consumer holds the first message: the others wait, undelivered
    await broker.send(conn, msg('held by the consumer'));
    const p1 = (seq: number, text: string): Message => ({ ...msg(text), producerId: 'p1', producerSeq: seq });
    store.failNext = new StoreError('connection lost', 'STORE_UNAVAILABLE', { retryable: true });
    await expect(broker.send(conn, p1(1, 'refused'))).rejects.toMatchObject({ code: 'STORE_UNAVAILABLE' });
    await broker.send(conn, p1(2, 'later'));
    // The failover producer's resend (same producer id and sequence, resent): not a duplicate.
    const again = await broker.send(conn, p1(1, 'refused'), undefined, { resent: true });
    expect(again.duplicate).toBe(false);
    expect(broker.getQueue('work')!.depth).toBe(3);
    expect([...db.messages.values()].map((m) => m.body.toString()).sort()).toEqual(
      ['held by the consumer', 'later', 'refused'].sort(),
    );
  });

  it('dispatches only after the commit when turned off', async () => {
    await start({ concurrentStoreAndDispatchQueues: false });
    store.hold();
    const sent = broker.send(conn, msg('after commit'));
    await tick();
    await tick();
    expect(received).toHaveLength(0);
    store.close_();
    await sent;
    await tick();
    expect(received).toHaveLength(1);
  });
});

describe('resends after a takeover (exactly once with concurrent store and dispatch)', () => {
  let broker: Broker;
  let conn: ConnectionState;
  let db: MemoryDatabase;
  const received: DeliveredMessage[] = [];

  async function start(recoveryHoldMs: number): Promise<void> {
    received.length = 0;
    db = new MemoryDatabase();
    const store = new MemoryStore({ database: db, cluster: 'test' });
    await store.open();
    await store.takeOver('node-2', 'test');
    broker = new Broker({ nodeName: 'node-2', store, recoveryHoldMs });
    await broker.start();
    conn = broker.openConnection({ protocol: 'internal' });
    await broker.subscribe(conn, { consumerId: 'c', destination: 'queue://work', prefetch: 100 }, (d) => {
      received.push(d.message);
    });
  }

  const resend = (seq: number): Message => ({ ...msg(`seq ${seq}`), producerId: 'p1', producerSeq: seq });

  afterEach(async () => {
    await broker?.stop();
  });

  it('drops a held resend that a consumer replays as consumed', async () => {
    await start(60_000);
    await broker.send(conn, resend(1), undefined, { resent: true }); // stored, held
    await tick();
    expect(received).toHaveLength(0);
    expect(broker.getQueue('work')!.depth).toBe(1);
    const r = broker.ackReplay(conn, {
      destination: 'queue://work',
      messageIds: ['999'], // the old master's id, unknown here
      producerSeqs: [{ producerId: 'p1', producerSeq: 1 }],
    });
    expect(r.removed).toBe(1);
    await broker.writer!.drain();
    expect(broker.getQueue('work')!.depth).toBe(0);
    expect(db.messages.size).toBe(0);
  });

  it('answers a resend that comes after the replay as a duplicate, without storing it', async () => {
    await start(60_000);
    broker.ackReplay(conn, {
      destination: 'queue://work',
      messageIds: [],
      producerSeqs: [{ producerId: 'p1', producerSeq: 2 }],
    });
    const result = await broker.send(conn, resend(2), undefined, { resent: true });
    expect(result.duplicate).toBe(true);
    // A later, new send of the same producer is not affected.
    await broker.send(conn, resend(3));
    await tick();
    expect(received.map((m) => m.body.toString())).toEqual(['seq 3']);
    await broker.writer!.drain();
    expect(db.messages.size).toBe(1);
  });

  it('delivers a held resend nobody claimed once the hold ends', async () => {
    await start(150);
    await broker.send(conn, resend(4), undefined, { resent: true });
    await tick();
    expect(received).toHaveLength(0);
    const deadline = Date.now() + 3000;
    while (received.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(received.map((m) => m.body.toString())).toEqual(['seq 4']);
  });
});
