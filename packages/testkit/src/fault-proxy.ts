/**
 * A TCP proxy on 127.0.0.1 that can misbehave on command, to test what Keel does when its link to
 * Postgres (or a client's link to a broker) breaks in the ways real networks break (after
 * pg-boss `test/halfOpenProxy.ts`).
 *
 * Modes:
 * - `pass`:  forward bytes both ways.
 * - `pause`: stop reading from both sides. Nothing is forwarded and nothing is closed, so both peers
 *            see a silent, half-open link; whatever they send waits in the kernel's buffers and is
 *            delivered if the mode returns to `pass` (like a healed partition). New connections are
 *            accepted and held without an upstream connection until `pass`.
 * - `drop`:  read and silently discard bytes both ways; sockets stay open. New connections are
 *            accepted and held (their bytes discarded) without an upstream connection until `pass`.
 * - `cut`:   reset every current connection (both sides) and reset new ones at once, until another
 *            mode is set.
 * A close on one side while the mode is `pause` or `drop` is passed on only when the mode returns
 * to `pass` (or on `cut`/close()).
 */
import { EventEmitter } from 'node:events';
import * as net from 'node:net';

export type FaultMode = 'pass' | 'pause' | 'drop' | 'cut';

export interface FaultProxyOptions {
  targetHost: string;
  targetPort: number;
  /** Listen address; 127.0.0.1 unless given. */
  host?: string;
  /** Listen port; a free one unless given. */
  port?: number;
  mode?: FaultMode;
}

export interface FaultProxyCounters {
  /** Connections accepted while not in `cut` mode. */
  accepted: number;
  /** Connections open right now (client side). */
  active: number;
  /** Connections reset on arrival in `cut` mode. */
  refused: number;
  /** Connections reset by setMode('cut'). */
  cut: number;
  /** Bytes forwarded client -> target and target -> client. */
  bytesUp: number;
  bytesDown: number;
  /** Bytes discarded in `drop` mode (both directions). */
  bytesDropped: number;
}

export interface FaultProxyEvents {
  connection: [];
  /** A client connection closed (whatever the reason). */
  disconnect: [];
  dropped: [bytes: number];
  forwarded: [direction: 'up' | 'down', bytes: number];
}

/** Resets a socket (RST) where Node supports it, else destroys it. */
function reset(socket: net.Socket): void {
  if (socket.destroyed) return;
  const withReset = socket as net.Socket & { resetAndDestroy?: () => net.Socket };
  if (typeof withReset.resetAndDestroy === 'function' && !socket.connecting) withReset.resetAndDestroy();
  else socket.destroy();
}

/** Flushes what was written, sends FIN, then destroys (the peer already closed its side). */
function closeGracefully(socket: net.Socket): void {
  if (socket.destroyed) return;
  if (socket.writable) socket.end(() => socket.destroy());
  else socket.destroy();
}

class Link {
  upstream: net.Socket | undefined;
  private waitingDrain = 0;
  private closedSide = false;
  closed = false;

  constructor(
    private readonly proxy: FaultProxy,
    readonly client: net.Socket,
  ) {
    client.on('error', () => {});
    client.on('data', (chunk: Buffer) => this.onData('up', chunk));
    client.on('close', () => this.onSideClosed());
  }

  connectUpstream(host: string, port: number): void {
    if (this.upstream || this.closed) return;
    const upstream = net.connect({ host, port });
    this.upstream = upstream;
    upstream.on('error', () => {});
    upstream.on('data', (chunk: Buffer) => this.onData('down', chunk));
    upstream.on('close', () => this.onSideClosed());
  }

  private onData(direction: 'up' | 'down', chunk: Buffer): void {
    const mode = this.proxy.mode;
    if (mode === 'drop' || mode === 'cut') {
      this.proxy.countDropped(chunk.length);
      return;
    }
    const from = direction === 'up' ? this.client : this.upstream;
    const to = direction === 'up' ? this.upstream : this.client;
    if (!to || !from) return;
    this.proxy.countForwarded(direction, chunk.length);
    if (!to.write(chunk)) {
      // Backpressure: stop reading the fast side until the slow one drains.
      from.pause();
      this.waitingDrain++;
      to.once('drain', () => {
        this.waitingDrain--;
        this.applyMode();
      });
    }
  }

