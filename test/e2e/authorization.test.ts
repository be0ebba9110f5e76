/**
 * Issue #23.2 on a real broker process over real Postgres: users in groups and ActiveMQ's
 * authorization entries (security/authorization-map.ts in core), checked on native (@keel/client)
 * and STOMP (stomp.py, test/python/stomp_authorization.py); a refusal is NOT_AUTHORIZED naming the
 * destination and the missing right, and nothing is stored. Then the login: unknown users, repeated
 * failures from one address (LOGIN_THROTTLED), and 16 parallel wrong-password loops that do not
 * keep an honest client from connecting.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import * as net from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { type Connection, connect as connectClient } from '@keel/client';
import { KeelError } from '@keel/protocol';
import { type BrokerProcess, stopAll, useTestDatabase } from '@keel/testkit';
import { startNode } from './helpers/cluster';

jest.setTimeout(120_000);

const PYTHON = '/usr/bin/python3';
const SCRIPT = resolve(__dirname, '../python/stomp_authorization.py');
const db = useTestDatabase();

const CONFIG = `
users:
  - {name: ops, password: ops-pw, groups: [admins]}
  - {name: alice, password: alice-pw, groups: producers}
  - {name: bob, password: bob-pw, groups: [consumers]}
  - {name: nobody, password: nobody-pw, roles: []}
authorization:
  - {queue: ">", read: admins, write: admins, admin: admins}
  - {topic: ">", read: admins, write: admins, admin: admins}
  - {queue: "orders.>", read: consumers, write: producers}
  - {topic: "prices.>", read: consumers, write: producers, admin: producers}
  - {topic: "ActiveMQ.Advisory.>", read: "producers,consumers", write: "producers,consumers", admin: "producers,consumers"}
tempDestinationAuthorization: {read: consumers, write: "producers,consumers", admin: consumers}
`;

let node: BrokerProcess;
const conns: Connection[] = [];

beforeAll(async () => {
  const dir = mkdtempSync(join(tmpdir(), 'keel-authz-'));
  const file = join(dir, 'keel.yaml');
  writeFileSync(file, CONFIG);
  node = await startNode({ db: db.url, cluster: 'authz', name: 'authz-n1', args: ['--config', file] });
  await node.waitForRole('master', 30_000);
});

afterAll(async () => {
  for (const c of conns) await c.close().catch(() => {});
  await stopAll();
});

async function client(user: string, password = `${user}-pw`): Promise<Connection> {
  const c = await connectClient(`tcp://127.0.0.1:${node.port}`, { username: user, password });
  conns.push(c);
  return c;
}

async function refusal(p: Promise<unknown>): Promise<KeelError> {
  try {
    await p;
  } catch (err) {
    if (KeelError.isInstance(err)) return err;
    throw err;
  }
  throw new Error('expected a refusal');
}

async function queueInfo(name: string): Promise<{ depth: number; enqueued: number } | null> {
  const res = await fetch(`http://127.0.0.1:${node.adminPort}/api/queues/${encodeURIComponent(name)}`);
  return res.status === 404 ? null : ((await res.json()) as { depth: number; enqueued: number });
}

interface StompResult {
  ok: boolean;
  connected: boolean;
  code?: string;
  message?: string;
  receipt_id?: string | null;
}

function stompSteps(steps: object[]): Promise<StompResult[]> {
  return new Promise((done, fail) => {
    const child = spawn(PYTHON, [SCRIPT, '127.0.0.1', String(node.stompPort), JSON.stringify(steps)], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.on('error', fail);
    child.on('close', (code) => {
      try {
        done(JSON.parse(stdout.trim().split('\n').pop() ?? '') as StompResult[]);
      } catch {
        fail(new Error(`no JSON from stomp_authorization.py (exit ${code}): ${stdout}\n${stderr}`));
      }
    });
  });
}

describe('authorization over native', () => {
  test('creating needs admin, send needs write, consume and browse need read; a refusal stores nothing', async () => {
    const alice = await (await client('alice')).createSession();
    const err = await refusal(alice.createProducer('queue://orders.native').send(Buffer.from('x')));
    expect(err.code).toBe('NOT_AUTHORIZED');
    expect(err.message).toContain(
      'user alice is not authorized to create queue://orders.native: the admin right is missing',
    );
    expect(await queueInfo('orders.native')).toBeNull();

    // ops (admins) creates the queue; from then alice may write to it.
    const ops = await (await client('ops')).createSession();
    await ops.createProducer('queue://orders.native').send(Buffer.from('by-ops'), { persistent: true });
    await alice.createProducer('queue://orders.native').send(Buffer.from('by-alice'), { persistent: true });
    expect(await queueInfo('orders.native')).toMatchObject({ depth: 2, enqueued: 2 });

    const bob = await (await client('bob')).createSession();
    const w = await refusal(
      bob.createProducer('queue://orders.native').send(Buffer.from('x'), { persistent: true }),
    );
    expect(w.code).toBe('NOT_AUTHORIZED');
    expect(w.message).toContain(
      'user bob is not authorized to write to queue://orders.native: the write right is missing',
    );
    expect(await queueInfo('orders.native')).toMatchObject({ depth: 2, enqueued: 2 });

    const aliceReads = await (await client('alice')).createSession();
    const r = await refusal(aliceReads.createConsumer('queue://orders.native'));
    expect(r.code).toBe('NOT_AUTHORIZED');
    expect(r.message).toContain('read from queue://orders.native: the read right is missing');
    const aliceBrowses = await (await client('alice')).createSession();
    expect((await refusal(aliceBrowses.browse('queue://orders.native'))).code).toBe('NOT_AUTHORIZED');

    const browsed: string[] = [];
    for await (const m of await bob.browse('queue://orders.native')) browsed.push(m.body.toString());
    expect(browsed).toEqual(['by-ops', 'by-alice']);
    const consumer = await bob.createConsumer('queue://orders.native');
    const first = await new Promise<string>((done) => consumer.onMessage((m) => done(m.body.toString())));
    expect(first).toBe('by-ops');
  });

  test('a user without groups may do nothing (before #23 it sent and consumed)', async () => {
    const s = await (await client('nobody')).createSession();
    expect((await refusal(s.createProducer('queue://orders.native').send(Buffer.from('x')))).code).toBe(
      'NOT_AUTHORIZED',
    );
    const s2 = await (await client('nobody')).createSession();
    expect((await refusal(s2.createConsumer('queue://orders.native'))).code).toBe('NOT_AUTHORIZED');
  });
});

describe('authorization over STOMP (stomp.py)', () => {
  test('SEND, SUBSCRIBE, browse and durable subscriptions are refused with ERROR code NOT_AUTHORIZED', async () => {
    const before = await queueInfo('orders.native');
    const results = await stompSteps([
      { user: 'bob', password: 'bob-pw', action: 'send', destination: '/queue/orders.native' },
      { user: 'alice', password: 'alice-pw', action: 'subscribe', destination: '/queue/orders.native' },
      { user: 'alice', password: 'alice-pw', action: 'browse', destination: '/queue/orders.native' },
      { user: 'alice', password: 'alice-pw', action: 'durable', destination: '/topic/prices.eur' },
      { user: 'nobody', password: 'nobody-pw', action: 'send', destination: '/queue/orders.native' },
      { user: 'alice', password: 'alice-pw', action: 'send', destination: '/queue/orders.native' },
      { user: 'bob', password: 'bob-pw', action: 'durable', destination: '/topic/prices.eur' },
      { user: 'alice', password: 'alice-pw', action: 'send', destination: '/queue/orders.stomp-new' },
    ]);
    const [send, sub, browse, durable, nobody, allowed, allowedDurable, create] = results as StompResult[];
    expect(send).toMatchObject({ ok: false, connected: true, code: 'NOT_AUTHORIZED' });
    expect(send!.message).toBe(
      'user bob is not authorized to write to queue://orders.native: the write right is missing',
    );
    expect(send!.receipt_id).toMatch(/^r-/);
    expect(sub).toMatchObject({ ok: false, code: 'NOT_AUTHORIZED' });
    expect(sub!.message).toContain('read from queue://orders.native');
    expect(browse).toMatchObject({ ok: false, code: 'NOT_AUTHORIZED' });
    expect(durable).toMatchObject({ ok: false, code: 'NOT_AUTHORIZED' });
    expect(durable!.message).toContain('read from topic://prices.eur');
    expect(nobody).toMatchObject({ ok: false, code: 'NOT_AUTHORIZED' });
    expect(allowed).toMatchObject({ ok: true });
    // bob may read prices.>, but prices.eur does not exist yet and creating it needs admin.
    expect(allowedDurable).toMatchObject({ ok: false, code: 'NOT_AUTHORIZED' });
    expect(allowedDurable!.message).toContain('create topic://prices.eur');
    expect(create).toMatchObject({ ok: false, code: 'NOT_AUTHORIZED' });
    expect(create!.message).toContain('create queue://orders.stomp-new: the admin right is missing');
    // Only alice's allowed SEND was stored.
    expect(await queueInfo('orders.native')).toMatchObject({ enqueued: (before?.enqueued ?? 0) + 1 });
    expect(await queueInfo('orders.stomp-new')).toBeNull();
  });
});

/** A raw STOMP CONNECT from `localAddress`; resolves with the first frame's command and headers. */
function stompConnect(
  login: string,
  passcode: string,
  localAddress = '127.0.0.1',
): Promise<{ command: string; headers: Record<string, string> }> {
  return new Promise((done, fail) => {
    const socket = net.connect({ host: '127.0.0.1', port: node.stompPort!, localAddress });
    let buf = '';
    socket.on('connect', () => {
      socket.write(`CONNECT\naccept-version:1.2\nhost:keel\nlogin:${login}\npasscode:${passcode}\n\n\0`);
    });
    socket.on('data', (c: Buffer) => {
      buf += c.toString();
      const end = buf.indexOf('\0');
      if (end < 0) return;
      const [head] = buf.slice(0, end).split('\n\n');
      const [command, ...lines] = (head ?? '').replace(/^\n+/, '').split('\n');
      const headers: Record<string, string> = {};
      for (const l of lines) {
        const i = l.indexOf(':');
        if (i > 0 && !(l.slice(0, i) in headers)) headers[l.slice(0, i)] = l.slice(i + 1);
      }
      socket.destroy();
      done({ command: command ?? '', headers });
    });
    socket.on('error', fail);
  });
}

