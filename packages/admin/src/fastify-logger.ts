import type { Logger } from '@keel/core';
import type { FastifyBaseLogger } from 'fastify';

/** The injected logger: the core Logger port; pino loggers (trace, fatal, level) are used as they are. */
export type AdminLogger = Logger & Partial<Pick<FastifyBaseLogger, 'trace' | 'fatal' | 'level' | 'silent'>>;

function isPinoLike(l: AdminLogger): l is AdminLogger & FastifyBaseLogger {
  return typeof l.trace === 'function' && typeof l.fatal === 'function' && typeof l.level === 'string';
}

/**
 * A logger fastify accepts as `loggerInstance`. A pino logger passes through; any other Logger is
 * wrapped (trace -> debug, fatal -> error) and request/reply objects are reduced to what a log needs.
 */
export function fastifyLogger(logger: AdminLogger): FastifyBaseLogger {
  if (isPinoLike(logger)) return logger;
  return wrap(logger);
}

function wrap(l: Logger): FastifyBaseLogger {
  const call =
    (fn: (obj: object, msg?: string) => void) =>
    (obj: unknown, msg?: unknown): void => {
      if (typeof obj === 'string') fn({}, obj);
      else fn(serialize(obj), typeof msg === 'string' ? msg : undefined);
    };
  const out = {
    level: 'info',
    silent: () => {},
    trace: call(l.debug.bind(l)),
    debug: call(l.debug.bind(l)),
    info: call(l.info.bind(l)),
    warn: call(l.warn.bind(l)),
    error: call(l.error.bind(l)),
    fatal: call(l.error.bind(l)),
    child: (bindings: Record<string, unknown>) => wrap(l.child(bindings)),
  };
  return out as unknown as FastifyBaseLogger;
}

function serialize(obj: unknown): object {
  if (obj === null || typeof obj !== 'object') return { value: obj };
  if (obj instanceof Error) return { err: { message: obj.message, code: (obj as { code?: unknown }).code } };
  const o = obj as Record<string, unknown>;
  if (!('req' in o) && !('res' in o) && !('err' in o)) return o;
  const out: Record<string, unknown> = { ...o };
  const req = o.req as { method?: string; url?: string; ip?: string } | undefined;
  if (req) out.req = { method: req.method, url: req.url, remoteAddress: req.ip };
  const res = o.res as { statusCode?: number } | undefined;
  if (res) out.res = { statusCode: res.statusCode };
  const err = o.err as Error | undefined;
  if (err instanceof Error) out.err = { message: err.message, code: (err as { code?: unknown }).code };
  return out;
}
