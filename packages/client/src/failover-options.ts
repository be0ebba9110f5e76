import { type BrokerUri, InvalidArgumentError, parseBrokerUri, parseUri } from '@keel/protocol';

/**
 * Options of the failover transport, with ActiveMQ's names and defaults
 * (https://activemq.apache.org/components/classic/documentation/failover-transport-reference),
 * except `timeout` (ours is bounded by default) and the Keel additions marked below.
 */
export interface FailoverOptions {
  /** ms before the second pass over the URI list (the first starts at once). ActiveMQ: 10. */
  initialReconnectDelay: number;
  /** Upper bound of the delay between passes, ms. ActiveMQ: 30000. */
  maxReconnectDelay: number;
  /** Multiply the delay by `backOffMultiplier` after each failed pass. ActiveMQ: true. */
  useExponentialBackOff: boolean;
  /** ActiveMQ: 2. */
  backOffMultiplier: number;
  /** Passes after a drop before giving up and closing the connection; -1 = forever. ActiveMQ: -1. */
  maxReconnectAttempts: number;
  /** Passes at startup before `connect()` fails; -1 = forever (bounded by `timeout`). ActiveMQ: -1. */
  startupMaxReconnectAttempts: number;
  /** Shuffle the URI list before each pass. ActiveMQ: true. */
  randomize: boolean;
  /**
   * ms an operation (send, commit, createSession …, and `connect()` itself) waits for a broker
   * while disconnected before it fails with TimeoutError; -1 = wait forever.
   * ActiveMQ: -1. Keel: 30000 (deliberate difference: a send waiting for a broker is bounded).
   */
  timeout: number;
  /** ActiveMQ `priorityBackup` (parsed and validated; not implemented yet, see README). */
  priorityBackup: boolean;
  /** ActiveMQ `priorityURIs` (parsed and validated; used only with priorityBackup). */
  priorityURIs: string[];
  /** ActiveMQ `backup` (parsed and validated; not implemented yet, see README). */
  backup: boolean;
  /** Add the broker list that WELCOME / BROKER_INFO announce to the URI list. ActiveMQ: true. */
  updateURIsSupported: boolean;
  /** Keel: ± jitter of each reconnect delay, percent (0..100). */
  reconnectDelayJitterPercent: number;
  /** Keel: sends buffered while disconnected (beyond this, send() fails with RESOURCE_LIMIT). */
  maxBufferedSends: number;
}

export const DEFAULT_FAILOVER_OPTIONS: Readonly<FailoverOptions> = Object.freeze({
  initialReconnectDelay: 10,
  maxReconnectDelay: 30000,
  useExponentialBackOff: true,
  backOffMultiplier: 2,
  maxReconnectAttempts: -1,
  startupMaxReconnectAttempts: -1,
  randomize: true,
  timeout: 30000,
  priorityBackup: false,
  priorityURIs: [] as string[],
  backup: false,
  updateURIsSupported: true,
  reconnectDelayJitterPercent: 20,
  maxBufferedSends: 10000,
});

/** Options that may be given per URI (`tcp://host:61616?heartbeatMs=2000`) or as `nested.NAME`. */
export interface EndpointOptions {
  heartbeatMs?: number;
  maxFrameSize?: number;
  connectTimeoutMs?: number;
  /**
   * `ssl://` only: check that the broker's certificate names the host dialled (ActiveMQ's
   * `socket.verifyHostName`, also accepted under that name). Default true; the chain is verified
   * either way unless ConnectOptions.tls.verifyServer is false.
   */
  verifyHostName?: boolean;
}

export interface ServerEndpoint {
  /** Canonical `tcp://host:port` or `ssl://host:port` (without options): the key of the server in the list. */
  url: string;
  host: string;
  port: number;
  /** `ssl://`: the native protocol over TLS. */
  tls: boolean;
  options: EndpointOptions;
}

export interface ConnectTarget {
  /** True for `failover:` URLs: reconnect on drops. False for a plain `tcp://` URL. */
  failover: boolean;
  servers: ServerEndpoint[];
  options: FailoverOptions;
}

