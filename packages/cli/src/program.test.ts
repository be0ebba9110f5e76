import { CommanderError } from 'commander';
import type { BrokerOptions } from './commands/broker';
import type { ConsumeOptions } from './commands/consume';
import type { DrillOptions } from './commands/drill';
import type { MigrateOptions } from './commands/migrate';
import type { ProduceOptions } from './commands/produce';
import type { StartOptions } from './commands/start';
import { bufferOutput } from './output';
import { buildProgram } from './program';

function setup() {
  const calls: { command: string; options: unknown }[] = [];
  const output = bufferOutput();
  const program = buildProgram({
    output,
    exitOverride: true,
    actions: {
      broker: async (options: BrokerOptions) => calls.push({ command: 'broker', options }),
      migrate: async (options: MigrateOptions) => calls.push({ command: 'migrate', options }),
      start: async (options: StartOptions) => calls.push({ command: 'start', options }),
      produce: async (options: ProduceOptions) => calls.push({ command: 'produce', options }),
      consume: async (options: ConsumeOptions) => calls.push({ command: 'consume', options }),
      drill: async (options: DrillOptions) => calls.push({ command: 'drill', options }),
      bench: async (args: string[]) => calls.push({ command: 'bench', options: args }),
    },
  });
  return { program, calls, output };
}

async function commanderError(promise: Promise<unknown>): Promise<CommanderError> {
  try {
    await promise;
  } catch (err) {
    if (err instanceof CommanderError) return err;
    throw err;
  }
  throw new Error('expected a CommanderError');
}

