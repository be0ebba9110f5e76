import { InvalidArgumentError, parseBrokerUri } from '@keel/protocol';

/** The scenarios this bench runs. `failover` and `connections` are not built yet, so not offered. */
export const SCENARIOS = ['throughput', 'fanout', 'backlog'] as const;
export type Scenario = (typeof SCENARIOS)[number];

/** Brokers the STOMP driver knows the conventions of (see target-profile.ts). */
export const TARGETS = ['keel', 'activemq', 'rabbitmq'] as const;
export type Target = (typeof TARGETS)[number];

export interface BenchOptions {
  scenario: Scenario;
  target: Target;
  /** `stomp://host:port`. */
  url: string;
  host: string;
  port: number;
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
  /** Time bound for sending (for backlog: for each phase). */
  durationMs: number;
  /** How long consumers may take, after sending stops, to receive what was sent. */
  drainTimeoutMs: number;
  /** Unacknowledged messages per consumer (activemq.prefetchSize / prefetch-count). */
  prefetch: number;
  /** Destination name; default a fresh `bench-<scenario>-<tag>` per run. */
  queue?: string;
  runs: number;
  out?: string;
  /** Broker process whose VmRSS is sampled every second (backlog). */
  brokerPid?: number;
  /** No progress line on stderr. */
  quiet: boolean;
  help: boolean;
}

interface ScenarioDefaults {
  producers: number;
  consumers: number;
  count: number;
  durationMs: number;
}

export const SCENARIO_DEFAULTS: Readonly<Record<Scenario, Readonly<ScenarioDefaults>>> = Object.freeze({
  throughput: { producers: 4, consumers: 4, count: 100_000, durationMs: 60_000 },
  fanout: { producers: 1, consumers: 10, count: 20_000, durationMs: 60_000 },
  backlog: { producers: 4, consumers: 4, count: 1_000_000, durationMs: 600_000 },
});

export const DEFAULT_BENCH_URL = 'stomp://127.0.0.1:61613';
export const DEFAULT_SIZE_BYTES = 1024;
export const DEFAULT_IN_FLIGHT = 1;
/** ActiveMQ's default queue prefetch. */
export const DEFAULT_PREFETCH = 1000;
export const DEFAULT_DRAIN_TIMEOUT_MS = 30_000;
/** The body carries `KB1 <run> <seq> <sentAt>`; below this there is no room for it. */
export const MIN_SIZE_BYTES = 64;

export const BENCH_USAGE = `Usage: keel bench SCENARIO [options]

Scenarios:
  throughput   P producers and C consumers on one queue, persistent messages, a receipt per send
  fanout       one topic, C subscribers (default 10)
  backlog      fill a queue with --count messages (default 1,000,000), then drain it

Options:
  --target keel|activemq|rabbitmq   broker conventions (default keel)
  --url stomp://host:port           STOMP listener (default ${DEFAULT_BENCH_URL})
  --login NAME --passcode SECRET    STOMP credentials
  --producers N --consumers N       connections of each kind
  --in-flight N                     sends awaiting a receipt per producer (default ${DEFAULT_IN_FLIGHT})
  --size BYTES                      body size (default ${DEFAULT_SIZE_BYTES}, at least ${MIN_SIZE_BYTES})
  --count N                         messages to send in total
  --duration-ms MS                  time bound for sending (backlog: for each phase)
  --drain-timeout-ms MS             time allowed to receive the rest after sending (default ${DEFAULT_DRAIN_TIMEOUT_MS})
  --prefetch N                      unacknowledged messages per consumer (default ${DEFAULT_PREFETCH})
  --queue NAME                      destination name (default: a fresh name per run)
  --runs N                          repeat the scenario N times (default 1); the table shows the median
  --out FILE.json                   write the results as JSON
  --broker-pid PID                  sample the broker's VmRSS every second
  --quiet                           no progress line on stderr
`;

type Kind = 'int' | 'string' | 'flag';
const OPTIONS: Record<string, { key: keyof BenchOptions; kind: Kind; min?: number }> = {
  target: { key: 'target', kind: 'string' },
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
  queue: { key: 'queue', kind: 'string' },
  runs: { key: 'runs', kind: 'int', min: 1 },
  out: { key: 'out', kind: 'string' },
  'broker-pid': { key: 'brokerPid', kind: 'int', min: 1 },
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

/**
 * Parse `SCENARIO [--option value | --option=value]...`. Every error is an InvalidArgumentError
 * whose message names the offending option.
 */
export function parseBenchArgs(argv: readonly string[]): BenchOptions {
  const given: Partial<Record<keyof BenchOptions, string | number | boolean>> = {};
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
  const target = (given.target as string | undefined) ?? 'keel';
  if (!(TARGETS as readonly string[]).includes(target)) {
    bad(`--target must be one of ${TARGETS.join(', ')}, got ${JSON.stringify(target)}`);
  }

  const url = (given.url as string | undefined) ?? DEFAULT_BENCH_URL;
  let host: string;
  let port: number;
  try {
    const uri = parseBrokerUri(url, { defaultPorts: { stomp: 61613 } });
    host = uri.host;
    port = uri.port;
  } catch (err) {
    bad(`--url ${JSON.stringify(url)} is not a stomp://host:port URL: ${(err as Error).message}`);
  }

  const d = SCENARIO_DEFAULTS[scenario];
  const opts: BenchOptions = {
    scenario,
    target: target as Target,
    url,
    host,
    port,
    login: given.login as string | undefined,
    passcode: given.passcode as string | undefined,
    producers: (given.producers as number | undefined) ?? d.producers,
    consumers: (given.consumers as number | undefined) ?? d.consumers,
    inFlight: (given.inFlight as number | undefined) ?? DEFAULT_IN_FLIGHT,
    sizeBytes: (given.sizeBytes as number | undefined) ?? DEFAULT_SIZE_BYTES,
    count: (given.count as number | undefined) ?? d.count,
    durationMs: (given.durationMs as number | undefined) ?? d.durationMs,
    drainTimeoutMs: (given.drainTimeoutMs as number | undefined) ?? DEFAULT_DRAIN_TIMEOUT_MS,
    prefetch: (given.prefetch as number | undefined) ?? DEFAULT_PREFETCH,
    queue: given.queue as string | undefined,
    runs: (given.runs as number | undefined) ?? 1,
    out: given.out as string | undefined,
    brokerPid: given.brokerPid as number | undefined,
    quiet: given.quiet === true,
    help,
  };
  if (opts.queue !== undefined && !/^[A-Za-z0-9._-]+$/.test(opts.queue)) {
    bad(`--queue must be letters, digits, '.', '_' or '-', got ${JSON.stringify(opts.queue)}`);
  }
  return opts;
}