/** Failover options as given in code: any subset, typed values. */
export type FailoverOptionOverrides = Partial<FailoverOptions>;

type Kind = 'int' | 'number' | 'boolean' | 'uris';
interface Spec {
  kind: Kind;
  min?: number;
  max?: number;
}

const SPECS: Record<keyof FailoverOptions, Spec> = {
  initialReconnectDelay: { kind: 'int', min: 0 },
  maxReconnectDelay: { kind: 'int', min: 0 },
  useExponentialBackOff: { kind: 'boolean' },
  backOffMultiplier: { kind: 'number', min: 1 },
  maxReconnectAttempts: { kind: 'int', min: -1 },
  startupMaxReconnectAttempts: { kind: 'int', min: -1 },
  randomize: { kind: 'boolean' },
  timeout: { kind: 'int', min: -1 },
  priorityBackup: { kind: 'boolean' },
  priorityURIs: { kind: 'uris' },
  backup: { kind: 'boolean' },
  updateURIsSupported: { kind: 'boolean' },
  reconnectDelayJitterPercent: { kind: 'number', min: 0, max: 100 },
  maxBufferedSends: { kind: 'int', min: 0 },
};

const ENDPOINT_SPECS: Record<keyof EndpointOptions, Spec> = {
  heartbeatMs: { kind: 'int', min: 0 },
  maxFrameSize: { kind: 'int', min: 64 },
  connectTimeoutMs: { kind: 'int', min: 1 },
  verifyHostName: { kind: 'boolean' },
};

/** ActiveMQ's spelling of endpoint options (`ssl://host:61617?socket.verifyHostName=false`). */
const ENDPOINT_ALIASES: Record<string, keyof EndpointOptions> = {
  'socket.verifyHostName': 'verifyHostName',
};

function invalid(name: string, value: unknown, why: string): never {
  throw new InvalidArgumentError(`invalid value ${JSON.stringify(value)} for option "${name}": ${why}`);
}

/** Interpret one option value (a string from a URI, or a typed value from code). */
function convert(name: string, spec: Spec, raw: unknown): number | boolean | string[] {
  switch (spec.kind) {
    case 'boolean': {
      if (typeof raw === 'boolean') return raw;
      if (raw === 'true') return true;
      if (raw === 'false') return false;
      return invalid(name, raw, 'expected true or false');
    }
    case 'int':
    case 'number': {
      let n: number;
      if (typeof raw === 'number') n = raw;
      else if (typeof raw === 'string' && /^-?[0-9]+(\.[0-9]+)?$/.test(raw.trim())) n = Number(raw);
      else return invalid(name, raw, spec.kind === 'int' ? 'expected an integer' : 'expected a number');
      if (!Number.isFinite(n)) return invalid(name, raw, 'expected a finite number');
      if (spec.kind === 'int' && !Number.isSafeInteger(n)) return invalid(name, raw, 'expected an integer');
      if (spec.min !== undefined && n < spec.min) return invalid(name, raw, `must be >= ${spec.min}`);
      if (spec.max !== undefined && n > spec.max) return invalid(name, raw, `must be <= ${spec.max}`);
      return n;
    }
    case 'uris': {
      const list =
        typeof raw === 'string'
          ? raw
              .split(',')
              .map((s) => s.trim())
              .filter((s) => s.length > 0)
          : Array.isArray(raw) && raw.every((s) => typeof s === 'string')
            ? (raw as string[])
            : invalid(name, raw, 'expected a comma-separated list of tcp:// URIs');
      return list.map((u) => {
        try {
          return endpointFrom(parseBrokerUri(u), {}).url;
        } catch (err) {
          return invalid(name, raw, (err as Error).message);
        }
      });
    }
  }
}

