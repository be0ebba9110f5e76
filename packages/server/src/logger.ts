/**
 * The broker's pino logger: JSON lines on stdout, every line carrying the node name (`node`) and
 * its current role (`role`: 'starting', then 'master' / 'slave' / ...).
 *
 * The role is not a pino binding: `setBindings` appends to the serialized bindings (a second
 * "role" key on every line) and child loggers keep a copy of their parent's bindings from the
 * moment they were made. Instead a `mixin` reads the role from a holder shared by the root logger
 * and all its children, so after `setLoggerRole(logger, 'master')` every later line of every child
 * says master. A log call's own `role` field still wins (mixinMergeStrategy default).
 */
import pino, { type DestinationStream, type Logger } from 'pino';
import type { LogLevel } from './config';

export type NodeLogger = Logger;

export interface CreateLoggerOptions {
  /** The node name, put on every line as `node`. */
  name: string;
  level?: LogLevel;
  /** Defaults to stdout (synchronous writes, so lines logged just before exit are not lost). */
  destination?: DestinationStream;
  /** The role on lines until setLoggerRole is called. */
  role?: string;
}

const ROLE = Symbol.for('keel.logger.role');

interface RoleHolder {
  role: string;
}

export function createLogger(options: CreateLoggerOptions): NodeLogger {
  const holder: RoleHolder = { role: options.role ?? 'starting' };
  const logger = pino(
    {
      level: options.level ?? 'info',
      base: { pid: process.pid, node: options.name },
      mixin: () => ({ role: holder.role }),
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    options.destination ?? pino.destination({ dest: 1, sync: true }),
  );
  // Children are made with Object.create(parent), so they find the holder through the prototype.
  (logger as unknown as Record<symbol, RoleHolder>)[ROLE] = holder;
  return logger;
}

/** Sets the role shown on every later line of this logger, its root and all their children. */
export function setLoggerRole(logger: NodeLogger, role: string): void {
  const holder = (logger as unknown as Record<symbol, RoleHolder | undefined>)[ROLE];
  if (holder) holder.role = role;
  else logger.setBindings({ role }); // not made by createLogger: best effort
}

/** The role the logger currently puts on its lines (undefined if not made by createLogger). */
export function getLoggerRole(logger: NodeLogger): string | undefined {
  return (logger as unknown as Record<symbol, RoleHolder | undefined>)[ROLE]?.role;
}
