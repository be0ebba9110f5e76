import {
  type CompositeUri,
  formatUri,
  InvalidArgumentError,
  matchesWildcard,
  type ParsedUri,
  parseDestination,
  parseUri,
} from '@keel/protocol';

/**
 * Options of a network connector, with ActiveMQ Classic's NetworkConnector / DiscoveryNetworkConnector
 * names and defaults (activemq.apache.org "Networks of Brokers", "Static discovery"). Given as URI
 * options: `static:(tcp://h1:61616,tcp://h2:61616)?maxReconnectDelay=5000&useExponentialBackOff=false`.
 */
export interface NetworkConnectorOptions {
  /** Connector name (ActiveMQ `name`, default "bridge"). */
  name: string;
  /** ActiveMQ `duplex`: the peer also forwards to us over the same connection (only this side needs a connector). */
  duplex: boolean;
  /** ActiveMQ `networkTTL`: hops a message and a subscription may take (default 1). */
  networkTTL: number;
  /** ActiveMQ `messageTTL`: hops a message may take (default: networkTTL). */
  messageTTL: number;
  /**
   * ActiveMQ `consumerTTL`: hops demand may travel (default: networkTTL). Above 1 a bridge also
   * forwards on the network demand its peer re-advertises (fewer than consumerTTL hops beyond the
   * peer, not through this broker) and hands it to the advisory publisher to pass on.
   */
  consumerTTL: number;
  /** ActiveMQ `dynamicOnly`: forward only while there is demand (default false). */
  dynamicOnly: boolean;
  /** ActiveMQ `conduitSubscriptions`: one network subscription per topic, whatever the remote count (default true). */
  conduitSubscriptions: boolean;
  /** ActiveMQ `decreaseNetworkConsumerPriority`: local consumers first (default false). */
  decreaseNetworkConsumerPriority: boolean;
  /** ActiveMQ `suppressDuplicateQueueSubscriptions` (default false). Accepted; demand is per broker anyway. */
  suppressDuplicateQueueSubscriptions: boolean;
  /** ActiveMQ `excludedDestinations`: never forwarded (wins over the includes). */
  excludedDestinations: string[];
  /** ActiveMQ `dynamicallyIncludedDestinations`: forwarded on demand; empty = every destination. */
  dynamicallyIncludedDestinations: string[];
  /** ActiveMQ `staticallyIncludedDestinations`: forwarded whether or not the peer has consumers. */
  staticallyIncludedDestinations: string[];
  /** ActiveMQ `prefetchSize`: window of messages forwarded but not yet confirmed by the peer (default 1000). */
  prefetchSize: number;
  /** ActiveMQ `initialReconnectDelay` (ms). Keel default 100 (ActiveMQ: 1000). */
  initialReconnectDelay: number;
  /**
   * ActiveMQ `maxReconnectDelay` (ms). Keel default 500 (ActiveMQ: 30000): a peer back after a
   * restart is relinked within half a second, however long it was down.
   */
  maxReconnectDelay: number;
  /** ActiveMQ `useExponentialBackOff` (default true). */
  useExponentialBackOff: boolean;
  /** ActiveMQ `backOffMultiplier` (default 2). */
  backOffMultiplier: number;
  /**
   * ActiveMQ `replayWhenNoConsumers` (ConditionalNetworkBridgeFilterFactory). Keel default true
   * (ActiveMQ: false): a queue message on a broker with no local consumer for that queue may be
   * forwarded to a peer with demand even if the peer is in its brokerPath or it has used up its
   * messageTTL, so messages never strand on a broker whose consumers left.
   */
  replayWhenNoConsumers: boolean;
  /**
   * Keel: replays a message may make (hops beyond `messageTTL`); past that it stays where it is
   * (never dead-lettered). Every replay follows a broker's consumers leaving, so this only bounds
   * pathological flapping. Default 16.
   */
  maxReplays: number;
  /** ActiveMQ `userName`: credentials the bridge presents to the peer (null: none). */
  userName: string | null;
  /** ActiveMQ `password` (with userName). */
  password: string | null;
}

