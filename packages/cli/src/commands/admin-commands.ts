/**
 * Operator commands that talk to a node's HTTP admin API (packages/admin): `keel status`,
 * `keel queues`, `keel browse`, `keel purge` and `keel handover`. Each prints a table for people, or
 * the API's JSON with `--json` for scripts. Errors are thrown as KeelErrors (the server's code and
 * message, see AdminApiError) and main.ts turns them into a one-line message and exit status 1.
 */
import { type Command, InvalidArgumentError as CommanderInvalidArgumentError, Option } from 'commander';
import type { Output } from '../output';
import {
  ADMIN_PASSWORD_ENV,
  ADMIN_URL_ENV,
  ADMIN_USER_ENV,
  AdminClient,
  type AdminConnectionOptions,
  type BrokerReply,
  type BrowseReply,
  type ClusterReply,
  DEFAULT_ADMIN_URL,
  type HandoverReply,
  type PurgeReply,
  type QueueListReply,
} from './admin-client';
import { formatBytes, formatDuration, formatFields, formatTable, previewLine } from './admin-format';

/** How many takeovers `keel status` shows. */
export const STATUS_TAKEOVER_LIMIT = 10;
/** Characters of each body `keel browse` shows in its table. */
export const BROWSE_PREVIEW_CHARS = 60;

export interface AdminCommandOptions extends AdminConnectionOptions {
  /** Print the API's JSON instead of tables. */
  json?: boolean;
  /** "Now" for relative times (tests). */
  now?: () => number;
}

export interface BrowseOptions extends AdminCommandOptions {
  /** How many messages (the API's default is 50, at most 1000). */
  limit?: number;
  /** How many to skip first. */
  offset?: number;
}

export interface StatusResult {
  broker: BrokerReply;
  cluster: ClusterReply;
}

export interface HandoverResult {
  handover: HandoverReply;
  /** The node's state after the hand-over; null when it could not be read. */
  broker: BrokerReply | null;
}

export interface AdminCommandActions {
  status(options: AdminCommandOptions, output: Output): Promise<unknown>;
  queues(options: AdminCommandOptions, output: Output): Promise<unknown>;
  browse(queue: string, options: BrowseOptions, output: Output): Promise<unknown>;
  purge(queue: string, options: AdminCommandOptions, output: Output): Promise<unknown>;
  handover(options: AdminCommandOptions, output: Output): Promise<unknown>;
}

const queuePath = (name: string): string => `/api/queues/${encodeURIComponent(name)}`;

function printJson(output: Output, value: unknown): void {
  output.out(`${JSON.stringify(value, null, 2)}\n`);
}

/** The epoch a node last served at, beside the cluster's (issue #18.3); older nodes do not send it. */
function nodeEpochText(b: BrokerReply): string | number {
  if (b.nodeEpoch === undefined) return 'unknown';
  return b.nodeEpoch === null ? 'never master' : b.nodeEpoch;
}

/** `127.0.0.1:5433 (read-write, of 127.0.0.1:5432, 127.0.0.1:5433)`: the host a pool uses. */
function postgresPoolText(p: NonNullable<BrokerReply['postgres']>[number]): string {
  const current = p.current ?? 'none yet';
  return p.hosts.length > 1 ? `${current} (${p.target}, of ${p.hosts.join(', ')})` : current;
}

/** `keel status`: GET /api/broker and /api/cluster. */
export async function runStatus(options: AdminCommandOptions, output: Output): Promise<StatusResult> {
  const client = new AdminClient(options);
  const [broker, cluster] = await Promise.all([
    client.get<BrokerReply>('/api/broker'),
    client.get<ClusterReply>('/api/cluster', { limit: STATUS_TAKEOVER_LIMIT }),
  ]);
  const result = { broker, cluster };
  if (options.json) {
    printJson(output, result);
    return result;
  }
  const now = (options.now ?? Date.now)();
  const b = broker;
  output.out(
    formatFields([
      ['node', b.name],
      ['cluster', b.cluster],
      ['role', `${b.role} (${b.readOnly ? 'read-only' : 'serving'})`],
      ['cluster epoch', b.epoch],
      ['node epoch', nodeEpochText(b)],
      ['lock holder', b.lockHolder ?? 'none known'],
      ...(b.locker ? [['locker', lockerText(b.locker)] as [string, string]] : []),
      ['uptime', `${formatDuration(b.uptimeSeconds * 1000)} (since ${b.startedAt})`],
      ['version', b.version],
      ['native', b.listeners.native ?? 'not listening'],
      ['stomp', b.listeners.stomp ?? 'not listening'],
      ['admin', b.listeners.admin],
      ...(b.postgres ?? []).map((p): [string, string] => [`postgres ${p.name}`, postgresPoolText(p)]),
    ]),
  );
  output.out(`\nnodes of cluster ${cluster.cluster} (master: ${cluster.master ?? 'none known'}):\n`);
  output.out(
    formatTable(
      ['NAME', 'ROLE', 'LAST SEEN'],
      cluster.nodes.map((n) => [
        n.name,
        n.role,
        n.lastSeen ? `${formatDuration(now - Date.parse(n.lastSeen))} ago` : null,
      ]),
    ),
  );
  if (cluster.takeovers.length === 0) {
    output.out('\nno takeovers recorded\n');
  } else {
    output.out('\nlast takeovers (newest first):\n');
    output.out(
      formatTable(
        ['EPOCH', 'NODE', 'AT', 'REASON'],
        cluster.takeovers.map((t) => [t.epoch, t.node, t.at, t.reason]),
        { right: [0] },
      ),
    );
  }
  return result;
}

