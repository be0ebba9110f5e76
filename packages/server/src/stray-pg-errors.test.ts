import { EventEmitter } from 'node:events';
import { DatabaseError } from 'pg';
import pino from 'pino';
import { handleUncaughtException, isStrayPostgresError } from './stray-pg-errors';

function terminated(): DatabaseError {
  const err = new DatabaseError('terminating connection due to administrator command', 0, 'error');
  err.code = '57P01';
  err.severity = 'FATAL';
  return err;
}

describe('stray Postgres connection errors', () => {
  test('a terminated backend, a server shutdown and a cut connection are connection errors', () => {
    expect(isStrayPostgresError(terminated())).toBe(true);
    expect(
      isStrayPostgresError(
        Object.assign(new Error('the database system is shutting down'), { code: '57P03' }),
      ),
    ).toBe(true);
    expect(isStrayPostgresError(Object.assign(new Error('connection failure'), { code: '08006' }))).toBe(
      true,
    );
    expect(isStrayPostgresError(new Error('Connection terminated unexpectedly'))).toBe(true);
  });

  test('anything else is not: data errors, program errors, non-errors', () => {
    expect(
      isStrayPostgresError(
        Object.assign(new Error('invalid input syntax for type bigint'), { code: '22P02' }),
      ),
    ).toBe(false);
    expect(isStrayPostgresError(new TypeError("Cannot read properties of undefined (reading 'x')"))).toBe(
      false,
    );
    expect(
      isStrayPostgresError(Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' })),
    ).toBe(false);
    expect(isStrayPostgresError('57P01')).toBe(false);
  });

  test('an error event nobody listens to is logged and the process goes on; a program error exits 1', () => {
    const lines: { level: number; msg: string }[] = [];
    const logger = pino({ level: 'debug' }, { write: (s: string) => lines.push(JSON.parse(s)) });
    const exits: number[] = [];
    // What pg does: emit 'error' on a client with no listener, which throws.
    const client = new EventEmitter();
    let thrown: unknown;
    try {
      client.emit('error', terminated());
    } catch (err) {
      thrown = err;
    }
    handleUncaughtException(thrown, logger, (code) => exits.push(code));
    expect(exits).toEqual([]);
    expect(lines.at(-1)?.msg).toBe('Postgres connection error with no listener: ignored');

    handleUncaughtException(new TypeError('a bug'), logger, (code) => exits.push(code));
    expect(exits).toEqual([1]);
    expect(lines.at(-1)?.msg).toBe('uncaught exception');
  });
});
