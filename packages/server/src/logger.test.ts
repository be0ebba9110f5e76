import { Writable } from 'node:stream';
import { createLogger, getLoggerRole, setLoggerRole } from './logger';

function capture(): { stream: Writable; lines: () => Record<string, unknown>[]; raw: string[] } {
  const raw: string[] = [];
  const stream = new Writable({
    write(chunk, _enc, cb) {
      raw.push(...String(chunk).split('\n').filter(Boolean));
      cb();
    },
  });
  return { stream, raw, lines: () => raw.map((l) => JSON.parse(l) as Record<string, unknown>) };
}

describe('createLogger', () => {
  it('puts node and role on every line, and a role change reaches existing children', () => {
    const out = capture();
    const logger = createLogger({ name: 'node-a', level: 'info', destination: out.stream });
    const child = logger.child({ component: 'lock' });
    logger.info({ port: 1 }, 'hello');
    setLoggerRole(child, 'master'); // through a child: same holder
    child.info('role changed');
    logger.warn({ role: 'slave' }, 'explicit role wins');
    logger.debug('below level');
    expect(out.lines()).toEqual([
      expect.objectContaining({ level: 'info', node: 'node-a', role: 'starting', port: 1, msg: 'hello' }),
      expect.objectContaining({
        level: 'info',
        node: 'node-a',
        role: 'master',
        component: 'lock',
        msg: 'role changed',
      }),
      expect.objectContaining({ level: 'warn', node: 'node-a', role: 'slave', msg: 'explicit role wins' }),
    ]);
    // One "role" key per line (setBindings would append a second one).
    for (const line of out.raw) expect(line.match(/"role":/g)).toHaveLength(1);
    expect(getLoggerRole(logger)).toBe('master');
    expect(typeof out.lines()[0]?.time).toBe('string');
  });

  it('keeps the roles of two loggers apart', () => {
    const a = createLogger({ name: 'a', destination: capture().stream });
    const b = createLogger({ name: 'b', destination: capture().stream });
    setLoggerRole(a, 'master');
    expect(getLoggerRole(a)).toBe('master');
    expect(getLoggerRole(b)).toBe('starting');
  });
});
