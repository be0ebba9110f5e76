import * as net from 'node:net';
import { ConfigError } from '@keel/server';
import { nodeEnv } from './commands/start';
import { freePort } from './ports';
import { type PortKind, type PortSetting, planNodePorts, planTlsPorts, portSetting } from './start-ports';

const HOST = '127.0.0.1';

/** Holds a port the way another program would (a listening socket). */
function occupy(port: number): Promise<net.Server> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen({ port, host: HOST, exclusive: true }, () => resolve(server));
  });
}

/** A base port with the next `span` ports free right now (so the test can reason about "next"). */
async function freeRun(span: number): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const base = await freePort();
    if (base + span > 65535) continue;
    const servers: net.Server[] = [];
    try {
      for (let p = base; p < base + span; p++) servers.push(await occupy(p));
      return base;
    } catch {
      // one of them is taken: try elsewhere
    } finally {
      await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
    }
  }
  throw new Error(`no run of ${span} free ports found`);
}

function settings(values: Record<PortKind, number>, source = 'default'): Record<PortKind, PortSetting> {
  return {
    port: { value: values.port, source },
    stompPort: { value: values.stompPort, source },
    adminPort: { value: values.adminPort, source },
  };
}

describe('keel start ports', () => {
  const held: net.Server[] = [];
  afterEach(async () => {
    await Promise.all(held.splice(0).map((s) => new Promise((r) => s.close(r))));
  });

  it('reads flag, then KEEL_* variable, then the default, and refuses a value that is not a port', () => {
    expect(portSetting('port', { port: '7000' }, { KEEL_PORT: '7100' })).toEqual({
      value: 7000,
      source: '--port',
    });
    expect(portSetting('port', {}, { KEEL_PORT: '7100' })).toEqual({ value: 7100, source: 'KEEL_PORT' });
    expect(portSetting('stompPort', {}, {})).toEqual({ value: 61613, source: 'default' });
    expect(portSetting('adminPort', {}, {})).toEqual({ value: 8161, source: 'default' });
    expect(portSetting('pgPort', {}, {})).toBeUndefined();
    expect(portSetting('pgPort', {}, { KEEL_PG_PORT: '5499' })).toEqual({
      value: 5499,
      source: 'KEEL_PG_PORT',
    });
    expect(() => portSetting('adminPort', { adminPort: '0' }, {})).toThrow(
      'adminPort: must be an integer between 1 and 65535 (got "0") from --admin-port',
    );
    expect(() => portSetting('port', {}, { KEEL_PORT: 'x' })).toThrow(ConfigError);
  });

  it('gives node-a the ports asked for and node-b the next free ones', async () => {
    const base = await freeRun(12);
    const wanted = { port: base, stompPort: base + 4, adminPort: base + 8 };
    held.push(await occupy(base + 5)); // node-b's STOMP port skips it
    const nodes = await planNodePorts(settings(wanted, '--port'), HOST, 2);
    expect(nodes).toEqual([wanted, { port: base + 1, stompPort: base + 6, adminPort: base + 9 }]);
  });

  it('moves a busy default port up to the next free one, out of the way of the ports asked for', async () => {
    const base = await freeRun(12);
    held.push(await occupy(base));
    const wanted = settings({ port: base, stompPort: base + 4, adminPort: base + 1 });
    wanted.adminPort.source = '--admin-port'; // base + 1 is asked for: the native port moves past it
    const nodes = await planNodePorts(wanted, HOST, 2);
    expect(nodes[0]).toEqual({ port: base + 2, stompPort: base + 4, adminPort: base + 1 });
    expect(nodes[1]).toEqual({ port: base + 3, stompPort: base + 5, adminPort: base + 6 });
  });

  it('refuses a busy port that was asked for, naming it and where it came from', async () => {
    const base = await freeRun(12);
    held.push(await occupy(base + 4));
    const wanted = settings({ port: base, stompPort: base + 4, adminPort: base + 8 });
    wanted.stompPort.source = 'KEEL_STOMP_PORT';
    const err = await planNodePorts(wanted, HOST, 2).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as Error).message).toBe(
      `invalid configuration: stompPort: ${base + 4} is already in use on ${HOST} (choose another, or leave it out to take the next free one) from KEEL_STOMP_PORT`,
    );
    const same = settings({ port: base, stompPort: base, adminPort: base + 8 }, '--port');
    await expect(planNodePorts(same, HOST, 2)).rejects.toThrow('stompPort: must differ from port');
  });
});

describe('keel start node environment', () => {
  it('keeps the tuning KEEL_* variables and replaces the wiring ones (the locker too: keel start picks it, --shared or not)', () => {
    const env = nodeEnv(
      {
        PATH: '/bin',
        KEEL_USERS: 'alice:one',
        KEEL_LOCKER: 'lease',
        KEEL_LOG_LEVEL: 'debug',
        KEEL_DB: 'postgres://elsewhere/prod',
        KEEL_PORT: '1234',
        KEEL_NAME: 'prod-1',
        KEEL_CONFIG: '/etc/keel.yaml',
        KEEL_ADVERTISED_URLS: 'tcp://prod:61616',
      },
      'postgres://127.0.0.1:1/keel',
      'postgres://127.0.0.1:1/keel_lock',
      'pw',
    );
    expect(env).toEqual({
      PATH: '/bin',
      KEEL_USERS: 'alice:one',
      KEEL_LOG_LEVEL: 'debug',
      KEEL_DB: 'postgres://127.0.0.1:1/keel',
      KEEL_LOCK_DB: 'postgres://127.0.0.1:1/keel_lock',
      KEEL_ADMIN_USER: 'admin',
      KEEL_ADMIN_PASSWORD: 'pw',
    });
  });
});

test('keel start --tls: ssl ports from 61617 and 61612 upwards, clear of the planned ports and of busy ones', async () => {
  const busy = await occupy(61612).catch(() => null); // held: node-a's stomp+ssl moves up
  try {
    const [a, b] = await planTlsPorts(2, HOST, [61617, 61618]);
    const all = [a?.sslPort, a?.stompSslPort, b?.sslPort, b?.stompSslPort];
    expect(new Set(all).size).toBe(4);
    expect(all).not.toContain(61617);
    expect(all).not.toContain(61618);
    expect(a?.stompSslPort).not.toBe(61612);
    expect(a?.sslPort).toBeGreaterThan(61618);
    expect(b?.sslPort).toBeGreaterThan(a?.sslPort as number);
  } finally {
    await new Promise((r) => (busy ? busy.close(r) : r(null)));
  }
});
