import { parseConnectUrl } from '@keel/client';
import { InvalidArgumentError, parseBrokerUri } from '@keel/protocol';

/** The scenarios this bench runs. */
export const SCENARIOS = [
  'throughput',
  'fanout',
  'backlog',
  'failover',
  'connections',
  'many-queues',
] as const;
export type Scenario = (typeof SCENARIOS)[number];

/**
 * Brokers the bench drives: over STOMP the ones whose conventions the STOMP driver knows (see
 * target-profile.ts); `rabbitmq-amqp` and `rabbitmq-quorum` are RabbitMQ over AMQP 0-9-1
 * (amqp-driver.ts) on a durable classic queue and on a quorum queue.
 */
export const TARGETS = ['keel', 'activemq', 'rabbitmq', 'rabbitmq-amqp', 'rabbitmq-quorum'] as const;
export type Target = (typeof TARGETS)[number];

/** The targets driven over AMQP 0-9-1, and only over it. */
export const AMQP_TARGETS: readonly Target[] = ['rabbitmq-amqp', 'rabbitmq-quorum'];

/**
 * `stomp` drives keel, activemq and rabbitmq; `native` is Keel's own protocol (@keel/client),
 * Keel only; `amqp` is AMQP 0-9-1 (amqplib), the rabbitmq-amqp and rabbitmq-quorum targets only.
 */
export const PROTOCOLS = ['stomp', 'native', 'amqp'] as const;
export type BenchProtocol = (typeof PROTOCOLS)[number];

export interface BenchOptions {
  scenario: Scenario;
  target: Target;
  protocol: BenchProtocol;
  /**
   * As given: `stomp://host:port` (failover over STOMP: a comma-separated list), or for native
   * `tcp://host:port` or `failover:(tcp://a:61616,tcp://b:61616)?options`.
   */
  url: string;
  /** STOMP: every `stomp://` URL of the list, in order. Native: the one URL, as given. */
  urls: string[];
  /** Host and port of the first broker of the URL (for the report). */
  host: string;
  port: number;
  /** STOMP login / native username. */
  login?: string;
  passcode?: string;
  producers: number;
  consumers: number;
  /** Sends awaiting their RECEIPT per producer (the window). */
  inFlight: number;
  /** Body size in bytes. */
  sizeBytes: number;
  /** Messages to send in total (split between producers). */
  count: number;
  /** Time bound for sending (backlog: for each phase; connections: for each of the two load phases). */
  durationMs: number;
  /** How long consumers may take, after sending stops, to receive what was sent. */
  drainTimeoutMs: number;
  /** Unacknowledged messages per consumer (activemq.prefetchSize / prefetch-count). */
  prefetch: number;
  /** Sends per second over all producers; 0 = as fast as the window allows. */
  ratePerS: number;
  /** Destination name; default a fresh `bench-<scenario>-<tag>` per run. */
  queue?: string;
  runs: number;
  out?: string;
  /**
   * Broker process whose VmRSS is sampled every second (backlog, connections) and whose CPU time
   * per message is reported (throughput, fanout).
   */
  brokerPid?: number;
  /**
   * The Postgres under the broker (any database of the server): its processes' CPU time and its
   * WAL bytes and fsyncs (`pg_stat_wal`) per message are reported (throughput, fanout).
   */
  pgUrl?: string;
  /** Wait after a run before the closing Postgres reading, so backends' pending WAL stats reach `pg_stat_wal`. */
  costSettleMs: number;
  /** failover: the master's PID, SIGKILLed --kill-after-ms after the load started. */
  masterPid?: number;
  /** failover: when to kill the master, ms after the load started. */
  killAfterMs: number;
  /** failover: admin API base URLs of the nodes, polled after the kill to time the takeover. */
  adminUrls: string[];
  /** connections: idle connections to open. */
  idleConnections: number;
  /** connections: connections opened at a time while ramping up. */
  connectBatch: number;
  /** connections: each idle connection subscribes to a queue of its own. */
  idleSubscribe: boolean;
  /** many-queues: queues the producers spread their messages over. */
  queues: number;
  /** many-queues: consumers on each queue (spread over the --consumers connections). */
  consumersPerQueue: number;
  /** many-queues: wait with every consumer attached and no load before the idle RSS reading. */
  idleSettleMs: number;
  /** No progress line on stderr. */
  quiet: boolean;
  help: boolean;
}

