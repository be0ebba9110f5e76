import { isLinkError } from '@keel/client';
import type { Broker, ConnectionState, Delivery, Logger } from '@keel/core';
import { type Message, networkProducerId } from '@keel/protocol';
import { NETWORK_CLIENT_ID_PREFIX } from './advisory-publisher';
import { isForwardable, type NetworkConnectorOptions } from './connector-config';

/** Priority of network consumers with decreaseNetworkConsumerPriority (ActiveMQ uses -5 per hop). */
export const NETWORK_CONSUMER_PRIORITY = -5;

/** Prefix of the durable subscriptions a bridge keeps on behalf of a peer (ActiveMQ: `NC-DS_`). */
export const NETWORK_DURABLE_PREFIX = 'NC-DS_';

/** How a destination is forwarded: a queue, a topic while the peer has live subscribers, or durably. */
export type ForwarderKind = 'queue' | 'topic' | 'durable';

interface Forwarder {
  destination: string;
  kind: ForwarderKind;
  consumerId: string;
  inflight: number;
  /** Demand went away: send nothing more; close once the sends in flight are settled. */
  closing: boolean;
  /** Waiting for the sends in flight to settle. */
  settled: (() => void)[];
  static: boolean;
  /** The message selector it consumes with (a queue whose peer consumers all have one), or null. */
  selector: string | null;
}

export interface ForwardingLinkOptions {
  broker: Broker;
  /** This broker's name in the network (brokerPath): its cluster name. */
  localName: string;
  /** The peer's cluster name. */
  remoteName: string;
  options: NetworkConnectorOptions;
  /**
   * The user the local connection acts as (a duplex acceptor: its peer's bridge user), authorized
   * like a client; absent: the broker's own bridge, not checked here (the peer checks it).
   */
  username?: string;
  logger: Logger;
  /** Local (non-network) consumers of a destination here: replay only while 0. */
  localConsumers?: (destination: string) => number;
  /**
   * Hand one message to the peer; resolves once the peer has it (for a persistent message: after
   * the peer's store commit). A rejection with a link error means the link is going (the message
   * returns to the local queue when the link closes); any other rejection is the peer refusing it.
   */
  send: (out: Message, localId: string, resent: boolean) => Promise<unknown>;
  /** Called for every message the peer confirmed (and that was acknowledged here). */
  onForwarded?: () => void;
  onError?: (message: string) => void;
}

let consumerCounter = 0;

/**
 * One direction of one link, local → peer: ActiveMQ's DemandForwardingBridge minus the transport.
 * Given the peer's demand (its consumer advisories) it consumes the destinations the peer wants here
 * as network consumers and hands each message to `send`, store-and-forward:
 *
 * - a message is acknowledged here only after the peer confirmed it, so a crash of either side at
 *   any point loses nothing;
 * - forwarded persistent messages carry producerId `net:<local>:<message id>` (seq 1): a resend after
 *   a crash or a link drop is dropped by the peer's duplicate detection, in any order;
 * - up to `prefetchSize` messages per destination are in flight;
 * - every forwarded message carries brokerPath + this broker; a message whose path holds the peer, or
 *   that has taken `messageTTL` hops already, is not forwarded (ActiveMQ's NetworkBridgeFilter);
 * - a topic the peer holds durable subscriptions on is consumed through a durable subscription here
 *   (`NC-DS_<topic>` of client id `network:<local>-><peer>:<connector>`), which keeps what is
 *   published while the link is down; it is removed when the peer's durable subscriptions are.
 *
 * The transport (a client connection to the peer, or the accepting end of a duplex connection)
 * supplies `send` and feeds `demand()`.
 */
export class ForwardingLink {
  readonly local: ConnectionState;
  readonly forwarders = new Map<string, Forwarder>();
  closed = false;
  /** Topics the peer advertised durable subscriptions for since `beginSnapshot()` (null: not collecting). */
  private snapshotDurables: Set<string> | null = null;
  /** Queues forwarded on the peer's network demand only (consumerTTL > 1): never replayed to it. */
  private readonly networkOnly = new Set<string>();
  private readonly o: NetworkConnectorOptions;
  private readonly logger: Logger;