export const DEFAULT_NETWORK_CONNECTOR_OPTIONS: Readonly<
  Omit<NetworkConnectorOptions, 'messageTTL' | 'consumerTTL'>
> = Object.freeze({
  name: 'bridge',
  duplex: false,
  networkTTL: 1,
  dynamicOnly: false,
  conduitSubscriptions: true,
  decreaseNetworkConsumerPriority: false,
  suppressDuplicateQueueSubscriptions: false,
  excludedDestinations: [],
  dynamicallyIncludedDestinations: [],
  staticallyIncludedDestinations: [],
  prefetchSize: 1000,
  initialReconnectDelay: 100,
  maxReconnectDelay: 500,
  useExponentialBackOff: true,
  backOffMultiplier: 2,
  replayWhenNoConsumers: true,
  maxReplays: 16,
  userName: null,
  password: null,
});

/** ActiveMQ's default multicast discovery group (multicast://default = 239.255.2.3:6155). */
export const DEFAULT_MULTICAST_GROUP = '239.255.2.3';
export const DEFAULT_MULTICAST_PORT = 6155;

/** ActiveMQ MulticastDiscoveryAgent: announce every 500 ms, a peer is gone after 10 missed. */
export const DEFAULT_MULTICAST_KEEP_ALIVE_MS = 500;
export const MULTICAST_MISSES_BEFORE_DEATH = 10;

export interface MulticastDiscovery {
  kind: 'multicast';
  group: string;
  port: number;
  /** ActiveMQ's logical group name (`?group=NAME`, default `default`): announcements of other groups are ignored. */
  groupName: string;
  /** ActiveMQ `interface`: local IPv4 address to send from and join the group on (default: OS choice). */
  interface: string | null;
  /** ActiveMQ `timeToLive`: multicast TTL of the announcements (default 1: this subnet). */
  timeToLive: number;
  /** ActiveMQ `keepAliveInterval`: ms between announcements (default 500). */
  keepAliveInterval: number;
}

export type PeerDiscovery = { kind: 'static'; peers: string[] } | MulticastDiscovery;

export interface NetworkConnectorConfig {
  /** The URI as given (for logs, secrets not redacted here). */
  uri: string;
  discovery: PeerDiscovery;
  options: NetworkConnectorOptions;
}

const BOOLEAN_OPTIONS = [
  'duplex',
  'dynamicOnly',
  'conduitSubscriptions',
  'decreaseNetworkConsumerPriority',
  'suppressDuplicateQueueSubscriptions',
  'useExponentialBackOff',
  'replayWhenNoConsumers',
] as const;
const INTEGER_OPTIONS = [
  'networkTTL',
  'messageTTL',
  'consumerTTL',
  'prefetchSize',
  'initialReconnectDelay',
  'maxReconnectDelay',
  'maxReplays',
] as const;
const LIST_OPTIONS = [
  'excludedDestinations',
  'dynamicallyIncludedDestinations',
  'staticallyIncludedDestinations',
] as const;
/** Options of the multicast discovery agent, not of the connector. */
const MULTICAST_OPTIONS = new Set(['group', 'port', 'interface', 'timeToLive', 'keepAliveInterval']);

function bad(uri: string, why: string): never {
  throw new InvalidArgumentError(`invalid network connector ${JSON.stringify(uri)}: ${why}`);
}

function parseBool(uri: string, name: string, v: string): boolean {
  if (v === 'true') return true;
  if (v === 'false') return false;
  bad(uri, `option "${name}" must be true or false (got ${JSON.stringify(v)})`);
}

function parseInteger(uri: string, name: string, v: string, min: number): number {
  if (!/^-?[0-9]+$/.test(v) || !Number.isSafeInteger(Number(v)) || Number(v) < min) {
    bad(uri, `option "${name}" must be an integer >= ${min} (got ${JSON.stringify(v)})`);
  }
  return Number(v);
}

