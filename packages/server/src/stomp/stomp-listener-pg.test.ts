/**
 * The STOMP listener over the real PgStore: a persistent SEND's RECEIPT goes out only after the
 * commit that put the message in keel_messages (DESIGN.md "Group commit").
 */
import { randomBytes } from 'node:crypto';
import { PgStore } from '@keel/store-pg';
import { useTestDatabase } from '@keel/testkit';
import { Client } from 'pg';
import { headersOf, RawStomp, type StompFixture, startStomp, until } from './__tests__/stomp-test-kit';

const db = useTestDatabase();

describe('StompListener over PgStore', () => {
  let fx: StompFixture | undefined;
  let store: PgStore | undefined;
  const clients: Client[] = [];
  const raws: RawStomp[] = [];

  afterEach(async () => {
    for (const r of raws.splice(0)) r.destroy();
    // SQL clients first: a test that failed while holding the table lock releases it here.
    for (const c of clients.splice(0)) await c.end().catch(() => {});
    await fx?.close();
    fx = undefined;
    await store?.close();
    store = undefined;
  });

  async function sql(): Promise<Client> {
    const c = new Client({ connectionString: db.url, application_name: 'stomp-test-observer' });
    c.on('error', () => {});
    clients.push(c);
    await c.connect();
    return c;
  }

  it('sends the RECEIPT of a persistent SEND only once its row is committed to keel_messages', async () => {
    const applicationName = `keel-stomp-${randomBytes(3).toString('hex')}`;
    store = new PgStore({
      connectionString: db.url,
      cluster: `stomp-${randomBytes(3).toString('hex')}`,
      poolSize: 2,
      applicationName,
    });
    await store.open();
    await store.takeOver('node-1', 'test');
    fx = await startStomp({}, { store });
    const r = await RawStomp.connect(fx.port);
    raws.push(r);
    // Create the queue (its destination row) before the table is locked.
    r.send('SEND', { destination: '/queue/durable', receipt: 'warm-up' }, 'non-persistent');
    expect(headersOf(await r.frame())['receipt-id']).toBe('warm-up');

    // Hold back every insert into keel_messages: the broker's commit has to wait for this lock.
    const locker = await sql();
    await locker.query('BEGIN');
    await locker.query('LOCK TABLE keel_messages IN EXCLUSIVE MODE');
    r.send('SEND', { destination: '/queue/durable', persistent: 'true', receipt: 'stored' }, 'keep me');
    const observer = await sql();
    await until(async () => {
      const res = await observer.query(
        "SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = $1 AND wait_event_type = 'Lock'",
        [applicationName],
      );
      return res.rows[0].n > 0;
    }, 'the broker to wait on the locked table');
    // A non-persistent SEND after it is receipted in frame order, so it waits too.
    r.send('SEND', { destination: '/queue/durable', receipt: 'after' }, 'quick');
    expect(r.frames.filter((f) => f.command === 'RECEIPT')).toHaveLength(1);
    expect(
      (await observer.query("SELECT count(*)::int AS n FROM keel_messages WHERE body = 'keep me'::bytea"))
        .rows[0].n,
    ).toBe(0);

    await locker.query('COMMIT');
    const receipt = await r.frame();
    expect(headersOf(receipt)['receipt-id']).toBe('stored');
    // The RECEIPT means the row is there, for anyone to read.
    const rows = await observer.query("SELECT id, body FROM keel_messages WHERE body = 'keep me'::bytea");
    expect(rows.rows).toHaveLength(1);
    expect(headersOf(await r.frame())['receipt-id']).toBe('after');

    // And the message is delivered with its persistent flag.
    r.send('SUBSCRIBE', { id: 's', destination: '/queue/durable', ack: 'client-individual' });
    const delivered = [await r.frame(), await r.frame(), await r.frame()];
    expect(delivered.map((m) => m.body.toString())).toEqual(['non-persistent', 'keep me', 'quick']);
    const kept = delivered[1]!;
    expect(headersOf(kept)).toMatchObject({ persistent: 'true', 'message-id': String(rows.rows[0].id) });
    r.send('ACK', { id: headersOf(kept).ack!, receipt: 'acked' });
    expect(headersOf(await r.frame())['receipt-id']).toBe('acked');
    expect(
      (await observer.query("SELECT count(*)::int AS n FROM keel_messages WHERE body = 'keep me'::bytea"))
        .rows[0].n,
    ).toBe(0);
  });

  it('stops reading from a producer while its sends wait for the store (maxPendingFrames)', async () => {
    const applicationName = `keel-stomp-${randomBytes(3).toString('hex')}`;
    store = new PgStore({
      connectionString: db.url,
      cluster: `stomp-${randomBytes(3).toString('hex')}`,
      poolSize: 2,
      applicationName,
    });
    await store.open();
    await store.takeOver('node-1', 'test');
    fx = await startStomp({ maxPendingFrames: 4 }, { store });
    const r = await RawStomp.connect(fx.port);
    raws.push(r);
    r.send('SEND', { destination: '/queue/flow', receipt: 'warm-up' }, 'x');
    await r.frame();
    const locker = await sql();
    await locker.query('BEGIN');
    await locker.query('LOCK TABLE keel_messages IN EXCLUSIVE MODE');
    const body = Buffer.alloc(64 * 1024, 0x66);
    const total = 200;
    for (let i = 0; i < total; i++)
      r.send('SEND', { destination: '/queue/flow', persistent: 'true', receipt: `m${i}` }, body);
    const observer = await sql();
    await until(async () => {
      const res = await observer.query(
        "SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = $1 AND wait_event_type = 'Lock'",
        [applicationName],
      );
      return res.rows[0].n > 0;
    }, 'the broker to wait on the locked table');
    // 12.5 MiB were written; with the server reading only a few frames ahead, most of it stays in
    // the client's socket buffer (it would all be read into memory without input flow control).
    const drained = await new Promise<boolean>((resolve) => {
      const t = setTimeout(() => resolve(false), 500);
      r.socket.once('drain', () => {
        clearTimeout(t);
        resolve(true);
      });
    });
    expect(drained).toBe(false);
    expect(r.socket.writableLength).toBeGreaterThan(0);
    await locker.query('COMMIT');
    await until(
      () => r.frames.filter((f) => f.command === 'RECEIPT').length === total + 1,
      'every receipt',
      20_000,
    );
    const ids = r.frames.filter((f) => f.command === 'RECEIPT').map((f) => headersOf(f)['receipt-id']);
    expect(ids.slice(1)).toEqual(Array.from({ length: total }, (_, i) => `m${i}`));
    const n = await observer.query('SELECT count(*)::int AS n FROM keel_messages WHERE body = $1', [body]);
    expect(n.rows[0].n).toBe(total);
  });
});