  private onSideClosed(): void {
    this.closedSide = true;
    const mode = this.proxy.mode;
    if (mode === 'pass' || mode === 'cut') this.destroy(false);
  }

  /** Brings the sockets' flow in line with the proxy's mode. */
  applyMode(): void {
    if (this.closed) return;
    const mode = this.proxy.mode;
    if (mode === 'pause') {
      this.client.pause();
      this.upstream?.pause();
      return;
    }
    if (mode === 'pass' && this.closedSide) {
      this.destroy(false);
      return;
    }
    if (this.waitingDrain > 0) return;
    this.client.resume();
    this.upstream?.resume();
  }

  destroy(hard: boolean): void {
    if (this.closed) return;
    this.closed = true;
    for (const s of [this.client, this.upstream]) {
      if (!s) continue;
      if (hard) reset(s);
      else closeGracefully(s);
    }
    this.proxy.linkClosed(this);
  }
}

export class FaultProxy extends EventEmitter<FaultProxyEvents> {
  private _mode: FaultMode;
  private readonly links = new Set<Link>();
  private readonly counters: FaultProxyCounters = {
    accepted: 0,
    active: 0,
    refused: 0,
    cut: 0,
    bytesUp: 0,
    bytesDown: 0,
    bytesDropped: 0,
  };

  private constructor(
    private readonly server: net.Server,
    private readonly options: FaultProxyOptions,
    readonly host: string,
    readonly port: number,
  ) {
    super();
    this._mode = options.mode ?? 'pass';
  }

  static async start(options: FaultProxyOptions): Promise<FaultProxy> {
    const host = options.host ?? '127.0.0.1';
    const server = net.createServer({ pauseOnConnect: true });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host, port: options.port ?? 0 }, () => {
        server.off('error', reject);
        resolve();
      });
    });
    server.on('error', () => {});
    const address = server.address() as net.AddressInfo;
    const proxy = new FaultProxy(server, options, host, address.port);
    server.on('connection', (socket) => proxy.accept(socket));
    return proxy;
  }

  get mode(): FaultMode {
    return this._mode;
  }

  /** A snapshot of the counters. */
  get stats(): FaultProxyCounters {
    return { ...this.counters };
  }

  /** `host:port` of the proxy. */
  get address(): string {
    return `${this.host}:${this.port}`;
  }

  /** baseUrl (e.g. a postgres:// or stomp:// URL) with its host and port replaced by the proxy's. */
  url(baseUrl: string): string {
    const u = new URL(baseUrl);
    u.hostname = this.host;
    u.port = String(this.port);
    // A libpq-style `?host=/socket/dir` would bypass the proxy.
    u.searchParams.delete('host');
    u.searchParams.delete('port');
    return u.toString();
  }

  setMode(mode: FaultMode): void {
    this._mode = mode;
    if (mode === 'cut') {
      for (const link of [...this.links]) {
        this.counters.cut++;
        link.destroy(true);
      }
      return;
    }
    for (const link of [...this.links]) {
      if (mode === 'pass') link.connectUpstream(this.options.targetHost, this.options.targetPort);
      link.applyMode();
    }
  }

  /** Resets every connection and stops listening. */
  async close(): Promise<void> {
    for (const link of [...this.links]) link.destroy(true);
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private accept(socket: net.Socket): void {
    if (this._mode === 'cut') {
      this.counters.refused++;
      socket.on('error', () => {});
      reset(socket);
      return;
    }
    this.counters.accepted++;
    this.counters.active++;
    const link = new Link(this, socket);
    this.links.add(link);
    if (this._mode === 'pass') link.connectUpstream(this.options.targetHost, this.options.targetPort);
    link.applyMode();
    this.emit('connection');
  }

  /** @internal */
  linkClosed(link: Link): void {
    if (this.links.delete(link)) {
      this.counters.active--;
      this.emit('disconnect');
    }
  }

  /** @internal */
  countDropped(bytes: number): void {
    this.counters.bytesDropped += bytes;
    this.emit('dropped', bytes);
  }

  /** @internal */
  countForwarded(direction: 'up' | 'down', bytes: number): void {
    if (direction === 'up') this.counters.bytesUp += bytes;
    else this.counters.bytesDown += bytes;
    this.emit('forwarded', direction, bytes);
  }
}
