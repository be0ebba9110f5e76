import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { ConfigError, loadConfig } from '../config';
import { ConnectionLimiter } from './connection-limiter';
import { LIMIT_DEFAULTS } from './limits-config';

const DB = 'postgres://keel@127.0.0.1:5432/keel';

describe('limits settings (issue #23.3)', () => {
  it('has protective defaults', () => {
    const cfg = loadConfig({ argv: { db: DB }, env: {} });
    expect(cfg.limits).toEqual(LIMIT_DEFAULTS);
    expect(cfg.limits.preAuthMaxFrameSize).toBe(64 * 1024);
    expect(cfg.limits.memoryUsage).toBe(512 * 1024 * 1024);
  });

  it('reads flags, KEEL_* variables and a limits: mapping, sizes with units', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'keel-limits-'));
    try {
      const file = path.join(dir, 'keel.yaml');
      writeFileSync(
        file,
        'limits:\n  maximumConnections: 50\n  storeUsage: 10 GiB\n  sendFailIfNoSpace: true\n',
      );
      const cfg = loadConfig({
        argv: { db: DB, config: file, memoryUsage: '256MiB', maxSlowDuration: '30000' },
        env: { KEEL_MAXIMUM_CONNECTIONS_PER_ADDRESS: '20', KEEL_PRE_AUTH_MAX_FRAME_SIZE: '16KiB' },
      });
      expect(cfg.limits).toMatchObject({
        maximumConnections: 50,
        maximumConnectionsPerAddress: 20,
        preAuthMaxFrameSize: 16 * 1024,
        memoryUsage: 256 * 1024 * 1024,
        storeUsage: 10 * 1024 ** 3,
        sendFailIfNoSpace: true,
        maxSlowDuration: 30_000,
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('names a bad limit and where it came from', () => {
    expect(() => loadConfig({ argv: { db: DB }, env: { KEEL_MEMORY_USAGE: 'lots' } })).toThrow(
      /limits\.memoryUsage: must be a size in bytes.*KEEL_MEMORY_USAGE/,
    );
    expect(() => loadConfig({ argv: { db: DB, maxMessageSize: '8MiB' }, env: {} })).toThrow(ConfigError);
  });
});

describe('ConnectionLimiter', () => {
  let server: Server;
  let port: number;
  const accepted: Socket[] = [];
  beforeAll(async () => {
    server = createServer((s) => accepted.push(s));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as { port: number }).port;
  });
  afterAll(async () => {
    for (const s of accepted) s.destroy();
    await new Promise((r) => server.close(r));
  });

  async function socketFrom(localAddress: string): Promise<Socket> {
    const n = accepted.length;
    const client = connect({ port, host: '127.0.0.1', localAddress });
    await new Promise((r) => client.once('connect', r));
    while (accepted.length === n) await new Promise((r) => setImmediate(r));
    return accepted[accepted.length - 1]!;
  }

  it('counts sockets per address and in total, and counts them out on close', async () => {
    const limiter = new ConnectionLimiter({ maximumConnections: 3, maximumConnectionsPerAddress: 2 });
    const a1 = await socketFrom('127.0.0.1');
    const a2 = await socketFrom('127.0.0.1');
    expect(limiter.admit(a1)).toBeNull();
    expect(limiter.admit(a2)).toBeNull();
    expect(limiter.admit(await socketFrom('127.0.0.1'))).toBe('maximumConnectionsPerAddress');
    expect(limiter.admit(await socketFrom('127.0.0.2'))).toBeNull();
    expect(limiter.admit(await socketFrom('127.0.0.3'))).toBe('maximumConnections');
    expect(limiter.open).toBe(3);
    const closed = new Promise((r) => a1.once('close', r));
    a1.destroy();
    await closed;
    expect(limiter.open).toBe(2);
    expect(limiter.admit(await socketFrom('127.0.0.1'))).toBeNull();
    expect(limiter.refused).toBe(2);
  });
});
