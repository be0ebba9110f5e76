import type { DeliveredMessage, Message } from '@keel/protocol';
import { Broker } from '../broker';
import type { Delivery } from '../consumer';
import { MemoryDatabase, MemoryStore } from '../store/memory-store';

function msg(destination: string, text: string, properties: Message['properties'] = {}): Message {
  return {
    destination,
    persistent: true,
    priority: 4,
    timestamp: Date.now(),
    expiration: 0,
    properties,
    body: Buffer.from(text),
  };
}

/** Resolves once `check` holds (looked at every 10 ms), rejects after `timeoutMs`. */
async function until(check: () => Promise<boolean> | boolean, timeoutMs = 5000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}

class Inbox {
  readonly items: DeliveredMessage[] = [];
  private waiters: { n: number; resolve: () => void }[] = [];
  readonly sink = (d: Delivery): void => {
    this.items.push(d.message);
    this.waiters = this.waiters.filter((w) => {
      if (this.items.length < w.n) return true;
      w.resolve();
      return false;
    });
  };
  wait(n: number, timeoutMs = 5000): Promise<DeliveredMessage[]> {
    if (this.items.length >= n) return Promise.resolve(this.items);
    return new Promise((resolve, reject) => {
      const t = setTimeout(
        () => reject(new Error(`timed out waiting for ${n}, got ${this.items.length}`)),
        timeoutMs,
      );
      this.waiters.push({
        n,
        resolve: () => {
          clearTimeout(t);
          resolve(this.items);
        },
      });
    });
  }
}

async function startBroker(db: MemoryDatabase, node = 'node-1'): Promise<Broker> {
  const store = new MemoryStore({ database: db, cluster: 'test' });
  await store.open();
  await store.takeOver(node, 'test');
  const broker = new Broker({ nodeName: node, store, recoveryHoldMs: 0, scheduler: { maxIdleMs: 50 } });
  await broker.start();
  await broker.scheduler.start();
  return broker;
}

