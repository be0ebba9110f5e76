import type { Broker, BrokerConsumer, ConnectionState, Logger } from '@keel/core';
import { silentLogger } from '@keel/core';
import { formatDestination, parseDestination } from '@keel/protocol';

/** ActiveMQ's consumer advisory topics: `ActiveMQ.Advisory.Consumer.Queue.<name>`, `…Topic.<name>`. */
export const ADVISORY_PREFIX = 'ActiveMQ.Advisory.';
export const CONSUMER_ADVISORY_PREFIX = `${ADVISORY_PREFIX}Consumer.`;
/** What a bridge subscribes to on its peer: every consumer advisory. */
export const CONSUMER_ADVISORY_WILDCARD = `topic://${CONSUMER_ADVISORY_PREFIX}>`;

/** The advisory topic for a destination key (`queue://x` → `topic://ActiveMQ.Advisory.Consumer.Queue.x`). */
export function consumerAdvisoryTopic(destination: string): string {
  const d = parseDestination(destination);
  return `topic://${CONSUMER_ADVISORY_PREFIX}${d.type === 'queue' ? 'Queue' : 'Topic'}.${d.name}`;
}

/**
 * Client ids of the connections a network bridge opens on its own broker start with this: their
 * durable subscriptions (the network's, on behalf of a peer's) are not advertised as demand.
 */
export const NETWORK_CLIENT_ID_PREFIX = 'network:';

/**
 * Durable subscriptions can be removed without a consumer event (an unsubscribe by name): the
 * publisher re-reads them this often and advertises a changed count.
 */
export const DURABLE_POLL_MS = 1000;

/** Property of the advisory that ends a snapshot (after every non-zero count was published again). */
export const SNAPSHOT_END_PROPERTY = 'snapshotEnd';

/**
 * Property of a consumer advisory carrying the network demand this broker learned from its peers
 * (re-advertised for connectors with consumerTTL > 1): a JSON array of broker paths, one per
 * (destination, origin) the demand came through, the broker with the consumers first, the peer it
 * was learned from last. Absent: none. ActiveMQ re-advertises network consumers likewise, with the
 * brokerPath of the ConsumerInfo appended (DemandForwardingBridgeSupport, consumerTTL).
 */
export const NETWORK_DEMAND_PROPERTY = 'networkDemand';

/**
 * Property of a queue's consumer advisory carrying its local consumers' message selectors, a JSON
 * array of selector texts, when every one of them has a selector; absent when any has none (the
 * peer then forwards everything). ActiveMQ's advisories carry the ConsumerInfo with its selector,
 * and the bridge's network consumer uses it (DemandForwardingBridgeSupport, "selector" of the
 * demand subscription), so a peer forwards only what its consumers here could take (issue #21.1).
 */
export const SELECTORS_PROPERTY = 'selectors';

/**
 * The selector a bridge consumes with for a `selectors` property: the union (OR) of the texts, or
 * null (forward everything) when absent or malformed.
 */
export function demandSelector(value: unknown): string | null {
  if (typeof value !== 'string' || value.length === 0) return null;
  try {
    const v = JSON.parse(value) as unknown;
    if (!Array.isArray(v) || v.length === 0 || !v.every((s) => typeof s === 'string' && s.trim() !== ''))
      return null;
    return v.length === 1 ? (v[0] as string) : v.map((s) => `(${s as string})`).join(' OR ');
  } catch {
    return null;
  }
}

/** Parse a `networkDemand` property: broker paths (anything malformed is ignored). */
export function parseNetworkDemand(value: unknown): string[][] {
  if (typeof value !== 'string' || value.length === 0) return [];
  try {
    const v = JSON.parse(value) as unknown;
    if (!Array.isArray(v)) return [];
    return v.filter(
      (p): p is string[] =>
        Array.isArray(p) && p.length > 0 && p.every((b) => typeof b === 'string' && b.length > 0),
    );
  } catch {
    return [];
  }
}

export interface AdvisoryPublisherOptions {
  logger?: Logger;
  /** ms between reads of the durable subscriptions (default DURABLE_POLL_MS). */
  durablePollMs?: number;
}

