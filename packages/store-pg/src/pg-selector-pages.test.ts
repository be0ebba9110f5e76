import { emptyBatch, MessageSelector, type StoredMessage } from '@keel/core';
import { messageHeaders } from '@keel/protocol';
import { useTestDatabase } from '@keel/testkit';
import fc from 'fast-check';
import { condition, message, print, subjectOf } from '../../core/src/selector/__tests__/selector-arbitrary';
import { PgStore } from './pg-store';

const db = useTestDatabase();

/**
 * A selector's SQL form (MessageSelector.sql, run by pageMessagesWhere) selects exactly the rows its
 * predicate selects, over random selectors and messages (fast-check), on real Postgres.
 */
describe('PgStore.pageMessagesWhere runs selectors as the broker does', () => {
  let store: PgStore;
  let destId: number;
  let rows: StoredMessage[];

  beforeAll(async () => {
    store = new PgStore({ connectionString: db.url, cluster: 'selectors', poolSize: 2 });
    destId = await store.ensureDestination('queue', 'selectors');
    const messages = fc.sample(message, { numRuns: 120, seed: 42 });
    rows = messages.map((m, i) => ({
      id: 1000 + i,
      destId,
      priority: m.priority,
      expiration: 0,
      deliveryCount: 0,
      headers: messageHeaders(m),
      body: m.body,
    }));
    await store.commit({ ...emptyBatch(), inserts: rows });
  });

  afterAll(async () => {
    await store.close();
  });

  const predicateIds = (selector: MessageSelector): number[] =>
    rows
      .filter((r) => selector.matches(subjectOf({ ...r.headers, body: r.body }, r.id)))
      .sort((a, b) => b.priority - a.priority || a.id - b.id)
      .map((r) => r.id);

  test('random selectors: the same rows, in delivery order', async () => {
    let compiled = 0;
    let selected = 0;
    await fc.assert(
      fc.asyncProperty(condition(3), async (tree) => {
        const selector = MessageSelector.parse(print(tree));
        if (selector.sql === null) return; // arithmetic or delivery state: paged with the predicate
        const page = await store.pageMessagesWhere(destId, null, 1000, selector.sql);
        expect(page.map((r) => r.id)).toEqual(predicateIds(selector));
        compiled += 1;
        if (page.length > 0 && page.length < rows.length) selected += 1;
      }),
      { numRuns: 300 },
    );
    // Not vacuous: most selectors run in SQL, and many select some rows but not all.
    expect(compiled).toBeGreaterThan(100);
    expect(selected).toBeGreaterThan(30);
  });

  test('after a cursor, and with literals that look like SQL or parameters', async () => {
    for (const text of [
      "str = 'x' OR a > 2",
      "JMSType IN ('x', 'it''s') OR b IS NULL",
      "str = '$1' OR str = ''';--' OR str LIKE '%/*selector*/%'",
      "JMSDeliveryMode = 'PERSISTENT' AND JMSPriority >= 4",
      "str LIKE 'a!_%' ESCAPE '!' OR str LIKE '_'",
    ]) {
      const selector = MessageSelector.parse(text);
      const want = predicateIds(selector);
      expect(selector.sql).not.toBeNull();
      const all = await store.pageMessagesWhere(destId, null, 1000, selector.sql!);
      expect(all.map((r) => r.id)).toEqual(want);
      if (all.length < 2) continue;
      const first = all[0]!;
      const rest = await store.pageMessagesWhere(
        destId,
        { priority: first.priority, id: first.id },
        1000,
        selector.sql!,
      );
      expect(rest.map((r) => r.id)).toEqual(want.slice(1));
    }
  });
});