/** `keel queues`: GET /api/queues. */
export async function runQueues(options: AdminCommandOptions, output: Output): Promise<QueueListReply> {
  const client = new AdminClient(options);
  const reply = await client.get<QueueListReply>('/api/queues');
  if (options.json) {
    printJson(output, reply);
    return reply;
  }
  if (reply.queues.length === 0) {
    output.out('no queues\n');
  } else {
    output.out(
      formatTable(
        ['NAME', 'DEPTH', 'ENQUEUED', 'DEQUEUED', 'CONSUMERS', 'IN-FLIGHT', 'OLDEST'],
        reply.queues.map((q) => [
          q.temporary ? `${q.name} (temporary)` : q.name,
          q.depth,
          q.enqueued,
          q.dequeued,
          q.consumers,
          q.inflight,
          q.oldestMessageAgeMs === null ? null : formatDuration(q.oldestMessageAgeMs),
        ]),
        { right: [1, 2, 3, 4, 5, 6] },
      ),
    );
  }
  if (reply.readOnly) output.out(readOnlyNote(client));
  return reply;
}

/** `keel browse QUEUE`: GET /api/queues/{name}/messages (never removes anything). */
export async function runBrowse(queue: string, options: BrowseOptions, output: Output): Promise<BrowseReply> {
  const client = new AdminClient(options);
  const reply = await client.get<BrowseReply>(`${queuePath(queue)}/messages`, {
    limit: options.limit,
    offset: options.offset,
  });
  if (options.json) {
    printJson(output, reply);
    return reply;
  }
  const n = reply.messages.length;
  if (n === 0) {
    output.out(
      reply.offset === 0
        ? `queue ${reply.queue} has no pending messages\n`
        : `no messages at offset ${reply.offset}\n`,
    );
  } else {
    output.out(
      formatTable(
        ['ID', 'PRIORITY', 'TIMESTAMP', 'REDELIVERED', 'SIZE', 'BODY'],
        reply.messages.map((m) => [
          m.id,
          m.priority,
          new Date(m.timestamp).toISOString(),
          m.redelivered ? `yes (${m.deliveryCount})` : 'no',
          formatBytes(m.bodySize),
          m.bodyEncoding === 'base64'
            ? `base64:${previewLine(m.bodyPreview, BROWSE_PREVIEW_CHARS - 7, m.bodyTruncated)}`
            : previewLine(m.bodyPreview, BROWSE_PREVIEW_CHARS, m.bodyTruncated),
        ]),
        { right: [0, 1, 4] },
      ),
    );
    output.out(`\nmessages ${reply.offset + 1}-${reply.offset + n} of queue ${reply.queue}`);
    output.out(n === reply.limit ? `; more may follow: --offset ${reply.offset + n}\n` : '\n');
  }
  if (reply.readOnly) output.out(readOnlyNote(client));
  return reply;
}

/** `keel purge QUEUE`: DELETE /api/queues/{name}/messages (messages in flight stay). */
export async function runPurge(
  queue: string,
  options: AdminCommandOptions,
  output: Output,
): Promise<PurgeReply> {
  const client = new AdminClient(options);
  const reply = await client.delete<PurgeReply>(`${queuePath(queue)}/messages`);
  if (options.json) {
    printJson(output, reply);
    return reply;
  }
  output.out(`purged ${reply.purged} message${reply.purged === 1 ? '' : 's'} from queue ${reply.queue}\n`);
  return reply;
}

/**
 * `keel handover`: POST /api/broker/handover. The master finishes its in-flight commits, releases
 * the lock and waits a while before it races again, so another node takes over; then the node's
 * new state is read back.
 */
export async function runHandover(options: AdminCommandOptions, output: Output): Promise<HandoverResult> {
  const client = new AdminClient(options);
  const handover = await client.post<HandoverReply>('/api/broker/handover');
  // The node stays up as a slave, so its admin API still answers; if it does not, say what we know.
  const broker = await client.get<BrokerReply>('/api/broker').catch(() => null);
  const result = { handover, broker };
  if (options.json) {
    printJson(output, result);
    return result;
  }
  output.out(
    `${handover.node} ${handover.handedOver ? 'handed over the master lock' : 'did not hand over'}\n`,
  );
  if (broker) {
    output.out(
      formatFields([
        ['node', broker.name],
        ['role', `${broker.role} (${broker.readOnly ? 'read-only' : 'serving'})`],
        ['cluster epoch', broker.epoch],
        ['node epoch', nodeEpochText(broker)],
        [
          'lock holder',
          broker.lockHolder && broker.lockHolder !== broker.name
            ? broker.lockHolder
            : 'not known yet (run keel status)',
        ],
      ]),
    );
  } else {
    output.out(`could not read the node's state afterwards from ${client.baseUrl}\n`);
  }
  return result;
}