interface ScenarioDefaults {
  producers: number;
  consumers: number;
  count: number;
  durationMs: number;
  ratePerS: number;
}

export const SCENARIO_DEFAULTS: Readonly<Record<Scenario, Readonly<ScenarioDefaults>>> = Object.freeze({
  throughput: { producers: 4, consumers: 4, count: 100_000, durationMs: 60_000, ratePerS: 0 },
  fanout: { producers: 1, consumers: 10, count: 20_000, durationMs: 60_000, ratePerS: 0 },
  backlog: { producers: 4, consumers: 4, count: 1_000_000, durationMs: 600_000, ratePerS: 0 },
  failover: { producers: 4, consumers: 4, count: 1_000_000, durationMs: 30_000, ratePerS: 200 },
  connections: { producers: 4, consumers: 4, count: 1_000_000, durationMs: 10_000, ratePerS: 200 },
  'many-queues': { producers: 4, consumers: 4, count: 1_000_000, durationMs: 30_000, ratePerS: 0 },
});

export const DEFAULT_BENCH_URL = 'stomp://127.0.0.1:61613';
export const DEFAULT_NATIVE_BENCH_URL = 'tcp://127.0.0.1:61616';
export const DEFAULT_AMQP_BENCH_URL = 'amqp://127.0.0.1:5672';
/**
 * Postgres 15 backends flush their statistics (pg_stat_wal among them) at most once a second and,
 * once idle with some pending, 10 s later (pgstat.c PGSTAT_MIN_INTERVAL / PGSTAT_IDLE_INTERVAL):
 * the closing reading waits that long.
 */
export const DEFAULT_COST_SETTLE_MS = 11_000;
export const DEFAULT_SIZE_BYTES = 1024;
export const DEFAULT_IN_FLIGHT = 1;
/** ActiveMQ's default queue prefetch. */
export const DEFAULT_PREFETCH = 1000;
export const DEFAULT_DRAIN_TIMEOUT_MS = 30_000;
export const DEFAULT_IDLE_CONNECTIONS = 5_000;
export const DEFAULT_CONNECT_BATCH = 200;
export const DEFAULT_QUEUES = 100;
export const DEFAULT_CONSUMERS_PER_QUEUE = 4;
export const DEFAULT_IDLE_SETTLE_MS = 5_000;
/** The body carries `KB1 <run> <seq> <sentAt>`; below this there is no room for it. */
export const MIN_SIZE_BYTES = 64;