  constructor(private readonly opts: ForwardingLinkOptions) {
    this.o = opts.options;
    this.logger = opts.logger;
    this.local = opts.broker.openConnection({
      protocol: 'network',
      // Stable per (local, peer, connector): the durable subscriptions kept for the peer belong to it.
      clientId: networkClientId(opts.localName, opts.remoteName, this.o.name),
      username: opts.username,
    });
  }

  get remoteName(): string {
    return this.opts.remoteName;
  }

  /** Statically included destinations are forwarded whatever the demand. */
  async start(): Promise<void> {
    for (const d of this.o.staticallyIncludedDestinations) {
      if (!d.includes('*') && !d.includes('>')) {
        await this.addForwarder(d, d.startsWith('topic://') ? 'topic' : 'queue', true);
      }
    }
  }

  forwarding(): string[] {
    return [...this.forwarders.values()]
      .filter((f) => !f.closing)
      .map((f) => f.destination)
      .sort();
  }

  inflight(): number {
    let n = 0;
    for (const f of this.forwarders.values()) n += f.inflight;
    return n;
  }

  /** The durable subscriptions this link's client id holds here (kept for the peer), by topic key. */
  networkDurables(): Map<string, string> {
    const out = new Map<string, string>();
    for (const d of this.opts.broker.listDurables()) {
      if (d.clientId === this.local.clientId) out.set(`topic://${d.topic}`, d.name);
    }
    return out;
  }

  /** A snapshot of the peer's demand begins (the advisory subscription was just made). */
  beginSnapshot(): void {
    this.snapshotDurables = new Set();
  }

  /**
   * The snapshot is complete: every durable subscription kept here for the peer on a topic where
   * it advertised none is removed (the peer's was removed while the link was down).
   */
  async endSnapshot(): Promise<void> {
    const seen = this.snapshotDurables;
    this.snapshotDurables = null;
    if (seen === null || this.closed) return;
    for (const [topic, name] of this.networkDurables()) {
      if (seen.has(topic) || this.forwarders.get(topic)?.kind === 'durable') continue;
      await this.removeNetworkDurable(topic, name);
    }
  }

  /**
   * The peer's demand for one destination (its consumer advisory): `consumerCount` local consumers,
   * and for a topic `durableCount` durable subscriptions (active or not), plus `networkCount`: the
   * demand it re-advertised from further brokers that this link accepts (consumerTTL > 1; see
   * DemandForwardingBridge), which is forwarded on like local demand. Call one at a time, in order.
   */
  async demand(
    destination: string,
    localCount: number,
    durableCount = 0,
    networkCount = 0,
    /**
     * The union of the peer's consumers' selectors (queues; SELECTORS_PROPERTY), null = all: only
     * what matches is consumed here for the peer, the rest stays for local consumers (issue #21.1).
     */
    demandSelector: string | null = null,
  ): Promise<void> {
    if (this.closed || !isForwardable(this.o, destination)) return;
    if (localCount === 0 && networkCount > 0) this.networkOnly.add(destination);
    else this.networkOnly.delete(destination);
    const consumerCount = localCount + networkCount;
    const existing = this.forwarders.get(destination);
    if (existing?.static) return;
    const isTopic = destination.startsWith('topic://');
    if (isTopic && durableCount > 0) this.snapshotDurables?.add(destination);
    const want: ForwarderKind | null = !isTopic
      ? consumerCount > 0
        ? 'queue'
        : null
      : durableCount > 0
        ? 'durable'
        : consumerCount > 0
          ? 'topic'
          : null;
    // Network demand re-advertised from further on carries no selectors: forward everything.
    const selector = want === 'queue' && networkCount === 0 ? demandSelector : null;
    const same = existing !== undefined && existing.kind === want && existing.selector === selector;
    if (existing && !existing.closing && same) return;
    if (existing && same) {
      // Closing: let it finish (a durable subscription takes one consumer at a time), then reopen.
      await this.removeForwarder(existing);
      await this.addForwarder(destination, existing.kind, false, selector);
      return;
    }
    if (want !== null) {
      // The new consumer first, then the old one closes: nothing published in between is missed
      // (a persistent message both take is forwarded twice and dropped by the peer as a duplicate).
      // So too when only the selector changed (the peer's consumers changed theirs).
      await this.addForwarder(destination, want, false, selector);
    }
    if (existing) await this.removeForwarder(existing);
    if (isTopic && want !== 'durable' && !this.closed) {
      // The peer's durable subscriptions are gone: so is the one kept for them here.
      const name = this.networkDurables().get(destination);
      if (name !== undefined) await this.removeNetworkDurable(destination, name);
    }
  }