function endpointFrom(uri: BrokerUri, nested: Record<string, string>): ServerEndpoint {
  if (uri.scheme !== 'tcp' && uri.scheme !== 'ssl') {
    throw new InvalidArgumentError(
      `unsupported scheme "${uri.scheme}://" for the Keel client (expected tcp://HOST:PORT or ssl://HOST:PORT)`,
    );
  }
  const tls = uri.scheme === 'ssl';
  const options: EndpointOptions = {};
  const all = { ...nested, ...uri.options };
  for (const [given, value] of Object.entries(all)) {
    const name = ENDPOINT_ALIASES[given] ?? given;
    if (name === 'verifyHostName' && !tls) {
      throw new InvalidArgumentError(
        `option "${given}" is for ssl:// URIs only (got it on tcp://${uri.host}:${uri.port})`,
      );
    }
    const spec = (ENDPOINT_SPECS as Record<string, Spec | undefined>)[name];
    if (spec === undefined) {
      throw new InvalidArgumentError(
        `unknown option "${name}" on ${uri.scheme}://${uri.host}:${uri.port} (known: ${Object.keys(ENDPOINT_SPECS).join(', ')})`,
      );
    }
    (options as Record<string, unknown>)[name] = convert(name, spec, value);
  }
  const host = uri.host.includes(':') ? `[${uri.host}]` : uri.host;
  return { url: `${uri.scheme}://${host}:${uri.port}`, host: uri.host, port: uri.port, tls, options };
}

/** Validate failover option overrides given in code (names and values). */
export function checkFailoverOverrides(overrides: Record<string, unknown>): FailoverOptionOverrides {
  const out: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(overrides)) {
    if (value === undefined) continue;
    const spec = (SPECS as Record<string, Spec | undefined>)[name];
    if (spec === undefined) throw new InvalidArgumentError(`unknown failover option "${name}"`);
    out[name] = convert(name, spec, value);
  }
  return out as FailoverOptionOverrides;
}

/**
 * Parse the URL given to `connect()`: `tcp://host:port[?endpoint options]`, or
 * `failover:(tcp://a:61616,tcp://b:61617)?randomize=false&timeout=5000`, or
 * `failover:tcp://a,tcp://b`. Failover options come from the URL, then `overrides` (given in
 * code) win. `nested.NAME=VALUE` applies an endpoint option to every member (ActiveMQ's
 * `nested.` prefix); a member's own option wins over a nested one. Throws InvalidArgumentError
 * naming the bad part.
 */
export function parseConnectUrl(url: string, overrides: FailoverOptionOverrides = {}): ConnectTarget {
  const parsed = parseUri(url);
  const checked = checkFailoverOverrides(overrides as Record<string, unknown>);
  if (parsed.kind === 'broker') {
    return {
      failover: false,
      servers: [endpointFrom(parsed, {})],
      options: { ...DEFAULT_FAILOVER_OPTIONS, ...checked },
    };
  }
  if (parsed.scheme !== 'failover') {
    throw new InvalidArgumentError(
      `unsupported URL scheme "${parsed.scheme}:" for the Keel client (expected tcp://, ssl:// or failover:)`,
    );
  }
  const fromUrl: Record<string, unknown> = {};
  const nested: Record<string, string> = {};
  for (const [name, value] of Object.entries(parsed.options)) {
    if (name.startsWith('nested.')) {
      nested[name.slice('nested.'.length)] = value;
      continue;
    }
    const spec = (SPECS as Record<string, Spec | undefined>)[name];
    if (spec === undefined) throw new InvalidArgumentError(`unknown failover option "${name}" in ${url}`);
    fromUrl[name] = convert(name, spec, value);
  }
  const servers: ServerEndpoint[] = [];
  for (const member of parsed.uris) {
    if (member.kind !== 'broker') {
      throw new InvalidArgumentError(
        `nested composite URI "${member.scheme}:" is not supported inside failover:`,
      );
    }
    const ep = endpointFrom(member, nested);
    if (!servers.some((s) => s.url === ep.url)) servers.push(ep);
  }
  const options = { ...DEFAULT_FAILOVER_OPTIONS, ...(fromUrl as FailoverOptionOverrides), ...checked };
  return { failover: true, servers, options };
}

/** Turn a URL announced by a broker (WELCOME/BROKER_INFO `brokers`) into an endpoint, or null. */
export function endpointFromAnnounced(url: string): ServerEndpoint | null {
  try {
    return endpointFrom(parseBrokerUri(url), {});
  } catch {
    return null;
  }
}