/** `queue://a.>,topic://b` or ActiveMQ's physical names with a type prefix; plain names are queues. */
function parseDestinationList(uri: string, name: string, v: string): string[] {
  const out: string[] = [];
  for (const raw of v.split(',')) {
    const item = raw.trim();
    if (item.length === 0) continue;
    try {
      const d = parseDestination(item.includes('://') ? item : `queue://${item}`);
      out.push(`${d.type}://${d.name}`);
    } catch (err) {
      bad(uri, `option "${name}": ${(err as Error).message}`);
    }
  }
  return out;
}

function peerUrl(member: ParsedUri, uri: string): string {
  if (member.kind === 'broker') {
    // ssl:// peers: the bridge trusts the node's tls.ca and shows its certificate (node.ts).
    if (member.scheme !== 'tcp' && member.scheme !== 'ssl')
      bad(uri, `peer ${formatUri(member)}: only tcp:// and ssl:// peers are supported`);
    return formatUri(member);
  }
  if (member.scheme === 'failover') return formatUri(member);
  if (member.scheme === 'masterslave') return failoverOf(member, uri);
  bad(uri, `a ${member.scheme}: list cannot be a peer`);
}

/** masterslave:(a1,a2) is one peer (a master/slave pair) reached through the failover transport. */
function failoverOf(ms: CompositeUri, uri: string): string {
  for (const m of ms.uris) {
    if (m.kind !== 'broker' || (m.scheme !== 'tcp' && m.scheme !== 'ssl'))
      bad(uri, 'masterslave: members must be tcp:// or ssl:// URIs');
  }
  return formatUri({ kind: 'composite', scheme: 'failover', uris: ms.uris, options: { randomize: 'false' } });
}

/**
 * Parse a network connector URI:
 *   static:(tcp://h1:61616,tcp://h2:61616)?options     one bridge per member
 *   static:(failover:(tcp://a1,tcp://a2))              one peer, a master/slave pair, via failover
 *   masterslave:(tcp://a1,tcp://a2)?options            the same, ActiveMQ's shorthand
 *   multicast://default?group=239.255.2.3&port=6155    discovery
 * Unknown options are an error (naming them), like the client's.
 */