  /** Close every forwarder not in `keep` (demand not confirmed after a master/slave peer's takeover). */
  async retain(keep: Set<string>): Promise<string[]> {
    const stale = [...this.forwarders.values()].filter(
      (f) => !f.static && !f.closing && !keep.has(f.destination),
    );
    for (const f of stale) await this.removeForwarder(f);
    return stale.map((f) => f.destination);
  }

  /**
   * Link down: messages sent but unconfirmed go back to the local queues untouched (no redelivery
   * count); sent again later, the peer's duplicate detection drops any it had stored. Durable
   * subscriptions kept for the peer stay (inactive): they keep what is published meanwhile.
   */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.opts.broker.closeConnection(this.local, { redeliver: false });
    for (const f of this.forwarders.values()) for (const s of f.settled.splice(0)) s();
    this.forwarders.clear();
  }

  /**
   * ActiveMQ's NetworkBridgeFilter, with ConditionalNetworkBridgeFilter's replayWhenNoConsumers:
   * - normally a message goes to the peer only if the peer is not in its brokerPath (no loops)
   *   and it has taken fewer than `messageTTL` hops (brokers in the path);
   * - replay: a QUEUE message on a broker with no local consumer for that queue may go to a peer
   *   with demand even if the peer is in its path or its TTL is used up, for at most `maxReplays`
   *   hops beyond messageTTL. It cannot loop: each replay needs the broker holding it to have no
   *   consumers and the peer to have some (a replay needs the peer's own, local, demand), so
   *   a message moves again only when consumers move. The peer stores it as a new message
   *   (producerId `net:<this broker>:<local id>`), so its duplicate detection does not drop it
   *   (ActiveMQ's audit does, and dead-letters it, unless enableAudit=false).
   */
  private accepts(f: Forwarder, message: Message): boolean {
    const path = message.brokerPath ?? [];
    if (!path.includes(this.opts.remoteName) && path.length < this.o.messageTTL) return true;
    if (!this.o.replayWhenNoConsumers || f.static || f.kind !== 'queue') return false;
    // Replay goes only to a peer with consumers of its own: demand re-advertised from further on
    // may lead back here (a mesh), and a replayed message would then bounce between the two.
    if (this.networkOnly.has(f.destination)) return false;
    if (path.length >= this.o.messageTTL + this.o.maxReplays) return false;
    const local = this.opts.localConsumers;
    return local !== undefined && local(f.destination) === 0;
  }

  private async addForwarder(
    destination: string,
    kind: ForwarderKind,
    isStatic: boolean,
    selector: string | null = null,
  ): Promise<void> {
    if (this.closed) return;
    consumerCounter += 1;
    const f: Forwarder = {
      destination,
      kind,
      consumerId: `net-${consumerCounter}`,
      inflight: 0,
      closing: false,
      settled: [],
      static: isStatic,
      selector,
    };
    try {
      await this.opts.broker.subscribe(
        this.local,
        {
          consumerId: f.consumerId,
          destination,
          prefetch: this.o.prefetchSize,
          priority: this.o.decreaseNetworkConsumerPriority ? NETWORK_CONSUMER_PRIORITY : 0,
          ...(kind === 'durable'
            ? // A message refused by a durable subscription would stay at its head: the filter
              // runs in forward() instead, which acknowledges what the peer must not get.
              { durableName: networkDurableName(destination) }
            : { accept: (message: Message) => this.accepts(f, message) }),
          ...(selector !== null ? { selector } : {}),
        },
        (d) => this.forward(f, d),
      );
    } catch (err) {
      if (selector !== null) {
        // A selector this broker cannot parse (a peer of another version): forward everything.
        this.logger.warn(
          { destination, selector, err: (err as Error).message },
          'network bridge: demand selector refused, forwarding unfiltered',
        );
        return this.addForwarder(destination, kind, isStatic, null);
      }
      this.logger.warn(
        { destination, err: (err as Error).message },
        'network bridge: cannot consume locally',
      );
      return;
    }
    if (this.closed) return;
    this.forwarders.set(destination, f);
    this.logger.info(
      { destination, remote: this.opts.remoteName, durable: kind === 'durable', selector },
      'network bridge: forwarding on demand',
    );
  }

  private async removeForwarder(f: Forwarder): Promise<void> {
    f.closing = true;
    if (f.inflight > 0) await new Promise<void>((resolve) => f.settled.push(resolve));
    if (this.forwarders.get(f.destination) === f) this.forwarders.delete(f.destination);
    if (this.closed) return;
    try {
      // What this consumer holds unsent goes back to the local queue (or durable subscription).
      this.opts.broker.unsubscribe(this.local, f.consumerId);
    } catch {
      // already gone with the connection
    }
    this.logger.info(
      { destination: f.destination, remote: this.opts.remoteName },
      'network bridge: demand gone',
    );
  }

  private async removeNetworkDurable(topic: string, name: string): Promise<void> {
    try {
      await this.opts.broker.removeDurable(this.local.clientId, name);
      this.logger.info(
        { destination: topic, remote: this.opts.remoteName, name },
        'network bridge: network durable subscription removed',
      );
    } catch (err) {
      this.logger.warn(
        { destination: topic, err: (err as Error).message },
        'network bridge: cannot remove the network durable subscription',
      );
    }
  }

  private forward(f: Forwarder, d: Delivery): void {
    // Held back while closing: unacknowledged, it returns to the queue when the consumer closes.
    if (f.closing || this.closed) return;
    const m = d.message;
    if (f.kind === 'durable' && !this.accepts(f, m)) {
      // Not for the peer (it came from there, or its hops are used up): done here.
      this.opts.broker.ack(this.local, f.consumerId, [m.messageId]).catch(() => {});
      return;
    }
    const out: Message = {
      destination: m.destination,
      persistent: m.persistent,
      priority: m.priority,
      timestamp: m.timestamp,
      expiration: m.expiration,
      correlationId: m.correlationId,
      replyTo: m.replyTo,
      type: m.type,
      originalDestination: m.originalDestination,
      brokerPath: [...(m.brokerPath ?? []), this.opts.localName],
      properties: m.properties,
      body: m.body,
    };
    if (m.persistent) {
      // A key of its own per message, stable across resends (the local id survives recovery), so
      // the peer knows a resend whatever order resends come in; the peer records these per commit
      // round, not as producers (core's ForwardedMessages).
      out.producerId = networkProducerId(this.opts.localName, m.messageId);
      out.producerSeq = 1;
    }
    f.inflight += 1;
    // Redelivered here (a link dropped with it unconfirmed, or recovered after a crash): the peer
    // may have it, so it checks; a first forward skips the peer's store lookup of the producer.
    this.opts.send(out, m.messageId, m.redelivered).then(
      () => {
        this.opts.onForwarded?.();
        this.settle(f);
        if (this.closed) return; // given back to the queue already; a resend is a duplicate the peer drops
        try {
          // Nobody waits for the removal's commit (a failed round retries it).
          this.opts.broker.ackOneWay(this.local, f.consumerId, [m.messageId]);
        } catch (err) {
          this.logger.debug({ err: (err as Error).message }, 'network bridge: local ack failed');
        }
      },
      (err: Error) => {
        this.settle(f);
        this.opts.onError?.(err.message);
        if (this.closed || isLinkError(err)) return; // the link is going: close() gives it back
        this.logger.warn(
          { destination: f.destination, err: err.message },
          'network bridge: peer refused a message',
        );
        try {
          this.opts.broker.nack(this.local, f.consumerId, [m.messageId]);
        } catch {
          // consumer gone
        }
      },
    );
  }

  private settle(f: Forwarder): void {
    f.inflight -= 1;
    if (f.inflight === 0) for (const s of f.settled.splice(0)) s();
  }
}

/** Client id of a bridge's connection on its own broker: stable, so its durable subscriptions are found again. */
export function networkClientId(localName: string, remoteName: string, connector: string): string {
  return `${NETWORK_CLIENT_ID_PREFIX}${localName}->${remoteName}:${connector}`;
}

/** Name of the durable subscription kept for a peer's durable subscriptions on `topic://x`. */
export function networkDurableName(topic: string): string {
  return `${NETWORK_DURABLE_PREFIX}${topic.slice(topic.indexOf('://') + 3)}`;
}
