import type { ScheduleRecord } from '../store/store';
import { parseScheduleSpec } from './schedule-headers';
import { afterFiring, cronNext, firstFiring } from './schedule-plan';

const T0 = Date.parse('2026-03-01T10:07:30.250Z');

function job(spec: ReturnType<typeof parseScheduleSpec>, now: number, tz = 'UTC'): ScheduleRecord {
  return {
    jobId: 'j1',
    destination: 'queue://q',
    headers: {
      destination: 'queue://q',
      persistent: true,
      priority: 4,
      timestamp: now,
      expiration: 0,
      properties: {},
    },
    body: Buffer.from('x'),
    delayMs: spec!.delayMs,
    periodMs: spec!.periodMs,
    repeat: spec!.repeat,
    cron: spec!.cron,
    fired: 0,
    createdAt: now,
    ...firstFiring(spec!, now, tz),
  };
}

/** Every due time of a job, by applying afterFiring until it is done or `max` are listed. */
function dueTimes(j: ScheduleRecord, max: number, tz = 'UTC'): number[] {
  const out: number[] = [];
  let cur: ScheduleRecord | null = j;
  while (cur !== null && out.length < max) {
    out.push(cur.nextDue);
    const next = afterFiring(cur, tz);
    cur = next === null ? null : { ...cur, ...next };
  }
  return out;
}

describe('schedule plan (ActiveMQ "Delay and Schedule Message Delivery")', () => {
  it('a delay fires once, delay ms after acceptance', () => {
    const spec = parseScheduleSpec({ AMQ_SCHEDULED_DELAY: '60000' }, 'UTC');
    expect(dueTimes(job(spec, T0), 10)).toEqual([T0 + 60_000]);
  });

  it('delay, then REPEAT more firings PERIOD ms apart (repeat 9 = 10 messages)', () => {
    const spec = parseScheduleSpec(
      { AMQ_SCHEDULED_DELAY: 30000, AMQ_SCHEDULED_PERIOD: 10000, AMQ_SCHEDULED_REPEAT: 9 },
      'UTC',
    );
    const times = dueTimes(job(spec, T0), 100);
    expect(times).toHaveLength(10);
    expect(times[0]).toBe(T0 + 30_000);
    expect(times[9]).toBe(T0 + 30_000 + 9 * 10_000);
  });

  it('a cron entry fires at every match (UTC), minute resolution', () => {
    const spec = parseScheduleSpec({ AMQ_SCHEDULED_CRON: '*/15 * * * *' }, 'UTC');
    expect(dueTimes(job(spec, T0), 4).map((t) => new Date(t).toISOString())).toEqual([
      '2026-03-01T10:15:00.000Z',
      '2026-03-01T10:30:00.000Z',
      '2026-03-01T10:45:00.000Z',
      '2026-03-01T11:00:00.000Z',
    ]);
  });

  it('cron with delay, period and repeat: each match starts a series (ActiveMQ JmsCronSchedulerTest)', () => {
    const spec = parseScheduleSpec(
      {
        AMQ_SCHEDULED_CRON: '* * * * *',
        AMQ_SCHEDULED_DELAY: 1000,
        AMQ_SCHEDULED_PERIOD: 500,
        AMQ_SCHEDULED_REPEAT: 9,
      },
      'UTC',
    );
    const times = dueTimes(job(spec, T0), 20);
    const m1 = Date.parse('2026-03-01T10:08:00Z');
    const m2 = Date.parse('2026-03-01T10:09:00Z');
    expect(times.slice(0, 10)).toEqual(Array.from({ length: 10 }, (_, i) => m1 + 1000 + i * 500));
    expect(times.slice(10, 20)).toEqual(Array.from({ length: 10 }, (_, i) => m2 + 1000 + i * 500));
  });

  it('a configured time zone moves the cron matches', () => {
    expect(new Date(cronNext('0 9 * * *', T0, 'UTC')).toISOString()).toBe('2026-03-02T09:00:00.000Z');
    expect(new Date(cronNext('0 9 * * *', T0, 'Europe/Berlin')).toISOString()).toBe(
      '2026-03-02T08:00:00.000Z',
    );
  });

  it('a due time long past (a takeover) is still the next firing: it fires at once, then the rest follow', () => {
    const spec = parseScheduleSpec(
      { AMQ_SCHEDULED_DELAY: 100, AMQ_SCHEDULED_PERIOD: 100, AMQ_SCHEDULED_REPEAT: 2 },
      'UTC',
    );
    const j = job(spec, T0);
    expect(dueTimes(j, 10)).toEqual([T0 + 100, T0 + 200, T0 + 300]);
  });
});

describe('parseScheduleSpec', () => {
  it.each([
    [{ AMQ_SCHEDULED_DELAY: '-1' }, 'AMQ_SCHEDULED_DELAY'],
    [{ AMQ_SCHEDULED_DELAY: 'soon' }, 'AMQ_SCHEDULED_DELAY'],
    [{ AMQ_SCHEDULED_DELAY: 1.5 }, 'AMQ_SCHEDULED_DELAY'],
    [{ AMQ_SCHEDULED_PERIOD: '1e3' }, 'AMQ_SCHEDULED_PERIOD'],
    [{ AMQ_SCHEDULED_REPEAT: '-2' }, 'AMQ_SCHEDULED_REPEAT'],
    [{ AMQ_SCHEDULED_REPEAT: true }, 'AMQ_SCHEDULED_REPEAT'],
    [{ AMQ_SCHEDULED_CRON: '* * * *' }, 'AMQ_SCHEDULED_CRON'],
    [{ AMQ_SCHEDULED_CRON: '0 0 * * * *' }, 'AMQ_SCHEDULED_CRON'],
    [{ AMQ_SCHEDULED_CRON: '61 * * * *' }, 'AMQ_SCHEDULED_CRON'],
    [{ AMQ_SCHEDULED_CRON: 'every day' }, 'AMQ_SCHEDULED_CRON'],
  ])('refuses %p naming %s', (props, header) => {
    let err: { code?: string; message?: string } | null = null;
    try {
      parseScheduleSpec(props, 'UTC');
    } catch (e) {
      err = e as Error & { code: string };
    }
    expect(err?.code).toBe('INVALID_ARGUMENT');
    expect(err?.message).toContain(header);
  });

  it('schedules nothing for a zero delay alone, an empty cron, or a message that carries scheduledJobId', () => {
    expect(parseScheduleSpec({ AMQ_SCHEDULED_DELAY: '0' }, 'UTC')).toBeNull();
    expect(parseScheduleSpec({ AMQ_SCHEDULED_CRON: ' ' }, 'UTC')).toBeNull();
    expect(parseScheduleSpec({ AMQ_SCHEDULED_DELAY: '10', scheduledJobId: 'x' }, 'UTC')).toBeNull();
    expect(parseScheduleSpec({ other: 1 }, 'UTC')).toBeNull();
  });

  it('takes numbers (native properties) and digit strings (STOMP headers)', () => {
    expect(parseScheduleSpec({ AMQ_SCHEDULED_DELAY: 5, AMQ_SCHEDULED_REPEAT: ' 2 ' }, 'UTC')).toEqual({
      delayMs: 5,
      periodMs: 0,
      repeat: 2,
      cron: null,
    });
  });
});