describe('keel program', () => {
  it('lists only the implemented commands in --help', async () => {
    const { program, output } = setup();
    const err = await commanderError(program.parseAsync(['--help'], { from: 'user' }));
    expect(err.code).toBe('commander.helpDisplayed');
    const help = output.stdout();
    expect(help).toContain('Usage: keel [options] [command]');
    const commands = [...help.matchAll(/^ {2}([a-z][a-z-]*)\b/gm)].map((m) => m[1]);
    expect(commands).toEqual([
      'start',
      'migrate',
      'hash-password',
      'broker',
      'status',
      'queues',
      'browse',
      'purge',
      'handover',
      'scheduled',
      'produce',
      'consume',
      'drill',
      'bench',
      'help',
    ]);
  });

  it('passes everything after bench to the benchmark unchanged', async () => {
    const { program, calls } = setup();
    await program.parseAsync(['bench', 'throughput', '--producers', '4', '--in-flight', '64'], {
      from: 'user',
    });
    expect(calls).toEqual([
      { command: 'bench', options: ['throughput', '--producers', '4', '--in-flight', '64'] },
    ]);
  });

  it('documents the broker flags with their defaults and variables', async () => {
    const { program, output } = setup();
    await commanderError(program.parseAsync(['broker', '--help'], { from: 'user' }));
    const help = output.stdout().replace(/\s+/g, ' ');
    for (const flag of [
      '--db',
      '--lock-db',
      '--name',
      '--cluster',
      '--host',
      '--port',
      '--stomp-port',
      '--admin-port',
      '--config',
      '--user',
      '--admin-user',
      '--admin-password',
      '--locker',
      '--network-connector',
      '--log-level',
    ]) {
      expect(help).toContain(`${flag} `);
    }
    expect(help).toContain('KEEL_PORT; default: 61616');
    expect(help).toContain('KEEL_STOMP_PORT; default: 61613');
    expect(help).toContain('KEEL_ADMIN_PORT; default: 8161');
  });

  it('passes broker flags as given, repeatable ones as lists, and sets no defaults itself', async () => {
    const { program, calls } = setup();
    await program.parseAsync(
      [
        'broker',
        '--db',
        'postgres://127.0.0.1/keel',
        '--port',
        '61700',
        '--stomp-port',
        '0',
        '--user',
        'alice:one',
        '--user',
        'bob:two',
        '--network-connector',
        'static:(tcp://a:1)',
        '--network-connector',
        'multicast://default',
        '--locker',
        'lease',
        '--admin-user',
        'admin',
        '--admin-password',
        'pw',
        '--log-level',
        'debug',
      ],
      { from: 'user' },
    );
    // Defaults belong to loadConfig: an option the user did not give must stay undefined, or it
    // would hide KEEL_* variables and the configuration file.
    expect(calls).toEqual([
      {
        command: 'broker',
        options: {
          db: 'postgres://127.0.0.1/keel',
          port: '61700',
          stompPort: '0',
          user: ['alice:one', 'bob:two'],
          networkConnector: ['static:(tcp://a:1)', 'multicast://default'],
          locker: 'lease',
          adminUser: 'admin',
          adminPassword: 'pw',
          logLevel: 'debug',
        },
      },
    ]);
  });

  it('rejects an unknown locker and an unknown option before running anything', async () => {
    const { program, calls, output } = setup();
    const err = await commanderError(program.parseAsync(['broker', '--locker', 'mutex'], { from: 'user' }));
    expect(err.code).toBe('commander.invalidArgument');
    expect(output.stderr()).toContain(
      "option '--locker <kind>' argument 'mutex' is invalid. Allowed choices are row, lease, file.",
    );
    const second = setup();
    const unknown = await commanderError(
      second.program.parseAsync(['broker', '--prot', '1'], { from: 'user' }),
    );
    expect(unknown.code).toBe('commander.unknownOption');
    expect(calls).toEqual([]);
    expect(second.calls).toEqual([]);
  });

  it('parses migrate and start', async () => {
    const { program, calls } = setup();
    await program.parseAsync(['migrate', '--db', 'postgres://h/a', '--lock-db', 'postgres://h/b'], {
      from: 'user',
    });
    const again = setup();
    await again.program.parseAsync(['start'], { from: 'user' });
    expect(calls).toEqual([
      { command: 'migrate', options: { db: 'postgres://h/a', lockDb: 'postgres://h/b' } },
    ]);
    expect(again.calls).toEqual([{ command: 'start', options: { dir: '.keel' } }]);
  });

  it('passes keel start its ports as given and documents them', async () => {
    const { program, calls, output } = setup();
    await program.parseAsync(
      ['start', '--port', '7000', '--stomp-port', '7100', '--admin-port', '7200', '--pg-port', '7300'],
      { from: 'user' },
    );
    expect(calls).toEqual([
      {
        command: 'start',
        options: { dir: '.keel', port: '7000', stompPort: '7100', adminPort: '7200', pgPort: '7300' },
      },
    ]);
    await commanderError(program.parseAsync(['start', '--help'], { from: 'user' }));
    const help = output.stdout().replace(/\s+/g, ' ');
    for (const text of [
      'KEEL_PORT; default: 61616',
      'KEEL_STOMP_PORT; default: 61613',
      'KEEL_ADMIN_PORT; default: 8161',
      'KEEL_PG_PORT',
    ]) {
      expect(help).toContain(text);
    }
  });

  it('rejects a command that does not exist', async () => {
    const { program, output } = setup();
    const err = await commanderError(program.parseAsync(['benchmark', 'q'], { from: 'user' }));
    expect(err.code).toBe('commander.unknownCommand');
    expect(output.stderr()).toContain("unknown command 'benchmark'");
  });

  it('passes produce, consume and drill flags as given (the commands check them)', async () => {
    const { program, calls } = setup();
    await program.parseAsync(
      [
        'produce',
        '--url',
        'tcp://127.0.0.1:61616',
        '--queue',
        'q',
        '--count',
        '10',
        '--size',
        '512',
        '--persistent',
        '--rate',
        '50',
        '--user',
        'u',
        '--password',
        'p',
      ],
      { from: 'user' },
    );
    await program.parseAsync(
      [
        'consume',
        '--url',
        'failover:(tcp://a:1,tcp://b:2)',
        '--topic',
        't',
        '--count',
        '5',
        '--timeout',
        '2000',
        '--durable',
        'd',
        '--client-id',
        'c',
        '--print',
      ],
      { from: 'user' },
    );
    await program.parseAsync(
      [
        'drill',
        '--kills',
        '2',
        '--mode',
        'stop',
        '--nodes',
        '3',
        '--rate',
        '100',
        '--chart',
        'x.svg',
        '--json',
        'x.json',
        '--locker',
        'file',
        '--store',
        'shared',
        '--backlog',
        '100000',
      ],
      {
        from: 'user',
      },
    );
    expect(calls).toEqual([
      {
        command: 'produce',
        options: {
          url: 'tcp://127.0.0.1:61616',
          queue: 'q',
          count: '10',
          size: '512',
          persistent: true,
          rate: '50',
          user: 'u',
          password: 'p',
        },
      },
      {
        command: 'consume',
        options: {
          url: 'failover:(tcp://a:1,tcp://b:2)',
          topic: 't',
          count: '5',
          timeout: '2000',
          durable: 'd',
          clientId: 'c',
          print: true,
        },
      },
      {
        command: 'drill',
        options: {
          kills: '2',
          mode: 'stop',
          nodes: '3',
          rate: '100',
          chart: 'x.svg',
          json: 'x.json',
          locker: 'file',
          store: 'shared',
          backlog: '100000',
        },
      },
    ]);
  });

  it('rejects an unknown drill mode, naming the option', async () => {
    const { program, calls, output } = setup();
    const err = await commanderError(program.parseAsync(['drill', '--mode', 'nuke'], { from: 'user' }));
    expect(err.code).toBe('commander.invalidArgument');
    expect(output.stderr()).toContain(
      "option '--mode <mode>' argument 'nuke' is invalid. Allowed choices are kill, stop, db-cut, pg-kill, pg-failover, pg-soak.",
    );
    expect(calls).toEqual([]);
  });
});
