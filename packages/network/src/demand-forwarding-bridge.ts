import { randomUUID } from 'node:crypto';
import {
  type Connection,
  type ConnectOptions,
  type Consumer,
  connect,
  type ReceivedMessage,
  type Session,
} from '@keel/client';
import type { Broker, Logger } from '@keel/core';
import { silentLogger } from '@keel/core';
import {
  CONSUMER_ADVISORY_WILDCARD,
  demandSelector,
  NETWORK_DEMAND_PROPERTY,
  parseNetworkDemand,
  SELECTORS_PROPERTY,
  SNAPSHOT_END_PROPERTY,
} from './advisory-publisher';
import { isForwardable, type NetworkConnectorOptions, reconnectDelay } from './connector-config';
import { DUPLEX_CLIENT_ID_PREFIX, DuplexInitiator } from './duplex';
import { ForwardingLink } from './forwarding-link';

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
  /**
   * Where the demand learned from the peer goes to be re-advertised (the advisory publisher), with
   * consumerTTL > 1: `source` is this bridge, `paths` the brokers it came through (consumers' first).
   */
  networkDemand?: NetworkDemandSink;
}

export interface NetworkDemandSink {
  setNetworkDemand(source: string, destination: string, paths: string[][]): void;
  clearNetworkDemand(source: string): void;
}

let bridgeCounter = 0;

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
  /** The link carries both directions (ActiveMQ `duplex`). */
  duplex: boolean;
  /** The accepting end of a peer's duplex connector (no connector of ours). */
  accepted: boolean;
  /** Messages the peer forwarded to us over this duplex link (0 otherwise). */
  received: number;
}

interface Link {
  conn: Connection;
  session: Session;
  forwarding: ForwardingLink;
  duplex: DuplexInitiator | null;
  remoteName: string;
  closed: boolean;
  advisories: Consumer | null;
  /** Destinations with demand seen since the last takeover of the peer (null: not relearning). */
  relearned: Set<string> | null;
  relearnTimer: NodeJS.Timeout | null;
  /** Destinations whose demand this link handed to the networkDemand sink (consumerTTL > 1). */
  learned: Set<string>;
}

