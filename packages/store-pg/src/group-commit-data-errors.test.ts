import { randomBytes } from 'node:crypto';
import { GroupCommitWriter } from '@keel/core';
import { KeelError } from '@keel/protocol';
import { makeMessage, useTestDatabase } from '@keel/testkit';
import { PgStore, type PgStoreOptions } from './pg-store';

/**
 * Issue #17.2: a group-commit round that Postgres refuses for one row's data (a non-integer
 * expiration into the bigint column: 22P02) commits every other operation of the round, each
 * waiter answered for its own rows, and only the bad one fails — with no back-off.
 */
const db = useTestDatabase();
const stores: PgStore[] = [];

afterAll(async () => {
  await Promise.all(stores.map((s) => s.close()));
});

async function openStore(extra: Partial<PgStoreOptions> = {}): Promise<{ store: PgStore; destId: number }> {
  const store = new PgStore({
    connectionString: db.url,
    cluster: `gc-${randomBytes(3).toString('hex')}`,
    poolSize: 2,
    ...extra,
  });
  stores.push(store);
  await store.open();
  await store.takeOver('n1', 'test');
  const destId = await store.ensureDestination('queue', 'q');
  return { store, destId };
}

describe.each([
  ['pipelined inserts', {}],
  ['binary COPY inserts', { pipeline: false, copyThresholdRows: 1 }],
])('GroupCommitWriter on PgStore (%s): a row refused for its data', (_name, extra) => {
  test.each([
    ['1.5', 1.5],
    ['1e308', 1e308],
  ])('fails only its own write (expiration %s) and commits the others in the round', async (_v, bad) => {
    const { store, destId } = await openStore(extra);
    const rounds: { operations: number; inserts: number }[] = [];
    const errors: KeelError[] = [];
    const writer = new GroupCommitWriter(store, {
      onCommit: (s) => rounds.push(s),
      onStoreError: (e) => errors.push(e),
    });
    const good = Array.from({ length: 40 }, () => makeMessage(destId));
    const poison = makeMessage(destId, { expiration: bad });
    // One round: every write joins before the round starts (setImmediate).
    const outcomes = await Promise.allSettled([
      ...good.slice(0, 17).map((m, i) =>
        writer.write((b) => {
          b.inserts.push(m);
          b.producers.push({ producerId: `p${i}`, seq: 1 });
        }),
      ),
      writer.write((b) => {
        b.inserts.push(poison);
        b.producers.push({ producerId: 'poison', seq: 7 });
      }),
      ...good.slice(17).map((m) => writer.write((b) => b.inserts.push(m))),
    ]);
    const failed = outcomes.filter((o) => o.status === 'rejected') as PromiseRejectedResult[];
    expect(failed).toHaveLength(1);
    expect(outcomes[17]!.status).toBe('rejected');
    expect(failed[0]!.reason).toMatchObject({ code: 'STORE_DATA_ERROR', retryable: false });
    // Every good row is stored, the bad one and its producer sequence are not.
    expect(await store.countMessages(destId)).toBe(good.length);
    expect(await store.getMessage(poison.id)).toBeNull();
    expect(await store.producerSequence('poison')).toBe(-1);
    expect(await store.producerSequence('p3')).toBe(1);
    // Not a store outage: no store:error (the back-off after a failed round goes with one), and
    // the next write commits in a round of its own.
    expect(errors).toEqual([]);
    await writer.write((b) => b.inserts.push(makeMessage(destId)));
    expect(errors).toEqual([]);
    expect(rounds.reduce((n, r) => n + r.inserts, 0)).toBe(good.length + 1);
  });
});

test('a round refused for a reason other than data still fails as a whole', async () => {
  const { store, destId } = await openStore();
  const writer = new GroupCommitWriter(store);
  // A destination id with no row is fine for keel_messages (no foreign key); a closed pool is not data.
  await store.close();
  const outcomes = await Promise.allSettled([
    writer.write((b) => b.inserts.push(makeMessage(destId))),
    writer.write((b) => b.inserts.push(makeMessage(destId))),
  ]);
  expect(outcomes.map((o) => o.status)).toEqual(['rejected', 'rejected']);
  for (const o of outcomes) {
    expect(KeelError.isInstance((o as PromiseRejectedResult).reason)).toBe(true);
    expect((o as PromiseRejectedResult).reason.code).not.toBe('STORE_DATA_ERROR');
  }
});