/**
 * Tells peers which destinations have consumers here: on every change of the number of local
 * consumers of a queue or topic it publishes a non-persistent message on that destination's
 * consumer advisory topic with the properties `destination` (`queue://x`) and `consumerCount`.
 * Consumers of network bridges (connections with protocol 'network') do not count, so demand does
 * not echo between brokers. With consumerTTL > 1 the bridges also hand it the demand they learned
 * from their peers (setNetworkDemand), re-advertised in `networkDemand` with the path of brokers
 * it came through, so demand travels up to consumerTTL hops (see NETWORK_DEMAND_PROPERTY).
 * When a consumer subscribes to an advisory topic (a bridge linking up), every non-zero count is
 * published again, then one advisory with `snapshotEnd: true`: that is the snapshot a new bridge
 * starts from.
 *
 * Topics also carry `durableCount`: the durable subscriptions on that topic here, active or not,
 * except the network's own (client ids starting with `network:`). A peer keeps forwarding a topic
 * while it is above zero, into a durable subscription of its own, so the messages published there
 * while the subscriber is offline, or the link is down, are kept (ActiveMQ's network durable
 * subscriptions); when it drops to zero (the subscription was removed) the peer removes its own.
 */
export class AdvisoryPublisher {
  private readonly logger: Logger;
  private readonly counts = new Map<string, number>();
  private readonly durables = new Map<string, number>();
  private readonly tracked = new Map<BrokerConsumer, string>();
  /** The selector text of each tracked queue consumer (null: none). */
  private readonly selectorOf = new Map<BrokerConsumer, string | null>();
  /** Network demand learned by the bridges (consumerTTL > 1): destination → bridge → paths. */
  private readonly network = new Map<string, Map<string, string[][]>>();
  private readonly durablePollMs: number;
  private pollTimer: NodeJS.Timeout | null = null;
  private attached = false;

  constructor(
    private readonly broker: Broker,
    options: AdvisoryPublisherOptions = {},
  ) {
    this.logger = options.logger ?? silentLogger;
    this.durablePollMs = options.durablePollMs ?? DURABLE_POLL_MS;
  }

  private readonly onAdd = (e: {
    connection: ConnectionState;
    consumer: BrokerConsumer;
    destination: string;
  }): void => {
    const key = normalize(e.destination);
    if (key === null) return;
    if (isAdvisory(key)) {
      if (key.startsWith(`topic://${CONSUMER_ADVISORY_PREFIX}`)) this.publishSnapshot();
      return;
    }
    if (e.connection.info.protocol === 'network' || !isForwardableType(key)) return;
    this.tracked.set(e.consumer, key);
    this.selectorOf.set(e.consumer, e.consumer.selector?.text ?? null);
    // A new durable subscription: its count goes out with (before) the consumer's.
    if (key.startsWith('topic://')) this.refreshDurables(key);
    this.change(key, +1);
  };

  private readonly onRemove = (e: { consumer: BrokerConsumer }): void => {
    const key = this.tracked.get(e.consumer);
    if (key === undefined) return;
    this.tracked.delete(e.consumer);
    this.selectorOf.delete(e.consumer);
    this.change(key, -1);
  };

  attach(): this {
    if (this.attached) return this;
    this.attached = true;
    this.broker.on('consumer:add', this.onAdd);
    this.broker.on('consumer:remove', this.onRemove);
    this.refreshDurables();
    this.pollTimer = setInterval(() => this.refreshDurables(), this.durablePollMs);
    this.pollTimer.unref?.();
    return this;
  }

  detach(): void {
    if (!this.attached) return;
    this.attached = false;
    this.broker.off('consumer:add', this.onAdd);
    this.broker.off('consumer:remove', this.onRemove);
    if (this.pollTimer) clearInterval(this.pollTimer);
    this.pollTimer = null;
  }

  /** Durable subscriptions per topic (`topic://x`), the network's own excluded. */
  durableCounts(): Record<string, number> {
    return Object.fromEntries(this.durables);
  }

  /**
   * Re-read the durable subscriptions and advertise every topic whose count changed, except
   * `quiet` (its caller publishes it right after).
   */
  private refreshDurables(quiet?: string): void {
    if (!this.broker.isRunning) return;
    const now = new Map<string, number>();
    for (const d of this.broker.listDurables()) {
      if (d.clientId.startsWith(NETWORK_CLIENT_ID_PREFIX)) continue;
      const key = normalize(`topic://${d.topic}`);
      if (key !== null) now.set(key, (now.get(key) ?? 0) + 1);
    }
    const changed = new Set<string>();
    for (const [k, n] of now) if (this.durables.get(k) !== n) changed.add(k);
    for (const k of this.durables.keys()) if (!now.has(k)) changed.add(k);
    this.durables.clear();
    for (const [k, n] of now) this.durables.set(k, n);
    for (const k of changed) if (k !== quiet) this.publish(k);
  }

  /** Local (non-network) consumers per destination, for tests and status. */
  consumerCounts(): Record<string, number> {
    return Object.fromEntries(this.counts);
  }

