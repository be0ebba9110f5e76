import type { ConnectOptions } from '@keel/client';
import type { Broker, ConnectionState, Logger } from '@keel/core';
import { silentLogger } from '@keel/core';
import { AdvisoryPublisher } from './advisory-publisher';
import {
  type MulticastDiscovery,
  type NetworkConnectorConfig,
  parseNetworkConnector,
} from './connector-config';
import { type BridgeStatus, DemandForwardingBridge } from './demand-forwarding-bridge';
import { DUPLEX_CLIENT_ID_PREFIX, DuplexAcceptor } from './duplex';
import { type DiscoveredPeer, MulticastDiscoveryAgent } from './multicast-discovery';

export interface NetworkServiceOptions {
  broker: Broker;
  /** This broker's name in the network: the cluster name (a master/slave pair is one network node). */
  localName: string;
  /** This node's own name (multicast announcements; default: localName). */
  nodeName?: string;
  /** Client URLs of this node; the first `tcp://` one is announced by multicast discovery. */
  advertiseUrls?: string[];
  /** Network connector URIs (`static:(…)`, `masterslave:(…)`, `multicast://…`); parsed and validated here. */
  connectors: string[];
  logger?: Logger;
  connectOptions?: DemandForwardingBridgeConnectOptions;
}

export type DemandForwardingBridgeConnectOptions = Pick<
  ConnectOptions,
  'username' | 'password' | 'heartbeatMs' | 'connectTimeoutMs' | 'tls'
>;

const running = new Set<NetworkService>();

/**
 * The network side of one master: the consumer advisory publisher (so peers learn our demand),
 * one demand-forwarding bridge per configured peer, and for `multicast://` connectors a discovery
 * agent that announces this master and links a bridge to each peer cluster it hears (dropped when
 * the peer's announcements stop). Start it when the node becomes master, stop it before the broker
 * stops.
 */
export class NetworkService {
  readonly advisories: AdvisoryPublisher;
  private readonly staticBridges: DemandForwardingBridge[] = [];
  /** Bridges to discovered peers, by `<connector index>:<peer cluster>`. */
  private readonly discoveredBridges = new Map<string, DemandForwardingBridge>();
  private readonly agents: MulticastDiscoveryAgent[] = [];
  /** The accepting ends of peers' duplex connectors, by the peer's connection here. */
  private readonly acceptors = new Map<ConnectionState, DuplexAcceptor>();
  private readonly starting: Promise<void>[] = [];
  readonly connectors: NetworkConnectorConfig[];
  private readonly logger: Logger;
  private stopped = false;

  constructor(private readonly opts: NetworkServiceOptions) {
    this.logger = opts.logger ?? silentLogger;
    this.connectors = opts.connectors.map((uri) => parseNetworkConnector(uri));
    this.advisories = new AdvisoryPublisher(opts.broker, { logger: this.logger });
  }

  private bridge(c: NetworkConnectorConfig, peerUrl: string): DemandForwardingBridge {
    return new DemandForwardingBridge({
      broker: this.opts.broker,
      localName: this.opts.localName,
      peerUrl,
      options: c.options,
      logger: this.logger,
      connectOptions: this.opts.connectOptions,
      localConsumers: (d) => this.advisories.consumerCount(d),
      networkDemand: this.advisories,
    });
  }

  /** A peer's duplex connector linked to us: run our direction over its connection (duplex.ts). */
  private readonly onConnectionOpen = (conn: ConnectionState): void => {
    if (this.stopped || !conn.clientId.startsWith(DUPLEX_CLIENT_ID_PREFIX)) return;
    const acceptor = new DuplexAcceptor({
      broker: this.opts.broker,
      localName: this.opts.localName,
      peer: conn,
      logger: this.logger,
      localConsumers: (d) => this.advisories.consumerCount(d),
      onHello: (a) => {
        // The same peer connector linked again while its old connection is not yet known dead.
        for (const [c, other] of this.acceptors) {
          if (other === a || other.remoteName !== a.remoteName || other.connector !== a.connector) continue;
          this.acceptors.delete(c);
          other.close('replaced by a new link');
        }
      },
    });
    this.acceptors.set(conn, acceptor);
    acceptor.start().catch((err: Error) => {
      this.logger.warn({ err: err.message }, 'duplex bridge: cannot accept');
      this.acceptors.delete(conn);
      acceptor.close('failed to start');
    });
  };

