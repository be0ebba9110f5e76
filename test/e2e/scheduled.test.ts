/**
 * Scheduled delivery (issue #22) on real broker processes over real Postgres, through STOMP: a
 * master and a slave of one cluster; ActiveMQ's AMQ_SCHEDULED_DELAY / _PERIOD / _REPEAT / _CRON
 * headers, the ActiveMQ.Scheduler.Management destination, the admin API's /api/scheduled, and a
 * SIGKILL of the master with schedules pending: the slave takes over and every firing happens,
 * none twice (counted per job by distinct message id).
 */
import type { StompFrame } from '@keel/protocol';
import { type BrokerProcess, stopAll, useTestDatabase } from '@keel/testkit';
import { headersOf, RawStomp, until } from '../../packages/server/src/stomp/__tests__/stomp-test-kit';
import { sql, startNode } from './helpers/cluster';

jest.setTimeout(150_000);

const db = useTestDatabase();
const CLUSTER = 'sched';
const ADMIN = { KEEL_ADMIN_USER: 'admin', KEEL_ADMIN_PASSWORD: 'secret' };
const AUTH = `Basic ${Buffer.from('admin:secret').toString('base64')}`;

let master: BrokerProcess;
let slave: BrokerProcess;
const conns: RawStomp[] = [];

beforeAll(async () => {
  master = await startNode({ db: db.url, cluster: CLUSTER, name: 'sched-n1', env: ADMIN });
  await master.waitForRole('master', 30_000);
  slave = await startNode({ db: db.url, cluster: CLUSTER, name: 'sched-n2', env: ADMIN });
  await slave.waitForRole('slave', 30_000);
});

afterAll(async () => {
  for (const c of conns) c.destroy();
  await stopAll();
});

async function open(node: BrokerProcess = master): Promise<RawStomp> {
  const r = await RawStomp.connect(node.stompPort);
  conns.push(r);
  return r;
}

let receipts = 0;
/** SEND and wait for its RECEIPT (STOMP 1.2 "RECEIPT"); the connection carries nothing else. */
async function send(r: RawStomp, headers: Record<string, string>, body = ''): Promise<StompFrame> {
  const receipt = `r${++receipts}`;
  r.send('SEND', { ...headers, receipt }, body);
  const f = await r.frame(10_000);
  if (f.command !== 'RECEIPT') throw new Error(`expected RECEIPT, got ${f.command}: ${headersOf(f).message}`);
  return f;
}

/** A consumer connection subscribed with ack:auto; its MESSAGE frames collect in `frames`. */
async function consumer(destination: string, node: BrokerProcess = master): Promise<RawStomp> {
  const r = await open(node);
  r.send('SUBSCRIBE', { id: 's1', destination, ack: 'auto', receipt: 'sub' });
  // Messages may come before the RECEIPT: look for it among the frames.
  await until(
    () => r.frames.some((f) => f.command === 'RECEIPT' && headersOf(f)['receipt-id'] === 'sub'),
    'the SUBSCRIBE receipt',
  );
  return r;
}

const messages = (r: RawStomp): Record<string, string>[] =>
  r.frames.filter((f) => f.command === 'MESSAGE').map((f) => ({ ...headersOf(f), body: f.body.toString() }));

async function jobRows(): Promise<
  { job_id: string; destination: string; next_due: string; fired: string }[]
> {
  return sql(
    db.url,
    'SELECT job_id, destination, next_due::text, fired::text FROM keel_schedules WHERE cluster = $1',
    [CLUSTER],
  );
}

/** Cron: the first test sends an every-minute job; the last one sees it fire at a minute boundary. */
let cronConsumer: RawStomp;
let cronSentAt = 0;

