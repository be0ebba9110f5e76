/**
 * The `keel` command line: one commander program, built by a function so tests can parse argument
 * lists without running anything (pass `actions`) and capture help and errors (pass `output`).
 * Commands that are not implemented are not registered: `keel --help` lists what works.
 */

import {
  DEFAULT_ADMIN_PORT,
  DEFAULT_CLUSTER,
  DEFAULT_HOST,
  DEFAULT_LOCK_ACQUIRE_SLEEP_INTERVAL,
  DEFAULT_LOCK_KEEP_ALIVE_PERIOD,
  DEFAULT_LOCKER,
  DEFAULT_LOG_LEVEL,
  DEFAULT_PORT,
  DEFAULT_SSL_PORT,
  DEFAULT_STOMP_PORT,
  DEFAULT_STOMP_SSL_PORT,
} from '@keel/server';
import { Command, Option } from 'commander';
import {
  ADMIN_COMMAND_ACTIONS,
  type AdminCommandActions,
  registerAdminCommands,
} from './commands/admin-commands';
import { benchCommand } from './commands/bench';
import { type BrokerOptions, runBroker } from './commands/broker';
import { type ConsumeOptions, consumeCommand } from './commands/consume';
import { drillCommand } from './commands/drill';
import { type PgFailoverDrillOptions, pgFailoverDrillCommand } from './commands/drill-pg-failover';
import { type PgSoakOptions, pgSoakCommand } from './commands/drill-pg-soak';
import { type HashPasswordOptions, hashPasswordCommand } from './commands/hash-password';
import { type MigrateOptions, runMigrate } from './commands/migrate';
import { type ProduceOptions, produceCommand } from './commands/produce';
import { registerScheduledCommand } from './commands/scheduled-command';
import { DEFAULT_START_DIR, runStart, type StartOptions } from './commands/start';
import { addLimitOptions } from './limit-options';
import { type Output, processOutput } from './output';

export interface CommandActions extends AdminCommandActions {
  migrate(options: MigrateOptions, output: Output): Promise<unknown>;
  hashPassword(options: HashPasswordOptions, output: Output): Promise<unknown>;
  broker(options: BrokerOptions, output: Output): Promise<unknown>;
  start(options: StartOptions, output: Output): Promise<unknown>;
  produce(options: ProduceOptions, output: Output): Promise<unknown>;
  consume(options: ConsumeOptions, output: Output): Promise<unknown>;
  drill(options: PgFailoverDrillOptions & PgSoakOptions, output: Output): Promise<unknown>;
  bench(args: string[], output: Output): Promise<unknown>;
}

export interface BuildProgramOptions {
  /** Replace what the commands do (tests). */
  actions?: Partial<CommandActions>;
  /** Where commands, help and errors write; defaults to the process's stdout/stderr. */
  output?: Output;
  /** Throw a CommanderError instead of calling process.exit on --help, --version and usage errors. */
  exitOverride?: boolean;
}

export const VERSION = '0.1.0';

/** Collects a repeatable option's values. */
function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

