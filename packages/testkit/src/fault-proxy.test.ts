import { once } from 'node:events';
import * as net from 'node:net';
import { Client } from 'pg';
import { FaultProxy } from './fault-proxy';

/** An echo server that records what it received. */
async function echoServer(): Promise<{
  server: net.Server;
  port: number;
  received: () => string;
  sockets: Set<net.Socket>;
}> {
  let received = '';
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => {});
    socket.on('close', () => sockets.delete(socket));
    socket.on('data', (chunk) => {
      received += chunk.toString();
      socket.write(chunk);
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { server, port: (server.address() as net.AddressInfo).port, received: () => received, sockets };
}

async function connect(port: number): Promise<net.Socket> {
  const socket = net.connect({ host: '127.0.0.1', port });
  socket.on('error', () => {});
  await once(socket, 'connect');
  return socket;
}

/** Resolves with the accumulated text once it contains `text`. */
function readUntil(socket: net.Socket, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let got = '';
    const onData = (chunk: Buffer) => {
      got += chunk.toString();
      if (got.includes(text)) {
        socket.off('data', onData);
        resolve(got);
      }
    };
    socket.on('data', onData);
    socket.once('close', () => reject(new Error(`closed before "${text}" arrived (got "${got}")`)));
  });
}

/** Resolves on 'close' (events.once would reject on the 'error' that precedes it). */
function closeOf(socket: net.Socket): Promise<void> {
  return new Promise((resolve) => socket.once('close', () => resolve()));
}

/** Resolves true if nothing arrives within ms (a bounded check that something does NOT happen). */
function silentFor(socket: net.Socket, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    const onData = () => {
      clearTimeout(timer);
      resolve(false);
    };
    const timer = setTimeout(() => {
      socket.off('data', onData);
      resolve(true);
    }, ms);
    socket.once('data', onData);
  });
}

describe('FaultProxy with an echo server', () => {
  let echo: Awaited<ReturnType<typeof echoServer>>;
  let proxy: FaultProxy;
  const clients: net.Socket[] = [];

  beforeEach(async () => {
    echo = await echoServer();
    proxy = await FaultProxy.start({ targetHost: '127.0.0.1', targetPort: echo.port });
  });
  afterEach(async () => {
    for (const c of clients.splice(0)) c.destroy();
    await proxy.close();
    for (const s of echo.sockets) s.destroy();
    await new Promise((r) => echo.server.close(r));
  });

  const client = async () => {
    const c = await connect(proxy.port);
    clients.push(c);
    return c;
  };

  test('pass forwards both ways and counts', async () => {
    const c = await client();
    c.write('hello');
    expect(await readUntil(c, 'hello')).toBe('hello');
    expect(proxy.stats).toMatchObject({ accepted: 1, active: 1, bytesUp: 5, bytesDown: 5 });
    c.end();
    await once(proxy, 'disconnect');
    expect(proxy.stats.active).toBe(0);
  });

  test('pass carries a large transfer intact under backpressure', async () => {
    const c = await client();
    const payload = Buffer.alloc(8 * 1024 * 1024);
    for (let i = 0; i < payload.length; i++) payload[i] = i % 251;
    const chunks: Buffer[] = [];
    let size = 0;
    const done = new Promise<void>((resolve) => {
      c.on('data', (chunk: Buffer) => {
        chunks.push(chunk);
        size += chunk.length;
        if (size >= payload.length) resolve();
      });
    });
    c.write(payload);
    await done;
    expect(Buffer.concat(chunks).equals(payload)).toBe(true);
    expect(proxy.stats).toMatchObject({ bytesUp: payload.length, bytesDown: payload.length });
  });

  test('pause holds the link open and silent; pass delivers what waited', async () => {
    const c = await client();
    c.write('a');
    await readUntil(c, 'a');
    proxy.setMode('pause');
    c.write('held');
    expect(await silentFor(c, 150)).toBe(true);
    expect(echo.received()).toBe('a');
    expect(c.destroyed).toBe(false);
    proxy.setMode('pass');
    expect(await readUntil(c, 'held')).toBe('held');
  });

  test('a connection made while paused gets its upstream on pass', async () => {
    proxy.setMode('pause');
    const accepted = once(proxy, 'connection');
    const c = await client();
    await accepted;
    c.write('early');
    expect(await silentFor(c, 100)).toBe(true);
    expect(echo.sockets.size).toBe(0);
    proxy.setMode('pass');
    expect(await readUntil(c, 'early')).toBe('early');
  });

  test('drop discards bytes both ways but keeps the sockets', async () => {
    const c = await client();
    c.write('x');
    await readUntil(c, 'x');
    proxy.setMode('drop');
    c.write('lost');
    const [n] = await once(proxy, 'dropped');
    expect(n).toBe(4);
    expect(c.destroyed).toBe(false);
    proxy.setMode('pass');
    c.write('kept');
    expect(await readUntil(c, 'kept')).toBe('kept');
    expect(echo.received()).toBe('xkept');
    expect(proxy.stats.bytesDropped).toBe(4);
  });

  test('cut resets current connections and refuses new ones until pass', async () => {
    const c = await client();
    c.write('x');
    await readUntil(c, 'x');
    const closed = closeOf(c);
    proxy.setMode('cut');
    await closed;
    expect(proxy.stats).toMatchObject({ cut: 1, active: 0 });

    const refused = net.connect({ host: '127.0.0.1', port: proxy.port });
    const errors: Error[] = [];
    refused.on('error', (e) => errors.push(e));
    await closeOf(refused);
    expect(proxy.stats.refused).toBe(1);

    proxy.setMode('pass');
    const again = await client();
    again.write('back');
    expect(await readUntil(again, 'back')).toBe('back');
  });

  test('url() points a postgres URL at the proxy', () => {
    expect(proxy.url('postgres://u:p@db.example:5432/keel?host=/run/pg&sslmode=disable')).toBe(
      `postgres://u:p@127.0.0.1:${proxy.port}/keel?sslmode=disable`,
    );
  });
});

