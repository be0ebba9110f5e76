/**
 * The `keel` command line: one commander program, built by a function so tests can parse argument
 * lists without running anything (pass `actions`) and capture help and errors (pass `output`).
 * Commands that are not implemented are not registered: `keel --help` lists what works.
 */

import {
  DEFAULT_ADMIN_PORT,
  DEFAULT_CLUSTER,
  DEFAULT_HOST,
  DEFAULT_LOCKER,
  DEFAULT_LOG_LEVEL,
  DEFAULT_PORT,
  DEFAULT_STOMP_PORT,
} from '@keel/server';
import { Command, Option } from 'commander';
import {
  ADMIN_COMMAND_ACTIONS,
  type AdminCommandActions,
  registerAdminCommands,
} from './commands/admin-commands';
import { type BrokerOptions, runBroker } from './commands/broker';
import { type MigrateOptions, runMigrate } from './commands/migrate';
import { DEFAULT_START_DIR, runStart, type StartOptions } from './commands/start';
import { type Output, processOutput } from './output';

export interface CommandActions extends AdminCommandActions {
  migrate(options: MigrateOptions, output: Output): Promise<unknown>;
  broker(options: BrokerOptions, output: Output): Promise<unknown>;
  start(options: StartOptions, output: Output): Promise<unknown>;
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
    broker: runBroker,
    start: runStart,
    ...ADMIN_COMMAND_ACTIONS,
    ...options.actions,
  };

  const program = new Command('keel')
    .description("Keel: a message broker with ActiveMQ Classic's high-availability models on PostgreSQL")
    .version(VERSION, '-V, --version')
    .showHelpAfterError('(run with --help for usage)')
    .configureOutput({ writeOut: output.out, writeErr: output.err });
  if (options.exitOverride) program.exitOverride();

  program
    .command('start')
    .description(
      'start a local playground: an embedded PostgreSQL in ./.keel and two broker nodes (master and slave) in cluster "local"',
    )
    .option('--dir <path>', 'where the playground keeps its data and logs', DEFAULT_START_DIR)
    .addOption(logLevelOption())
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
    .command('broker')
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
    .addOption(
      new Option(
        '--locker <kind>',
        `master lock: row (SELECT ... FOR UPDATE) or lease (KEEL_LOCKER; default: ${DEFAULT_LOCKER})`,
      ).choices(['row', 'lease']),
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

  return program;
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
