import {
  type Destination,
  InvalidArgumentError,
  KeelError,
  type Message,
  messageHeaders,
  type Properties,
} from '@keel/protocol';
import type { Clock, Logger } from '../ports';
import type { ScheduleCursor, ScheduleRecord, Store, StoreBatch } from '../store/store';
import {
  AMQ_SCHEDULER_ACTION,
  AMQ_SCHEDULER_ACTION_END_TIME,
  AMQ_SCHEDULER_ACTION_START_TIME,
  AMQ_SCHEDULER_MANAGEMENT_DESTINATION,
  parseScheduleSpec,
  SCHEDULED_JOB_ID,
  SCHEDULING_PROPERTIES,
  type ScheduleSpec,
} from './schedule-headers';
import { afterFiring, firstFiring } from './schedule-plan';

/** What the scheduler needs from the broker (Broker implements it). */
export interface SchedulerHost {
  readonly store: Store;
  readonly clock: Clock;
  readonly logger: Logger;
  /** Add to the next commit round; resolves after it commits. */
  writeSchedules(mutate: (b: StoreBatch) => void): Promise<void>;
  /**
   * Send a firing's message as an ordinary send; `mutate` (the job's advance) joins the commit round
   * that stores the message. Resolves once both are durable.
   */
  sendFired(message: Message, mutate: (b: StoreBatch) => void): Promise<void>;
  /** Send a management reply from inside the broker. */
  sendReply(message: Message): Promise<void>;
}

export interface MessageSchedulerOptions {
  /** Time zone of cron entries (IANA name); default UTC. */
  timeZone?: string;
  /** Due jobs read per page; default 500. */
  pageSize?: number;
  /** Longest sleep between looks at the store when nothing is due; default 1000 ms. */
  maxIdleMs?: number;
  /** After a failed page or firing, wait this long; default 1000 ms. */
  retryMs?: number;
  /** Each firing, with its lag (committed − due, ms). */
  onFired?: (lagMs: number) => void;
}

export const DEFAULT_SCHEDULER_TIME_ZONE = 'UTC';
export const DEFAULT_SCHEDULER_PAGE_SIZE = 500;
export const DEFAULT_SCHEDULER_MAX_IDLE_MS = 1000;

/** A job as the admin API and `keel scheduled` show it. */
export interface ScheduledJobInfo {
  jobId: string;
  destination: string;
  nextDue: string;
  delayMs: number;
  periodMs: number;
  repeat: number;
  repeatsLeft: number;
  cron: string | null;
  fired: number;
  createdAt: string;
  bodySize: number;
}

export function scheduledJobInfo(j: ScheduleRecord): ScheduledJobInfo {
  return {
    jobId: j.jobId,
    destination: j.destination,
    nextDue: new Date(j.nextDue).toISOString(),
    delayMs: j.delayMs,
    periodMs: j.periodMs,
    repeat: j.repeat,
    repeatsLeft: j.repeatsLeft,
    cron: j.cron,
    fired: j.fired,
    createdAt: new Date(j.createdAt).toISOString(),
    bodySize: j.body.length,
  };
}

/** Whether `d` is ActiveMQ's scheduler management destination (as a queue or a topic). */
export function isSchedulerManagement(d: Destination): boolean {
  return d.name === AMQ_SCHEDULER_MANAGEMENT_DESTINATION && (d.type === 'queue' || d.type === 'topic');
}

/**
 * Scheduled delivery (DESIGN.md wave 2, "Schedules are rows"): a send that asks for a schedule
 * becomes a row in the store, committed before the send is answered; on the master one loop pages
 * the rows that are due, earliest first (no timer per job, so a million pending jobs cost disk, not
 * memory), and turns each firing into an ordinary persistent send whose commit round also advances
 * or deletes the row, fenced by the epoch like every write — a takeover neither loses nor doubles a
 * firing, and a due time passed meanwhile fires as soon as the new master's loop starts.
 */
