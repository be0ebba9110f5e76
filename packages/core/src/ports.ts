/**
 * Ports the core needs from the outside. The server wires concrete parts (pino, Postgres); tests
 * pass fakes or the in-memory store. The core imports no pg, net, fastify, pino or node-cron.
 */
export interface Logger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
  child(bindings: Record<string, unknown>): Logger;
}

const noop = (): void => {};

/** The default logger: silent (packages are silent unless given a logger). */
export const silentLogger: Logger = {
  debug: noop,
  info: noop,
  warn: noop,
  error: noop,
  child: () => silentLogger,
};

export interface Clock {
  now(): number;
}

export const systemClock: Clock = { now: () => Date.now() };