  /** Local (non-network) consumers of one destination (`queue://x`). */
  consumerCount(destination: string): number {
    const key = normalize(destination);
    return key === null ? 0 : (this.counts.get(key) ?? 0);
  }

  /**
   * The network demand one bridge (`source`) learned from its peer for one destination: broker
   * paths (the consumers' broker first, the peer last). It is re-advertised to every peer with the
   * local count; a change of the set is published at once. `[]` withdraws it.
   */
  setNetworkDemand(source: string, destination: string, paths: string[][]): void {
    const key = normalize(destination);
    if (key === null || isAdvisory(key) || !isForwardableType(key)) return;
    const before = this.networkDemandOf(key);
    const bySource = this.network.get(key);
    if (paths.length > 0) {
      if (bySource) bySource.set(source, paths);
      else this.network.set(key, new Map([[source, paths]]));
    } else if (bySource) {
      bySource.delete(source);
      if (bySource.size === 0) this.network.delete(key);
    }
    if (JSON.stringify(this.networkDemandOf(key)) !== JSON.stringify(before)) this.publish(key);
  }

  /** A bridge's link went down: withdraw all the network demand it learned. */
  clearNetworkDemand(source: string): void {
    for (const [key, bySource] of [...this.network]) {
      if (bySource.has(source)) this.setNetworkDemand(source, key, []);
    }
  }

  /** The network demand re-advertised for one destination: distinct paths, sorted. */
  networkDemandOf(destination: string): string[][] {
    const key = normalize(destination);
    const bySource = key === null ? undefined : this.network.get(key);
    if (!bySource) return [];
    const all = new Map<string, string[]>();
    for (const paths of bySource.values()) for (const p of paths) all.set(JSON.stringify(p), p);
    return [...all.keys()].sort().map((k) => all.get(k) as string[]);
  }

  private change(key: string, delta: number): void {
    const n = Math.max(0, (this.counts.get(key) ?? 0) + delta);
    if (n === 0) this.counts.delete(key);
    else this.counts.set(key, n);
    this.publish(key);
  }

  private publishSnapshot(): void {
    const keys = new Set([...this.counts.keys(), ...this.durables.keys(), ...this.network.keys()]);
    for (const key of keys) this.publish(key);
    this.send(`topic://${CONSUMER_ADVISORY_PREFIX}Snapshot`, {
      [SNAPSHOT_END_PROPERTY]: true,
      origin: this.broker.nodeName,
    });
  }

  private publish(key: string): void {
    const consumerCount = this.counts.get(key) ?? 0;
    const properties: Record<string, string | number | boolean> = {
      destination: key,
      consumerCount,
      origin: this.broker.nodeName,
    };
    if (key.startsWith('topic://')) properties.durableCount = this.durables.get(key) ?? 0;
    const network = this.networkDemandOf(key);
    if (network.length > 0) properties[NETWORK_DEMAND_PROPERTY] = JSON.stringify(network);
    else {
      const selectors = consumerCount > 0 ? this.selectorsOf(key) : null;
      if (selectors !== null) properties[SELECTORS_PROPERTY] = JSON.stringify(selectors);
    }
    this.send(consumerAdvisoryTopic(key), properties);
  }

  /**
   * The distinct selectors of a queue's local consumers, sorted, or null when one of them has none
   * (or for a topic: its subscriptions filter at publish, and are advertised unfiltered).
   */
  private selectorsOf(key: string): string[] | null {
    if (!key.startsWith('queue://')) return null;
    const texts = new Set<string>();
    for (const [c, k] of this.tracked) {
      if (k !== key) continue;
      const text = this.selectorOf.get(c) ?? null;
      if (text === null) return null;
      texts.add(text);
    }
    return texts.size === 0 ? null : [...texts].sort();
  }

  private send(destination: string, properties: Record<string, string | number | boolean>): void {
    if (!this.broker.isRunning) return;
    const key = properties.destination;
    this.broker
      .sendInternal({
        destination,
        persistent: false,
        priority: 4,
        timestamp: Date.now(),
        expiration: 0,
        properties,
        body: Buffer.alloc(0),
      })
      .catch((err: Error) =>
        this.logger.debug({ err: err.message, destination: key }, 'consumer advisory not published'),
      );
  }
}

function normalize(destination: string): string | null {
  try {
    return formatDestination(parseDestination(destination));
  } catch {
    return null;
  }
}

function isAdvisory(key: string): boolean {
  return key.startsWith(`topic://${ADVISORY_PREFIX}`) || key.startsWith(`queue://${ADVISORY_PREFIX}`);
}

function isForwardableType(key: string): boolean {
  return key.startsWith('queue://') || key.startsWith('topic://');
}