export function parseNetworkConnector(uri: string): NetworkConnectorConfig {
  const parsed = parseUri(uri);
  let discovery: PeerDiscovery;
  const raw = { ...parsed.options };
  if (parsed.kind === 'composite') {
    if (parsed.scheme === 'static') {
      discovery = { kind: 'static', peers: parsed.uris.map((m) => peerUrl(m, uri)) };
    } else if (parsed.scheme === 'masterslave') {
      discovery = { kind: 'static', peers: [failoverOf(parsed, uri)] };
    } else {
      bad(uri, 'expected static:(…), masterslave:(…) or multicast://…');
    }
  } else if (parsed.scheme === 'multicast') {
    // The address: the URI's host (`default` = 239.255.2.3), or `?group=` when that is an IPv4
    // address. Otherwise `?group=` is ActiveMQ's logical group name: peers of other groups are ignored.
    const isAddress = (v: string) => /^[0-9]{1,3}(\.[0-9]{1,3}){3}$/.test(v);
    const groupIsAddress = raw.group !== undefined && isAddress(raw.group);
    const group = groupIsAddress
      ? (raw.group as string)
      : parsed.host === 'default'
        ? DEFAULT_MULTICAST_GROUP
        : parsed.host;
    if (!/^2(2[4-9]|3[0-9])\./.test(group) || !isAddress(group)) {
      bad(uri, `multicast address ${group} is not in 224.0.0.0/4`);
    }
    const groupName = raw.group !== undefined && !groupIsAddress ? raw.group : 'default';
    if (groupName.length === 0) bad(uri, 'option "group" is empty');
    const port = raw.port !== undefined ? parseInteger(uri, 'port', raw.port, 1) : parsed.port;
    if (port > 65535) bad(uri, `port ${port} is out of range`);
    const iface = raw.interface ?? null;
    if (iface !== null && !/^[0-9]{1,3}(\.[0-9]{1,3}){3}$/.test(iface)) {
      bad(uri, `option "interface" must be an IPv4 address (got ${JSON.stringify(iface)})`);
    }
    discovery = {
      kind: 'multicast',
      group,
      port,
      groupName,
      interface: iface,
      timeToLive: raw.timeToLive !== undefined ? parseInteger(uri, 'timeToLive', raw.timeToLive, 0) : 1,
      keepAliveInterval:
        raw.keepAliveInterval !== undefined
          ? parseInteger(uri, 'keepAliveInterval', raw.keepAliveInterval, 10)
          : DEFAULT_MULTICAST_KEEP_ALIVE_MS,
    };
    for (const k of MULTICAST_OPTIONS) delete raw[k];
  } else {
    bad(uri, 'expected static:(…), masterslave:(…) or multicast://…');
  }

  const o: Record<string, unknown> = { ...DEFAULT_NETWORK_CONNECTOR_OPTIONS };
  for (const [k, v] of Object.entries(raw)) {
    if ((BOOLEAN_OPTIONS as readonly string[]).includes(k)) o[k] = parseBool(uri, k, v);
    else if ((INTEGER_OPTIONS as readonly string[]).includes(k))
      o[k] = parseInteger(uri, k, v, k.endsWith('TTL') ? 1 : 0);
    else if ((LIST_OPTIONS as readonly string[]).includes(k)) o[k] = parseDestinationList(uri, k, v);
    else if (k === 'backOffMultiplier') {
      const n = Number(v);
      if (!Number.isFinite(n) || n < 1)
        bad(uri, `option "backOffMultiplier" must be a number >= 1 (got ${JSON.stringify(v)})`);
      o[k] = n;
    } else if (k === 'name' || k === 'userName' || k === 'password') {
      if (v.length === 0) bad(uri, `option "${k}" is empty`);
      o[k] = v;
    } else {
      bad(uri, `unknown option "${k}"`);
    }
  }
  // ActiveMQ: messageTTL and consumerTTL default to networkTTL.
  if (raw.messageTTL === undefined) o.messageTTL = o.networkTTL;
  if (raw.consumerTTL === undefined) o.consumerTTL = o.networkTTL;
  const options = o as unknown as NetworkConnectorOptions;
  if (options.prefetchSize < 1) bad(uri, 'option "prefetchSize" must be at least 1');
  if ((options.userName === null) !== (options.password === null)) {
    bad(uri, 'options "userName" and "password" go together');
  }
  if (options.maxReconnectDelay < options.initialReconnectDelay) {
    bad(uri, 'maxReconnectDelay must not be less than initialReconnectDelay');
  }
  return { uri, discovery, options };
}

/** Delay before reconnect attempt `attempt` (0-based), ActiveMQ's schedule: initial, then ×multiplier, capped. */
export function reconnectDelay(options: NetworkConnectorOptions, attempt: number): number {
  if (!options.useExponentialBackOff) return options.initialReconnectDelay;
  const d = options.initialReconnectDelay * options.backOffMultiplier ** Math.max(0, attempt);
  return Math.min(options.maxReconnectDelay, d);
}

function matchesAny(patterns: string[], key: string): boolean {
  const i = key.indexOf('://');
  const type = key.slice(0, i);
  const name = key.slice(i + 3);
  return patterns.some((p) => {
    const j = p.indexOf('://');
    return p.slice(0, j) === type && (p.slice(j + 3) === name || matchesWildcard(p.slice(j + 3), name));
  });
}

/**
 * Whether `destination` (`queue://x`, `topic://x`) may be forwarded on demand: not excluded, and
 * dynamically (or statically) included when includes are given. Advisory and temporary
 * destinations never are.
 */
export function isForwardable(options: NetworkConnectorOptions, destination: string): boolean {
  if (!destination.startsWith('queue://') && !destination.startsWith('topic://')) return false;
  if (destination.slice(destination.indexOf('://') + 3).startsWith('ActiveMQ.')) return false;
  if (matchesAny(options.excludedDestinations, destination)) return false;
  if (matchesAny(options.staticallyIncludedDestinations, destination)) return true;
  const dyn = options.dynamicallyIncludedDestinations;
  return dyn.length === 0 || matchesAny(dyn, destination);
}
