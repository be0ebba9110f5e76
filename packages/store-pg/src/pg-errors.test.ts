import { FencedError, KeelError } from '@keel/protocol';
import { Client } from 'pg';
import { isConnectionError, isDataError, isRetryablePgError, sqlState, toStoreError } from './pg-errors';

const adminUrl = (): string => {
  const url = process.env.KEEL_TEST_PG_ADMIN_URL;
  if (!url) throw new Error('KEEL_TEST_PG_ADMIN_URL is not set (jest global setup)');
  return url;
};

const pgError = (code: string): Error => Object.assign(new Error(`pg says ${code}`), { code });

describe('classification by SQLSTATE and errno', () => {
  test.each([
    '08000',
    '08003',
    '08006',
    '08001',
    '57P01',
    '57P02',
    '57P03',
    '53300',
    '40001',
    '40P01',
    '55P03',
    '25P03',
    'ECONNREFUSED',
    'ECONNRESET',
    'ETIMEDOUT',
    'EPIPE',
  ])('%s is retryable', (code) => {
    expect(isRetryablePgError(pgError(code))).toBe(true);
    expect(toStoreError(pgError(code))).toMatchObject({
      name: 'StoreError',
      code: 'STORE_UNAVAILABLE',
      retryable: true,
    });
  });

  test.each(['42601', '42P01', '42501', '3D000', 'EACCES'])('%s is not retryable', (code) => {
    expect(isRetryablePgError(pgError(code))).toBe(false);
    expect(isDataError(pgError(code))).toBe(false);
    expect(toStoreError(pgError(code))).toMatchObject({ code: 'STORE_ERROR', retryable: false });
  });

  test.each(['22P02', '22003', '22P05', '22021', '23505', '23503', 'ERR_OUT_OF_RANGE'])(
    '%s is a data error: one row of the write, not retryable',
    (code) => {
      expect(isRetryablePgError(pgError(code))).toBe(false);
      expect(isDataError(pgError(code))).toBe(true);
      expect(toStoreError(pgError(code))).toMatchObject({ code: 'STORE_DATA_ERROR', retryable: false });
    },
  );

  test('a range error of the binary COPY encoder is a data error', () => {
    let thrown: unknown;
    try {
      Buffer.alloc(4).writeInt32BE(1e308, 0);
    } catch (err) {
      thrown = err;
    }
    expect(isDataError(thrown)).toBe(true);
    expect(toStoreError(thrown)).toMatchObject({ code: 'STORE_DATA_ERROR' });
  });

  test('connection errors are only class 08, shutdowns and socket errors', () => {
    expect(isConnectionError(pgError('08006'))).toBe(true);
    expect(isConnectionError(pgError('57P01'))).toBe(true);
    expect(isConnectionError(new Error('Connection terminated unexpectedly'))).toBe(true);
    expect(isConnectionError(pgError('40001'))).toBe(false);
    expect(isConnectionError('text')).toBe(false);
  });

  test('KeelErrors pass through; other values are wrapped with their cause', () => {
    const fenced = new FencedError('newer epoch');
    expect(toStoreError(fenced)).toBe(fenced);
    expect(isRetryablePgError(fenced)).toBe(true);
    const err = pgError('42601');
    const wrapped = toStoreError(err, 'enqueue');
    expect(wrapped.message).toBe('enqueue: pg says 42601 (42601)');
    expect(wrapped.cause).toBe(err);
    expect(KeelError.isInstance(toStoreError('weird'))).toBe(true);
    expect(sqlState(pgError('ECONNRESET'))).toBeUndefined();
    expect(sqlState(pgError('40P01'))).toBe('40P01');
  });
});

describe('classification of errors from a real server', () => {
  let a: Client;
  let b: Client;
  beforeAll(async () => {
    a = new Client({ connectionString: adminUrl() });
    b = new Client({ connectionString: adminUrl() });
    await Promise.all([a.connect(), b.connect()]);
  });
  afterAll(async () => {
    await Promise.all([a.end(), b.end()]);
  });

  test('a syntax error is STORE_ERROR', async () => {
    const err = await a.query('SELEC 1').catch((e: unknown) => e);
    expect(toStoreError(err)).toMatchObject({ code: 'STORE_ERROR', retryable: false });
  });

  test('lock_not_available (55P03) is retryable', async () => {
    await a.query('BEGIN');
    try {
      await a.query('SELECT pg_advisory_xact_lock(4242)');
      const err = await b
        .query("SET lock_timeout = '50ms'; SELECT pg_advisory_lock(4242)")
        .catch((e: unknown) => e);
      expect(sqlState(err)).toBe('55P03');
      expect(toStoreError(err)).toMatchObject({ code: 'STORE_UNAVAILABLE', retryable: true });
    } finally {
      await a.query('ROLLBACK');
      await b.query('RESET lock_timeout');
    }
  });

  test('a terminated backend (57P01) is retryable', async () => {
    const c = new Client({ connectionString: adminUrl() });
    const errors: unknown[] = [];
    c.on('error', (e) => errors.push(e));
    await c.connect();
    const pid = (await c.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]?.pid;
    const pending = c.query('SELECT pg_sleep(30)').catch((e: unknown) => e);
    await a.query('SELECT pg_terminate_backend($1)', [pid]);
    const err = await pending;
    expect(isRetryablePgError(err)).toBe(true);
    expect(toStoreError(err).code).toBe('STORE_UNAVAILABLE');
    await c.end().catch(() => {});
  });
});