export const BENCH_USAGE = `Usage: keel bench SCENARIO [options]

Scenarios:
  throughput   P producers and C consumers on one queue, persistent messages, a receipt per send
  fanout       one topic, C subscribers (default 10)
  backlog      fill a queue with --count messages (default 1,000,000), then drain it
  failover     steady load (--rate, default 200 msg/s) through a failover connection to a Keel
               master/slave pair; SIGKILL --master-pid at --kill-after-ms, keep sending; reports
               the pause and sent/receipted/received/lost/duplicated
               (packages/bench/scripts/keel-pair.js starts the pair and fills these in)
  connections  steady load (--rate, default 200 msg/s) for --duration-ms, then open
               --idle-connections (default 5,000) idle connections, then load for --duration-ms
               again: connect times, broker RSS (--broker-pid), latency before and with them
  many-queues  --queues N (default ${DEFAULT_QUEUES}) queues, --consumers-per-queue K (default
               ${DEFAULT_CONSUMERS_PER_QUEUE}) consumers on each, spread over --consumers connections; producers
               send to the queues in turn; broker RSS (--broker-pid) before, with the consumers
               attached and idle, peak and steady under load; broker CPU per message

Options:
  --target keel|activemq|rabbitmq|rabbitmq-amqp|rabbitmq-quorum
                                    broker (default keel); rabbitmq-amqp and rabbitmq-quorum are
                                    RabbitMQ over AMQP 0-9-1 (amqplib: confirm channel per producer,
                                    manual acks) on a durable classic / quorum queue
  --protocol stomp|native|amqp      wire protocol (default stomp, amqp for the AMQP targets; native
                                    is Keel's, --target keel only)
  --url URL                         stomp://host:port (default ${DEFAULT_BENCH_URL}); failover over
                                    STOMP: stomp://a:61613,stomp://b:61613 (reconnects down the list,
                                    resends what had no receipt); native: tcp://host:port (default
                                    ${DEFAULT_NATIVE_BENCH_URL}) or failover:(tcp://a:61616,tcp://b:61616);
                                    amqp: amqp://host:port[/vhost] (default ${DEFAULT_AMQP_BENCH_URL})
  --login NAME --passcode SECRET    credentials (STOMP login/passcode, native username/password)
  --producers N --consumers N       connections of each kind
  --in-flight N                     sends awaiting a receipt per producer (default ${DEFAULT_IN_FLIGHT})
  --size BYTES                      body size (default ${DEFAULT_SIZE_BYTES}, at least ${MIN_SIZE_BYTES})
  --count N                         messages to send in total
  --duration-ms MS                  time bound for sending (backlog: each phase; connections: each load phase)
  --rate N                          sends per second over all producers, 0 = unpaced
                                    (default 0; failover and connections 200)
  --drain-timeout-ms MS             time allowed to receive the rest after sending (default ${DEFAULT_DRAIN_TIMEOUT_MS})
  --prefetch N                      unacknowledged messages per consumer (default ${DEFAULT_PREFETCH})
  --queue NAME                      destination name (default: a fresh name per run)
  --runs N                          repeat the scenario N times (default 1); the table shows the median
  --out FILE.json                   write the results as JSON
  --broker-pid PID                  sample the broker's VmRSS every second; throughput, fanout and
                                    many-queues: its CPU time per message (/proc/PID/stat utime+stime)
  --pg-url URL                      throughput, fanout and many-queues: CPU time per message of that
                                    Postgres server's processes and its WAL bytes and fsyncs per
                                    message (pg_stat_wal); the server must run on this machine
  --cost-settle-ms MS               wait before the closing pg_stat_wal reading (default ${DEFAULT_COST_SETTLE_MS})
  --quiet                           no progress line on stderr

failover:
  --master-pid PID                  the master to SIGKILL (required)
  --kill-after-ms MS                when, after the load started (default a third of --duration-ms)
  --admin-url URL[,URL...]          the nodes' admin APIs, polled after the kill: takeover time

connections:
  --idle-connections N              idle connections to open (default ${DEFAULT_IDLE_CONNECTIONS}); no heart-beats
  --connect-batch N                 opened at a time while ramping up (default ${DEFAULT_CONNECT_BATCH})
  --idle-subscribe                  each idle connection subscribes to a queue of its own
                                    (default: connect only)

many-queues:
  --queues N                        queues (default ${DEFAULT_QUEUES}); message i goes to queue i mod N
  --consumers-per-queue K           consumers per queue (default ${DEFAULT_CONSUMERS_PER_QUEUE}); consumer k of queue q
                                    on consumer connection (q*K + k) mod --consumers
  --idle-settle-ms MS               consumers attached, no load, before the idle RSS reading
                                    (default ${DEFAULT_IDLE_SETTLE_MS})
`;

