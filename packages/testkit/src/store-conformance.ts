/**
 * The Store conformance suite: every Store implementation (MemoryStore, PgStore) must pass it
 * (the idea follows aedes-persistence's `abstract.js`). Call it from a test file:
 *
 *   storeConformanceSuite('MemoryStore', async () => {
 *     const database = new MemoryDatabase();
 *     const store = new MemoryStore({ database, cluster: 'c1' });
 *     return { store, peer: async () => new MemoryStore({ database, cluster: 'c1' }), cleanup: async () => {} };
 *   });
 *
 * `makeStore` is called once per test and must return a store whose cluster has no data yet (a
 * fresh cluster name, or a fresh database). `peer` opens a second store over the same data and
 * cluster, as a second broker node would (the suite closes peers itself). Message ids must be
 * unique per database: the suite allocates them from one counter per test file.
 */
import type { ScheduleRecord, Store, StoreBatch, StoredMessage } from '@keel/core';
import { emptyBatch, MessageIdAllocator } from '@keel/core';
import { FencedError, KeelError, type MessageHeaders } from '@keel/protocol';

export interface StoreUnderTest {
  store: Store;
  /** A second store instance over the same data and cluster (another node). */
  peer: () => Promise<Store>;
  /** A store of another cluster over the same data (the suite opens and closes it). */
  other: () => Promise<Store>;
  cleanup: () => Promise<void>;
}

export type StoreFactory = () => Promise<StoreUnderTest>;

/** One id space per test file: epoch-like high part so ids look like real ones. */
const ID_BASE = 5 * 2 ** 32;
let idCounter = 0;
function nextId(): number {
  idCounter += 1;
  return ID_BASE + idCounter;
}

function headersFor(id: number, destination: string, priority: number): MessageHeaders {
  return {
    messageId: `ID:${id}`,
    destination,
    persistent: true,
    priority,
    timestamp: 1_700_000_000_000 + (id % 1000),
    expiration: 0,
    correlationId: `corr-${id}`,
    properties: { s: 'text', n: 42, f: 1.5, b: true, z: null },
  };
}

export function makeMessage(
  destId: number,
  options: { id?: number; priority?: number; expiration?: number; destination?: string; body?: Buffer } = {},
): StoredMessage {
  const id = options.id ?? nextId();
  const priority = options.priority ?? 4;
  return {
    id,
    destId,
    priority,
    expiration: options.expiration ?? 0,
    deliveryCount: 0,
    headers: {
      ...headersFor(id, options.destination ?? 'queue://q', priority),
      expiration: options.expiration ?? 0,
    },
    body: options.body ?? Buffer.from(`body of ${id}`),
  };
}

let jobCounter = 0;
/** A scheduled-delivery job due at `nextDue` (ms). */
export function makeSchedule(nextDue: number, extra: Partial<ScheduleRecord> = {}): ScheduleRecord {
  jobCounter += 1;
  const jobId = extra.jobId ?? `job-${jobCounter}`;
  return {
    jobId,
    destination: 'queue://later',
    headers: {
      ...headersFor(jobCounter, 'queue://later', 4),
      properties: { AMQ_SCHEDULED_DELAY: 10, s: 'x' },
    },
    body: Buffer.from([0, 1, 2, 255]),
    nextDue,
    delayMs: 10,
    periodMs: 5,
    repeat: 2,
    repeatsLeft: 2,
    cron: null,
    cronTime: 0,
    fired: 0,
    createdAt: 1_700_000_000_000,
    ...extra,
  };
}

function batch(parts: Partial<StoreBatch>): StoreBatch {
  return { ...emptyBatch(), ...parts };
}

async function rejection(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (err) {
    return err;
  }
  throw new Error('expected the promise to reject');
}

