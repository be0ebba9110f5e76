import { StoreError } from '@keel/protocol';
import { GroupCommitWriter } from './group-commit';
import { MemoryStore } from './store/memory-store';
import type { StoredMessage } from './store/store';

function row(id: number, destId: number): StoredMessage {
  return {
    id,
    destId,
    priority: 4,
    expiration: 0,
    deliveryCount: 0,
    headers: {
      destination: 'queue://q',
      persistent: true,
      priority: 4,
      timestamp: 1,
      expiration: 0,
      properties: {},
    },
    body: Buffer.from(String(id)),
  };
}

async function setup() {
  const store = new MemoryStore({ cluster: 'gc' });
  await store.open();
  await store.takeOver('n', 'test');
  const destId = await store.ensureDestination('queue', 'q');
  return { store, destId };
}

describe('GroupCommitWriter', () => {
  it('puts everything that arrives while a round commits into one next round', async () => {
    const { store, destId } = await setup();
    const rounds: number[] = [];
    const w = new GroupCommitWriter(store, { onCommit: (s) => rounds.push(s.inserts) });
    const first = w.write((b) => b.inserts.push(row(1, destId)));
    await new Promise((r) => setImmediate(r)); // round 1 is in flight now
    const rest = Array.from({ length: 50 }, (_, i) => w.write((b) => b.inserts.push(row(i + 2, destId))));
    await Promise.all([first, ...rest]);
    expect(rounds).toEqual([1, 50]);
    expect(await store.countMessages(destId)).toBe(51);
  });

  it('fails the round and what queued behind it, and retries fire-and-forget operations', async () => {
    const { store, destId } = await setup();
    await new GroupCommitWriter(store).write((b) => b.inserts.push(row(1, destId)));
    // A store whose commits take a while, so that writes can queue behind a round in flight.
    const slow = Object.create(store) as MemoryStore;
    slow.commit = async (b) => {
      await new Promise((r) => setTimeout(r, 20));
      return store.commit(b);
    };
    const w = new GroupCommitWriter(slow);
    store.failNextCommit(new StoreError('db away', 'STORE_UNAVAILABLE', { retryable: true }));
    const failing = w.write((b) => b.inserts.push(row(2, destId)));
    const removal = w.writeLater((b) => b.deletes.push(1));
    await new Promise((r) => setImmediate(r));
    const queuedBehind = w.write((b) => b.inserts.push(row(3, destId)));
    await expect(failing).rejects.toMatchObject({ code: 'STORE_UNAVAILABLE' });
    await expect(queuedBehind).rejects.toMatchObject({ code: 'STORE_UNAVAILABLE' });
    await removal; // carried into a later round until it committed
    expect(await store.getMessage(1)).toBeNull();
    expect(await store.getMessage(2)).toBeNull();
    expect(await store.getMessage(3)).toBeNull();
    await w.write((b) => b.inserts.push(row(4, destId)));
    expect(await store.countMessages(destId)).toBe(1);
  });

  it('refuses every later write once fenced', async () => {
    const { store, destId } = await setup();
    const fenced: string[] = [];
    const w = new GroupCommitWriter(store, { onFenced: (e) => fenced.push(e.code) });
    store.simulateTakeover();
    await expect(w.write((b) => b.inserts.push(row(1, destId)))).rejects.toMatchObject({ code: 'FENCED' });
    await expect(w.write((b) => b.inserts.push(row(2, destId)))).rejects.toMatchObject({ code: 'FENCED' });
    expect(fenced).toEqual(['FENCED']);
    expect(w.isFenced).toBe(true);
  });

  it('holds a round with cancellable writes for cancellableHoldMs, so an insert withdrawn in time is never written', async () => {
    const { store, destId } = await setup();
    const rounds: number[] = [];
    const w = new GroupCommitWriter(store, {
      cancellableHoldMs: 30,
      onCommit: (s) => rounds.push(s.inserts),
    });
    const started = performance.now();
    const kept = w.writeCancellable((b) => b.inserts.push(row(1, destId)));
    const withdrawn = w.writeCancellable((b) => b.inserts.push(row(2, destId)));
    await new Promise((r) => setTimeout(r, 5)); // past the next turn of the loop: still held
    expect(rounds).toEqual([]);
    expect(withdrawn.cancel()).toBe(true);
    await kept.committed;
    expect(performance.now() - started).toBeGreaterThanOrEqual(25); // the timer's own slack aside
    expect(rounds).toEqual([1]);
    expect(kept.cancel()).toBe(false);
    expect(await store.getMessage(1)).not.toBeNull();
    expect(await store.getMessage(2)).toBeNull();
  });

  it('does not hold rounds of plain writes', async () => {
    const { store, destId } = await setup();
    const w = new GroupCommitWriter(store, { cancellableHoldMs: 10_000 });
    await w.write((b) => b.inserts.push(row(1, destId)));
    expect(await store.countMessages(destId)).toBe(1);
  });

  it('starts a held round at once when a write that someone waits for joins it', async () => {
    const { store, destId } = await setup();
    const w = new GroupCommitWriter(store, { cancellableHoldMs: 10_000 });
    const held = w.writeCancellable((b) => b.inserts.push(row(1, destId)));
    await new Promise((r) => setTimeout(r, 5));
    expect(await store.countMessages(destId)).toBe(0); // still held
    await w.write((b) => b.inserts.push(row(2, destId)));
    await held.committed;
    expect(await store.countMessages(destId)).toBe(2);
  });

  it("does not hold a cancellable write given a hold of 0 (a slow consumer's queue)", async () => {
    const { store, destId } = await setup();
    const w = new GroupCommitWriter(store, { cancellableHoldMs: 10_000 });
    await w.writeCancellable((b) => b.inserts.push(row(1, destId)), undefined, 0).committed;
    expect(await store.countMessages(destId)).toBe(1);
  });
});