type Kind = 'int' | 'string' | 'flag';
interface OptionSpec {
  key: keyof BenchOptions;
  kind: Kind;
  min?: number;
  /** Only meaningful for these scenarios (an error elsewhere). */
  scenarios?: readonly Scenario[];
}
const OPTIONS: Record<string, OptionSpec> = {
  target: { key: 'target', kind: 'string' },
  protocol: { key: 'protocol', kind: 'string' },
  url: { key: 'url', kind: 'string' },
  login: { key: 'login', kind: 'string' },
  passcode: { key: 'passcode', kind: 'string' },
  producers: { key: 'producers', kind: 'int', min: 1 },
  consumers: { key: 'consumers', kind: 'int', min: 1 },
  'in-flight': { key: 'inFlight', kind: 'int', min: 1 },
  size: { key: 'sizeBytes', kind: 'int', min: MIN_SIZE_BYTES },
  count: { key: 'count', kind: 'int', min: 1 },
  'duration-ms': { key: 'durationMs', kind: 'int', min: 1 },
  'drain-timeout-ms': { key: 'drainTimeoutMs', kind: 'int', min: 0 },
  prefetch: { key: 'prefetch', kind: 'int', min: 1 },
  rate: { key: 'ratePerS', kind: 'int', min: 0 },
  queue: { key: 'queue', kind: 'string' },
  runs: { key: 'runs', kind: 'int', min: 1 },
  out: { key: 'out', kind: 'string' },
  'broker-pid': { key: 'brokerPid', kind: 'int', min: 1 },
  'pg-url': { key: 'pgUrl', kind: 'string', scenarios: ['throughput', 'fanout', 'many-queues'] },
  'cost-settle-ms': {
    key: 'costSettleMs',
    kind: 'int',
    min: 0,
    scenarios: ['throughput', 'fanout', 'many-queues'],
  },
  'master-pid': { key: 'masterPid', kind: 'int', min: 1, scenarios: ['failover'] },
  'kill-after-ms': { key: 'killAfterMs', kind: 'int', min: 0, scenarios: ['failover'] },
  'admin-url': { key: 'adminUrls', kind: 'string', scenarios: ['failover'] },
  'idle-connections': { key: 'idleConnections', kind: 'int', min: 0, scenarios: ['connections'] },
  'connect-batch': { key: 'connectBatch', kind: 'int', min: 1, scenarios: ['connections'] },
  'idle-subscribe': { key: 'idleSubscribe', kind: 'flag', scenarios: ['connections'] },
  queues: { key: 'queues', kind: 'int', min: 1, scenarios: ['many-queues'] },
  'consumers-per-queue': { key: 'consumersPerQueue', kind: 'int', min: 1, scenarios: ['many-queues'] },
  'idle-settle-ms': { key: 'idleSettleMs', kind: 'int', min: 0, scenarios: ['many-queues'] },
  quiet: { key: 'quiet', kind: 'flag' },
  help: { key: 'help', kind: 'flag' },
};

function bad(message: string): never {
  throw new InvalidArgumentError(message);
}

function parseInt10(option: string, value: string, min: number): number {
  if (!/^[0-9][0-9_]*$/.test(value)) bad(`--${option} must be an integer, got ${JSON.stringify(value)}`);
  const n = Number(value.replace(/_/g, ''));
  if (!Number.isSafeInteger(n)) bad(`--${option} is too large: ${value}`);
  if (n < min) bad(`--${option} must be at least ${min}, got ${n}`);
  return n;
}

interface ParsedUrl {
  urls: string[];
  host: string;
  port: number;
  /** Native: a `failover:` URL. STOMP: more than one URL. */
  failover: boolean;
}

function parseStompUrls(url: string): ParsedUrl {
  const urls = url
    .split(',')
    .map((u) => u.trim())
    .filter((u) => u.length > 0);
  if (urls.length === 0) bad('--url needs a value');
  const endpoints = urls.map((u): { host: string; port: number } => {
    if (/^(tcp|failover):/.test(u)) {
      bad(`--url ${JSON.stringify(url)} is a native protocol URL: add --protocol native (Keel only)`);
    }
    let uri: { scheme: string; host: string; port: number };
    try {
      uri = parseBrokerUri(u, { defaultPorts: { stomp: 61613 } });
    } catch (err) {
      bad(`--url ${JSON.stringify(u)} is not a stomp://host:port URL: ${(err as Error).message}`);
    }
    if (uri.scheme !== 'stomp') bad(`--url ${JSON.stringify(u)} is not a stomp://host:port URL`);
    return { host: uri.host, port: uri.port };
  });
  return { urls, host: endpoints[0]!.host, port: endpoints[0]!.port, failover: urls.length > 1 };
}

function parseNativeUrl(url: string): ParsedUrl {
  if (url.startsWith('stomp:'))
    bad(`--url ${JSON.stringify(url)} is a STOMP URL, not tcp:// or failover:(...)`);
  try {
    const target = parseConnectUrl(url);
    const first = target.servers[0]!;
    return { urls: [url], host: first.host, port: first.port, failover: target.failover };
  } catch (err) {
    bad(`--url ${JSON.stringify(url)} is not a tcp:// or failover:(...) URL: ${(err as Error).message}`);
  }
}

