import { randomBytes } from 'node:crypto';
import { emptyBatch, type StoreBatch } from '@keel/core';
import { FencedError, KeelError, StoreError } from '@keel/protocol';
import { makeMessage, storeConformanceSuite, useTestDatabase } from '@keel/testkit';
import { Client } from 'pg';
import { inlineIntegers, PgStore, type PgStoreOptions } from './pg-store';

const db = useTestDatabase();
let clusterCounter = 0;

function uniqueCluster(): string {
  clusterCounter += 1;
  return `c${clusterCounter}-${randomBytes(3).toString('hex')}`;
}

function factory(extra: Partial<PgStoreOptions>) {
  return async () => {
    const cluster = uniqueCluster();
    const options = { connectionString: db.url, cluster, poolSize: 4, ...extra };
    return {
      store: new PgStore(options),
      peer: async () => new PgStore(options),
      other: async () => new PgStore({ ...options, cluster: uniqueCluster() }),
      cleanup: async () => {},
    };
  };
}

// Default: pipelined commits; then statement by statement, with every insert through binary COPY.
storeConformanceSuite('PgStore (pipelined)', factory({}));
storeConformanceSuite(
  'PgStore (sequential, binary COPY inserts)',
  factory({ pipeline: false, copyThresholdRows: 1 }),
);

function batch(parts: Partial<StoreBatch>): StoreBatch {
  return { ...emptyBatch(), ...parts };
}

