import { InvalidArgumentError, type Properties, type PropertyValue } from '@keel/protocol';
import { CronExpressionParser } from 'cron-parser';

/**
 * ActiveMQ's scheduling properties (org.apache.activemq.ScheduledMessage; ActiveMQ "Delay and
 * Schedule Message Delivery"), as STOMP SEND headers or native message properties.
 */
export const AMQ_SCHEDULED_DELAY = 'AMQ_SCHEDULED_DELAY';
export const AMQ_SCHEDULED_PERIOD = 'AMQ_SCHEDULED_PERIOD';
export const AMQ_SCHEDULED_REPEAT = 'AMQ_SCHEDULED_REPEAT';
export const AMQ_SCHEDULED_CRON = 'AMQ_SCHEDULED_CRON';
/** Set on every firing (and on a BROWSE reply); a message that carries it is sent at once, not scheduled. */
export const SCHEDULED_JOB_ID = 'scheduledJobId';
/** The management destination (ScheduledMessage.AMQ_SCHEDULER_MANAGEMENT_DESTINATION). */
export const AMQ_SCHEDULER_MANAGEMENT_DESTINATION = 'ActiveMQ.Scheduler.Management';
export const AMQ_SCHEDULER_ACTION = 'AMQ_SCHEDULER_ACTION';
export const AMQ_SCHEDULER_ACTION_START_TIME = 'ACTION_START_TIME';
export const AMQ_SCHEDULER_ACTION_END_TIME = 'ACTION_END_TIME';

export const SCHEDULING_PROPERTIES = [
  AMQ_SCHEDULED_DELAY,
  AMQ_SCHEDULED_PERIOD,
  AMQ_SCHEDULED_REPEAT,
  AMQ_SCHEDULED_CRON,
] as const;

/** What a send asks for: ActiveMQ's four values (cron null when absent or empty). */
export interface ScheduleSpec {
  delayMs: number;
  periodMs: number;
  repeat: number;
  cron: string | null;
}

/** The largest delay or period accepted: about 285 years, inside a safe integer of ms since the epoch. */
const MAX_MS = 9e12;

/**
 * A non-negative integer value of `name` (a STOMP header is a string of digits; a native property
 * a number or such a string), or 0 when absent. Throws INVALID_ARGUMENT naming the header.
 */
function nonNegativeInteger(name: string, value: PropertyValue | undefined, max: number): number {
  if (value === undefined || value === null) return 0;
  const n = typeof value === 'string' && /^\s*\d+\s*$/.test(value) ? Number(value) : value;
  if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 0 || n > max) {
    throw new InvalidArgumentError(
      `${name} must be an integer from 0 to ${max} (got ${JSON.stringify(value)}); nothing was stored`,
    );
  }
  return n;
}

/**
 * Check a 5-field cron entry (minute hour day-of-month month day-of-week, as ActiveMQ's CronParser
 * takes it), parsed by cron-parser's rules in `timeZone`. Throws INVALID_ARGUMENT naming the header.
 */
export function checkCron(cron: string, timeZone: string): void {
  const fields = cron.trim().split(/\s+/);
  const refuse = (why: string): never => {
    throw new InvalidArgumentError(
      `${AMQ_SCHEDULED_CRON} ${JSON.stringify(cron)} is not a valid 5-field cron entry: ${why}; nothing was stored`,
    );
  };
  if (fields.length !== 5) refuse(`${fields.length} fields`);
  try {
    CronExpressionParser.parse(cron.trim(), { tz: timeZone, currentDate: new Date() }).next();
  } catch (err) {
    refuse((err as Error).message);
  }
}

/** Whether any scheduling header is present (every send asks: a loop, no closure). */
function asksForSchedule(properties: Properties): boolean {
  for (let i = 0; i < SCHEDULING_PROPERTIES.length; i++)
    if (Object.hasOwn(properties, SCHEDULING_PROPERTIES[i]!)) return true;
  return false;
}

/**
 * The schedule a message asks for, or null when it asks for none: ActiveMQ's SchedulerBroker
 * schedules a message that has no `scheduledJobId` and a cron entry, a delay, a period or a repeat
 * (a delay of 0 and nothing else is an ordinary send). Every value present is checked, whether it
 * schedules or not; a bad one throws INVALID_ARGUMENT naming the header.
 */
export function parseScheduleSpec(properties: Properties | undefined, timeZone: string): ScheduleSpec | null {
  if (!properties || !asksForSchedule(properties)) return null;
  const delayMs = nonNegativeInteger(AMQ_SCHEDULED_DELAY, properties[AMQ_SCHEDULED_DELAY], MAX_MS);
  const periodMs = nonNegativeInteger(AMQ_SCHEDULED_PERIOD, properties[AMQ_SCHEDULED_PERIOD], MAX_MS);
  const repeat = nonNegativeInteger(AMQ_SCHEDULED_REPEAT, properties[AMQ_SCHEDULED_REPEAT], 2_147_483_647);
  const rawCron = properties[AMQ_SCHEDULED_CRON];
  if (rawCron !== undefined && rawCron !== null && typeof rawCron !== 'string') {
    throw new InvalidArgumentError(`${AMQ_SCHEDULED_CRON} must be a string (got ${JSON.stringify(rawCron)})`);
  }
  const cron = typeof rawCron === 'string' && rawCron.trim() !== '' ? rawCron.trim() : null;
  if (cron !== null) checkCron(cron, timeZone);
  if (Object.hasOwn(properties, SCHEDULED_JOB_ID)) return null;
  if (cron === null && delayMs === 0 && periodMs === 0 && repeat === 0) return null;
  return { delayMs, periodMs, repeat, cron };
}
