import type { ConnectOptions } from '@keel/client';
import type { Broker, Logger } from '@keel/core';
import { silentLogger } from '@keel/core';
import { AdvisoryPublisher } from './advisory-publisher';
import { type NetworkConnectorConfig, parseNetworkConnector } from './connector-config';
import { type BridgeStatus, DemandForwardingBridge } from './demand-forwarding-bridge';

export interface NetworkServiceOptions {
  broker: Broker;
  /** This broker's name in the network: the cluster name (a master/slave pair is one network node). */
  localName: string;
  /** Network connector URIs (`static:(…)`, `masterslave:(…)`); parsed and validated here. */
  connectors: string[];
  logger?: Logger;
  connectOptions?: DemandForwardingBridgeConnectOptions;
}

export type DemandForwardingBridgeConnectOptions = Pick<
  ConnectOptions,
  'username' | 'password' | 'heartbeatMs' | 'connectTimeoutMs'
>;

const running = new Set<NetworkService>();

/**
 * The network side of one master: the consumer advisory publisher (so peers learn our demand) and
 * one demand-forwarding bridge per configured peer. Start it when the node becomes master, stop it
 * before the broker stops.
 */
export class NetworkService {
  readonly advisories: AdvisoryPublisher;
  private readonly bridgesList: DemandForwardingBridge[] = [];
  readonly connectors: NetworkConnectorConfig[];
  private readonly logger: Logger;

  constructor(private readonly opts: NetworkServiceOptions) {
    this.logger = opts.logger ?? silentLogger;
    this.connectors = opts.connectors.map((uri) => parseNetworkConnector(uri));
    this.advisories = new AdvisoryPublisher(opts.broker, { logger: this.logger });
  }

  start(): this {
    this.advisories.attach();
    for (const c of this.connectors) {
      if (c.discovery.kind !== 'static') {
        this.logger.warn(
          { connector: c.options.name },
          'multicast discovery is not implemented yet: connector ignored',
        );
        continue;
      }
      for (const peerUrl of c.discovery.peers) {
        const bridge = new DemandForwardingBridge({
          broker: this.opts.broker,
          localName: this.opts.localName,
          peerUrl,
          options: c.options,
          logger: this.logger,
          connectOptions: this.opts.connectOptions,
        });
        this.bridgesList.push(bridge.start());
      }
    }
    running.add(this);
    if (this.bridgesList.length > 0)
      this.logger.info({ bridges: this.bridgesList.length }, 'network connectors started');
    return this;
  }

  async stop(): Promise<void> {
    running.delete(this);
    await Promise.all(this.bridgesList.map((b) => b.stop()));
    this.bridgesList.length = 0;
    this.advisories.detach();
  }

  bridges(): BridgeStatus[] {
    return this.bridgesList.map((b) => b.status());
  }
}

export function startNetwork(options: NetworkServiceOptions): NetworkService {
  return new NetworkService(options).start();
}

/** Status of every bridge of every network service running in this process (for GET /api/bridges). */
export function bridges(): BridgeStatus[] {
  return [...running].flatMap((s) => s.bridges());
}