describe('scheduled delivery over STOMP (master + slave on Postgres)', () => {
  it('AMQ_SCHEDULED_CRON "* * * * *": accepted, stored with its next minute (fires in the last test)', async () => {
    cronConsumer = await consumer('/queue/sched.cron');
    const p = await open();
    cronSentAt = Date.now();
    await send(
      p,
      { destination: '/queue/sched.cron', persistent: 'true', AMQ_SCHEDULED_CRON: '* * * * *' },
      'tick',
    );
    const rows = (await jobRows()).filter((j) => j.destination === 'queue://sched.cron');
    expect(rows).toHaveLength(1);
    const due = Number(rows[0]!.next_due);
    expect(due % 60_000).toBe(0);
    expect(due).toBeGreaterThan(cronSentAt);
    expect(due - cronSentAt).toBeLessThanOrEqual(60_000);
  });

  it('AMQ_SCHEDULED_DELAY: receipted once stored, delivered once after the delay as a new message with scheduledJobId', async () => {
    const c = await consumer('/queue/sched.delay');
    const p = await open();
    const sentAt = Date.now();
    await send(
      p,
      { destination: '/queue/sched.delay', persistent: 'true', AMQ_SCHEDULED_DELAY: '1500', colour: 'red' },
      'later',
    );
    // The receipt came after the commit: the job is a row already, and no message is stored yet.
    const rows = (await jobRows()).filter((j) => j.destination === 'queue://sched.delay');
    expect(rows).toHaveLength(1);
    await until(() => messages(c).length === 1, 'the delayed message', 10_000);
    const [m] = messages(c);
    expect(Date.now() - sentAt).toBeGreaterThanOrEqual(1400);
    expect(m).toMatchObject({ body: 'later', colour: 'red', scheduledJobId: rows[0]!.job_id });
    expect(m!['message-id']).not.toBe(rows[0]!.job_id);
    expect(m!.AMQ_SCHEDULED_DELAY).toBeUndefined();
    await until(
      async () => (await jobRows()).every((j) => j.destination !== 'queue://sched.delay'),
      'job done',
    );
  });

  it('AMQ_SCHEDULED_PERIOD + AMQ_SCHEDULED_REPEAT: repeat + 1 deliveries, each its own message id', async () => {
    const c = await consumer('/queue/sched.repeat');
    const p = await open();
    await send(p, {
      destination: '/queue/sched.repeat',
      persistent: 'true',
      AMQ_SCHEDULED_DELAY: '200',
      AMQ_SCHEDULED_PERIOD: '300',
      AMQ_SCHEDULED_REPEAT: '4',
    });
    await until(() => messages(c).length >= 5, 'five firings', 10_000);
    await until(
      async () => (await jobRows()).every((j) => j.destination !== 'queue://sched.repeat'),
      'job done',
    );
    // Room for a sixth firing that must not come (the job row is gone already).
    await new Promise((r) => setTimeout(r, 700));
    const got = messages(c);
    expect(got).toHaveLength(5);
    expect(new Set(got.map((m) => m['message-id'])).size).toBe(5);
  });

  it.each([
    ['AMQ_SCHEDULED_DELAY', 'soon'],
    ['AMQ_SCHEDULED_REPEAT', '-1'],
    ['AMQ_SCHEDULED_CRON', '* * *'],
  ])('an invalid %s (%s) gets an ERROR naming it, and nothing is stored', async (header, value) => {
    const before = (await jobRows()).length;
    const r = await open();
    r.send(
      'SEND',
      { destination: '/queue/sched.bad', persistent: 'true', [header]: value, receipt: 'bad' },
      'x',
    );
    const f = await r.frame();
    expect(f.command).toBe('ERROR');
    expect(headersOf(f).message).toContain(header);
    expect(`${headersOf(f).code ?? ''} ${f.body.toString()}`).toContain('INVALID_ARGUMENT');
    expect((await jobRows()).length).toBe(before);
    const stored = await sql<{ n: number }>(
      db.url,
      `SELECT count(*)::int AS n FROM keel_messages m JOIN keel_destinations d ON d.id = m.dest_id WHERE d.name = 'sched.bad'`,
    );
    expect(stored[0]!.n).toBe(0);
  });

  it('cancel: ActiveMQ.Scheduler.Management BROWSE / REMOVE / REMOVEALL, and the admin API', async () => {
    const p = await open();
    for (let i = 0; i < 3; i++) {
      await send(
        p,
        { destination: '/queue/sched.far', persistent: 'true', AMQ_SCHEDULED_DELAY: String(3_600_000 + i) },
        `far${i}`,
      );
    }
    const ids = (await jobRows()).filter((j) => j.destination === 'queue://sched.far').map((j) => j.job_id);
    expect(ids).toHaveLength(3);

    const replies = await consumer('/queue/sched.replies');
    const mgmt = { destination: '/topic/ActiveMQ.Scheduler.Management' };
    await send(p, { ...mgmt, AMQ_SCHEDULER_ACTION: 'BROWSE', 'reply-to': '/queue/sched.replies' });
    await until(() => messages(replies).length >= 3, 'the BROWSE replies');
    const browsed = messages(replies).filter((m) => m.body.startsWith('far'));
    expect(browsed.map((m) => m.body)).toEqual(['far0', 'far1', 'far2']);
    expect(browsed.map((m) => m.scheduledJobId).sort()).toEqual([...ids].sort());

    const admin = `http://127.0.0.1:${master.adminPort}`;
    const one = await fetch(`${admin}/api/scheduled/${browsed[0]!.scheduledJobId}`);
    expect(one.status).toBe(200);
    expect(await one.json()).toMatchObject({ destination: 'queue://sched.far', delayMs: 3_600_000 });

    // REMOVE one over STOMP, cancel one over the admin API.
    await send(p, { ...mgmt, AMQ_SCHEDULER_ACTION: 'REMOVE', scheduledJobId: browsed[0]!.scheduledJobId! });
    const del = await fetch(`${admin}/api/scheduled/${browsed[1]!.scheduledJobId}`, {
      method: 'DELETE',
      headers: { authorization: AUTH },
    });
    expect(del.status).toBe(200);
    expect(
      (
        await fetch(`${admin}/api/scheduled/${browsed[1]!.scheduledJobId}`, {
          method: 'DELETE',
          headers: { authorization: AUTH },
        })
      ).status,
    ).toBe(404);
    const list = (await (await fetch(`${admin}/api/scheduled?limit=1000`)).json()) as {
      jobs: { jobId: string }[];
    };
    expect(list.jobs.map((j) => j.jobId)).toContain(browsed[2]!.scheduledJobId);
    expect(list.jobs.map((j) => j.jobId)).not.toContain(browsed[0]!.scheduledJobId);
    expect(list.jobs.map((j) => j.jobId)).not.toContain(browsed[1]!.scheduledJobId);

    // REMOVEALL in a time range that holds only the remaining far job.
    const now = Date.now();
    await send(p, {
      ...mgmt,
      AMQ_SCHEDULER_ACTION: 'REMOVEALL',
      ACTION_START_TIME: String(now + 3_000_000),
      ACTION_END_TIME: String(now + 4_000_000),
    });
    expect((await jobRows()).filter((j) => j.destination === 'queue://sched.far')).toEqual([]);
    expect((await jobRows()).filter((j) => j.destination === 'queue://sched.cron')).toHaveLength(1);
  });

  it('the cron job fires at the minute (once per match)', async () => {
    await until(() => messages(cronConsumer).length >= 1, 'the cron firing', 75_000);
    const firedAt = Date.now(); // seen within 5 ms of its arrival (until() looks that often)
    const [m] = messages(cronConsumer);
    expect(m).toMatchObject({ body: 'tick' });
    // The firing is sent at the match (a few hundred ms of lag at most on this machine).
    expect(firedAt % 60_000).toBeLessThan(5_000);
    const rows = (await jobRows()).filter((j) => j.destination === 'queue://sched.cron');
    expect(rows).toHaveLength(1);
    expect(Number(rows[0]!.fired)).toBe(1);
    expect(Number(rows[0]!.next_due) % 60_000).toBe(0);
    expect(Number(rows[0]!.next_due)).toBeGreaterThan(firedAt);
    expect(messages(cronConsumer)).toHaveLength(1);
    // The metrics count every firing so far (1 delay + 5 repeat + 1 cron) and their lag.
    const metrics = await (await fetch(`http://127.0.0.1:${master.adminPort}/metrics`)).text();
    const value = (name: string): number =>
      Number(new RegExp(`^${name}\\{[^}]*\\} (\\S+)$`, 'm').exec(metrics)?.[1]);
    expect(value('keel_scheduled_fired_total')).toBe(7);
    expect(value('keel_scheduled_firing_lag_seconds_count')).toBe(7);
    expect(value('keel_scheduled_jobs_pending')).toBe(1); // the cron job
    // Done with it: REMOVEALL (no range) empties the scheduler.
    const p = await open();
    await send(p, { destination: '/topic/ActiveMQ.Scheduler.Management', AMQ_SCHEDULER_ACTION: 'REMOVEALL' });
    expect(await jobRows()).toEqual([]);
  });

  it('SIGKILL of the master with schedules pending: the slave fires every one, none twice', async () => {
    const JOBS = 20;
    const REPEAT = 3; // 4 firings a job
    const p = await open();
    for (let i = 0; i < JOBS; i++) {
      await send(
        p,
        {
          destination: '/queue/sched.ha',
          persistent: 'true',
          AMQ_SCHEDULED_DELAY: String(300 + 50 * i),
          AMQ_SCHEDULED_PERIOD: '800',
          AMQ_SCHEDULED_REPEAT: String(REPEAT),
        },
        `job${i}`,
      );
    }
    const sent = JOBS * (REPEAT + 1);
    // Kill while the series are half way: some firings stored, the rest pending (some due during
    // the takeover, so they fire at once on the new master).
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
    master.kill('SIGKILL');
    await master.exited;
    await slave.waitForRole('master', 30_000);
    await until(async () => (await jobRows()).length === 0, 'every job done on the new master', 30_000);

    const c = await consumer('/queue/sched.ha', slave);
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
      `scheduled SIGKILL drill: sent ${sent} firings, received ${received}, distinct ${distinct}, lost ${lost}, duplicated ${duplicated}`,
    );
    expect({ received, distinct, lost, duplicated }).toEqual({
      received: sent,
      distinct: sent,
      lost: 0,
      duplicated: 0,
    });
    for (let i = 0; i < JOBS; i++) expect(perJob.get(`job${i}`)?.size).toBe(REPEAT + 1);
  });
});
