/**
 * `keel scheduled`: the scheduled-delivery jobs (AMQ_SCHEDULED_*) of a cluster, through the master's
 * admin API: `keel scheduled` (or `keel scheduled list`) lists them earliest due first, a page at a
 * time (`--limit`, `--after`); `keel scheduled cancel ID` cancels one (needs the admin user).
 */
import type { ScheduledJobInfo } from '@keel/core';
import { type Command, InvalidArgumentError as CommanderInvalidArgumentError } from 'commander';
import type { Output } from '../output';
import {
  ADMIN_PASSWORD_ENV,
  ADMIN_URL_ENV,
  ADMIN_USER_ENV,
  AdminClient,
  type AdminConnectionOptions,
  DEFAULT_ADMIN_URL,
} from './admin-client';
import { formatTable } from './admin-format';

/** A job as the admin API answers it (core's ScheduledJobInfo over JSON). */
export type ScheduledJobReply = ScheduledJobInfo;

export interface ScheduledListReply {
  jobs: ScheduledJobReply[];
  next: string | null;
}

export interface ScheduledOptions extends AdminConnectionOptions {
  json?: boolean;
  limit?: number;
  after?: string;
}

/** `keel scheduled [list]`: GET /api/scheduled. */
export async function runScheduledList(
  options: ScheduledOptions,
  output: Output,
): Promise<ScheduledListReply> {
  const client = new AdminClient(options);
  const query = new URLSearchParams();
  if (options.limit !== undefined) query.set('limit', String(options.limit));
  if (options.after !== undefined) query.set('after', options.after);
  const qs = query.toString();
  const reply = await client.get<ScheduledListReply>(`/api/scheduled${qs ? `?${qs}` : ''}`);
  if (options.json) {
    output.out(`${JSON.stringify(reply, null, 2)}\n`);
    return reply;
  }
  if (reply.jobs.length === 0) output.out('no scheduled jobs\n');
  else
    output.out(
      formatTable(
        ['JOB', 'DESTINATION', 'NEXT DUE', 'SCHEDULE', 'LEFT', 'FIRED', 'BYTES'],
        reply.jobs.map((j) => [
          j.jobId,
          j.destination,
          j.nextDue,
          scheduleText(j),
          j.cron === null ? j.repeatsLeft : 'cron',
          j.fired,
          j.bodySize,
        ]),
        { right: [4, 5, 6] },
      ),
    );
  if (reply.next !== null) output.out(`more may follow: --after ${reply.next}\n`);
  return reply;
}

/** `keel scheduled cancel ID`: DELETE /api/scheduled/{id}. */
export async function runScheduledCancel(
  id: string,
  options: ScheduledOptions,
  output: Output,
): Promise<{ cancelled: string }> {
  const client = new AdminClient(options);
  const reply = await client.delete<{ cancelled: string }>(`/api/scheduled/${encodeURIComponent(id)}`);
  if (options.json) output.out(`${JSON.stringify(reply, null, 2)}\n`);
  else output.out(`cancelled scheduled job ${reply.cancelled}\n`);
  return reply;
}

/** `cron 0 * * * *, delay 1000 ms, repeat 9 every 500 ms` — what ActiveMQ's four headers asked for. */
function scheduleText(j: ScheduledJobReply): string {
  const parts: string[] = [];
  if (j.cron !== null) parts.push(`cron ${j.cron}`);
  if (j.delayMs > 0) parts.push(`delay ${j.delayMs} ms`);
  if (j.repeat > 0) parts.push(`repeat ${j.repeat} every ${j.periodMs} ms`);
  return parts.join(', ') || 'once';
}

/** Adds `keel scheduled [list | cancel ID]` to the program. */
export function registerScheduledCommand(program: Command, output: Output): void {
  program
    .command('scheduled')
    .description('scheduled-delivery jobs (AMQ_SCHEDULED_*): list them, earliest due first, or cancel one')
    .argument('[action]', 'list (default) or cancel')
    .argument('[id]', 'the job to cancel (its scheduledJobId)')
    .option('--limit <n>', 'jobs per page (default: 100, at most 1000)', (v: string) => {
      if (!/^\d+$/.test(v) || Number(v) < 1)
        throw new CommanderInvalidArgumentError('expected an integer >= 1');
      return Number(v);
    })
    .option('--after <cursor>', 'the page after this cursor (printed under a full page)')
    .option('--admin <url>', `admin API of the master (${ADMIN_URL_ENV}; default: ${DEFAULT_ADMIN_URL})`)
    .option('--user <name>', `admin API user, HTTP Basic (${ADMIN_USER_ENV})`)
    .option('--password <password>', `admin API password (${ADMIN_PASSWORD_ENV}; prefer the variable)`)
    .option('--json', 'print the JSON the admin API answered, for scripts')
    .action(async (action: string | undefined, id: string | undefined, opts: ScheduledOptions) => {
      if (action === undefined || action === 'list') {
        await runScheduledList(opts, output);
        return;
      }
      if (action === 'cancel' && id !== undefined) {
        await runScheduledCancel(id, opts, output);
        return;
      }
      throw new CommanderInvalidArgumentError(
        'expected `keel scheduled [list]` or `keel scheduled cancel ID`',
      );
    });
}
