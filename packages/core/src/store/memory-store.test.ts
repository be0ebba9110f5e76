import { FencedError, StoreError } from '@keel/protocol';
import { storeConformanceSuite } from '@keel/testkit';
import { MemoryDatabase, MemoryStore } from './memory-store';
import { emptyBatch } from './store';

storeConformanceSuite('MemoryStore', async () => {
  const database = new MemoryDatabase();
  return {
    store: new MemoryStore({ database, cluster: 'c1' }),
    peer: async () => new MemoryStore({ database, cluster: 'c1' }),
    other: async () => new MemoryStore({ database, cluster: 'c2' }),
    cleanup: async () => {},
  };
});

describe('MemoryStore helpers', () => {
  it('simulateTakeover fences the next commit', async () => {
    const store = new MemoryStore();
    await store.takeOver('a', 'startup');
    expect(store.simulateTakeover()).toBe(2);
    await expect(store.commit({ ...emptyBatch(), txOutcomes: ['t'] })).rejects.toBeInstanceOf(FencedError);
    expect(await store.txCommitted('t')).toBe(false);
  });

  it('failNextCommit rejects one commit and writes nothing', async () => {
    const store = new MemoryStore();
    store.failNextCommit();
    await expect(store.commit({ ...emptyBatch(), txOutcomes: ['t'] })).rejects.toBeInstanceOf(StoreError);
    expect(await store.txCommitted('t')).toBe(false);
    await store.commit({ ...emptyBatch(), txOutcomes: ['t'] });
    expect(await store.txCommitted('t')).toBe(true);
  });

  it('clusters sharing a database do not see each other', async () => {
    const database = new MemoryDatabase();
    const a = new MemoryStore({ database, cluster: 'a' });
    const b = new MemoryStore({ database, cluster: 'b' });
    await a.ensureDestination('queue', 'q');
    await a.takeOver('n', 'r');
    expect(await b.loadDestinations()).toEqual([]);
    expect(await b.readEpoch()).toBe(0);
  });

  it('rejects use after close', async () => {
    const store = new MemoryStore();
    await store.close();
    await expect(store.readEpoch()).rejects.toBeInstanceOf(StoreError);
  });
});