describe('MessageScheduler in the broker (memory store)', () => {
  const brokers: Broker[] = [];
  afterEach(async () => {
    for (const b of brokers.splice(0)) await b.stop();
  });
  async function broker(db = new MemoryDatabase(), node?: string): Promise<Broker> {
    const b = await startBroker(db, node);
    brokers.push(b);
    return b;
  }

  it('a delayed send is stored as a job before it is answered, then fires once as a new message', async () => {
    const b = await broker();
    const conn = b.openConnection({ protocol: 'internal' });
    const sent = Date.now();
    const r = await b.send(conn, msg('queue://later', 'hello', { AMQ_SCHEDULED_DELAY: 300, colour: 'red' }));
    const job = await b.store.getSchedule(r.messageId);
    expect(job).not.toBeNull();
    expect(job!.nextDue).toBeGreaterThanOrEqual(sent + 300);
    expect(
      await b.store.countMessages(
        (await b.store.loadDestinations()).find((d) => d.name === 'later')?.id ?? -1,
      ),
    ).toBe(0);
    const inbox = new Inbox();
    await b.subscribe(conn, { consumerId: 'k', destination: 'queue://later', prefetch: 10 }, inbox.sink);
    const [m] = await inbox.wait(1);
    expect(Date.now() - sent).toBeGreaterThanOrEqual(290);
    expect(m!.body.toString()).toBe('hello');
    expect(m!.messageId).not.toBe(r.messageId);
    expect(m!.properties).toEqual({ colour: 'red', scheduledJobId: r.messageId });
    await until(() => b.scheduler.stats().fired === 1);
    expect(await b.store.getSchedule(r.messageId)).toBeNull();
    expect(b.scheduler.stats()).toEqual({ pending: 0, fired: 1 });
  });

  it('delay + period + repeat: repeat + 1 firings, each with its own id', async () => {
    const b = await broker();
    const conn = b.openConnection({ protocol: 'internal' });
    await b.send(
      conn,
      msg('queue://rep', 'r', { AMQ_SCHEDULED_DELAY: 50, AMQ_SCHEDULED_PERIOD: 50, AMQ_SCHEDULED_REPEAT: 4 }),
    );
    const inbox = new Inbox();
    await b.subscribe(conn, { consumerId: 'k', destination: 'queue://rep', prefetch: 100 }, inbox.sink);
    await inbox.wait(5);
    await until(async () => (await b.store.countSchedules()) === 0);
    await new Promise((r) => setTimeout(r, 200)); // room for a sixth firing, which must not come
    expect(inbox.items).toHaveLength(5);
    expect(new Set(inbox.items.map((m) => m.messageId)).size).toBe(5);
    expect(await b.store.countSchedules()).toBe(0);
  });

  it('a scheduled send inside a transaction: stored at commit, dropped at rollback (ActiveMQ)', async () => {
    const b = await broker();
    const conn = b.openConnection({ protocol: 'internal' });
    const inbox = new Inbox();
    await b.subscribe(conn, { consumerId: 'k', destination: 'queue://txs', prefetch: 10 }, inbox.sink);
    // Rolled back: neither the job nor the plain send of the transaction exists.
    b.begin(conn, 'tx1');
    const dropped = await b.send(conn, msg('queue://txs', 'dropped', { AMQ_SCHEDULED_DELAY: 100 }), 'tx1');
    await b.send(conn, msg('queue://txs', 'plain-dropped'), 'tx1');
    b.rollback(conn, 'tx1');
    // Committed: the job is a row only after COMMIT, then fires once.
    b.begin(conn, 'tx2');
    const kept = await b.send(conn, msg('queue://txs', 'kept', { AMQ_SCHEDULED_DELAY: 200 }), 'tx2');
    await b.send(conn, msg('queue://txs', 'plain-kept'), 'tx2');
    expect(await b.store.getSchedule(kept.messageId)).toBeNull();
    await b.commit(conn, 'tx2');
    expect(await b.store.getSchedule(kept.messageId)).not.toBeNull();
    expect(await b.store.getSchedule(dropped.messageId)).toBeNull();
    expect(b.scheduler.stats().pending).toBe(1);
    await inbox.wait(2);
    await until(async () => (await b.store.countSchedules()) === 0);
    await new Promise((r) => setTimeout(r, 200)); // room for the rolled-back one, which must not come
    expect(inbox.items.map((m) => m.body.toString())).toEqual(['plain-kept', 'kept']);
    expect(inbox.items[1]!.properties.scheduledJobId).toBe(kept.messageId);
    // An invalid value is refused at the SEND, inside the transaction too.
    b.begin(conn, 'tx3');
    await expect(
      b.send(conn, msg('queue://txs', 'x', { AMQ_SCHEDULED_DELAY: 'soon' }), 'tx3'),
    ).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
  });

  it('refuses invalid values with INVALID_ARGUMENT naming the header and stores nothing', async () => {
    const b = await broker();
    const conn = b.openConnection({ protocol: 'internal' });
    await expect(
      b.send(conn, msg('queue://bad', 'x', { AMQ_SCHEDULED_DELAY: 'soon' })),
    ).rejects.toMatchObject({
      code: 'INVALID_ARGUMENT',
      message: expect.stringContaining('AMQ_SCHEDULED_DELAY'),
    });
    await expect(
      b.send(conn, msg('queue://bad', 'x', { AMQ_SCHEDULED_CRON: '* * *' })),
    ).rejects.toMatchObject({
      code: 'INVALID_ARGUMENT',
      message: expect.stringContaining('AMQ_SCHEDULED_CRON'),
    });
    expect(await b.store.countSchedules()).toBe(0);
    expect(b.listQueues().map((q) => q.name)).not.toContain('bad');
  });

  it('ActiveMQ.Scheduler.Management: BROWSE replies with the jobs, REMOVE and REMOVEALL delete them', async () => {
    const b = await broker();
    const conn = b.openConnection({ protocol: 'internal' });
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      ids.push(
        (await b.send(conn, msg('queue://far', `f${i}`, { AMQ_SCHEDULED_DELAY: 3_600_000 + i }))).messageId,
      );
    }
    const replies = new Inbox();
    await b.subscribe(conn, { consumerId: 'r', destination: 'queue://replies', prefetch: 10 }, replies.sink);
    const browse = { AMQ_SCHEDULER_ACTION: 'BROWSE' };
    await b.send(conn, {
      ...msg('topic://ActiveMQ.Scheduler.Management', ''),
      replyTo: 'queue://replies',
      properties: browse,
    });
    const got = await replies.wait(3);
    expect(got.map((m) => m.properties.scheduledJobId)).toEqual(ids);
    expect(got.map((m) => m.body.toString())).toEqual(['f0', 'f1', 'f2']);
    await b.send(
      conn,
      msg('topic://ActiveMQ.Scheduler.Management', '', {
        AMQ_SCHEDULER_ACTION: 'REMOVE',
        scheduledJobId: ids[1]!,
      }),
    );
    expect((await b.scheduler.list(null, 10)).map((j) => j.jobId)).toEqual([ids[0], ids[2]]);
    await b.send(
      conn,
      msg('topic://ActiveMQ.Scheduler.Management', '', { AMQ_SCHEDULER_ACTION: 'REMOVEALL' }),
    );
    expect(await b.store.countSchedules()).toBe(0);
    await expect(
      b.send(conn, msg('topic://ActiveMQ.Scheduler.Management', '', { AMQ_SCHEDULER_ACTION: 'PURGE' })),
    ).rejects.toMatchObject({
      code: 'INVALID_ARGUMENT',
      message: expect.stringContaining('AMQ_SCHEDULER_ACTION'),
    });
  });

  it('a new master fires what the old one left, once per due time, and at once when the time passed', async () => {
    const db = new MemoryDatabase();
    const a = await broker(db, 'a');
    const conn = a.openConnection({ protocol: 'internal' });
    await a.send(
      conn,
      msg('queue://ha', 'h', {
        AMQ_SCHEDULED_DELAY: 100,
        AMQ_SCHEDULED_PERIOD: 100,
        AMQ_SCHEDULED_REPEAT: 2,
      }),
    );
    await a.stop();
    await new Promise((r) => setTimeout(r, 250)); // two due times pass with no master
    const b = await broker(db, 'b');
    const c2 = b.openConnection({ protocol: 'internal' });
    const inbox = new Inbox();
    await b.subscribe(c2, { consumerId: 'k', destination: 'queue://ha', prefetch: 10 }, inbox.sink);
    await inbox.wait(3);
    await until(async () => (await b.store.countSchedules()) === 0);
    await new Promise((r) => setTimeout(r, 200)); // room for a fourth firing, which must not come
    expect(inbox.items).toHaveLength(3);
    expect(await b.store.countSchedules()).toBe(0);
  });
});
