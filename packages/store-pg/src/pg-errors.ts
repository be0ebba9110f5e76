/**
 * Classifies PostgreSQL and socket errors by SQLSTATE / errno to decide what is worth retrying
 * (PostgreSQL manual, Appendix A "PostgreSQL Error Codes"; the idea follows graphile-worker's
 * `src/lib.ts`).
 */
import { KeelError, StoreError } from '@keel/protocol';

/** Node socket errors that mean the connection to the server is gone or never came up. */
const RETRYABLE_ERRNO = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
  'ECONNABORTED',
]);

/** SQLSTATEs (outside class 08) after which the same work can succeed when tried again. */
const RETRYABLE_SQLSTATE = new Set([
  '57P01', // admin_shutdown
  '57P02', // crash_shutdown
  '57P03', // cannot_connect_now (starting up, recovery)
  '53300', // too_many_connections
  '40001', // serialization_failure
  '40P01', // deadlock_detected
  '55P03', // lock_not_available
  '25P03', // idle_in_transaction_session_timeout
  '57014', // query_canceled (statement_timeout, pg_cancel_backend)
]);

/** Messages node-postgres uses for a connection that closed under it (they carry no code). */
const RETRYABLE_MESSAGES = [
  'Connection terminated',
  'Client has encountered a connection error',
  'Client was closed and is not queryable',
  'timeout expired',
  'Connection terminated due to connection timeout',
  'Query read timeout', // pg's query_timeout (PgStore queryTimeoutMs)
];

/** The SQLSTATE of a pg error, or undefined. */
export function sqlState(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) ? code : undefined;
}

/** True when err is a connection-level failure (class 08, shutdown, socket errno, pg's own messages). */
export function isConnectionError(err: unknown): boolean {
  if (typeof err !== 'object' || err === null) return false;
  const code = (err as { code?: unknown }).code;
  if (typeof code === 'string') {
    if (RETRYABLE_ERRNO.has(code)) return true;
    if (code.startsWith('08')) return true; // Class 08 — Connection Exception
    if (code === '57P01' || code === '57P02' || code === '57P03') return true;
  }
  const message = (err as { message?: unknown }).message;
  return typeof message === 'string' && RETRYABLE_MESSAGES.some((m) => message.includes(m));
}

/** True when the operation that raised err may succeed if tried again (on a new connection). */
export function isRetryablePgError(err: unknown): boolean {
  if (KeelError.isInstance(err)) return err.retryable;
  if (isConnectionError(err)) return true;
  const state = sqlState(err);
  return state !== undefined && RETRYABLE_SQLSTATE.has(state);
}

/**
 * True when Postgres (or the store's own encoder, before anything reached Postgres) refused a value
 * of the write: SQLSTATE class 22 "Data Exception" (22P02 invalid_text_representation, 22003
 * numeric_value_out_of_range, 22P05 untranslatable_character …) or class 23 "Integrity Constraint
 * Violation" (23505 unique_violation …), or Node's range and type errors from writing a value into
 * a binary COPY buffer. Such an error is about one row's data: the same write fails again however
 * often it is tried, and the other rows of its batch are fine without it (GroupCommitWriter splits
 * the batch, STORE_DATA_ERROR).
 */
export function isDataError(err: unknown): boolean {
  const state = sqlState(err);
  if (state !== undefined) return state.startsWith('22') || state.startsWith('23');
  const code = (err as { code?: unknown } | null)?.code;
  return code === 'ERR_OUT_OF_RANGE' || code === 'ERR_INVALID_ARG_TYPE' || err instanceof RangeError;
}

/**
 * Wraps any error from pg as a StoreError: STORE_UNAVAILABLE (retryable) when isRetryablePgError,
 * STORE_DATA_ERROR when isDataError, STORE_ERROR otherwise. KeelErrors pass through unchanged.
 */
export function toStoreError(err: unknown, context?: string): KeelError {
  if (KeelError.isInstance(err)) return err;
  const retryable = isRetryablePgError(err);
  const state = sqlState(err) ?? (err as { code?: unknown } | null)?.code;
  const base = err instanceof Error ? err.message : String(err);
  const message = `${context ? `${context}: ` : ''}${base}${typeof state === 'string' ? ` (${state})` : ''}`;
  const code = retryable ? 'STORE_UNAVAILABLE' : isDataError(err) ? 'STORE_DATA_ERROR' : 'STORE_ERROR';
  return new StoreError(message, code, { retryable, cause: err });
}
