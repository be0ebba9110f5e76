import { randomUUID } from 'node:crypto';
import {
  type Connection,
  type ConnectOptions,
  type Consumer,
  connect,
  isLinkError,
  type ReceivedMessage,
  type Session,
} from '@keel/client';
import type { Broker, ConnectionState, Delivery, Logger } from '@keel/core';
import { silentLogger } from '@keel/core';
import type { Message } from '@keel/protocol';
import { CONSUMER_ADVISORY_WILDCARD } from './advisory-publisher';
import { isForwardable, type NetworkConnectorOptions, reconnectDelay } from './connector-config';

/** Priority of network consumers with decreaseNetworkConsumerPriority (ActiveMQ uses -5 per hop). */
export const NETWORK_CONSUMER_PRIORITY = -5;

export interface DemandForwardingBridgeOptions {
  /** The local broker (this node must be master). */
  broker: Broker;
  /** This broker's name in the network (brokerPath): the cluster name, shared by a master/slave pair. */
  localName: string;
  /** `tcp://host:port` or `failover:(…)` of the peer. */
  peerUrl: string;
  options: NetworkConnectorOptions;
  logger?: Logger;
  /** Credentials and other client options for the link to the peer. */
  connectOptions?: Pick<ConnectOptions, 'username' | 'password' | 'heartbeatMs' | 'connectTimeoutMs'>;
  /**
   * Local (non-network) consumers of a destination here (the advisory publisher's count): a queue
   * message may be replayed (replayWhenNoConsumers) only while this is 0. Without it, never.
   */
  localConsumers?: (destination: string) => number;
}

/**
 * After a master/slave peer's takeover the bridge re-subscribes to its consumer advisories (the new
 * master answers with a snapshot of its demand); forwarders not confirmed by it within this time
 * are closed (their demand went with the old master).
 */
export const DEMAND_RELEARN_MS = 2000;

export type BridgeState = 'connecting' | 'connected' | 'stopped';

export interface BridgeStatus {
  connector: string;
  localName: string;
  peerUrl: string;
  remoteName: string | null;
  state: BridgeState;
  /** Destinations being forwarded now (`queue://x`, `topic://y`). */
  forwarding: string[];
  /** Messages confirmed by the peer and acknowledged here. */
  forwarded: number;
  /** Sent to the peer, not yet confirmed. */
  inflight: number;
  connects: number;
  lastError: string | null;
}

interface Forwarder {
  destination: string;
  consumerId: string;
  inflight: number;
  /** Demand went away: send nothing more; close once the sends in flight are settled. */
  closing: boolean;
  settled: (() => void) | null;
  static: boolean;
}

interface Link {
  conn: Connection;
  session: Session;
  local: ConnectionState;
  remoteName: string;
  forwarders: Map<string, Forwarder>;
  closed: boolean;
  advisories: Consumer | null;
  /** Destinations with demand seen since the last takeover of the peer (null: not relearning). */
  relearned: Set<string> | null;
  relearnTimer: NodeJS.Timeout | null;
}

let consumerCounter = 0;

/**
 * ActiveMQ's DemandForwardingBridge, one direction (local → peer): it listens to the peer's consumer
 * advisories and, while the peer has consumers for an included destination, consumes that
 * destination here as a network consumer and forwards every message to the peer, store-and-forward:
 *
 * - a message is acknowledged here only after the peer's receipt (for a persistent message: after
 *   the peer's store commit), so a crash of either side at any point loses nothing;
 * - forwarded persistent messages carry producerId `net:<local>:<message id>` (seq 1): a resend
 *   after a crash or a link drop is dropped by the peer's duplicate detection, in any order;
 * - sends are pipelined: up to `prefetchSize` messages in flight (the local consumer's window);
 * - every forwarded message carries brokerPath + this broker; a message whose path holds the peer,
 *   or that has taken `messageTTL` hops already, is never given to the bridge (SubscribeOptions.accept).
 */
export class DemandForwardingBridge {
  private readonly logger: Logger;
  private readonly o: NetworkConnectorOptions;
  private state: BridgeState = 'connecting';
  private stopped = false;
  private link: Link | null = null;
  private wake: (() => void) | null = null;
  private loop: Promise<void> | null = null;
  private forwarded = 0;
  private connects = 0;
  private lastError: string | null = null;
  private remoteName: string | null = null;

  constructor(private readonly opts: DemandForwardingBridgeOptions) {
    this.o = opts.options;
    this.logger = opts.logger ?? silentLogger;
  }

