import { CronExpressionParser } from 'cron-parser';
import type { ScheduleAdvance, ScheduleRecord } from '../store/store';
import type { ScheduleSpec } from './schedule-headers';

/**
 * When a job fires (ActiveMQ "Delay and Schedule Message Delivery"):
 *
 * - without a cron entry: first at accept time + AMQ_SCHEDULED_DELAY, then AMQ_SCHEDULED_REPEAT
 *   more times, AMQ_SCHEDULED_PERIOD ms apart; then the job is done;
 * - with a cron entry: at every time the entry matches; "if a repeat and period is set with a CRON
 *   entry, the scheduler will schedule delivery of the message for every time the CRON entry
 *   fires" — each match starts a series: match + delay, then `repeat` more, `period` apart
 *   (ActiveMQ's own test: cron `* * * * *`, delay 1000, period 500, repeat 9 → 10 messages a minute).
 *   The next series starts at the first match after the current series' match.
 *
 * Every due time fires once, also one that passed while no master served (it fires at once).
 */
export function cronNext(cron: string, afterMs: number, timeZone: string): number {
  return CronExpressionParser.parse(cron, { currentDate: new Date(afterMs), tz: timeZone })
    .next()
    .getTime();
}

/** The first firing of a job accepted at `now`. */
export function firstFiring(
  spec: ScheduleSpec,
  now: number,
  timeZone: string,
): Pick<ScheduleRecord, 'nextDue' | 'repeatsLeft' | 'cronTime'> {
  if (spec.cron === null) return { nextDue: now + spec.delayMs, repeatsLeft: spec.repeat, cronTime: 0 };
  const cronTime = cronNext(spec.cron, now, timeZone);
  return { nextDue: cronTime + spec.delayMs, repeatsLeft: spec.repeat, cronTime };
}

/** The row after the firing due at `job.nextDue`: its next firing, or null when the job is done. */
export function afterFiring(job: ScheduleRecord, timeZone: string): ScheduleAdvance | null {
  const fired = job.fired + 1;
  if (job.repeatsLeft > 0) {
    return {
      jobId: job.jobId,
      nextDue: job.nextDue + job.periodMs,
      repeatsLeft: job.repeatsLeft - 1,
      cronTime: job.cronTime,
      fired,
    };
  }
  if (job.cron === null) return null;
  const cronTime = cronNext(job.cron, job.cronTime, timeZone);
  return { jobId: job.jobId, nextDue: cronTime + job.delayMs, repeatsLeft: job.repeat, cronTime, fired };
}