function parseAmqpUrl(url: string): ParsedUrl {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    bad(`--url ${JSON.stringify(url)} is not an amqp://host:port URL`);
  }
  if (u.protocol !== 'amqp:') bad(`--url ${JSON.stringify(url)} is not an amqp://host:port URL`);
  if (u.username || u.password) bad('--url: give the credentials with --login and --passcode');
  return { urls: [url], host: u.hostname, port: Number(u.port || 5672), failover: false };
}

/**
 * Parse `SCENARIO [--option value | --option=value]...`. Every error is an InvalidArgumentError
 * whose message names the offending option.
 */
export function parseBenchArgs(argv: readonly string[]): BenchOptions {
  const given: Partial<Record<keyof BenchOptions, string | number | boolean>> = {};
  const givenNames: string[] = [];
  const positional: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (!arg.startsWith('--')) {
      positional.push(arg);
      continue;
    }
    const eq = arg.indexOf('=');
    const name = arg.slice(2, eq === -1 ? undefined : eq);
    const spec = OPTIONS[name];
    if (spec === undefined) bad(`unknown option --${name}`);
    if (spec.key in given) bad(`--${name} given twice`);
    givenNames.push(name);
    if (spec.kind === 'flag') {
      if (eq !== -1) bad(`--${name} takes no value`);
      given[spec.key] = true;
      continue;
    }
    let value: string | undefined;
    if (eq !== -1) value = arg.slice(eq + 1);
    else {
      value = argv[i + 1];
      if (value === undefined || value.startsWith('--')) bad(`--${name} needs a value`);
      i++;
    }
    if (value.length === 0) bad(`--${name} needs a value`);
    given[spec.key] = spec.kind === 'int' ? parseInt10(name, value, spec.min ?? 0) : value;
  }

  const help = given.help === true;
  if (positional.length > 1)
    bad(`expected one scenario, got ${positional.map((p) => JSON.stringify(p)).join(' ')}`);
  const scenarioName = positional[0] ?? (help ? 'throughput' : undefined);
  if (scenarioName === undefined) bad(`missing scenario: one of ${SCENARIOS.join(', ')}`);
  if (!(SCENARIOS as readonly string[]).includes(scenarioName)) {
    bad(`unknown scenario ${JSON.stringify(scenarioName)}: expected one of ${SCENARIOS.join(', ')}`);
  }
  const scenario = scenarioName as Scenario;
  for (const name of givenNames) {
    const only = OPTIONS[name]!.scenarios;
    if (only !== undefined && !only.includes(scenario)) {
      bad(`--${name} is an option of the ${only.join(', ')} scenario, not ${scenario}`);
    }
  }
  const target = (given.target as string | undefined) ?? 'keel';
  if (!(TARGETS as readonly string[]).includes(target)) {
    bad(`--target must be one of ${TARGETS.join(', ')}, got ${JSON.stringify(target)}`);
  }
  const amqpTarget = AMQP_TARGETS.includes(target as Target);
  const protocol = (given.protocol as string | undefined) ?? (amqpTarget ? 'amqp' : 'stomp');
  if (!(PROTOCOLS as readonly string[]).includes(protocol)) {
    bad(`--protocol must be one of ${PROTOCOLS.join(', ')}, got ${JSON.stringify(protocol)}`);
  }
  if (amqpTarget !== (protocol === 'amqp')) {
    bad(
      amqpTarget
        ? `--target ${target} is RabbitMQ over AMQP 0-9-1: --protocol amqp only (got --protocol ${protocol}); --target rabbitmq is its STOMP plugin`
        : `--protocol amqp drives --target ${AMQP_TARGETS.join(' or ')} only (got --target ${target})`,
    );
  }
  if (amqpTarget && scenario === 'failover') {
    bad(`--target ${target} runs every scenario but failover (one RabbitMQ node, no failover URL)`);
  }
  if (protocol === 'native' && target !== 'keel') {
    bad(
      `--protocol native is Keel's own wire protocol: it drives --target keel only (got --target ${target}); use --protocol stomp for ${target}`,
    );
  }

  const url =
    (given.url as string | undefined) ??
    (protocol === 'native'
      ? DEFAULT_NATIVE_BENCH_URL
      : protocol === 'amqp'
        ? DEFAULT_AMQP_BENCH_URL
        : DEFAULT_BENCH_URL);
  const parsed =
    protocol === 'native'
      ? parseNativeUrl(url)
      : protocol === 'amqp'
        ? parseAmqpUrl(url)
        : parseStompUrls(url);
  const pgUrl = given.pgUrl as string | undefined;
  if (pgUrl !== undefined && !/^postgres(ql)?:\/\//.test(pgUrl)) {
    bad(`--pg-url ${JSON.stringify(pgUrl)} is not a postgres:// URL`);
  }
  if (protocol === 'stomp' && parsed.failover && scenario !== 'failover') {
    bad(`--url lists ${parsed.urls.length} STOMP URLs: only the failover scenario takes more than one`);
  }

  const d = SCENARIO_DEFAULTS[scenario];
  const durationMs = (given.durationMs as number | undefined) ?? d.durationMs;
  const adminUrls = ((given.adminUrls as string | undefined) ?? '')
    .split(',')
    .map((u) => u.trim().replace(/\/+$/, ''))
    .filter((u) => u.length > 0);
  for (const u of adminUrls) {
    if (!/^https?:\/\/[^\s/]+/.test(u)) bad(`--admin-url ${JSON.stringify(u)} is not an http:// URL`);
  }
  const opts: BenchOptions = {
    scenario,
    target: target as Target,
    protocol: protocol as BenchProtocol,
    url,
    urls: parsed.urls,
    host: parsed.host,
    port: parsed.port,
    login: given.login as string | undefined,
    passcode: given.passcode as string | undefined,
    producers: (given.producers as number | undefined) ?? d.producers,
    consumers: (given.consumers as number | undefined) ?? d.consumers,
    inFlight: (given.inFlight as number | undefined) ?? DEFAULT_IN_FLIGHT,
    sizeBytes: (given.sizeBytes as number | undefined) ?? DEFAULT_SIZE_BYTES,
    count: (given.count as number | undefined) ?? d.count,
    durationMs,
    drainTimeoutMs: (given.drainTimeoutMs as number | undefined) ?? DEFAULT_DRAIN_TIMEOUT_MS,
    prefetch: (given.prefetch as number | undefined) ?? DEFAULT_PREFETCH,
    ratePerS: (given.ratePerS as number | undefined) ?? d.ratePerS,
    queue: given.queue as string | undefined,
    runs: (given.runs as number | undefined) ?? 1,
    out: given.out as string | undefined,
    brokerPid: given.brokerPid as number | undefined,
    pgUrl,
    costSettleMs: (given.costSettleMs as number | undefined) ?? DEFAULT_COST_SETTLE_MS,
    masterPid: given.masterPid as number | undefined,
    killAfterMs: (given.killAfterMs as number | undefined) ?? Math.floor(durationMs / 3),
    adminUrls,
    idleConnections: (given.idleConnections as number | undefined) ?? DEFAULT_IDLE_CONNECTIONS,
    connectBatch: (given.connectBatch as number | undefined) ?? DEFAULT_CONNECT_BATCH,
    idleSubscribe: given.idleSubscribe === true,
    queues: (given.queues as number | undefined) ?? DEFAULT_QUEUES,
    consumersPerQueue: (given.consumersPerQueue as number | undefined) ?? DEFAULT_CONSUMERS_PER_QUEUE,
    idleSettleMs: (given.idleSettleMs as number | undefined) ?? DEFAULT_IDLE_SETTLE_MS,
    quiet: given.quiet === true,
    help,
  };
  if (opts.queue !== undefined && !/^[A-Za-z0-9._-]+$/.test(opts.queue)) {
    bad(`--queue must be letters, digits, '.', '_' or '-', got ${JSON.stringify(opts.queue)}`);
  }
  if (scenario === 'failover' && !help) {
    if (opts.masterPid === undefined) {
      bad('failover needs --master-pid PID: the master to SIGKILL (scripts/keel-pair.js finds it for you)');
    }
    if (!parsed.failover) {
      bad(
        protocol === 'native'
          ? `failover needs a failover:(tcp://a,tcp://b) --url, got ${JSON.stringify(url)}`
          : `failover over STOMP needs at least two URLs: --url stomp://a:61613,stomp://b:61613, got ${JSON.stringify(url)}`,
      );
    }
    if (opts.killAfterMs >= durationMs) {
      bad(`--kill-after-ms (${opts.killAfterMs}) must be below --duration-ms (${durationMs})`);
    }
  }
  return opts;
}