function readOnlyNote(client: AdminClient): string {
  return `(read-only: ${client.baseUrl} is not the serving master; answered from the store, counters it does not keep show as -)\n`;
}

export const ADMIN_COMMAND_ACTIONS: AdminCommandActions = {
  status: runStatus,
  queues: runQueues,
  browse: runBrowse,
  purge: runPurge,
  handover: runHandover,
};

/** A commander parser for a non-negative integer option, with a minimum. */
function integerOption(min: number): (value: string) => number {
  return (value) => {
    if (!/^\d+$/.test(value) || Number(value) < min) {
      throw new CommanderInvalidArgumentError(`expected an integer >= ${min}`);
    }
    return Number(value);
  };
}

/** --admin, --user, --password and --json, shared by every admin command. */
function withAdminOptions(command: Command): Command {
  return command
    .option('--admin <url>', `admin API of the node (${ADMIN_URL_ENV}; default: ${DEFAULT_ADMIN_URL})`)
    .option('--user <name>', `admin API user, HTTP Basic (${ADMIN_USER_ENV})`)
    .option(
      '--password <password>',
      `admin API password (${ADMIN_PASSWORD_ENV}; prefer the variable: flags show in ps)`,
    )
    .option('--json', 'print the JSON the admin API answered, for scripts');
}

/** Adds status, queues, browse, purge and handover to the `keel` program. */
export function registerAdminCommands(program: Command, actions: AdminCommandActions, output: Output): void {
  withAdminOptions(
    program
      .command('status')
      .description("a node's role, epoch, lock holder, listeners, cluster nodes and takeovers"),
  ).action(async (opts: AdminCommandOptions) => {
    await actions.status(opts, output);
  });

  withAdminOptions(
    program
      .command('queues')
      .description('queues with depth, counters, consumers, in-flight and the age of the oldest message'),
  ).action(async (opts: AdminCommandOptions) => {
    await actions.queues(opts, output);
  });

  withAdminOptions(
    program
      .command('browse')
      .description('show the pending messages of a queue in delivery order (removes nothing)')
      .argument('<queue>', 'queue name, without queue://')
      .addOption(
        new Option('--limit <n>', 'how many messages (default: 50, at most 1000)').argParser(
          integerOption(1),
        ),
      )
      .addOption(
        new Option('--offset <n>', 'skip this many messages first (default: 0)').argParser(integerOption(0)),
      ),
  ).action(async (queue: string, opts: BrowseOptions) => {
    await actions.browse(queue, opts, output);
  });

  withAdminOptions(
    program
      .command('purge')
      .description('remove every pending message of a queue that is not in flight (needs the admin user)')
      .argument('<queue>', 'queue name, without queue://'),
  ).action(async (queue: string, opts: AdminCommandOptions) => {
    await actions.purge(queue, opts, output);
  });

  withAdminOptions(
    program
      .command('handover')
      .description(
        'planned hand-over: the master releases its lock so that another node takes over (needs the admin user)',
      ),
  ).action(async (opts: AdminCommandOptions) => {
    await actions.handover(opts, output);
  });
}

/**
 * `file /shared/keel (lock file: n1 on host h, pid 123, epoch 4, since …)`, or just `row`; with a
 * lease, `; lease of n1 renewed 0.4 s ago, runs out in 1.1 s`.
 */
function lockerText(locker: NonNullable<BrokerReply['locker']>, now = Date.now()): string {
  const lease = locker.lease
    ? `; lease of ${locker.lease.holder ?? 'nobody'} renewed ${seconds(now - Date.parse(locker.lease.renewedAt))} ago, ${
        Date.parse(locker.lease.expiresAt) >= now
          ? `runs out in ${seconds(Date.parse(locker.lease.expiresAt) - now)}`
          : `ran out ${seconds(now - Date.parse(locker.lease.expiresAt))} ago`
      }`
    : '';
  if (!locker.directory) return `${locker.kind}${lease}`;
  const h = locker.holder;
  const holder = h
    ? `lock file names ${h.name} on host ${h.host}, pid ${h.pid}, epoch ${h.epoch}, since ${h.acquiredAt}`
    : 'no holder recorded';
  return `${locker.kind} ${locker.directory} (${holder})${lease}`;
}

function seconds(ms: number): string {
  return `${(Math.max(0, ms) / 1000).toFixed(1)} s`;
}