  private readonly onConnectionClose = (conn: ConnectionState): void => {
    const acceptor = this.acceptors.get(conn);
    if (!acceptor) return;
    this.acceptors.delete(conn);
    acceptor.close('connection closed');
  };

  start(): this {
    this.advisories.attach();
    this.opts.broker.on('connection:open', this.onConnectionOpen);
    this.opts.broker.on('connection:close', this.onConnectionClose);
    this.connectors.forEach((c, index) => {
      if (c.discovery.kind === 'static') {
        for (const peerUrl of c.discovery.peers) this.staticBridges.push(this.bridge(c, peerUrl).start());
      } else {
        this.startDiscovery(c, c.discovery, index);
      }
    });
    running.add(this);
    if (this.staticBridges.length > 0 || this.agents.length > 0)
      this.logger.info(
        { bridges: this.staticBridges.length, discovery: this.agents.length },
        'network connectors started',
      );
    return this;
  }

  private startDiscovery(c: NetworkConnectorConfig, d: MulticastDiscovery, index: number): void {
    const url = (this.opts.advertiseUrls ?? []).find((u) => u.startsWith('tcp://')) ?? null;
    if (url === null) {
      this.logger.warn(
        { connector: c.options.name },
        'multicast discovery: no tcp:// URL to announce; listening only',
      );
    }
    const agent = new MulticastDiscoveryAgent({
      discovery: d,
      cluster: this.opts.localName,
      name: this.opts.nodeName ?? this.opts.localName,
      url,
      logger: this.logger,
      onPeerUp: (peer) => {
        if (this.stopped) return;
        const key = `${index}:${peer.cluster}`;
        const old = this.discoveredBridges.get(key);
        if (old) void old.stop();
        this.discoveredBridges.set(key, this.bridge(c, peer.url).start());
      },
      onPeerDown: (peer) => {
        const key = `${index}:${peer.cluster}`;
        const b = this.discoveredBridges.get(key);
        if (!b || b.status().peerUrl !== peer.url) return;
        this.discoveredBridges.delete(key);
        void b.stop();
      },
    });
    this.agents.push(agent);
    this.starting.push(
      agent
        .start()
        .catch((err: Error) =>
          this.logger.error(
            { connector: c.options.name, group: d.group, port: d.port, err: err.message },
            'multicast discovery failed to start',
          ),
        ),
    );
  }

  async stop(): Promise<void> {
    this.stopped = true;
    running.delete(this);
    this.opts.broker.off('connection:open', this.onConnectionOpen);
    this.opts.broker.off('connection:close', this.onConnectionClose);
    for (const a of this.acceptors.values()) a.close('network stopped');
    this.acceptors.clear();
    await Promise.all(this.starting);
    await Promise.all(this.agents.map((a) => a.stop()));
    this.agents.length = 0;
    const all = [...this.staticBridges, ...this.discoveredBridges.values()];
    await Promise.all(all.map((b) => b.stop()));
    this.staticBridges.length = 0;
    this.discoveredBridges.clear();
    this.advisories.detach();
  }

  bridges(): BridgeStatus[] {
    return [
      ...[...this.staticBridges, ...this.discoveredBridges.values()].map((b) => b.status()),
      ...[...this.acceptors.values()].map((a) => a.status()),
    ];
  }

  /** Peers heard by the multicast discovery agents. */
  discoveredPeers(): DiscoveredPeer[] {
    return this.agents.flatMap((a) => a.discovered());
  }
}

export function startNetwork(options: NetworkServiceOptions): NetworkService {
  return new NetworkService(options).start();
}

/** Status of every bridge of every network service running in this process (for GET /api/bridges). */
export function bridges(): BridgeStatus[] {
  return [...running].flatMap((s) => s.bridges());
}
