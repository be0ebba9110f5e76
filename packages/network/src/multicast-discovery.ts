import { createSocket, type Socket } from 'node:dgram';
import type { Logger } from '@keel/core';
import { silentLogger } from '@keel/core';
import { MULTICAST_MISSES_BEFORE_DEATH, type MulticastDiscovery } from './connector-config';

/** What a master announces (JSON in one UDP datagram). */
export interface Announcement {
  keel: 1;
  /** `alive` every keepAliveInterval; `dead` once when the master stops (peers drop it at once). */
  type: 'alive' | 'dead';
  /** ActiveMQ's logical group name (`?group=NAME`). */
  group: string;
  /** The announcing broker's cluster: its name in the network (a master/slave pair is one node). */
  cluster: string;
  /** The announcing node. */
  name: string;
  /** Where bridges reach it (`tcp://host:port`). */
  url: string;
}

export interface DiscoveredPeer {
  cluster: string;
  name: string;
  url: string;
  lastSeenMs: number;
}

export interface MulticastDiscoveryAgentOptions {
  discovery: MulticastDiscovery;
  /** This broker: never a peer of itself (nor of its own cluster). */
  cluster: string;
  name: string;
  /** The URL to announce; null = listen only. */
  url: string | null;
  onPeerUp: (peer: DiscoveredPeer) => void;
  onPeerDown: (peer: DiscoveredPeer, reason: string) => void;
  logger?: Logger;
}

const MAX_DATAGRAM = 4096;

/**
 * ActiveMQ's MulticastDiscoveryAgent: every master announces itself on a UDP multicast group
 * every `keepAliveInterval` ms and listens for the others; a peer not heard for
 * MULTICAST_MISSES_BEFORE_DEATH intervals (ActiveMQ's HEART_BEAT_MISS_BEFORE_DEATH) is gone.
 * Peers are keyed by cluster: when a pair's slave takes over, its announcement replaces the old
 * master's URL (onPeerDown, then onPeerUp with the new URL).
 *
 * The socket binds the group's port on the group address (only that group's datagrams), joins the
 * group on `interface` (or the OS default), sends with multicast TTL `timeToLive` and loopback on
 * (brokers on the same host must hear each other).
 */
export class MulticastDiscoveryAgent {
  private readonly logger: Logger;
  private socket: Socket | null = null;
  private timer: NodeJS.Timeout | null = null;
  private readonly peers = new Map<string, DiscoveredPeer>();
  private stopped = false;

  constructor(private readonly opts: MulticastDiscoveryAgentOptions) {
    this.logger = opts.logger ?? silentLogger;
  }

  async start(): Promise<void> {
    const d = this.opts.discovery;
    const socket = createSocket({ type: 'udp4', reuseAddr: true });
    this.socket = socket;
    socket.on('message', (buf, rinfo) => this.onDatagram(buf, rinfo.address));
    socket.on('error', (err) => this.logger.warn({ err: err.message }, 'multicast discovery socket error'));
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.bind({ port: d.port, address: d.group, exclusive: false }, () => {
        socket.off('error', reject);
        resolve();
      });
    });
    if (this.stopped) {
      socket.close();
      return;
    }
    if (d.interface !== null) socket.setMulticastInterface(d.interface);
    socket.addMembership(d.group, d.interface ?? undefined);
    socket.setMulticastTTL(d.timeToLive);
    socket.setMulticastLoopback(true);
    this.announce('alive');
    this.timer = setInterval(() => {
      this.announce('alive');
      this.expire();
    }, d.keepAliveInterval);
    this.timer.unref?.();
    this.logger.info(
      { group: d.group, port: d.port, groupName: d.groupName, interface: d.interface, url: this.opts.url },
      'multicast discovery started',
    );
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    const socket = this.socket;
    this.socket = null;
    if (!socket) return;
    await this.send(socket, 'dead').catch(() => {});
    await new Promise<void>((resolve) => socket.close(() => resolve()));
    this.peers.clear();
  }

  /** The peers heard from (for status and tests). */
  discovered(): DiscoveredPeer[] {
    return [...this.peers.values()].map((p) => ({ ...p }));
  }

  private announce(type: Announcement['type']): void {
    const socket = this.socket;
    if (!socket) return;
    this.send(socket, type).catch((err: Error) =>
      this.logger.debug({ err: err.message }, 'multicast announcement not sent'),
    );
  }

  private send(socket: Socket, type: Announcement['type']): Promise<void> {
    const url = this.opts.url;
    if (url === null) return Promise.resolve();
    const a: Announcement = {
      keel: 1,
      type,
      group: this.opts.discovery.groupName,
      cluster: this.opts.cluster,
      name: this.opts.name,
      url,
    };
    const d = this.opts.discovery;
    return new Promise((resolve, reject) =>
      socket.send(JSON.stringify(a), d.port, d.group, (err) => (err ? reject(err) : resolve())),
    );
  }

  private onDatagram(buf: Buffer, from: string): void {
    if (buf.length > MAX_DATAGRAM) return;
    let a: Partial<Announcement>;
    try {
      a = JSON.parse(buf.toString('utf8')) as Partial<Announcement>;
    } catch {
      return; // not ours (ActiveMQ's own agents share the default group)
    }
    if (
      a.keel !== 1 ||
      (a.type !== 'alive' && a.type !== 'dead') ||
      typeof a.cluster !== 'string' ||
      typeof a.name !== 'string' ||
      typeof a.url !== 'string' ||
      !a.url.startsWith('tcp://')
    ) {
      return;
    }
    if (a.group !== this.opts.discovery.groupName || a.cluster === this.opts.cluster) return;
    const known = this.peers.get(a.cluster);
    if (a.type === 'dead') {
      if (known && known.url === a.url) this.drop(known, 'announced stop');
      return;
    }
    if (known && known.url === a.url) {
      known.lastSeenMs = Date.now();
      return;
    }
    if (known) this.drop(known, `replaced by ${a.url}`);
    const peer: DiscoveredPeer = { cluster: a.cluster, name: a.name, url: a.url, lastSeenMs: Date.now() };
    this.peers.set(a.cluster, peer);
    this.logger.info(
      { cluster: peer.cluster, node: peer.name, url: peer.url, from },
      'network peer discovered',
    );
    this.opts.onPeerUp({ ...peer });
  }

  private expire(): void {
    const deadline = Date.now() - MULTICAST_MISSES_BEFORE_DEATH * this.opts.discovery.keepAliveInterval;
    for (const p of [...this.peers.values()]) {
      if (p.lastSeenMs < deadline) this.drop(p, 'announcements stopped');
    }
  }

  private drop(peer: DiscoveredPeer, reason: string): void {
    if (this.peers.get(peer.cluster) !== peer) return;
    this.peers.delete(peer.cluster);
    this.logger.info({ cluster: peer.cluster, url: peer.url, reason }, 'network peer gone');
    this.opts.onPeerDown({ ...peer }, reason);
  }
}
