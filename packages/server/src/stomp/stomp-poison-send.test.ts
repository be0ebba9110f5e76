/**
 * Issue #17.2 on STOMP, over the real PgStore: a SEND whose `expires` header the keel_messages
 * bigint column cannot hold exactly is refused with an ERROR naming the header, for that send only;
 * the other connections' concurrent persistent sends are receipted and stored.
 */
import { randomBytes } from 'node:crypto';
import { PgStore } from '@keel/store-pg';
import { useTestDatabase } from '@keel/testkit';
import { Client } from 'pg';
import { headersOf, RawStomp, type StompFixture, startStomp } from './__tests__/stomp-test-kit';

const db = useTestDatabase();

describe('STOMP SEND with a bad expires header among good sends (PgStore)', () => {
  let fx: StompFixture;
  let store: PgStore;
  let pg: Client;
  const cluster = `stomp-poison-${randomBytes(3).toString('hex')}`;

  beforeAll(async () => {
    store = new PgStore({ connectionString: db.url, cluster, poolSize: 2 });
    await store.open();
    await store.takeOver('node-1', 'test');
    fx = await startStomp({}, { store });
    pg = new Client({ connectionString: db.url });
    pg.on('error', () => {});
    await pg.connect();
  });

  afterAll(async () => {
    await pg.end();
    await fx.close();
    await store.close();
  });

  async function storedBodies(): Promise<Set<string>> {
    const r = await pg.query<{ body: Buffer }>(
      `SELECT m.body FROM keel_messages m JOIN keel_destinations d ON d.id = m.dest_id
        WHERE d.cluster = $1 AND d.name = 'stomp.poison'`,
      [cluster],
    );
    return new Set(r.rows.map((x) => x.body.toString()));
  }

  test.each(['1.5', '1e308', '-1', '9007199254740993', '9999999999999999'])(
    'expires:%s fails alone with an ERROR naming the header',
    async (expires) => {
      const tag = `e${expires}`;
      const good = await Promise.all([0, 1, 2].map(() => RawStomp.connect(fx.port)));
      const bad = await RawStomp.connect(fx.port);
      try {
        const sent: string[] = [];
        for (let s = 0; s < 30; s++) {
          for (const [p, r] of good.entries()) {
            const body = `${tag}/${p}/${s}`;
            sent.push(body);
            r.send('SEND', { destination: '/queue/stomp.poison', persistent: 'true', receipt: body }, body);
          }
          if (s === 15) {
            bad.send(
              'SEND',
              { destination: '/queue/stomp.poison', persistent: 'true', expires, receipt: 'bad' },
              `${tag}/bad`,
            );
          }
        }
        const error = await bad.frame();
        expect(error.command).toBe('ERROR');
        expect(headersOf(error)['receipt-id']).toBe('bad');
        expect(headersOf(error).message).toMatch(/expires/);
        for (const [p, r] of good.entries()) {
          for (let s = 0; s < 30; s++) {
            const f = await r.frame();
            expect(f.command).toBe('RECEIPT');
            expect(headersOf(f)['receipt-id']).toBe(`${tag}/${p}/${s}`);
          }
        }
        const stored = await storedBodies();
        for (const b of sent) expect(stored.has(b)).toBe(true);
        expect(stored.has(`${tag}/bad`)).toBe(false);
      } finally {
        for (const r of [...good, bad]) r.destroy();
      }
    },
  );
});