describe('login hardening', () => {
  test('repeated failures from one address are throttled: then even the right password is refused', async () => {
    const addr = '127.0.0.3';
    const codes: string[] = [];
    for (let i = 0; i < 6; i++) {
      const f = await stompConnect('alice', `guess-${i}`, addr);
      codes.push(f.headers.code ?? f.command);
    }
    expect(codes.slice(0, 3)).toEqual(['AUTH_FAILED', 'AUTH_FAILED', 'AUTH_FAILED']);
    expect(codes).toContain('LOGIN_THROTTLED');
    const right = await stompConnect('alice', 'alice-pw', addr);
    expect(right.headers.code).toBe('LOGIN_THROTTLED');
    expect(right.headers.message).toMatch(/too many failed logins from 127\.0\.0\.3/);
    // Another address is not affected.
    expect((await stompConnect('alice', 'alice-pw', '127.0.0.4')).command).toBe('CONNECTED');
  });

  test('an unknown user is refused like a wrong password (same code, same message shape)', async () => {
    const unknown = await stompConnect('mallory', 'x', '127.0.0.5');
    const wrong = await stompConnect('alice', 'x', '127.0.0.5');
    expect(unknown.headers.code).toBe('AUTH_FAILED');
    expect(wrong.headers.code).toBe('AUTH_FAILED');
  });

  test('16 parallel wrong-password loops are throttled while an honest client connects', async () => {
    let stop = false;
    const seen: Record<string, number> = {};
    const loop = async () => {
      while (!stop) {
        const f = await stompConnect('alice', 'wrong', '127.0.0.1');
        const code = f.headers.code ?? f.command;
        seen[code] = (seen[code] ?? 0) + 1;
      }
    };
    const loops = Array.from({ length: 16 }, loop);
    // Wait until the loops are being throttled.
    while (!seen.LOGIN_THROTTLED) await new Promise((r) => setImmediate(r));
    const honest: string[] = [];
    for (let i = 0; i < 5; i++) honest.push((await stompConnect('bob', 'bob-pw', '127.0.0.2')).command);
    stop = true;
    await Promise.all(loops);
    expect(honest).toEqual(['CONNECTED', 'CONNECTED', 'CONNECTED', 'CONNECTED', 'CONNECTED']);
    expect(seen.CONNECTED ?? 0).toBe(0);
    expect(seen.LOGIN_THROTTLED).toBeGreaterThan(0);
    // The native listener shares the throttle: 127.0.0.1 is blocked there too (a fatal ERROR on HELLO).
    const native = await refusal(client('bob'));
    expect(native.code).toBe('LOGIN_THROTTLED');
    expect(native.message).toMatch(/too many failed logins from 127\.0\.0\.1/);
  });
});
