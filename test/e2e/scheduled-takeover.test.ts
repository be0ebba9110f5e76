/**
 * Issue #22 on two real nodes with the lease locker (ActiveMQ's LeaseDatabaseLocker) and
 * `--scheduler-time-zone Asia/Kolkata`:
 * - a cron expression is evaluated in the configured zone (a half-hour offset: 5:30 ahead of UTC):
 *   stored with that zone's next match, and it fires then;
 * - SIGSTOP of the master with schedules pending: the slave takes the lease over and fires every
 *   schedule, none twice; after SIGCONT the old master finds itself fenced and fires nothing.
 */
import type { StompFrame } from '@keel/protocol';
import { type BrokerProcess, stopAll, useTestDatabase } from '@keel/testkit';
import { headersOf, RawStomp, until } from '../../packages/server/src/stomp/__tests__/stomp-test-kit';
import { sql, startNode } from './helpers/cluster';

jest.setTimeout(180_000);

const db = useTestDatabase();
const CLUSTER = 'sched-tk';
const ZONE = 'Asia/Kolkata';
const ARGS = ['--locker', 'lease', '--scheduler-time-zone', ZONE];

let a: BrokerProcess;
let b: BrokerProcess;
const conns: RawStomp[] = [];

beforeAll(async () => {
  a = await startNode({ db: db.url, cluster: CLUSTER, name: 'sched-tk-a', args: ARGS });
  await a.waitForRole('master', 30_000);
  b = await startNode({ db: db.url, cluster: CLUSTER, name: 'sched-tk-b', args: ARGS });
  await b.waitForRole('slave', 30_000);
});

afterAll(async () => {
  for (const c of conns) c.destroy();
  await stopAll();
});

async function open(node: BrokerProcess): Promise<RawStomp> {
  const r = await RawStomp.connect(node.stompPort);
  conns.push(r);
  return r;
}

let receipts = 0;
async function send(r: RawStomp, headers: Record<string, string>, body = ''): Promise<StompFrame> {
  const receipt = `r${++receipts}`;
  r.send('SEND', { ...headers, receipt }, body);
  const f = await r.frame(10_000);
  if (f.command !== 'RECEIPT') throw new Error(`expected RECEIPT, got ${f.command}: ${headersOf(f).message}`);
  return f;
}

async function consumer(destination: string, node: BrokerProcess): Promise<RawStomp> {
  const r = await open(node);
  r.send('SUBSCRIBE', { id: 's1', destination, ack: 'auto', receipt: 'sub' });
  await until(
    () => r.frames.some((f) => f.command === 'RECEIPT' && headersOf(f)['receipt-id'] === 'sub'),
    'the SUBSCRIBE receipt',
  );
  return r;
}

const messages = (r: RawStomp): Record<string, string>[] =>
  r.frames.filter((f) => f.command === 'MESSAGE').map((f) => ({ ...headersOf(f), body: f.body.toString() }));

const jobRows = (): Promise<{ destination: string; next_due: string; fired: number }[]> =>
  sql(db.url, 'SELECT destination, next_due::text, fired::int FROM keel_schedules WHERE cluster = $1', [
    CLUSTER,
  ]);

/** Hour and minute of `ms` on the wall clock of `zone`. */
function wallClock(ms: number, zone: string): { hour: number; minute: number } {
  const parts = new Intl.DateTimeFormat('en-GB', {
    timeZone: zone,
    hour: '2-digit',
    minute: '2-digit',
    hourCycle: 'h23',
  }).formatToParts(new Date(ms));
  const get = (t: string) => Number(parts.find((p) => p.type === t)!.value);
  return { hour: get('hour'), minute: get('minute') };
}

