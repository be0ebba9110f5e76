/**
 * What a master does while its Postgres is away (docs/operations.md, "When Postgres goes away"):
 * it suspends instead of dropping its clients. Persistent sends made during the outage are held
 * (no receipt, no error), the client stays connected, and once Postgres is back and the cluster's
 * epoch is still this node's, it takes the lock back and the held sends are receipted and stored
 * once. One node, a plain tcp:// client (no failover, so any disconnect would fail the test), a
 * private Postgres that is stopped and started with pg_ctl.
 */
import { execFile } from 'node:child_process';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { connect } from '@keel/client';
import {
  type BrokerProcess,
  findPostgresBindir,
  type PostgresServer,
  startPostgresServer,
  stopAll,
  withDatabase,
} from '@keel/testkit';
import { sql, startNode } from './helpers/cluster';
import { PauseMeter } from './helpers/traffic';

const execFileAsync = promisify(execFile);

jest.setTimeout(120_000);

afterAll(async () => {
  await stopAll();
});

async function pgCtl(server: PostgresServer, args: string[]): Promise<void> {
  const bindir = findPostgresBindir();
  if (!bindir || !server.dir) throw new Error('no pg_ctl for the private cluster');
  const pgCtlPath = path.join(bindir, 'pg_ctl');
  const dataDir = path.join(server.dir, 'data');
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  const [cmd, cmdArgs] = isRoot
    ? ['runuser', ['-u', 'postgres', '--', pgCtlPath, ...args, '-D', dataDir]]
    : [pgCtlPath, [...args, '-D', dataDir]];
  await execFileAsync(cmd, cmdArgs, { timeout: 60_000 });
}

test('Postgres stopped and started: persistent sends are held, then receipted; the client stays connected', async () => {
  // A private server: the shared one serves other test files and must never stop.
  const server = await startPostgresServer({ externalUrl: null, skip: ['testcontainers', 'embedded'] });
  const url = withDatabase(server.adminUrl, 'keel_outage');
  await sql(server.adminUrl, 'CREATE DATABASE keel_outage');
  let node: BrokerProcess | undefined;
  const conn = { current: null as Awaited<ReturnType<typeof connect>> | null };
  try {
    // A generous grace so a slow restart on a loaded machine stays inside it.
    node = await startNode({
      db: url,
      cluster: 'outage',
      name: 'outage-n1',
      env: { KEEL_LOCK_OUTAGE_GRACE_MS: '30000' },
    });
    await node.waitForRole('master', 30_000);
    const c = await connect(`tcp://127.0.0.1:${node.port}`, { heartbeatMs: 500 });
    conn.current = c;
    c.on('error', () => {});
    const meter = new PauseMeter(c);
    let closed = false;
    c.on('close', () => {
      closed = true;
    });
    const session = await c.createSession();
    const producer = session.createProducer('queue://outage', { persistent: true });
    for (let i = 0; i < 10; i++) await producer.send(`before-${i}`);

    const mark = node.mark();
    await pgCtl(server, ['stop', '-m', 'fast', '-w', '-t', '60']);
    await node.waitForLog(
      (e) => e.msg === 'role changed' && e.role === 'recovering' && e.suspended === true,
      30_000,
      mark,
    );

    // Sent while Postgres is down: neither receipted nor refused until it is back.
    const settled: string[] = [];
    const during = Array.from({ length: 20 }, (_, i) =>
      producer.send(`during-${i}`).then(
        (r) => {
          settled.push(`ok ${i}`);
          return r;
        },
        (err: Error) => {
          settled.push(`error ${i}: ${err.message}`);
          throw err;
        },
      ),
    );
    // Held for a second with Postgres down; counted before it starts, since the node may commit
    // the held sends before `pg_ctl start -w` has returned.
    await new Promise((r) => setTimeout(r, 1000));
    const answeredWhileDown = [...settled];
    await pgCtl(server, ['start', '-w', '-t', '60', '-l', path.join(server.dir ?? '', 'postgres.log')]);
    await node.waitForLog(
      (e) => e.msg === 'role changed' && e.role === 'master' && e.resumed === true,
      30_000,
      mark,
    );
    const receipts = await Promise.all(during);

    expect(answeredWhileDown).toEqual([]); // nothing answered while Postgres was down
    expect(receipts.every((r) => r.messageId !== '')).toBe(true);
    expect(meter.interruptions).toBe(0);
    expect(closed).toBe(false);

    // Every message stored once: 10 before, 20 during.
    const consumer = await session.createConsumer('queue://outage', { prefetch: 100 });
    const bodies: string[] = [];
    for await (const m of consumer) {
      bodies.push(m.text());
      if (bodies.length === 30) break;
    }
    expect(bodies.sort()).toEqual(
      [
        ...Array.from({ length: 10 }, (_, i) => `before-${i}`),
        ...Array.from({ length: 20 }, (_, i) => `during-${i}`),
      ].sort(),
    );
    console.log(
      `[e2e outage] ${receipts.length} sends held while Postgres was down, all receipted after it came back`,
    );
  } finally {
    await conn.current?.close().catch(() => {});
    await node?.stop();
    await server.stop();
  }
});
