/**
 * Virtual topics, composite destinations and unique client ids (issue #21.4/#21.5) through stomp.py
 * (Debian's python3-stomp, a client no one here wrote), on a broker over the real PgStore:
 * test/python/stomp_routing.py, then the store is checked.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { resolve } from 'node:path';
import { PgStore } from '@keel/store-pg';
import { useTestDatabase } from '@keel/testkit';
import { type StompFixture, startStomp } from './__tests__/stomp-test-kit';

const PYTHON = '/usr/bin/python3';
const SCRIPT = resolve(__dirname, '../../../../test/python/stomp_routing.py');
const db = useTestDatabase();

function run(
  args: string[],
  timeoutMs: number,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((done, fail) => {
    const child = spawn(PYTHON, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', (err) => {
      clearTimeout(timer);
      fail(err);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      done({ code, stdout, stderr });
    });
  });
}

describe('virtual topics, composite destinations and client ids with stomp.py over Postgres', () => {
  let fx: StompFixture | undefined;
  let store: PgStore | undefined;
  afterEach(async () => {
    await fx?.close();
    await store?.close();
  });

  it('fans a virtual topic out to each consumer queue, delivers composites to each member, refuses a duplicate client-id', async () => {
    store = new PgStore({
      connectionString: db.url,
      cluster: `routing-${randomBytes(3).toString('hex')}`,
      poolSize: 2,
    });
    await store.open();
    await store.takeOver('node-1', 'test');
    fx = await startStomp(
      {},
      {
        store,
        routing: {
          compositeDestinations: [
            { queue: 'orders', forwardTo: ['/queue/orders.audit', '/topic/orders.events'] },
          ],
        },
      },
    );
    const n = 20;
    const { code, stdout, stderr } = await run([SCRIPT, '127.0.0.1', String(fx.port), String(n)], 60_000);
    const lines = stdout.trim().split('\n');
    let out: Record<string, unknown>;
    try {
      out = JSON.parse(lines[lines.length - 1]!);
    } catch {
      throw new Error(`no JSON result (exit ${code}): ${stdout}\n${stderr}`);
    }
    if ('partial' in out) throw new Error(`the script stopped on an ERROR: ${stdout}`);
    const bodies = (prefix: string) => Array.from({ length: n }, (_, i) => `${prefix}-${i}`);
    // Each consumer queue got every message (persisted while no consumer was attached), once, in order.
    expect(out.vt_a).toEqual(bodies('vt'));
    expect(out.vt_b).toEqual(bodies('vt'));
    expect(out.comp_a).toEqual(bodies('comp'));
    expect(out.comp_b).toEqual(bodies('comp'));
    expect(out.comp_t).toEqual(bodies('comp'));
    expect(out.fwd_audit).toEqual(bodies('fwd'));
    expect(out.fwd_events).toEqual(bodies('fwd'));
    expect(out.dup_error).toMatchObject({ code: 'INVALID_CLIENT_ID' });
    expect((out.dup_error as { message: string }).message).toContain('Client: routing-app already connected');
    expect(out.errors).toEqual([]);
    const names = fx.broker.listQueues().map((q) => q.name);
    expect(names).not.toContain('orders');
    expect(names).not.toContain('compA,/queue/compB,/topic/compT');
    expect(code).toBe(0);
  }, 90_000);
});