test(`a cron expression fires at its time in the configured zone (${ZONE})`, async () => {
  // The next whole minute at least 5 s away, named by its hour and minute in Kolkata: in UTC that
  // expression would match 5 h 30 min later (or earlier), not now.
  let due = Math.ceil(Date.now() / 60_000) * 60_000;
  if (due - Date.now() < 5_000) due += 60_000;
  const { hour, minute } = wallClock(due, ZONE);
  const c = await consumer('/queue/sched.tz', a);
  const p = await open(a);
  await send(
    p,
    { destination: '/queue/sched.tz', persistent: 'true', AMQ_SCHEDULED_CRON: `${minute} ${hour} * * *` },
    'tz',
  );
  const rows = (await jobRows()).filter((j) => j.destination === 'queue://sched.tz');
  expect(rows.map((r) => Number(r.next_due))).toEqual([due]);
  await until(() => messages(c).length >= 1, 'the cron firing', due - Date.now() + 10_000);
  const firedAt = Date.now();
  expect(firedAt).toBeGreaterThanOrEqual(due);
  expect(messages(c).map((m) => m.body)).toEqual(['tz']);
  // Next match: the same wall-clock time tomorrow.
  const after = (await jobRows()).filter((j) => j.destination === 'queue://sched.tz');
  expect(after.map((r) => Number(r.next_due))).toEqual([due + 86_400_000]);
  await send(p, { destination: '/topic/ActiveMQ.Scheduler.Management', AMQ_SCHEDULER_ACTION: 'REMOVEALL' });
  expect(await jobRows()).toEqual([]);
});

test('SIGSTOP of the master with schedules pending: the slave fires every one, none twice', async () => {
  const JOBS = 20;
  const REPEAT = 3; // 4 firings a job
  const p = await open(a);
  for (let i = 0; i < JOBS; i++) {
    await send(
      p,
      {
        destination: '/queue/sched.stop',
        persistent: 'true',
        AMQ_SCHEDULED_DELAY: String(300 + 50 * i),
        AMQ_SCHEDULED_PERIOD: '800',
        AMQ_SCHEDULED_REPEAT: String(REPEAT),
      },
      `job${i}`,
    );
  }
  const sent = JOBS * (REPEAT + 1);
  await until(
    async () => {
      const fired = await sql<{ n: number }>(
        db.url,
        'SELECT coalesce(sum(fired), 0)::int AS n FROM keel_schedules WHERE cluster = $1',
        [CLUSTER],
      );
      return fired[0]!.n >= JOBS;
    },
    'a first firing of every job',
    10_000,
  );
  // Frozen, not dead: its sockets stay open, its lease runs out, b takes over.
  a.pause();
  await b.waitForRole('master', 30_000);
  await until(async () => (await jobRows()).length === 0, 'every job done on the new master', 30_000);
  // The old master wakes up: fenced by the new epoch, it must fire nothing more.
  const mark = a.mark();
  a.resume();
  await a.waitForLog((e) => e.msg === 'role changed' && e.role === 'slave', 30_000, mark);

  const c = await consumer('/queue/sched.stop', b);
  await until(() => messages(c).length >= sent, `${sent} firings`, 20_000);
  await new Promise((r) => setTimeout(r, 500)); // room for duplicates, which must not come
  const got = messages(c);
  const perJob = new Map<string, Set<string>>();
  for (const m of got) {
    const ids = perJob.get(m.body) ?? new Set<string>();
    ids.add(m['message-id']!);
    perJob.set(m.body, ids);
  }
  const received = got.length;
  const distinct = [...perJob.values()].reduce((n, s) => n + s.size, 0);
  const lost = [...Array(JOBS).keys()].reduce(
    (n, i) => n + Math.max(0, REPEAT + 1 - (perJob.get(`job${i}`)?.size ?? 0)),
    0,
  );
  const duplicated = received - sent + lost;
  console.log(
    `scheduled SIGSTOP drill (lease locker): sent ${sent} firings, received ${received}, distinct ${distinct}, lost ${lost}, duplicated ${duplicated}`,
  );
  expect({ received, distinct, lost, duplicated }).toEqual({
    received: sent,
    distinct: sent,
    lost: 0,
    duplicated: 0,
  });
  for (let i = 0; i < JOBS; i++) expect(perJob.get(`job${i}`)?.size).toBe(REPEAT + 1);
});
