/**
 * Keel's error family. Every error has a stable `code` (listed in docs/errors.md), a `retryable`
 * flag and an optional `cause`. Error frames carry the code, and the client turns them back into
 * these classes with `errorFromCode`. `KeelError.isInstance` works across two installed copies of
 * this package thanks to a `Symbol.for` marker.
 */
const MARKER = Symbol.for('keel.error');

export interface KeelErrorOptions {
  retryable?: boolean;
  cause?: unknown;
}

export class KeelError extends Error {
  readonly [MARKER] = true;
  readonly code: string;
  readonly retryable: boolean;

  constructor(code: string, message: string, options: KeelErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.retryable = options.retryable ?? false;
  }

  static isInstance(value: unknown): value is KeelError {
    return typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[MARKER] === true;
  }

  toJSON(): { code: string; message: string; retryable: boolean } {
    return { code: this.code, message: this.message, retryable: this.retryable };
  }
}

/** A frame or message that breaks the wire protocol. */
export class ProtocolError extends KeelError {
  constructor(message: string, code = 'PROTOCOL_ERROR', options?: KeelErrorOptions) {
    super(code, message, options);
  }
}

/** The connection dropped or could not be made. */
export class ConnectionError extends KeelError {
  constructor(message: string, code = 'CONNECTION_LOST', options: KeelErrorOptions = {}) {
    super(code, message, { retryable: true, ...options });
  }
}

export class TimeoutError extends KeelError {
  constructor(message: string, code = 'TIMEOUT', options: KeelErrorOptions = {}) {
    super(code, message, { retryable: true, ...options });
  }
}

export class AuthError extends KeelError {
  constructor(message: string, code = 'AUTH_FAILED', options?: KeelErrorOptions) {
    super(code, message, options);
  }
}

/** The node is not (or no longer) the master of its cluster. */
export class NotMasterError extends KeelError {
  constructor(message: string, options: KeelErrorOptions = {}) {
    super('NOT_MASTER', message, { retryable: true, ...options });
  }
}

/** A store write was refused because another node took over (its epoch is newer). */
export class FencedError extends KeelError {
  constructor(message: string, options: KeelErrorOptions = {}) {
    super('FENCED', message, { retryable: true, ...options });
  }
}

export class StoreError extends KeelError {
  constructor(message: string, code = 'STORE_UNAVAILABLE', options: KeelErrorOptions = {}) {
    super(code, message, options);
  }
}

export class InvalidArgumentError extends KeelError {
  constructor(message: string, code = 'INVALID_ARGUMENT', options?: KeelErrorOptions) {
    super(code, message, options);
  }
}

/**
 * A send whose outcome is unknown: the broker handed the message to a consumer before its store
 * insert committed (concurrent store and dispatch), and then the insert failed. The message may
 * have been delivered but is not stored. Resend it with the same producer id and sequence and the
 * `resent` flag: the broker stores it once or knows it was consumed (@keel/client's failover
 * producer does this itself).
 */
export class InDoubtError extends KeelError {
  constructor(message: string, options: KeelErrorOptions = {}) {
    super('IN_DOUBT', message, { retryable: true, ...options });
  }
}

/**
 * A connection asked for a client id another live connection holds (ActiveMQ's
 * InvalidClientIDException, "Broker: <name> - Client: <id> already connected from <address>"); also
 * what a connection gets when a newer one takes its client id over (ActiveMQ `allowLinkStealing`).
 */
export class InvalidClientIdError extends KeelError {
  constructor(message: string, code = 'INVALID_CLIENT_ID', options?: KeelErrorOptions) {
    super(code, message, options);
  }
}

/** A transaction could not commit and was rolled back (for instance across a failover). */
export class TransactionRolledBackError extends KeelError {
  constructor(message: string, options: KeelErrorOptions = {}) {
    super('TX_ROLLED_BACK', message, { retryable: true, ...options });
  }
}

/** Every code Keel puts on the wire, with the class that represents it. Keep docs/errors.md in step. */
export const ERROR_CODES = {
  PROTOCOL_ERROR: ProtocolError,
  FRAME_TOO_LARGE: ProtocolError,
  UNSUPPORTED_VERSION: ProtocolError,
  CONNECTION_LOST: ConnectionError,
  CONNECTION_CLOSED: ConnectionError,
  HEARTBEAT_TIMEOUT: ConnectionError,
  TIMEOUT: TimeoutError,
  AUTH_FAILED: AuthError,
  NOT_AUTHORIZED: AuthError,
  LOGIN_THROTTLED: AuthError,
  NOT_MASTER: NotMasterError,
  FENCED: FencedError,
  STORE_UNAVAILABLE: StoreError,
  STORE_ERROR: StoreError,
  STORE_DATA_ERROR: StoreError,
  STORE_CLOSED: StoreError,
  SCHEMA_TOO_NEW: StoreError,
  INVALID_ARGUMENT: InvalidArgumentError,
  UNKNOWN_DESTINATION: InvalidArgumentError,
  UNKNOWN_CONSUMER: InvalidArgumentError,
  UNKNOWN_TRANSACTION: InvalidArgumentError,
  UNKNOWN_MESSAGE: InvalidArgumentError,
  UNKNOWN_SCHEDULED_JOB: KeelError,
  DESTINATION_IN_USE: InvalidArgumentError,
  NOT_SUPPORTED: InvalidArgumentError,
  INVALID_SELECTOR: InvalidArgumentError,
  CONFIG_INVALID: InvalidArgumentError,
  LOCK_DIRECTORY_INVALID: InvalidArgumentError,
  INVALID_CLIENT_ID: InvalidClientIdError,
  TX_ROLLED_BACK: TransactionRolledBackError,
  IN_DOUBT: InDoubtError,
  RESOURCE_LIMIT: KeelError,
  INTERNAL: KeelError,
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

/** Rebuild a typed error from what an ERROR frame carried. */
export function errorFromCode(code: string, message: string, retryable?: boolean): KeelError {
  const Cls = (ERROR_CODES as Record<string, unknown>)[code];
  let err: KeelError;
  if (Cls === ProtocolError || Cls === ConnectionError || Cls === TimeoutError || Cls === AuthError) {
    err = new (Cls as typeof ProtocolError)(message, code);
  } else if (Cls === StoreError || Cls === InvalidArgumentError || Cls === InvalidClientIdError) {
    err = new (Cls as typeof StoreError)(message, code);
  } else if (
    Cls === NotMasterError ||
    Cls === FencedError ||
    Cls === TransactionRolledBackError ||
    Cls === InDoubtError
  ) {
    err = new (Cls as typeof NotMasterError)(message);
  } else {
    err = new KeelError(code, message);
  }
  if (retryable !== undefined && retryable !== err.retryable) {
    (err as { retryable: boolean }).retryable = retryable;
  }
  return err;
}