describe('PgStore on Postgres', () => {
  const stores: PgStore[] = [];
  const clients: Client[] = [];

  function store(extra: Partial<PgStoreOptions> = {}): PgStore {
    const s = new PgStore({ connectionString: db.url, cluster: uniqueCluster(), poolSize: 2, ...extra });
    stores.push(s);
    return s;
  }

  async function rawClient(config: { idle_in_transaction_session_timeout?: number } = {}): Promise<Client> {
    const c = new Client({ connectionString: db.url, ...config });
    c.on('error', () => {});
    clients.push(c);
    await c.connect();
    return c;
  }

  /** Resolves once `sessions` sessions with this application_name wait on a lock (bounded polling). */
  async function waitForLockWait(applicationName: string, sessions = 1): Promise<void> {
    const c = await rawClient();
    for (let i = 0; i < 500; i++) {
      const r = await c.query(
        "SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = $1 AND wait_event_type = 'Lock'",
        [applicationName],
      );
      if (r.rows[0].n >= sessions) return;
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    throw new Error(`no session of ${applicationName} waited on a lock within 5 s`);
  }

  afterEach(async () => {
    for (const s of stores.splice(0)) await s.close();
    for (const c of clients.splice(0)) await c.end().catch(() => {});
  });

  it.each([
    ['pipelined insert', true, 1000],
    ['sequential insert', false, 1000],
    ['binary COPY', false, 1],
  ])('round-trips bodies with all 256 byte values (%s)', async (_path, pipeline, copyThresholdRows) => {
    const s = store({ pipeline, copyThresholdRows });
    const q = await s.ensureDestination('queue', 'bytes');
    const all = Buffer.alloc(256);
    for (let i = 0; i < 256; i++) all[i] = i;
    const msgs = [
      makeMessage(q, { body: all }),
      makeMessage(q, { body: Buffer.alloc(0) }),
      makeMessage(q, { body: Buffer.concat([all, all.reverse()]) }),
    ];
    msgs[0]!.headers.properties = { unicode: 'héllo ✓ 😀', quote: '"\\\'{}', big: 2 ** 52 };
    await s.commit(batch({ inserts: msgs }));
    const page = await s.pageMessages(q, null, 10);
    expect(page).toEqual(msgs);
    expect(Buffer.isBuffer(page[0]!.body)).toBe(true);
  });

  it('stores headers as jsonb readable with SQL', async () => {
    const s = store();
    const q = await s.ensureDestination('queue', 'sql');
    const m = makeMessage(q);
    await s.commit(batch({ inserts: [m] }));
    const c = await rawClient();
    const r = await c.query(
      "SELECT headers->>'correlationId' AS corr, headers->'properties'->>'n' AS n, id::text FROM keel_messages WHERE id = $1",
      [m.id],
    );
    expect(r.rows).toEqual([{ corr: m.headers.correlationId, n: '42', id: String(m.id) }]);
  });

  it('deletes and updates by id through the primary key even when the statistics say the table is empty', async () => {
    // The state after an autovacuum analyzed a drained queue table that has filled up again since.
    const s = store();
    const q = await s.ensureDestination('queue', 'stale-stats');
    const first = Array.from({ length: 2000 }, () => makeMessage(q));
    await s.commit(batch({ inserts: first }));
    await s.commit(batch({ deletes: first.map((m) => m.id) }));
    const c = await rawClient();
    await c.query('ANALYZE keel_messages');
    const again = Array.from({ length: 2000 }, () => makeMessage(q));
    await s.commit(batch({ inserts: again }));
    // A generic plan, as a prepared statement gets after a few runs, under the commit's settings.
    await c.query('BEGIN');
    await c.query("SET LOCAL enable_seqscan = off; SET LOCAL plan_cache_mode = 'force_generic_plan'");
    await c.query('PREPARE del(bigint[]) AS DELETE FROM keel_messages WHERE id = ANY($1)');
    await c.query(
      'PREPARE upd(bigint[], int[]) AS UPDATE keel_messages m SET delivery_count = u.dc FROM unnest($1::bigint[], $2::int[]) AS u(id, dc) WHERE m.id = u.id',
    );
    const ids = `'{${again
      .slice(0, 5)
      .map((m) => m.id)
      .join(',')}}'`;
    const plans = [
      (await c.query(`EXPLAIN EXECUTE del(${ids})`)).rows,
      (await c.query(`EXPLAIN EXECUTE upd(${ids}, '{1,1,1,1,1}')`)).rows,
    ].map((rows) => rows.map((r: { 'QUERY PLAN': string }) => r['QUERY PLAN']).join('\n'));
    await c.query('ROLLBACK');
    for (const plan of plans) {
      expect(plan).toMatch(/keel_messages_pkey/);
      expect(plan).not.toMatch(/keel_messages_delivery/);
    }
    // Pages still read the delivery-order index, in order.
    const page = await s.pageMessages(q, null, 3000);
    expect(page.map((m) => m.id)).toEqual(again.map((m) => m.id));
  });

  it('returns bigint columns as JS numbers without touching global pg types', async () => {
    const s = store();
    await s.takeOver('n', 'r');
    expect(await s.readEpoch()).toBe(1);
    const c = await rawClient();
    const r = await c.query('SELECT 5::bigint AS v');
    expect(r.rows[0].v).toBe('5');
  });

  it('a takeover that commits while a commit waits fences that commit', async () => {
    const appName = `keel-fence-${randomBytes(3).toString('hex')}`;
    const old = store({ applicationName: appName });
    const q = await old.ensureDestination('queue', 'race');
    await old.takeOver('old', 'startup');

    // A takeover in flight: the epoch row is updated but not yet committed.
    const takeover = await rawClient();
    await takeover.query('BEGIN');
    await takeover.query('UPDATE keel_clusters SET epoch = epoch + 1, master = $2 WHERE cluster = $1', [
      old.cluster,
      'new',
    ]);

    const m = makeMessage(q);
    const pending = old.commit(batch({ inserts: [m] })).then(
      () => null,
      (err: unknown) => err,
    );
    await waitForLockWait(appName);
    await takeover.query('COMMIT');

    const err = await pending;
    expect(err).toBeInstanceOf(FencedError);
    // It names the epochs and who holds the cluster now (issue #17.4: the message read "is at epoch
    // 10, this store writes for epoch 10").
    expect((err as Error).message).toMatch(/at epoch 2, taken by new; this node \(old\) wrote for epoch 1/);
    expect(await old.getMessage(m.id)).toBeNull();
  });

  it("a write of this node's older epoch, refused after it took the lock again itself, is a retryable STORE_UNAVAILABLE, not FENCED", async () => {
    const appName = `keel-own-${randomBytes(3).toString('hex')}`;
    const s = store({ applicationName: appName });
    const q = await s.ensureDestination('queue', 'own');
    await s.takeOver('node-a', 'startup');

    // This node's takeover under way (its lock session was terminated; it took the lock back): the
    // epoch row is updated for node-a but not yet committed.
    const bump = await rawClient();
    await bump.query('BEGIN');
    await bump.query('UPDATE keel_clusters SET epoch = epoch + 1, master = $2 WHERE cluster = $1', [
      s.cluster,
      'node-a',
    ]);
    // A commit made for epoch 1 waits for the epoch row, and the node's resume bumps the epoch again.
    const m = makeMessage(q);
    const pending = s.commit(batch({ inserts: [m] })).then(
      () => null,
      (err: unknown) => err,
    );
    await waitForLockWait(appName);
    const resumed = s.takeOver('node-a', 'resumed after losing the lock');
    await waitForLockWait(appName, 2);
    await bump.query('COMMIT');

    const err = await pending;
    // Code and message compared together, so a failure shows which branch of fenceRefusal answered.
    expect({ code: (err as StoreError).code, message: (err as Error).message }).toEqual({
      code: 'STORE_UNAVAILABLE',
      message: expect.stringMatching(/write for epoch 1 was refused: this node \(node-a\) has since taken/),
    });
    expect(err).not.toBeInstanceOf(FencedError);
    expect(err).toMatchObject({ retryable: true });
    expect(await s.getMessage(m.id)).toBeNull();
    // The node goes on writing at its new epoch.
    expect(await resumed).toBe(3);
    await s.commit(batch({ inserts: [m] }));
    expect(await s.getMessage(m.id)).not.toBeNull();
  });

  it('a takeover waits for an in-flight commit, which lands before it', async () => {
    const appName = `keel-takeover-${randomBytes(3).toString('hex')}`;
    const old = store();
    const q = await old.ensureDestination('queue', 'inflight');
    await old.takeOver('old', 'startup');

    // An old master's commit in flight: epoch checked FOR SHARE, a row written, not yet committed.
    const inflight = await rawClient();
    await inflight.query('BEGIN');
    const e = await inflight.query('SELECT epoch FROM keel_clusters WHERE cluster = $1 FOR SHARE', [
      old.cluster,
    ]);
    expect(Number(e.rows[0].epoch)).toBe(1);
    const m = makeMessage(q);
    await inflight.query(
      "INSERT INTO keel_messages (id, dest_id, priority, headers, body) VALUES ($1, $2, 4, '{}', '\\x00')",
      [m.id, q],
    );

    const next = store({ cluster: old.cluster, applicationName: appName });
    const pending = next.takeOver('new', 'master lost');
    await waitForLockWait(appName);
    await inflight.query('COMMIT');
    expect(await pending).toBe(2);
    expect(await next.getMessage(m.id)).not.toBeNull();
    await expect(old.commit(batch({ txOutcomes: ['late'] }))).rejects.toBeInstanceOf(FencedError);
  });

  it("a frozen old master's transaction is ended by idle_in_transaction_session_timeout and the takeover proceeds", async () => {
    const old = store();
    await old.takeOver('old', 'startup');
    // The frozen write: holds the epoch row and then goes quiet inside its transaction.
    const frozen = await rawClient({ idle_in_transaction_session_timeout: 300 });
    await frozen.query('BEGIN');
    await frozen.query('SELECT epoch FROM keel_clusters WHERE cluster = $1 FOR SHARE', [old.cluster]);

    const next = store({ cluster: old.cluster, idleInTransactionTimeoutMs: 300 });
    expect(await next.takeOver('new', 'frozen master')).toBe(2);
  });

  it('takeOver gives up after takeOverLockTimeoutMs with a retryable StoreError', async () => {
    const old = store();
    await old.takeOver('old', 'startup');
    const holder = await rawClient();
    await holder.query('BEGIN');
    await holder.query('SELECT epoch FROM keel_clusters WHERE cluster = $1 FOR SHARE', [old.cluster]);

    const next = store({ cluster: old.cluster, takeOverLockTimeoutMs: 200 });
    const err = await next.takeOver('new', 'x').then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(StoreError);
    expect((err as KeelError).retryable).toBe(true);
    await holder.query('ROLLBACK');
    expect(await next.readEpoch()).toBe(1);
    expect(await next.takeovers(10)).toHaveLength(1);
  });

  it('validates options, naming the property', () => {
    expect(() => new PgStore({ connectionString: db.url, cluster: 'x', poolSize: 0 })).toThrow(/poolSize/);
    expect(() => new PgStore({ connectionString: '', cluster: 'x' })).toThrow(/connectionString/);
  });

  it('close is idempotent and later calls fail with a KeelError', async () => {
    const s = store();
    await s.open();
    await s.close();
    await s.close();
    const err = await s.readEpoch().then(
      () => null,
      (e: unknown) => e,
    );
    expect(KeelError.isInstance(err)).toBe(true);
  });
});

describe('inlineIntegers (statements without parameters, such as COPY)', () => {
  it('writes each $n as its integer', () => {
    expect(
      inlineIntegers('WHERE a = $1 AND b < $2 AND c > $10 LIMIT $1', [5, -3, 0, 0, 0, 0, 0, 0, 0, 2 ** 40]),
    ).toBe('WHERE a = 5 AND b < -3 AND c > 1099511627776 LIMIT 5');
  });

  it('refuses anything but safe integers, and a missing value', () => {
    expect(() => inlineIntegers('$1', [1.5])).toThrow(/not an integer/);
    expect(() => inlineIntegers('$1', [Number.NaN])).toThrow(/not an integer/);
    expect(() => inlineIntegers('$1', [2 ** 53])).toThrow(/not an integer/);
    expect(() => inlineIntegers('$1', ['1; DROP TABLE x' as unknown as number])).toThrow(/not an integer/);
    expect(() => inlineIntegers('$2', [1])).toThrow(/no value for \$2/);
  });
});
