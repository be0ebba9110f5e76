/**
 * The last line of defence against Postgres connection errors that no listener caught. pg emits
 * 'error' on a client whose connection dies (a terminated backend, 57P01; a server restart; a
 * cut network), and an 'error' event with no listener throws out of the socket's event handler and
 * kills the process. Every pool and client Keel makes has a listener (pg-store guardCheckedOut,
 * pool 'error' handlers), but pg-pool's own pool.query() listens with once(): a second error from
 * the same dying client (the FATAL ErrorResponse, then "Connection terminated unexpectedly") can
 * still arrive with nobody listening. Seen once in test/e2e/step-down.test.ts under repeated
 * pg_terminate_backend. Such a client is already dead and its queries have failed, so the broker
 * logs it and goes on; any other uncaught exception still ends the process (exit 1), as Node would.
 */
import type { Logger } from 'pino';

/** SQLSTATE classes of a connection that ended: 08 connection exception, 57 operator intervention. */
const CONNECTION_CLASSES = ['08', '57'];

const CONNECTION_MESSAGES = [
  /^Connection terminated/,
  /^terminating connection/,
  /^Client has encountered a connection error and is not queryable$/,
];

/** True for an error a dying Postgres connection emits (pg's DatabaseError or its socket errors). */
export function isStrayPostgresError(err: unknown): boolean {
  // Duck-typed: an Error of another realm (a jest sandbox, a second copy of pg) is one too.
  if (typeof err !== 'object' || err === null) return false;
  const { code, message, context } = err as { code?: unknown; message?: unknown; context?: unknown };
  // EventEmitter wraps an emitted non-Error (one of another realm) in ERR_UNHANDLED_ERROR.
  if (code === 'ERR_UNHANDLED_ERROR') return isStrayPostgresError(context);
  if (typeof message !== 'string') return false;
  if (
    typeof code === 'string' &&
    /^[0-9A-Z]{5}$/.test(code) &&
    CONNECTION_CLASSES.includes(code.slice(0, 2))
  ) {
    return true;
  }
  return CONNECTION_MESSAGES.some((re) => re.test(message));
}

/** What the process does with an uncaught exception (exported for tests). */
export function handleUncaughtException(err: unknown, logger: Logger, exit: (code: number) => void): void {
  if (isStrayPostgresError(err)) {
    const e = err as Error & { code?: string };
    logger.error({ err: e.message, code: e.code }, 'Postgres connection error with no listener: ignored');
    return;
  }
  logger.fatal({ err }, 'uncaught exception');
  exit(1);
}

/** Installs handleUncaughtException for the broker process (once). */
export function guardStrayPostgresErrors(logger: Logger): void {
  process.on('uncaughtException', (err) =>
    handleUncaughtException(err, logger, (code) => process.exit(code)),
  );
}