export class MessageScheduler {
  readonly timeZone: string;
  private readonly host: SchedulerHost;
  private readonly pageSize: number;
  private readonly maxIdleMs: number;
  private readonly retryMs: number;
  private readonly onFired: ((lagMs: number) => void) | undefined;
  private running = false;
  private loopDone: Promise<void> | null = null;
  private sleeping: { until: number; timer: NodeJS.Timeout; wake: () => void } | null = null;
  /** Jobs pending in the store (counted at start, then kept up to date), for the metrics. */
  private pendingCount = 0;
  private firedCount = 0;

  constructor(host: SchedulerHost, options: MessageSchedulerOptions = {}) {
    this.host = host;
    this.timeZone = options.timeZone ?? DEFAULT_SCHEDULER_TIME_ZONE;
    this.pageSize = options.pageSize ?? DEFAULT_SCHEDULER_PAGE_SIZE;
    this.maxIdleMs = options.maxIdleMs ?? DEFAULT_SCHEDULER_MAX_IDLE_MS;
    this.retryMs = options.retryMs ?? 1000;
    this.onFired = options.onFired;
    try {
      new Intl.DateTimeFormat('en', { timeZone: this.timeZone });
    } catch {
      throw new InvalidArgumentError(
        `scheduler time zone ${JSON.stringify(this.timeZone)} is not a known time zone`,
      );
    }
    if (!(Number.isInteger(this.pageSize) && this.pageSize > 0)) {
      throw new InvalidArgumentError('scheduler pageSize must be a positive integer');
    }
  }

  get isRunning(): boolean {
    return this.running;
  }

  /** Pending jobs and firings so far (this master's), for the metrics. */
  stats(): { pending: number; fired: number } {
    return { pending: this.pendingCount, fired: this.firedCount };
  }

  /** The schedule a message asks for, or null (throws INVALID_ARGUMENT naming a bad header). */
  parse(message: Pick<Message, 'properties'>): ScheduleSpec | null {
    return parseScheduleSpec(message.properties, this.timeZone);
  }

  /**
   * Store a job for `message` (its id, already assigned, is the job id); resolves once the row is
   * committed — the producer's receipt waits for this. `extra` joins the same commit (the
   * producer's sequence for duplicate detection).
   */
  async accept(message: Message, spec: ScheduleSpec, extra?: (b: StoreBatch) => void): Promise<void> {
    const job = this.job(message, spec);
    await this.host.writeSchedules((b) => {
      b.schedules.push({ op: 'insert', schedule: job });
      extra?.(b);
    });
    this.stored(job);
  }

  /**
   * The job row for a scheduled send inside a transaction (ActiveMQ stores it at commit): the broker
   * puts `{ op: 'insert', schedule: job }` in the commit's batch, and calls `stored(job)` once it
   * committed; a rollback drops it with the rest of the transaction.
   */
  job(message: Message, spec: ScheduleSpec): ScheduleRecord {
    const now = this.host.clock.now();
    const first = firstFiring(spec, now, this.timeZone);
    return {
      jobId: message.messageId!,
      destination: message.destination,
      headers: messageHeaders(message),
      body: message.body,
      delayMs: spec.delayMs,
      periodMs: spec.periodMs,
      repeat: spec.repeat,
      cron: spec.cron,
      fired: 0,
      createdAt: now,
      ...first,
    };
  }

  /** A job's insert committed: count it and wake the loop if it is due before its next look. */
  stored(job: ScheduleRecord): void {
    this.pendingCount += 1;
    this.wake(job.nextDue);
  }

  // ----- the loop (master only) ------------------------------------------------------------------

  /** Start firing due jobs (the node calls this once it serves as master). */
  async start(): Promise<void> {
    if (this.running) return;
    this.running = true;
    this.pendingCount = await this.host.store.countSchedules().catch(() => 0);
    this.loopDone = this.loop();
  }

  /** Stop firing; resolves when the firings in flight have settled. */
  async stop(): Promise<void> {
    this.running = false;
    this.wake(Number.NEGATIVE_INFINITY);
    await this.loopDone;
    this.loopDone = null;
  }