export function storeConformanceSuite(name: string, makeStore: StoreFactory): void {
  describe(`Store conformance: ${name}`, () => {
    let store: Store;
    let sut: StoreUnderTest;
    let peers: Store[];

    beforeEach(async () => {
      sut = await makeStore();
      store = sut.store;
      peers = [];
      await store.open();
    });

    afterEach(async () => {
      for (const p of peers) await p.close();
      await store.close();
      await sut.cleanup();
    });

    async function peer(): Promise<Store> {
      const p = await sut.peer();
      peers.push(p);
      await p.open();
      return p;
    }

    describe('destinations', () => {
      it('ensureDestination is idempotent and scoped by type', async () => {
        const q1 = await store.ensureDestination('queue', 'orders');
        const q2 = await store.ensureDestination('queue', 'orders');
        const t = await store.ensureDestination('topic', 'orders');
        expect(q2).toBe(q1);
        expect(t).not.toBe(q1);
        const all = await store.loadDestinations();
        expect(all).toEqual(
          expect.arrayContaining([
            { id: q1, type: 'queue', name: 'orders' },
            { id: t, type: 'topic', name: 'orders' },
          ]),
        );
        expect(all).toHaveLength(2);
      });

      it('concurrent ensureDestination calls agree on one id', async () => {
        const ids = await Promise.all([1, 2, 3, 4, 5].map(() => store.ensureDestination('queue', 'race')));
        expect(new Set(ids).size).toBe(1);
      });

      it('deleteDestination removes the destination and its messages', async () => {
        const q = await store.ensureDestination('queue', 'doomed');
        const keep = await store.ensureDestination('queue', 'kept');
        const m = makeMessage(q);
        const k = makeMessage(keep);
        await store.commit(batch({ inserts: [m, k] }));
        await store.deleteDestination(q);
        expect((await store.loadDestinations()).map((d) => d.id)).toEqual([keep]);
        expect(await store.countMessages(q)).toBe(0);
        expect(await store.getMessage(m.id)).toBeNull();
        expect(await store.getMessage(k.id)).not.toBeNull();
      });
    });

    describe('messages', () => {
      it('round-trips a message with headers and body', async () => {
        const q = await store.ensureDestination('queue', 'rt');
        const m = makeMessage(q, { priority: 7, expiration: 1_900_000_000_000 });
        await store.commit(batch({ inserts: [m] }));
        expect(await store.getMessage(m.id)).toEqual(m);
        expect(await store.getMessage(nextId())).toBeNull();
      });

      it('pages in delivery order (priority desc, id asc) with a cursor', async () => {
        const q = await store.ensureDestination('queue', 'order');
        const other = await store.ensureDestination('queue', 'other');
        const priorities = [4, 9, 0, 4, 9, 5, 4, 0];
        const msgs = priorities.map((priority) => makeMessage(q, { priority }));
        await store.commit(
          batch({ inserts: [...msgs].reverse().concat(makeMessage(other, { priority: 9 })) }),
        );
        const expected = [...msgs].sort((a, b) => b.priority - a.priority || a.id - b.id).map((m) => m.id);

        const all = await store.pageMessages(q, null, 100);
        expect(all.map((m) => m.id)).toEqual(expected);

        const seen: number[] = [];
        let cursor: { priority: number; id: number } | null = null;
        for (;;) {
          const page = await store.pageMessages(q, cursor, 3);
          if (page.length === 0) break;
          expect(page.length).toBeLessThanOrEqual(3);
          seen.push(...page.map((m) => m.id));
          const last = page[page.length - 1]!;
          cursor = { priority: last.priority, id: last.id };
        }
        expect(seen).toEqual(expected);
        expect(await store.countMessages(q)).toBe(msgs.length);
        expect(await store.countMessages(other)).toBe(1);
      });

      it('deletes messages by id', async () => {
        const q = await store.ensureDestination('queue', 'del');
        const msgs = [makeMessage(q), makeMessage(q), makeMessage(q)];
        await store.commit(batch({ inserts: msgs }));
        await store.commit(batch({ deletes: [msgs[0]!.id, msgs[2]!.id, nextId()] }));
        expect((await store.pageMessages(q, null, 10)).map((m) => m.id)).toEqual([msgs[1]!.id]);
        expect(await store.countMessages(q)).toBe(1);
      });

      it('a message inserted and deleted in one batch is gone', async () => {
        const q = await store.ensureDestination('queue', 'same-batch');
        const m = makeMessage(q);
        await store.commit(batch({ inserts: [m], deletes: [m.id] }));
        expect(await store.getMessage(m.id)).toBeNull();
      });

      it('moves a message to another destination, replacing priority, headers and delivery count', async () => {
        const q = await store.ensureDestination('queue', 'work');
        const dlq = await store.ensureDestination('queue', 'ActiveMQ.DLQ');
        const m = makeMessage(q, { priority: 6 });
        await store.commit(batch({ inserts: [m] }));
        const headers: MessageHeaders = {
          ...m.headers,
          destination: 'queue://ActiveMQ.DLQ',
          originalDestination: 'queue://work',
          dlqReason: 'redelivery limit',
          priority: 2,
        };
        await store.commit(
          batch({ moves: [{ id: m.id, destId: dlq, priority: 2, headers, deliveryCount: 7 }] }),
        );
        expect(await store.countMessages(q)).toBe(0);
        const [moved] = await store.pageMessages(dlq, null, 10);
        expect(moved).toEqual({ ...m, destId: dlq, priority: 2, headers, deliveryCount: 7 });
      });

      it('persists delivery counts', async () => {
        const q = await store.ensureDestination('queue', 'dc');
        const a = makeMessage(q);
        const b = makeMessage(q);
        await store.commit(batch({ inserts: [a, b] }));
        await store.commit(batch({ deliveryCounts: [{ id: a.id, deliveryCount: 1 }] }));
        await store.commit(
          batch({
            deliveryCounts: [
              { id: a.id, deliveryCount: 3 },
              { id: b.id, deliveryCount: 1 },
            ],
          }),
        );
        expect((await store.getMessage(a.id))!.deliveryCount).toBe(3);
        expect((await store.getMessage(b.id))!.deliveryCount).toBe(1);
      });

      it('lists expired messages of this cluster, earliest first, up to the limit', async () => {
        const q = await store.ensureDestination('queue', 'exp');
        const now = 1_800_000_000_000;
        const never = makeMessage(q);
        const late = makeMessage(q, { expiration: now + 1 });
        const e1 = makeMessage(q, { expiration: now - 10 });
        const e2 = makeMessage(q, { expiration: now - 20 });
        const e3 = makeMessage(q, { expiration: now });
        await store.commit(batch({ inserts: [never, late, e1, e2, e3] }));
        expect((await store.expiredMessages(now, 10)).map((m) => m.id)).toEqual([e2.id, e1.id, e3.id]);
        expect((await store.expiredMessages(now, 2)).map((m) => m.id)).toEqual([e2.id, e1.id]);
        expect(await store.expiredMessages(now - 100, 10)).toEqual([]);
      });

      it('commits an empty batch', async () => {
        await expect(store.commit(emptyBatch())).resolves.toBeUndefined();
      });
    });

    describe('durable subscriptions', () => {
      it('ensureDurableSubscription is idempotent per client id and name', async () => {
        const t = await store.ensureDestination('topic', 'news');
        const s1 = await store.ensureDurableSubscription({
          clientId: 'app',
          name: 'sub',
          destId: t,
          selector: "region = 'eu'",
          noLocal: true,
        });
        const s2 = await store.ensureDurableSubscription({
          clientId: 'app',
          name: 'sub',
          destId: t,
          selector: "region = 'eu'",
          noLocal: true,
        });
        const s3 = await store.ensureDurableSubscription({
          clientId: 'app',
          name: 'sub2',
          destId: t,
          selector: null,
          noLocal: false,
        });
        expect(s2).toEqual(s1);
        expect(s1).toEqual({
          id: s1.id,
          clientId: 'app',
          name: 'sub',
          destId: t,
          selector: "region = 'eu'",
          noLocal: true,
        });
        expect(s3.id).not.toBe(s1.id);
        expect(await store.loadDurableSubscriptions()).toEqual([s1, s3]);
      });

      it('pages a subscription in delivery order with the entry delivery count', async () => {
        const t = await store.ensureDestination('topic', 'prices');
        const a = await store.ensureDurableSubscription({
          clientId: 'c',
          name: 'a',
          destId: t,
          selector: null,
          noLocal: false,
        });
        const b = await store.ensureDurableSubscription({
          clientId: 'c',
          name: 'b',
          destId: t,
          selector: null,
          noLocal: false,
        });
        const msgs = [1, 8, 4, 8].map((priority) =>
          makeMessage(t, { priority, destination: 'topic://prices' }),
        );
        await store.commit(
          batch({
            inserts: msgs,
            subEntries: [
              ...msgs.map((m) => ({ subId: a.id, msgId: m.id, priority: m.priority })),
              { subId: b.id, msgId: msgs[0]!.id, priority: msgs[0]!.priority },
            ],
          }),
        );
        await store.commit(
          batch({ subDeliveryCounts: [{ subId: a.id, msgId: msgs[1]!.id, deliveryCount: 2 }] }),
        );

        const expected = [msgs[1]!, msgs[3]!, msgs[2]!, msgs[0]!];
        const page = await store.pageSubscription(a.id, null, 10);
        expect(page.map((m) => m.id)).toEqual(expected.map((m) => m.id));
        expect(page[0]).toEqual({ ...msgs[1]!, deliveryCount: 2 });
        expect(page[1]!.deliveryCount).toBe(0);
        const afterCursor = await store.pageSubscription(a.id, { priority: 8, id: msgs[3]!.id }, 10);
        expect(afterCursor.map((m) => m.id)).toEqual([msgs[2]!.id, msgs[0]!.id]);
        expect(await store.countSubscription(a.id)).toBe(4);
        expect(await store.countSubscription(b.id)).toBe(1);
        // the message's own delivery count is not the subscription's
        expect((await store.getMessage(msgs[1]!.id))!.deliveryCount).toBe(0);
      });

      it('deletes entries; cleanupTopicMessages removes only unreferenced topic messages', async () => {
        const t = await store.ensureDestination('topic', 'events');
        const q = await store.ensureDestination('queue', 'events');
        const a = await store.ensureDurableSubscription({
          clientId: 'c',
          name: 'a',
          destId: t,
          selector: null,
          noLocal: false,
        });
        const b = await store.ensureDurableSubscription({
          clientId: 'c',
          name: 'b',
          destId: t,
          selector: null,
          noLocal: false,
        });
        const m1 = makeMessage(t, { destination: 'topic://events' });
        const m2 = makeMessage(t, { destination: 'topic://events' });
        const orphan = makeMessage(t, { destination: 'topic://events' });
        const queued = makeMessage(q);
        await store.commit(
          batch({
            inserts: [m1, m2, orphan, queued],
            subEntries: [
              { subId: a.id, msgId: m1.id, priority: 4 },
              { subId: b.id, msgId: m1.id, priority: 4 },
              { subId: a.id, msgId: m2.id, priority: 4 },
            ],
          }),
        );
        await store.commit(
          batch({
            subEntryDeletes: [
              { subId: a.id, msgId: m1.id },
              { subId: a.id, msgId: m2.id },
            ],
          }),
        );
        expect((await store.pageSubscription(a.id, null, 10)).map((m) => m.id)).toEqual([]);
        expect((await store.pageSubscription(b.id, null, 10)).map((m) => m.id)).toEqual([m1.id]);

        expect(await store.cleanupTopicMessages()).toBe(2);
        expect(await store.getMessage(m1.id)).not.toBeNull();
        expect(await store.getMessage(m2.id)).toBeNull();
        expect(await store.getMessage(orphan.id)).toBeNull();
        expect(await store.getMessage(queued.id)).not.toBeNull();
        expect(await store.cleanupTopicMessages()).toBe(0);
      });

      it('deleteDurableSubscription removes the subscription and its entries', async () => {
        const t = await store.ensureDestination('topic', 'gone');
        const s = await store.ensureDurableSubscription({
          clientId: 'c',
          name: 's',
          destId: t,
          selector: null,
          noLocal: false,
        });
        const m = makeMessage(t, { destination: 'topic://gone' });
        await store.commit(batch({ inserts: [m], subEntries: [{ subId: s.id, msgId: m.id, priority: 4 }] }));
        await store.deleteDurableSubscription(s.id);
        expect(await store.loadDurableSubscriptions()).toEqual([]);
        expect(await store.countSubscription(s.id)).toBe(0);
        expect(await store.pageSubscription(s.id, null, 10)).toEqual([]);
        expect(await store.cleanupTopicMessages()).toBe(1);
      });
    });

    describe('duplicate detection and transactions', () => {
      it('keeps the highest sequence per producer', async () => {
        expect(await store.producerSequence('p1')).toBe(-1);
        await store.commit(
          batch({
            producers: [
              { producerId: 'p1', seq: 5 },
              { producerId: 'p2', seq: 0 },
            ],
          }),
        );
        await store.commit(batch({ producers: [{ producerId: 'p1', seq: 3 }] }));
        expect(await store.producerSequence('p1')).toBe(5);
        await store.commit(
          batch({
            producers: [
              { producerId: 'p1', seq: 9 },
              { producerId: 'p1', seq: 7 },
            ],
          }),
        );
        expect(await store.producerSequence('p1')).toBe(9);
        expect(await store.producerSequence('p2')).toBe(0);
      });

      it('prunes producers silent for longer than the retention, and only those', async () => {
        await store.commit(batch({ producers: [{ producerId: 'old', seq: 4 }] }));
        await new Promise((r) => setTimeout(r, 300));
        const newAt = performance.now();
        await store.commit(batch({ producers: [{ producerId: 'new', seq: 2 }] }));
        expect(await store.pruneProducers(3_600_000)).toBe(0);
        // A retention between the two ages, measured rather than fixed: 'new' is at most
        // (now - newAt) old, 'old' at least 300 ms more. (A fixed 40 ms failed when the commit and
        // the first prune alone took longer than that, on a machine busy right after a rebuild.)
        const retention = performance.now() - newAt + 150;
        expect(await store.pruneProducers(retention)).toBe(1);
        expect(await store.producerSequence('old')).toBe(-1);
        expect(await store.producerSequence('new')).toBe(2);
      });

      it('records network forwards per origin, seen only once committed', async () => {
        expect(await store.forwardedSeen('east', 7)).toBe(false);
        await store.commit(
          batch({
            forwards: [
              { origin: 'east', id: 7 },
              { origin: 'east', id: 8 },
              { origin: 'east', id: 2 ** 40 + 3 },
              { origin: 'west', id: 7 },
              { origin: 'east', id: 8 },
            ],
          }),
        );
        await store.commit(batch({ forwards: [{ origin: 'east', id: 10 }] }));
        for (const id of [7, 8, 2 ** 40 + 3, 10]) expect(await store.forwardedSeen('east', id)).toBe(true);
        for (const id of [6, 9, 11, 2 ** 40 + 2]) expect(await store.forwardedSeen('east', id)).toBe(false);
        expect(await store.forwardedSeen('west', 7)).toBe(true);
        expect(await store.forwardedSeen('west', 8)).toBe(false);
        expect(await store.forwardedSeen('north', 7)).toBe(false);
        // Forwards are the cluster's own: another cluster on the same database does not see them.
        const other = await sut.other();
        peers.push(other);
        await other.open();
        expect(await other.forwardedSeen('east', 7)).toBe(false);
      });

      it('prunes network forwards recorded longer ago than the retention', async () => {
        await store.commit(batch({ forwards: [{ origin: 'east', id: 1 }] }));
        await new Promise((r) => setTimeout(r, 300));
        const newAt = performance.now();
        await store.commit(batch({ forwards: [{ origin: 'east', id: 2 }] }));
        await store.pruneProducers(3_600_000);
        expect(await store.forwardedSeen('east', 1)).toBe(true);
        await store.pruneProducers(performance.now() - newAt + 150);
        expect(await store.forwardedSeen('east', 1)).toBe(false);
        expect(await store.forwardedSeen('east', 2)).toBe(true);
      });

      it('records committed client transactions', async () => {
        expect(await store.txCommitted('tx-1')).toBe(false);
        await store.commit(batch({ txOutcomes: ['tx-1', 'tx-2'] }));
        await store.commit(batch({ txOutcomes: ['tx-1'] }));
        expect(await store.txCommitted('tx-1')).toBe(true);
        expect(await store.txCommitted('tx-2')).toBe(true);
        expect(await store.txCommitted('tx-3')).toBe(false);
      });

      it('a failing commit leaves nothing half-written', async () => {
        const q = await store.ensureDestination('queue', 'atomic');
        const existing = makeMessage(q);
        const victim = makeMessage(q);
        await store.commit(batch({ inserts: [existing, victim] }));
        const fresh = makeMessage(q);
        const err = await rejection(
          store.commit(
            batch({
              inserts: [fresh, { ...existing }],
              deletes: [victim.id],
              deliveryCounts: [{ id: existing.id, deliveryCount: 5 }],
              producers: [{ producerId: 'atomic-p', seq: 10 }],
              forwards: [{ origin: 'atomic-origin', id: 1 }],
              txOutcomes: ['atomic-tx'],
            }),
          ),
        );
        expect(KeelError.isInstance(err)).toBe(true);
        expect(err).not.toBeInstanceOf(FencedError);
        expect(await store.getMessage(fresh.id)).toBeNull();
        expect(await store.getMessage(victim.id)).not.toBeNull();
        expect((await store.getMessage(existing.id))!.deliveryCount).toBe(0);
        expect(await store.producerSequence('atomic-p')).toBe(-1);
        expect(await store.forwardedSeen('atomic-origin', 1)).toBe(false);
        expect(await store.txCommitted('atomic-tx')).toBe(false);
        // and the store still works afterwards
        await store.commit(batch({ inserts: [fresh] }));
        expect(await store.countMessages(q)).toBe(3);
      });
    });

    describe('headers', () => {
      it('a message whose headers hold U+0000 fails its batch, which writes nothing', async () => {
        const q = await store.ensureDestination('queue', 'nul');
        const good = makeMessage(q);
        const bad = makeMessage(q);
        bad.headers.properties = { k: 'a\u0000b' };
        const err = await rejection(store.commit(batch({ inserts: [good, bad], txOutcomes: ['nul-tx'] })));
        expect(KeelError.isInstance(err)).toBe(true);
        expect(await store.countMessages(q)).toBe(0);
        expect(await store.txCommitted('nul-tx')).toBe(false);
      });
    });

    describe('scheduled jobs', () => {
      it('stores jobs as given and pages them by due time, due ones first, per cluster', async () => {
        const t = 1_800_000_000_000;
        const [a, b, c] = [
          makeSchedule(t + 20),
          makeSchedule(t + 10),
          makeSchedule(t + 30, { cron: '*/5 * * * *', cronTime: t }),
        ];
        await store.commit(
          batch({ schedules: [a, b, c].map((schedule) => ({ op: 'insert' as const, schedule })) }),
        );
        expect(await store.getSchedule(a.jobId)).toEqual(a);
        expect(await store.getSchedule(c.jobId)).toEqual(c);
        expect(await store.getSchedule('none')).toBeNull();
        expect(await store.countSchedules()).toBe(3);
        expect(await store.nextScheduleDue()).toBe(t + 10);
        expect((await store.dueSchedules(t + 20, 10)).map((j) => j.jobId)).toEqual([b.jobId, a.jobId]);
        expect((await store.dueSchedules(t + 100, 1)).map((j) => j.jobId)).toEqual([b.jobId]);
        expect(await store.dueSchedules(t, 10)).toEqual([]);
        const first = await store.pageSchedules(null, 2);
        expect(first.map((j) => j.jobId)).toEqual([b.jobId, a.jobId]);
        const rest = await store.pageSchedules({ nextDue: a.nextDue, jobId: a.jobId }, 2);
        expect(rest.map((j) => j.jobId)).toEqual([c.jobId]);
        expect(
          (await store.pageSchedules(null, 10, { from: t + 15, to: t + 30 })).map((j) => j.jobId),
        ).toEqual([a.jobId, c.jobId]);
        const other = await sut.other();
        await other.open();
        try {
          expect(await other.countSchedules()).toBe(0);
          expect(await other.dueSchedules(t + 100, 10)).toEqual([]);
          expect(await other.nextScheduleDue()).toBeNull();
        } finally {
          await other.close();
        }
      });

      it('a firing stores its message and advances its job in one commit; delete and range delete remove jobs', async () => {
        const q = await store.ensureDestination('queue', 'later');
        const t = 1_800_000_000_000;
        const job = makeSchedule(t);
        const gone = makeSchedule(t + 1000);
        const kept = makeSchedule(t + 5000);
        await store.commit(
          batch({ schedules: [job, gone, kept].map((schedule) => ({ op: 'insert' as const, schedule })) }),
        );
        const fired = makeMessage(q);
        await store.commit(
          batch({
            inserts: [fired],
            schedules: [
              { op: 'advance', jobId: job.jobId, nextDue: t + 5, repeatsLeft: 1, cronTime: 0, fired: 1 },
            ],
          }),
        );
        expect(await store.getMessage(fired.id)).not.toBeNull();
        expect(await store.getSchedule(job.jobId)).toEqual({
          ...job,
          nextDue: t + 5,
          repeatsLeft: 1,
          fired: 1,
        });
        // an advance written twice is harmless; one for a removed job changes nothing
        await store.commit(
          batch({
            schedules: [
              { op: 'advance', jobId: job.jobId, nextDue: t + 5, repeatsLeft: 1, cronTime: 0, fired: 1 },
              { op: 'advance', jobId: 'removed', nextDue: t, repeatsLeft: 0, cronTime: 0, fired: 9 },
              { op: 'delete', jobId: job.jobId },
            ],
          }),
        );
        expect(await store.getSchedule(job.jobId)).toBeNull();
        expect(await store.getSchedule('removed')).toBeNull();
        await store.commit(batch({ schedules: [{ op: 'deleteRange', from: t + 500, to: t + 1500 }] }));
        expect((await store.pageSchedules(null, 10)).map((j) => j.jobId)).toEqual([kept.jobId]);
      });

      it('a job id stored twice fails its whole batch', async () => {
        const q = await store.ensureDestination('queue', 'later');
        const job = makeSchedule(1_800_000_000_000);
        await store.commit(batch({ schedules: [{ op: 'insert', schedule: job }] }));
        const m = makeMessage(q);
        const err = await rejection(
          store.commit(batch({ inserts: [m], schedules: [{ op: 'insert', schedule: job }] })),
        );
        expect(KeelError.isInstance(err)).toBe(true);
        expect(await store.getMessage(m.id)).toBeNull();
        expect(await store.countSchedules()).toBe(1);
      });

      it('schedule writes are fenced like every write', async () => {
        await store.takeOver('node-a', 'startup');
        const job = makeSchedule(1_800_000_000_000);
        await store.commit(batch({ schedules: [{ op: 'insert', schedule: job }] }));
        const other = await peer();
        await other.takeOver('node-b', 'takeover');
        const advance = {
          op: 'advance' as const,
          jobId: job.jobId,
          nextDue: 1,
          repeatsLeft: 0,
          cronTime: 0,
          fired: 1,
        };
        expect(await rejection(store.commit(batch({ schedules: [advance] })))).toBeInstanceOf(FencedError);
        expect(
          await rejection(store.commit(batch({ schedules: [{ op: 'delete', jobId: job.jobId }] }))),
        ).toBeInstanceOf(FencedError);
        expect(await other.getSchedule(job.jobId)).toEqual(job);
      });
    });

    describe('epochs and fencing', () => {
      it('a cluster never taken over is at epoch 0 and accepts writes at epoch 0', async () => {
        expect(await store.readEpoch()).toBe(0);
        expect(store.epoch).toBe(0);
        expect(await store.takeovers(10)).toEqual([]);
        await store.commit(batch({ txOutcomes: ['epoch-0'] }));
        expect(await store.txCommitted('epoch-0')).toBe(true);
      });

      it('takeOver increments the epoch and records the takeover', async () => {
        const e1 = await store.takeOver('node-a', 'startup');
        expect(e1).toBe(1);
        expect(store.epoch).toBe(1);
        const other = await peer();
        const e2 = await other.takeOver('node-b', 'master lost');
        expect(e2).toBe(2);
        expect(await store.readEpoch()).toBe(2);
        const e3 = await store.takeOver('node-a', 'back');
        expect(e3).toBe(3);
        const history = await store.takeovers(10);
        expect(history.map((t) => [t.node, t.epoch, t.reason])).toEqual([
          ['node-a', 3, 'back'],
          ['node-b', 2, 'master lost'],
          ['node-a', 1, 'startup'],
        ]);
        expect(history[0]!.at).toBeInstanceOf(Date);
        expect(await store.takeovers(1)).toHaveLength(1);
      });

      it("after another node takes over, the old master's commit is fenced and writes nothing", async () => {
        const q = await store.ensureDestination('queue', 'fenced');
        await store.takeOver('node-a', 'startup');
        const before = makeMessage(q);
        await store.commit(batch({ inserts: [before] }));

        const other = await peer();
        await other.takeOver('node-b', 'takeover');
        const late = makeMessage(q);
        const err = await rejection(
          store.commit(
            batch({
              inserts: [late],
              deletes: [before.id],
              producers: [{ producerId: 'fp', seq: 1 }],
              txOutcomes: ['fenced-tx'],
            }),
          ),
        );
        expect(err).toBeInstanceOf(FencedError);
        expect((err as FencedError).code).toBe('FENCED');
        expect(await other.getMessage(late.id)).toBeNull();
        expect(await other.getMessage(before.id)).not.toBeNull();
        expect(await other.producerSequence('fp')).toBe(-1);
        expect(await other.txCommitted('fenced-tx')).toBe(false);

        // fenced destructive operations too
        expect(await rejection(store.deleteDestination(q))).toBeInstanceOf(FencedError);
        expect(await other.countMessages(q)).toBe(1);

        // the new master writes normally
        await other.commit(batch({ inserts: [late] }));
        expect(await store.getMessage(late.id)).not.toBeNull();
      });

      it('clusters sharing the database take id blocks of their own, above the ones before', async () => {
        // Ids are idBlock * 2^32 + counter and the message table is the database's: two clusters at
        // the same epoch once handed out the same ids, and the second insert failed (23505).
        const q = await store.ensureDestination('queue', 'ids');
        const epoch = await store.takeOver('node-a', 'startup');
        const other = await sut.other();
        peers.push(other);
        await other.open();
        const otherQ = await other.ensureDestination('queue', 'ids');
        expect(await other.takeOver('node-x', 'startup')).toBe(epoch);
        expect(store.idBlock).toBeGreaterThan(0);
        expect(other.idBlock).not.toBe(store.idBlock);
        const mine = makeMessage(q, { id: new MessageIdAllocator(store.idBlock).next() });
        const theirs = makeMessage(otherQ, { id: new MessageIdAllocator(other.idBlock).next() });
        await store.commit(batch({ inserts: [mine] }));
        await other.commit(batch({ inserts: [theirs] }));
        expect(await store.getMessage(mine.id)).not.toBeNull();
        expect(await other.getMessage(theirs.id)).not.toBeNull();
        const next = await peer();
        await next.takeOver('node-b', 'master lost');
        expect(next.idBlock).toBeGreaterThan(Math.max(store.idBlock, other.idBlock));
      });

      it('a store that never took over is fenced once the cluster has an epoch', async () => {
        const other = await peer();
        await other.takeOver('node-b', 'startup');
        expect(await rejection(store.commit(batch({ txOutcomes: ['x'] })))).toBeInstanceOf(FencedError);
      });
    });
  });
}