  start(): this {
    if (!this.loop) this.loop = this.run();
    return this;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.state = 'stopped';
    this.wake?.();
    const link = this.link;
    if (link) await this.closeLink(link, 'bridge stopped');
    await this.loop;
  }

  status(): BridgeStatus {
    const link = this.link;
    let inflight = 0;
    for (const f of link?.forwarders.values() ?? []) inflight += f.inflight;
    return {
      connector: this.o.name,
      localName: this.opts.localName,
      peerUrl: this.opts.peerUrl,
      remoteName: this.remoteName,
      state: this.state,
      forwarding: link
        ? [...link.forwarders.values()]
            .filter((f) => !f.closing)
            .map((f) => f.destination)
            .sort()
        : [],
      forwarded: this.forwarded,
      inflight,
      connects: this.connects,
      lastError: this.lastError,
    };
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(done, ms);
      function done(): void {
        clearTimeout(t);
        resolve();
      }
      this.wake = done;
    });
  }

  private async run(): Promise<void> {
    let attempt = 0;
    while (!this.stopped) {
      let conn: Connection;
      try {
        conn = await this.connect();
      } catch (err) {
        const message = (err as Error).message;
        const code = (err as { code?: string }).code;
        const delay = reconnectDelay(this.o, attempt++);
        // A refusal (wrong credentials …) is an operator's business: warn once per distinct error.
        const refused = code === 'AUTH_FAILED' || code === 'NOT_AUTHORIZED' || code === 'UNSUPPORTED_VERSION';
        const log = refused && message !== this.lastError ? this.logger.warn : this.logger.debug;
        log.call(
          this.logger,
          { peer: this.opts.peerUrl, err: message, code, delayMs: delay },
          refused ? 'network bridge: the peer refused the connection' : 'network bridge: peer not reachable',
        );
        this.lastError = message;
        await this.sleep(delay);
        continue;
      }
      if (this.stopped) {
        await conn.close().catch(() => {});
        break;
      }
      const remoteName = conn.broker?.cluster ?? conn.broker?.name ?? this.opts.peerUrl;
      if (remoteName === this.opts.localName) {
        this.lastError = `peer ${this.opts.peerUrl} is this broker (${remoteName}): not bridging to itself`;
        this.logger.warn({ peer: this.opts.peerUrl }, this.lastError);
        await conn.close().catch(() => {});
        await this.sleep(this.o.maxReconnectDelay);
        continue;
      }
      attempt = 0;
      const closed = new Promise<void>((resolve) => conn.once('close', () => resolve()));
      try {
        await this.openLink(conn, remoteName);
        await closed;
      } catch (err) {
        this.lastError = (err as Error).message;
        this.logger.warn({ peer: this.opts.peerUrl, err: this.lastError }, 'network bridge failed');
      }
      if (this.link) await this.closeLink(this.link, 'link closed');
      if (!this.stopped) {
        this.state = 'connecting';
        await this.sleep(reconnectDelay(this.o, attempt++));
      }
    }
  }

  private connect(): Promise<Connection> {
    const failover = this.opts.peerUrl.startsWith('failover:');
    return connect(this.opts.peerUrl, {
      clientId: `network:${this.opts.localName}:${this.o.name}:${randomUUID()}`,
      ...this.opts.connectOptions,
      // ActiveMQ's NetworkConnector userName / password: the peer checks them like any client's.
      ...(this.o.userName !== null
        ? { username: this.o.userName, password: this.o.password ?? undefined }
        : {}),
      // A master/slave peer: the failover transport rides out the peer's takeover (sends wait for
      // the new master and are resent; its duplicate detection keeps them single). The first
      // connect is one pass; the bridge's own back-off (initialReconnectDelay …) retries it.
      ...(failover ? { startupMaxReconnectAttempts: 0, maxReconnectAttempts: -1, timeout: -1 } : {}),
    });
  }

  private async openLink(conn: Connection, remoteName: string): Promise<void> {
    const { broker, localName } = this.opts;
    const local = broker.openConnection({
      protocol: 'network',
      clientId: `network:${localName}->${remoteName}:${randomUUID()}`,
    });
    const session = await conn.createSession();
    const link: Link = {
      conn,
      session,
      local,
      remoteName,
      forwarders: new Map(),
      closed: false,
      advisories: null,
      relearned: null,
      relearnTimer: null,
    };
    this.link = link;
    this.remoteName = remoteName;
    this.connects += 1;
    this.state = 'connected';
    this.logger.info({ peer: this.opts.peerUrl, remote: remoteName }, 'network bridge connected');
    conn.on('error', (err) => this.logger.debug({ err: err.message }, 'network bridge link error'));
    for (const d of this.o.staticallyIncludedDestinations) {
      if (!d.includes('*') && !d.includes('>')) await this.addForwarder(link, d, true);
    }
    // A failover peer (master/slave pair) that took over: relearn its demand from the new master.
    conn.on('resumed', () => void this.relearnDemand(link));
    await this.subscribeAdvisories(link);
  }

  /** Subscribing makes the peer publish a snapshot of its non-zero consumer counts. */
  private async subscribeAdvisories(link: Link): Promise<void> {
    const advisories = await link.session.createConsumer(CONSUMER_ADVISORY_WILDCARD, { prefetch: 10000 });
    if (link.closed) {
      await advisories.close().catch(() => {});
      return;
    }
    link.advisories = advisories;
    advisories.onMessage((m) => this.onAdvisory(link, m));
    advisories.on('error', (err) =>
      this.logger.warn({ err: err.message }, 'network bridge: advisory handling failed'),
    );
  }

  /**
   * The peer's takeover: the new master knows nothing of the demand the old one advertised. Ask
   * for its snapshot again with a fresh advisory consumer (the restored one might carry ids the
   * old master used), then close the forwarders the snapshot did not confirm.
   */
  private async relearnDemand(link: Link): Promise<void> {
    if (link.closed) return;
    link.relearned = new Set();
    if (link.relearnTimer) clearTimeout(link.relearnTimer);
    const old = link.advisories;
    link.advisories = null;
    try {
      await old?.close();
    } catch {
      // gone with the old master
    }
    try {
      await this.subscribeAdvisories(link);
    } catch (err) {
      this.logger.warn({ err: (err as Error).message }, 'network bridge: cannot re-subscribe to advisories');
      // Without the peer's demand the link is useless: drop it, the bridge links up again.
      void link.conn.close().catch(() => {});
      return;
    }
    this.logger.info(
      { peer: this.opts.peerUrl, remote: link.remoteName },
      'network bridge: relearning demand',
    );
    link.relearnTimer = setTimeout(() => {
      link.relearnTimer = null;
      const seen = link.relearned;
      link.relearned = null;
      if (link.closed || seen === null) return;
      const stale = [...link.forwarders.values()].filter(
        (f) => !f.static && !f.closing && !seen.has(f.destination),
      );
      this.logger.info(
        { remote: link.remoteName, confirmed: [...seen].sort(), dropped: stale.map((f) => f.destination) },
        'network bridge: demand relearned',
      );
      for (const f of stale) void this.removeForwarder(link, f);
    }, DEMAND_RELEARN_MS);
    link.relearnTimer.unref?.();
  }

  /** One advisory at a time (the client awaits the listener): demand changes apply in order. */
  private async onAdvisory(link: Link, m: ReceivedMessage): Promise<void> {
    if (link.closed) return;
    const destination = m.properties.destination;
    const count = Number(m.properties.consumerCount);
    if (typeof destination !== 'string' || !Number.isFinite(count)) return;
    if (!isForwardable(this.o, destination)) return;
    const existing = link.forwarders.get(destination);
    if (count > 0) {
      link.relearned?.add(destination);
      if (existing && !existing.closing) return;
      if (existing) await this.removeForwarder(link, existing);
      await this.addForwarder(link, destination, false);
    } else if (existing && !existing.static) {
      await this.removeForwarder(link, existing);
    }
  }

  /**
   * ActiveMQ's NetworkBridgeFilter, with ConditionalNetworkBridgeFilter's replayWhenNoConsumers:
   * - normally a message goes to the peer only if the peer is not in its brokerPath (no loops)
   *   and it has taken fewer than `messageTTL` hops (brokers in the path);
   * - replay: a QUEUE message on a broker with no local consumer for that queue may go to a peer
   *   with demand even if the peer is in its path or its TTL is used up, for at most `maxReplays`
   *   hops beyond messageTTL. It cannot loop: each replay needs the broker holding it to have no
   *   consumers and the peer to have some (a bridge forwards only on the peer's local demand), so
   *   a message moves again only when consumers move. The peer stores it as a new message
   *   (producerId `net:<this broker>:<local id>`), so its duplicate detection does not drop it
   *   (ActiveMQ's audit does, and dead-letters it, unless enableAudit=false).
   */
  private accepts(link: Link, f: Forwarder, message: Message): boolean {
    const path = message.brokerPath ?? [];
    if (!path.includes(link.remoteName) && path.length < this.o.messageTTL) return true;
    if (!this.o.replayWhenNoConsumers || f.static || !f.destination.startsWith('queue://')) return false;
    if (path.length >= this.o.messageTTL + this.o.maxReplays) return false;
    const local = this.opts.localConsumers;
    return local !== undefined && local(f.destination) === 0;
  }

  private async addForwarder(link: Link, destination: string, isStatic: boolean): Promise<void> {
    if (link.closed || link.forwarders.has(destination)) return;
    consumerCounter += 1;
    const f: Forwarder = {
      destination,
      consumerId: `net-${consumerCounter}`,
      inflight: 0,
      closing: false,
      settled: null,
      static: isStatic,
    };
    link.forwarders.set(destination, f);
    try {
      await this.opts.broker.subscribe(
        link.local,
        {
          consumerId: f.consumerId,
          destination,
          prefetch: this.o.prefetchSize,
          priority: this.o.decreaseNetworkConsumerPriority ? NETWORK_CONSUMER_PRIORITY : 0,
          accept: (message) => this.accepts(link, f, message),
        },
        (d) => this.forward(link, f, d),
      );
      this.logger.info({ destination, remote: link.remoteName }, 'network bridge: forwarding on demand');
    } catch (err) {
      link.forwarders.delete(destination);
      this.logger.warn(
        { destination, err: (err as Error).message },
        'network bridge: cannot consume locally',
      );
    }
  }

  private async removeForwarder(link: Link, f: Forwarder): Promise<void> {
    f.closing = true;
    if (f.inflight > 0) await new Promise<void>((resolve) => (f.settled = resolve));
    if (link.forwarders.get(f.destination) === f) link.forwarders.delete(f.destination);
    if (link.closed) return;
    try {
      // What this consumer holds unsent goes back to the local queue.
      this.opts.broker.unsubscribe(link.local, f.consumerId);
    } catch {
      // already gone with the connection
    }
    this.logger.info({ destination: f.destination, remote: link.remoteName }, 'network bridge: demand gone');
  }

  private forward(link: Link, f: Forwarder, d: Delivery): void {
    // Held back while closing: unacknowledged, it returns to the queue when the consumer closes.
    if (f.closing || link.closed) return;
    const m = d.message;
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
      // Stable across resends (the local id survives recovery), one producer per message so the
      // peer's "highest seq per producer" rule holds whatever order resends come in.
      out.producerId = `net:${this.opts.localName}:${m.messageId}`;
      out.producerSeq = 1;
    }
    f.inflight += 1;
    link.session._send(out).then(
      () => {
        this.forwarded += 1;
        this.settle(f);
        if (link.closed) return; // given back to the queue already; a resend is a duplicate the peer drops
        this.opts.broker.ack(link.local, f.consumerId, [m.messageId]).catch((err: Error) => {
          this.logger.debug({ err: err.message }, 'network bridge: local ack failed');
        });
      },
      (err: Error) => {
        this.settle(f);
        this.lastError = err.message;
        if (link.closed || isLinkError(err)) return; // the link is going: closeLink gives it back
        this.logger.warn(
          { destination: f.destination, err: err.message },
          'network bridge: peer refused a message',
        );
        try {
          this.opts.broker.nack(link.local, f.consumerId, [m.messageId]);
        } catch {
          // consumer gone
        }
      },
    );
  }

  private settle(f: Forwarder): void {
    f.inflight -= 1;
    if (f.inflight === 0 && f.settled) {
      const s = f.settled;
      f.settled = null;
      s();
    }
  }

  private async closeLink(link: Link, reason: string): Promise<void> {
    if (link.closed) return;
    link.closed = true;
    if (link.relearnTimer) clearTimeout(link.relearnTimer);
    link.relearnTimer = null;
    if (this.link === link) this.link = null;
    // Messages sent but unconfirmed go back to the local queues untouched (no redelivery count):
    // sent again later, the peer's duplicate detection drops any it had stored.
    this.opts.broker.closeConnection(link.local, { redeliver: false });
    for (const f of link.forwarders.values()) f.settled?.();
    link.forwarders.clear();
    await link.conn.close().catch(() => {});
    this.logger.info(
      { peer: this.opts.peerUrl, remote: link.remoteName, reason },
      'network bridge disconnected',
    );
  }
}