  private async loop(): Promise<void> {
    while (this.running) {
      try {
        const now = this.host.clock.now();
        const due = await this.host.store.dueSchedules(now, this.pageSize);
        if (!this.running) break;
        if (due.length > 0) {
          // Every firing of the page settles before the next page is read: a job is never read
          // again before its advance committed.
          const settled = await Promise.allSettled(due.map((job) => this.fire(job)));
          const failed = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
          if (failed) throw failed.reason;
          continue;
        }
        const next = await this.host.store.nextScheduleDue();
        await this.sleepUntil(Math.min(next ?? Number.POSITIVE_INFINITY, now + this.maxIdleMs));
      } catch (err) {
        if (KeelError.isInstance(err) && (err.code === 'FENCED' || err.code === 'NOT_MASTER')) {
          this.host.logger.warn({ err: err.message }, 'scheduler stopped: not the master');
          this.running = false;
          break;
        }
        this.host.logger.warn({ err: (err as Error).message }, 'scheduled firing failed; retrying');
        await this.sleepUntil(this.host.clock.now() + this.retryMs);
      }
    }
  }

  /** One firing: a new message to the job's destination, and the row advanced, in one commit. */
  private async fire(job: ScheduleRecord): Promise<void> {
    const next = afterFiring(job, this.timeZone);
    const write = (b: StoreBatch): void => {
      b.schedules.push(next === null ? { op: 'delete', jobId: job.jobId } : { op: 'advance', ...next });
    };
    try {
      await this.host.sendFired(firingMessage(job, this.host.clock.now()), write);
    } catch (err) {
      // A destination refused for good (its message can never be sent): drop the job, say so.
      if (KeelError.isInstance(err) && err.code === 'INVALID_ARGUMENT') {
        this.host.logger.error({ jobId: job.jobId, err: err.message }, 'scheduled job refused; removed');
        await this.host.writeSchedules((b) => b.schedules.push({ op: 'delete', jobId: job.jobId }));
        this.pendingCount = Math.max(0, this.pendingCount - 1);
        return;
      }
      throw err;
    }
    this.firedCount += 1;
    if (next === null) this.pendingCount = Math.max(0, this.pendingCount - 1);
    this.onFired?.(Math.max(0, this.host.clock.now() - job.nextDue));
  }

  private sleepUntil(until: number): Promise<void> {
    if (!this.running) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const wake = (): void => {
        if (this.sleeping?.wake !== wake) return;
        clearTimeout(this.sleeping.timer);
        this.sleeping = null;
        resolve();
      };
      const ms = Math.max(0, until - this.host.clock.now());
      this.sleeping = { until, timer: setTimeout(wake, ms), wake };
    });
  }

  /** A job due at `due` was added (or the loop must stop): end a sleep that would outlast it. */
  private wake(due: number): void {
    if (this.sleeping && due < this.sleeping.until) this.sleeping.wake();
  }

  // ----- management (admin API, CLI, ActiveMQ.Scheduler.Management) ------------------------------

  async list(cursor: ScheduleCursor | null, limit: number): Promise<ScheduleRecord[]> {
    return this.host.store.pageSchedules(cursor, limit);
  }

  async get(jobId: string): Promise<ScheduleRecord | null> {
    return this.host.store.getSchedule(jobId);
  }

  /** Remove a job; false when there was none. */
  async cancel(jobId: string): Promise<boolean> {
    const job = await this.host.store.getSchedule(jobId);
    if (job === null) return false;
    await this.host.writeSchedules((b) => b.schedules.push({ op: 'delete', jobId }));
    this.pendingCount = Math.max(0, this.pendingCount - 1);
    return true;
  }

  /**
   * A message sent to ActiveMQ.Scheduler.Management: `AMQ_SCHEDULER_ACTION` BROWSE (every job, or
   * those due in [ACTION_START_TIME, ACTION_END_TIME], sent to the message's reply-to, each with
   * `scheduledJobId`), REMOVE (the job named by `scheduledJobId`) or REMOVEALL (every job, or those
   * in the time range). Resolves when done (removals committed, replies sent).
   */
  async manage(message: Message): Promise<void> {
    const props = message.properties ?? {};
    const action = props[AMQ_SCHEDULER_ACTION];
    const range = timeRange(props);
    switch (action) {
      case 'BROWSE': {
        if (!message.replyTo) {
          throw new InvalidArgumentError(`${AMQ_SCHEDULER_ACTION} BROWSE needs a reply-to destination`);
        }
        let cursor: ScheduleCursor | null = null;
        for (;;) {
          const page = await this.host.store.pageSchedules(cursor, this.pageSize, range);
          for (const job of page) await this.host.sendReply(browseReply(job, message.replyTo));
          if (page.length < this.pageSize) return;
          const last = page[page.length - 1]!;
          cursor = { nextDue: last.nextDue, jobId: last.jobId };
        }
      }
      case 'REMOVE': {
        const jobId = props[SCHEDULED_JOB_ID];
        if (typeof jobId !== 'string' || jobId === '') {
          throw new InvalidArgumentError(
            `${AMQ_SCHEDULER_ACTION} REMOVE needs the ${SCHEDULED_JOB_ID} of the job`,
          );
        }
        await this.cancel(jobId);
        return;
      }
      case 'REMOVEALL': {
        const r = range ?? { from: Number.MIN_SAFE_INTEGER, to: Number.MAX_SAFE_INTEGER };
        await this.host.writeSchedules((b) => b.schedules.push({ op: 'deleteRange', ...r }));
        this.pendingCount = await this.host.store.countSchedules().catch(() => this.pendingCount);
        return;
      }
      default:
        throw new InvalidArgumentError(
          `${AMQ_SCHEDULER_ACTION} must be BROWSE, REMOVE or REMOVEALL (got ${JSON.stringify(action ?? null)})`,
        );
    }
  }
}