/**
 * ActiveMQ's DemandForwardingBridge for one peer: it links to the peer (reconnecting on ActiveMQ's
 * schedule), listens to the peer's consumer advisories and, while the peer has consumers (or, for a
 * topic, durable subscriptions) for an included destination, forwards that destination to it
 * through a ForwardingLink (store-and-forward, loop prevention; see forwarding-link.ts). Sends are
 * pipelined: up to `prefetchSize` messages in flight per destination, each acknowledged here after
 * the peer's receipt (for a persistent message: after its store commit).
 *
 * With `duplex` the same connection also carries the peer's direction (duplex.ts): the peer
 * forwards to us on our demand, which we relay to it.
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
  private received = 0;
  private connects = 0;
  private lastError: string | null = null;
  private remoteName: string | null = null;
  private linkId = '';
  /** This bridge as a source of network demand (advisory publisher). */
  private readonly demandSource = `bridge-${++bridgeCounter}`;

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
    return {
      connector: this.o.name,
      localName: this.opts.localName,
      peerUrl: this.opts.peerUrl,
      remoteName: this.remoteName,
      state: this.state,
      forwarding: link ? link.forwarding.forwarding() : [],
      forwarded: this.forwarded,
      inflight: link ? link.forwarding.inflight() : 0,
      connects: this.connects,
      lastError: this.lastError,
      duplex: this.o.duplex,
      accepted: false,
      received: this.received,
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
    this.linkId = randomUUID();
    return connect(this.opts.peerUrl, {
      // A duplex link announces itself by its client id: the peer starts its half (duplex.ts).
      clientId: this.o.duplex
        ? `${DUPLEX_CLIENT_ID_PREFIX}${this.linkId}`
        : `network:${this.opts.localName}:${this.o.name}:${this.linkId}`,
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
    const session = await conn.createSession();
    const link: Link = {
      conn,
      session,
      forwarding: new ForwardingLink({
        broker,
        localName,
        remoteName,
        options: this.o,
        logger: this.logger,
        localConsumers: this.opts.localConsumers,
        send: (out, _localId, resent) => session._send(out, { resent }),
        onForwarded: () => {
          this.forwarded += 1;
        },
        onError: (message) => {
          this.lastError = message;
        },
      }),
      duplex: null,
      remoteName,
      closed: false,
      advisories: null,
      relearned: null,
      relearnTimer: null,
      learned: new Set(),
    };
    this.link = link;
    this.remoteName = remoteName;
    this.connects += 1;
    this.state = 'connected';
    this.logger.info({ peer: this.opts.peerUrl, remote: remoteName }, 'network bridge connected');
    conn.on('error', (err) => this.logger.debug({ err: err.message }, 'network bridge link error'));
    await link.forwarding.start();
    if (this.o.duplex) {
      // The peer's takeover loses its half of the duplex link (temporary queues, its acceptor):
      // start over on a fresh link rather than relearn.
      conn.on('resumed', () => void conn.close().catch(() => {}));
      link.duplex = new DuplexInitiator({
        broker,
        localName,
        remoteName,
        linkId: this.linkId,
        conn,
        session,
        options: this.o,
        logger: this.logger,
        onReceived: () => {
          this.received += 1;
        },
      });
      const accepted = await link.duplex.start();
      if (!accepted && !link.closed) {
        this.lastError = `peer ${remoteName} did not accept the duplex link: forwarding one way only`;
        this.logger.warn({ peer: this.opts.peerUrl }, this.lastError);
      }
    } else {
      // A failover peer (master/slave pair) that took over: relearn its demand from the new master.
      conn.on('resumed', () => void this.relearnDemand(link));
    }
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
    link.forwarding.beginSnapshot();
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
      for (const d of [...link.learned]) if (!seen.has(d)) this.learn(link, d, []);
      void link.forwarding
        .retain(seen)
        .then((dropped) =>
          this.logger.info(
            { remote: link.remoteName, confirmed: [...seen].sort(), dropped },
            'network bridge: demand relearned',
          ),
        );
    }, DEMAND_RELEARN_MS);
    link.relearnTimer.unref?.();
  }

  /** One advisory at a time (the client awaits the listener): demand changes apply in order. */
  private async onAdvisory(link: Link, m: ReceivedMessage): Promise<void> {
    if (link.closed) return;
    if (m.properties[SNAPSHOT_END_PROPERTY] === true) {
      await link.forwarding.endSnapshot();
      return;
    }
    const destination = m.properties.destination;
    const count = Number(m.properties.consumerCount);
    const durable = Number(m.properties.durableCount ?? 0);
    if (typeof destination !== 'string' || !Number.isFinite(count)) return;
    const network = this.acceptedNetworkDemand(m.properties[NETWORK_DEMAND_PROPERTY]);
    if (count > 0 || durable > 0 || network.length > 0) link.relearned?.add(destination);
    if (this.o.consumerTTL > 1 && isForwardable(this.o, destination)) {
      // Pass it on, one hop longer: the peer's own consumers (or durable subscriptions), then what
      // it learned further on. Only what this connector forwards: the rest would strand here.
      const paths = [
        ...(count > 0 || durable > 0 ? [[link.remoteName]] : []),
        ...network.map((p) => [...p, link.remoteName]),
      ];
      this.learn(link, destination, paths);
    }
    await link.forwarding.demand(
      destination,
      count,
      Number.isFinite(durable) ? durable : 0,
      network.length,
      demandSelector(m.properties[SELECTORS_PROPERTY]),
    );
  }

  /**
   * The network demand a peer re-advertised that this bridge forwards on (ActiveMQ's consumerTTL):
   * a path through this broker is ignored (it would loop), and so is one of consumerTTL hops or
   * more beyond the peer (with the default consumerTTL 1: all of it). Messages forwarded on it are
   * still filtered by brokerPath and messageTTL (ForwardingLink.accepts), so nothing loops.
   */
  private acceptedNetworkDemand(value: unknown): string[][] {
    if (this.o.consumerTTL <= 1) return [];
    return parseNetworkDemand(value).filter(
      (p) => !p.includes(this.opts.localName) && p.length < this.o.consumerTTL,
    );
  }

  private learn(link: Link, destination: string, paths: string[][]): void {
    const sink = this.opts.networkDemand;
    if (!sink || link.closed) return;
    if (paths.length > 0) link.learned.add(destination);
    else if (!link.learned.delete(destination)) return;
    sink.setNetworkDemand(this.demandSource, destination, paths);
  }

  private async closeLink(link: Link, reason: string): Promise<void> {
    if (link.closed) return;
    link.closed = true;
    if (link.relearnTimer) clearTimeout(link.relearnTimer);
    link.relearnTimer = null;
    if (this.link === link) this.link = null;
    // The demand learned over it is gone with it (re-advertised to the other peers as withdrawn).
    if (link.learned.size > 0) this.opts.networkDemand?.clearNetworkDemand(this.demandSource);
    link.learned.clear();
    // Messages sent but unconfirmed go back to the local queues untouched (no redelivery count):
    // sent again later, the peer's duplicate detection drops any it had stored.
    link.forwarding.close();
    link.duplex?.close();
    await link.conn.close().catch(() => {});
    this.logger.info(
      { peer: this.opts.peerUrl, remote: link.remoteName, reason },
      'network bridge disconnected',
    );
  }
}