describe('FaultProxy in front of the real PostgreSQL', () => {
  const adminUrl = process.env.KEEL_TEST_PG_ADMIN_URL as string;
  let proxy: FaultProxy;
  beforeEach(async () => {
    const u = new URL(adminUrl);
    proxy = await FaultProxy.start({ targetHost: u.hostname, targetPort: Number(u.port || 5432) });
  });
  afterEach(async () => {
    await proxy.close();
  });

  test('queries pass; a paused link stalls a query that completes after pass', async () => {
    const c = new Client({ connectionString: proxy.url(adminUrl) });
    c.on('error', () => {});
    await c.connect();
    try {
      expect((await c.query('SELECT 1 AS one')).rows).toEqual([{ one: 1 }]);
      proxy.setMode('pause');
      let settled = false;
      const pending = c.query('SELECT 2 AS two').finally(() => {
        settled = true;
      });
      await new Promise((r) => setTimeout(r, 150));
      expect(settled).toBe(false);
      proxy.setMode('pass');
      expect((await pending).rows).toEqual([{ two: 2 }]);
    } finally {
      await c.end();
    }
  });

  test('cut breaks the pg connection with an error and new connections fail until pass', async () => {
    const c = new Client({ connectionString: proxy.url(adminUrl) });
    const errored = new Promise<Error>((resolve) => c.on('error', resolve));
    await c.connect();
    proxy.setMode('cut');
    const err = await errored;
    expect(err.message).toMatch(/terminated|ECONNRESET/);
    await c.end().catch(() => {});

    const refused = new Client({ connectionString: proxy.url(adminUrl), connectionTimeoutMillis: 5000 });
    refused.on('error', () => {});
    await expect(refused.connect()).rejects.toThrow();
    await refused.end().catch(() => {});

    proxy.setMode('pass');
    const ok = new Client({ connectionString: proxy.url(adminUrl) });
    await ok.connect();
    expect((await ok.query('SELECT 3 AS three')).rows).toEqual([{ three: 3 }]);
    await ok.end();
  });
});
