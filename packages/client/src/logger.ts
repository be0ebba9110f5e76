/** The logger the client writes to (pino-compatible); silent unless one is given. */
export interface ClientLogger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

const noop = (): void => {};

export const silentClientLogger: ClientLogger = { debug: noop, info: noop, warn: noop, error: noop };
