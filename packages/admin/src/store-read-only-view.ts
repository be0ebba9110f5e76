import type { BrowsedMessage, DestinationRecord, PageCursor, Store, StoredMessage } from '@keel/core';
import type { DurableView, QueueView, ReadOnlyView, TopicView } from './admin-context';

/** Rows read per store page while skipping to a browse offset. */
const SKIP_PAGE_ROWS = 500;

/**
 * The ReadOnlyView of a slave, over the core Store port: destinations from loadDestinations,
 * depths from countMessages / countSubscription, browse from pageMessages. Counters only the
 * master keeps in memory (enqueued, consumers, ...) are null.
 */
export function storeReadOnlyView(store: Store): ReadOnlyView {
  const destinations = async (type: 'queue' | 'topic'): Promise<DestinationRecord[]> =>
    (await store.loadDestinations())
      .filter((d) => d.type === type)
      .sort((a, b) => a.name.localeCompare(b.name));

  const queueView = async (d: DestinationRecord): Promise<QueueView> => ({
    name: d.name,
    temporary: false,
    depth: await store.countMessages(d.id),
    enqueued: null,
    dequeued: null,
    expired: null,
    deadLettered: null,
    consumers: null,
    inflight: null,
    oldestMessageAgeMs: null,
  });

  const findQueue = async (name: string): Promise<DestinationRecord | null> =>
    (await destinations('queue')).find((d) => d.name === name) ?? null;

  return {
    async listQueues() {
      return Promise.all((await destinations('queue')).map(queueView));
    },

    async getQueue(name) {
      const d = await findQueue(name);
      return d ? queueView(d) : null;
    },

    async browse(queue, limit, offset) {
      const d = await findQueue(queue);
      if (!d) return null;
      let cursor: PageCursor | null = null;
      let toSkip = offset;
      while (toSkip > 0) {
        const rows = await store.pageMessages(d.id, cursor, Math.min(toSkip, SKIP_PAGE_ROWS));
        if (rows.length === 0) return [];
        toSkip -= rows.length;
        const last = rows[rows.length - 1] as StoredMessage;
        cursor = { priority: last.priority, id: last.id };
      }
      const rows = limit > 0 ? await store.pageMessages(d.id, cursor, limit) : [];
      return rows.map(browsed);
    },

    async listTopics() {
      const [topics, subs] = await Promise.all([destinations('topic'), store.loadDurableSubscriptions()]);
      return topics.map(
        (t): TopicView => ({
          name: t.name,
          temporary: false,
          enqueued: null,
          subscribers: null,
          durableSubscriptions: subs.filter((s) => s.destId === t.id).length,
        }),
      );
    },

    async listDurables() {
      const [topics, subs] = await Promise.all([store.loadDestinations(), store.loadDurableSubscriptions()]);
      const names = new Map(topics.map((t) => [t.id, t.name]));
      return Promise.all(
        subs.map(
          async (s): Promise<DurableView> => ({
            clientId: s.clientId,
            name: s.name,
            topic: names.get(s.destId) ?? '',
            active: null,
            pending: await store.countSubscription(s.id),
            inflight: null,
          }),
        ),
      );
    },
  };
}

function browsed(row: StoredMessage): BrowsedMessage {
  return {
    id: String(row.id),
    message: { ...row.headers, messageId: String(row.id), body: row.body },
    deliveryCount: row.deliveryCount,
    redelivered: row.deliveryCount > 0,
  };
}