/** ACTION_START_TIME / ACTION_END_TIME (ms since the epoch), when either is given. */
function timeRange(props: Properties): { from: number; to: number } | undefined {
  const read = (name: string, fallback: number): number => {
    const v = props[name];
    if (v === undefined || v === null || v === '') return fallback;
    const n = Number(v);
    if (!Number.isSafeInteger(n))
      throw new InvalidArgumentError(`${name} must be ms since the epoch (got ${v})`);
    return n;
  };
  if (
    !Object.hasOwn(props, AMQ_SCHEDULER_ACTION_START_TIME) &&
    !Object.hasOwn(props, AMQ_SCHEDULER_ACTION_END_TIME)
  )
    return undefined;
  return {
    from: read(AMQ_SCHEDULER_ACTION_START_TIME, Number.MIN_SAFE_INTEGER),
    to: read(AMQ_SCHEDULER_ACTION_END_TIME, Number.MAX_SAFE_INTEGER),
  };
}

/**
 * The message a firing sends (ActiveMQ SchedulerBroker.scheduledJob): the job's message with
 * `scheduledJobId` set and the AMQ_SCHEDULED_* properties removed (so it is not scheduled again),
 * a new message id, no producer identity (it is the broker's send), and a time to live counted
 * from the firing.
 */
export function firingMessage(job: ScheduleRecord, now: number): Message {
  const properties: Properties = { ...job.headers.properties };
  for (const p of SCHEDULING_PROPERTIES) delete properties[p];
  properties[SCHEDULED_JOB_ID] = job.jobId;
  const message: Message = { ...job.headers, properties, body: job.body };
  delete message.messageId;
  delete message.producerId;
  delete message.producerSeq;
  if (message.timestamp > 0 && message.expiration > 0) {
    const ttl = message.expiration - message.timestamp;
    if (ttl > 0) message.expiration = now + ttl;
    message.timestamp = now;
  }
  return message;
}

/** A BROWSE reply: the job's message to the reply-to, non-persistent, with its `scheduledJobId`. */
function browseReply(job: ScheduleRecord, replyTo: string): Message {
  const message: Message = {
    ...job.headers,
    destination: replyTo,
    persistent: false,
    expiration: 0,
    properties: { ...job.headers.properties, [SCHEDULED_JOB_ID]: job.jobId },
    body: job.body,
  };
  delete message.messageId;
  delete message.producerId;
  delete message.producerSeq;
  return message;
}