export function buildProgram(options: BuildProgramOptions = {}): Command {
  const output = options.output ?? processOutput();
  const actions: CommandActions = {
    migrate: runMigrate,
    hashPassword: hashPasswordCommand,
    broker: runBroker,
    start: runStart,
    produce: produceCommand,
    consume: consumeCommand,
    drill: (opts, out) =>
      opts.mode === 'pg-failover'
        ? pgFailoverDrillCommand(opts, out)
        : opts.mode === 'pg-soak'
          ? pgSoakCommand(opts, out)
          : drillCommand(opts, out),
    bench: benchCommand,
    ...ADMIN_COMMAND_ACTIONS,
    ...options.actions,
  };

  const program = new Command('keel')
    .description("Keel: a message broker with ActiveMQ Classic's high-availability models on PostgreSQL")
    .version(VERSION, '-V, --version')
    .showHelpAfterError('(run with --help for usage)')
    // Options after a command belong to it (`keel bench` passes them through unchanged).
    .enablePositionalOptions()
    .configureOutput({ writeOut: output.out, writeErr: output.err });
  if (options.exitOverride) program.exitOverride();

  program
    .command('start')
    .description(
      'start a local playground: an embedded PostgreSQL in ./.keel and two broker nodes (master and slave) in cluster "local"; a port given by flag or variable must be free, a busy default moves to the next free port',
    )
    .option('--dir <path>', 'where the playground keeps its data and logs', DEFAULT_START_DIR)
    .option(
      '--port <port>',
      `native protocol port of node-a; node-b takes the next free one (KEEL_PORT; default: ${DEFAULT_PORT}, or the next free one above)`,
    )
    .option(
      '--stomp-port <port>',
      `STOMP port of node-a; node-b takes the next free one (KEEL_STOMP_PORT; default: ${DEFAULT_STOMP_PORT}, or the next free one above)`,
    )
    .option(
      '--admin-port <port>',
      `HTTP admin port of node-a; node-b takes the next free one (KEEL_ADMIN_PORT; default: ${DEFAULT_ADMIN_PORT}, or the next free one above)`,
    )
    .option(
      '--pg-port <port>',
      'port of the embedded PostgreSQL (KEEL_PG_PORT; default: the one this directory used last time if free, else any free port)',
    )
    .option(
      '--shared <dir>',
      'shared-storage master/slave instead of the embedded PostgreSQL: the nodes lock <dir>/lock (--locker file) and the master runs PostgreSQL on <dir>/store (--store-dir)',
    )
    .option(
      '--tls',
      'also TLS: a throwaway CA and certificates in <dir>/tls, ssl:// and stomp+ssl:// listeners (from 61617 and 61612), https admin API; prints where the CA is',
    )
    .addOption(logLevelOption('KEEL_LOG_LEVEL; '))
    .action(async (opts: StartOptions) => {
      await actions.start(opts, output);
    });

  program
    .command('migrate')
    .description('apply the SQL migrations to the message database and create and migrate its lock database')
    .option('--db <url>', 'Postgres URL of the message database (KEEL_DB)')
    .option(
      '--lock-db <url>',
      'Postgres URL of the lock database (KEEL_LOCK_DB; default: <database>_lock on the same server)',
    )
    .option('--config <file>', 'configuration file, YAML or JSON (KEEL_CONFIG)')
    .action(async (opts: MigrateOptions) => {
      await actions.migrate(opts, output);
    });

  program
    .command('hash-password')
    .description(
      "read a password from standard input and print its scrypt hash for a user's passwordHash in the configuration file",
    )
    .action(async () => {
      await actions.hashPassword({}, output);
    });

  // The limits.* settings as flags (limit-options.ts, issue #23.3).
  addLimitOptions(program.command('broker'))
    .description(
      "run a broker node: it serves clients while it holds its cluster's lock, and waits as a slave otherwise",
    )
    .option('--config <file>', 'configuration file, YAML or JSON (KEEL_CONFIG)')
    .option('--db <url>', 'Postgres URL of the message database (KEEL_DB, required)')
    .option(
      '--lock-db <url>',
      'Postgres URL of the lock database (KEEL_LOCK_DB; default: <database>_lock on the same server)',
    )
    .option('--name <name>', 'node name (KEEL_NAME; default: <hostname>-<port>)')
    .option(
      '--cluster <name>',
      `cluster name: nodes of one cluster share one lock (KEEL_CLUSTER; default: "${DEFAULT_CLUSTER}")`,
    )
    .option('--host <host>', `address to listen on (KEEL_HOST; default: ${DEFAULT_HOST})`)
    .option('--port <port>', `native protocol port, 0 for any (KEEL_PORT; default: ${DEFAULT_PORT})`)
    .option(
      '--stomp-port <port>',
      `STOMP 1.2 port, 0 or false to disable (KEEL_STOMP_PORT; default: ${DEFAULT_STOMP_PORT})`,
    )
    .option(
      '--admin-port <port>',
      `HTTP admin API port, 0 for any (KEEL_ADMIN_PORT; default: ${DEFAULT_ADMIN_PORT})`,
    )
    .option(
      '--ssl-port <port>',
      `native protocol over TLS (ssl://), 0 or false to disable (KEEL_SSL_PORT; default with --tls-cert: ${DEFAULT_SSL_PORT})`,
    )
    .option(
      '--stomp-ssl-port <port>',
      `STOMP over TLS (stomp+ssl://), 0 or false to disable (KEEL_STOMP_SSL_PORT; default with --tls-cert: ${DEFAULT_STOMP_SSL_PORT})`,
    )
    .option('--tls-cert <file>', "the node's certificate, PEM; turns TLS on with --tls-key (KEEL_TLS_CERT)")
    .option('--tls-key <file>', 'its private key, PEM (KEEL_TLS_KEY)')
    .option(
      '--tls-ca <file>',
      'CA certificate(s), PEM: signs client certificates (--need-client-auth) and ssl:// network peers (KEEL_TLS_CA)',
    )
    .option(
      '--need-client-auth',
      "ssl:// and stomp+ssl:// refuse clients without a certificate signed by --tls-ca (ActiveMQ's needClientAuth; KEEL_NEED_CLIENT_AUTH)",
    )
    .option(
      '--admin-https <bool>',
      'with --tls-cert: the admin API answers https with the same certificate (KEEL_ADMIN_HTTPS; default: true)',
    )
    .option(
      '--advertised-url <url>',
      'a client URL this node announces, repeatable (KEEL_ADVERTISED_URLS)',
      collect,
    )
    .option('--user <name:password>', 'a client user, repeatable (KEEL_USERS)', collect)
    .option('--admin-user <name>', 'admin API user (KEEL_ADMIN_USER)')
    .option(
      '--admin-password <password>',
      'admin API password (KEEL_ADMIN_PASSWORD; prefer the variable: flags show in ps)',
    )
    .option('--admin-read-auth', 'the admin API read routes need credentials too (KEEL_ADMIN_READ_AUTH)')
    .option(
      '--scheduler-time-zone <zone>',
      'IANA time zone AMQ_SCHEDULED_CRON expressions are evaluated in (KEEL_SCHEDULER_TIME_ZONE; default: UTC)',
    )
    .option(
      '--allow-link-stealing',
      "a client id already connected is taken over by the newer connection instead of refused (ActiveMQ's allowLinkStealing; KEEL_ALLOW_LINK_STEALING)",
    )
    .addOption(
      new Option(
        '--locker <kind>',
        `master lock: row (SELECT ... FOR UPDATE), lease, or file (a kernel lock on <lock-dir>/lock) (KEEL_LOCKER; default: ${DEFAULT_LOCKER})`,
      ).choices(['row', 'lease', 'file']),
    )
    .option(
      '--lock-dir <dir>',
      'with --locker file: the shared lock directory, e.g. on NFS v4 (KEEL_LOCK_DIR)',
    )
    .option(
      '--lock-acquire-sleep-interval <ms>',
      `with --locker file: a waiting node tries the lock this often (KEEL_LOCK_ACQUIRE_SLEEP_INTERVAL; default: ${DEFAULT_LOCK_ACQUIRE_SLEEP_INTERVAL})`,
    )
    .option(
      '--lock-keep-alive-period <ms>',
      `with --locker file: the master checks its lock file and renews its lease this often (KEEL_LOCK_KEEP_ALIVE_PERIOD; default: ${DEFAULT_LOCK_KEEP_ALIVE_PERIOD})`,
    )
    .option(
      '--lease-duration <ms>',
      'with --locker file: a lease on top of the kernel lock, so a frozen master can be fenced and replaced; 0: none (KEEL_LEASE_DURATION; default: 0)',
    )
    .option(
      '--fence-command <cmd>',
      'with --lease-duration: shell command that fences a stale master on another host, exit 0 = fenced (KEEL_FENCE_COMMAND)',
    )
    .option(
      '--store-dir <dir>',
      'with --locker file and no --db: the master runs PostgreSQL on <dir>/pgdata in the shared directory and serves from it (KEEL_STORE_DIR)',
    )
    .option(
      '--network-connector <uri>',
      'a network connector, e.g. static:(tcp://host:61616), repeatable (KEEL_NETWORK_CONNECTORS)',
      collect,
    )
    .addOption(logLevelOption('KEEL_LOG_LEVEL; '))
    .action(async (opts: BrokerOptions) => {
      await actions.broker(opts, output);
    });

  // status, queues, browse, purge, handover: the node's HTTP admin API (commands/admin-commands.ts)
  registerAdminCommands(program, actions, output);
  // scheduled: the scheduled-delivery jobs (commands/scheduled-command.ts)
  registerScheduledCommand(program, output);

  // produce, consume, drill: load and failover drills through @keel/client (commands/produce.ts …)
  registerLoadCommands(program, actions, output);

  return program;
}

function registerLoadCommands(program: Command, actions: CommandActions, output: Output): void {
  const target = (command: Command) =>
    command
      .option('--url <url>', 'broker URL: tcp://host:61616 or failover:(tcp://a:61616,tcp://b:61616)')
      .option('--queue <name>', 'a queue')
      .option('--topic <name>', 'a topic')
      .option('--user <name>', 'client user')
      .option('--password <password>', 'client password');

  target(
    program
      .command('produce')
      .description(
        'send numbered messages ("000001 xxx...") and wait for each receipt; prints a JSON summary',
      ),
  )
    .option('--count <n>', 'messages to send (required)')
    .option('--size <bytes>', 'body size in bytes (default: 100)')
    .option('--persistent', 'persistent messages: stored before the receipt (default: non-persistent)')
    .option('--rate <perS>', 'messages per second (default: as fast as receipts come)')
    .action(async (opts: ProduceOptions) => {
      await actions.produce(opts, output);
    });

  target(
    program
      .command('consume')
      .description(
        'receive and acknowledge messages; prints a JSON summary with duplicates and gaps in their numbers',
      ),
  )
    .option('--count <n>', 'stop after this many messages')
    .option('--timeout <ms>', 'stop after this many ms without a message')
    .option('--durable <name>', 'durable topic subscription name (needs --client-id)')
    .option('--client-id <id>', 'client id of the connection')
    .option('--print', 'print each body on a line, cut to 80 characters')
    .action(async (opts: ConsumeOptions) => {
      await actions.consume(opts, output);
    });

  program
    .command('drill')
    .description(
      'failover drill: a private Postgres, three broker nodes and a steady load; kill the master N times and measure',
    )
    .option('--kills <n>', 'rounds: faults of the master (default: 3)')
    .addOption(
      new Option(
        '--mode <mode>',
        "kill (SIGKILL), stop (SIGSTOP, SIGCONT after the takeover), db-cut, pg-kill (SIGKILL of the master's own Postgres, --store shared), pg-failover (SIGKILL of the Postgres primary, standby promoted), or pg-soak (pg-failover's setup for --minutes under mixed load, a queue and a durable topic subscription, master kills and promotions at intervals; not for CI) (default: kill)",
      ).choices(['kill', 'stop', 'db-cut', 'pg-kill', 'pg-failover', 'pg-soak']),
    )
    .option('--minutes <n>', 'pg-soak: how long (default: 30)')
    .option('--master-kill-every <s>', 'pg-soak: SIGKILL of the Keel master every s seconds (default: 120)')
    .option('--promote-every <s>', 'pg-soak: a Postgres promotion every s seconds (default: 600)')
    .option('--sample-every <s>', 'pg-soak: RSS and message-table samples every s seconds (default: 10)')
    .option('--rounds <n>', 'pg-failover: promotions, each the other way round (default: 3)')
    .addOption(
      new Option(
        '--standby <kind>',
        'pg-failover: the local standby, sync (synchronous_standby_names) or async (default: sync)',
      ).choices(['sync', 'async']),
    )
    .option(
      '--kill-primary-cmd <cmd>',
      'pg-failover with --pg-url h1,h2,…: shell command that kills the primary (env KEEL_DRILL_PRIMARY, KEEL_DRILL_HOSTS)',
    )
    .option(
      '--promote-cmd <cmd>',
      'pg-failover with --pg-url: shell command that promotes a standby (default: wait for one, as Patroni promotes)',
    )
    .option(
      '--rejoin-cmd <cmd>',
      'pg-failover with --pg-url: shell command that re-joins the old primary as a standby (default: wait for it)',
    )
    .addOption(
      new Option('--locker <kind>', "the nodes' master lock: row, lease or file (default: row)").choices([
        'row',
        'lease',
        'file',
      ]),
    )
    .addOption(
      new Option(
        '--store <where>',
        'db (one Postgres for every node) or shared (--locker file: the master runs Postgres on the shared directory) (default: db)',
      ).choices(['db', 'shared']),
    )
    .option(
      '--backlog <n>',
      'persistent messages stored in a queue of their own before the load (default: 0)',
    )
    .option('--nodes <n>', 'broker nodes (default: 3)')
    .option('--rate <perS>', 'persistent messages per second of the load (default: 200)')
    .option('--chart <file.svg>', 'where to write the timeline chart (default: keel-drill.svg)')
    .option('--json <file>', 'also write every measurement as JSON')
    .option(
      '--pg-url <url>',
      'use this Postgres server (superuser URL) instead of a private one; pg-failover: every server, h1:p1,h2:p2',
    )
    .action(async (opts: PgFailoverDrillOptions & PgSoakOptions) => {
      await actions.drill(opts, output);
    });

  program
    .command('bench')
    .description(
      'load generator over STOMP or the native protocol: throughput, fanout, backlog, failover, connections (keel bench --help for its options)',
    )
    .argument('[args...]', 'SCENARIO and its options, passed to the benchmark unchanged')
    .helpOption(false)
    .allowUnknownOption()
    .passThroughOptions()
    .action(async (args: string[]) => {
      await actions.bench(args, output);
    });
}

function logLevelOption(env = ''): Option {
  // env: the variable that sets it too, e.g. 'KEEL_LOG_LEVEL; '
  return new Option('--log-level <level>', `log level (${env}default: ${DEFAULT_LOG_LEVEL})`).choices([
    'trace',
    'debug',
    'info',
    'warn',
    'error',
    'fatal',
    'silent',
  ]);
}
