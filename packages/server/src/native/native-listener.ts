import { EventEmitter } from 'node:events';
import { createServer, type Server, type Socket } from 'node:net';
import { type Broker, type ConnectionState, type Logger, silentLogger } from '@keel/core';
import { DEFAULT_MAX_FRAME_SIZE, InvalidArgumentError, type KeelError } from '@keel/protocol';
import { ConnectionLimiter, closeRefused } from '../limits/connection-limiter';
import { STEP_DOWN_CLOSE_MS, settleWithin } from '../step-down';
import { type NativeAuthenticate, type NativeBrokerInfo, NativeConnection } from './native-connection';

export type { NativeAuthenticate, NativeBrokerInfo } from './native-connection';

export interface NativeListenerOptions {
  broker: Broker;
  /** Interface to listen on (default 0.0.0.0). */
  host?: string;
  /** TCP port (default 61616); 0 = an ephemeral port, reported by start(). */
  port?: number;
  logger?: Logger;
  /** Largest frame accepted and sent, bytes (default 4 MiB). */
  maxFrameSize?: number;
  /** Broker heartbeat interval, ms; 0 = none (default 10000). */
  heartbeatMs?: number;
  /** A client that has not completed the handshake this long after connecting is closed (default 10000). */
  handshakeTimeoutMs?: number;
  /** A connection whose socket stays congested this long is cut (default 30000; aedes, ActiveMQ slow consumers). */
  slowConsumerTimeoutMs?: number;
  /** Credentials check; default accepts everyone (no users configured). */
  authenticate?: NativeAuthenticate;
  /** This node and its cluster's client URLs, sent in WELCOME. */
  describe: () => NativeBrokerInfo;
  /** ActiveMQ transport connector option: a newer connection with a live connection's client id takes it over (default false). */
  allowLinkStealing?: boolean;
  /** Makes the server instead of a plain TCP one: TlsContext.createServer gives `ssl://` (same connections). */
  createServer?: ListenerServerFactory;
  /** maximumConnections (shared with the STOMP listener); none = no limit. */
  connectionLimiter?: ConnectionLimiter;
  /** Largest frame before the handshake completed, bytes (default 64 KiB; issue #23.3). */
  preHandshakeMaxFrameSize?: number;
  /** Body bytes of SENDs awaiting the broker before a socket stops reading (default 16 MiB). */
  maxPendingBytes?: number;
}

/** A server whose established connections go to `onSocket` (a TLS server hands over TLS sockets). */
export type ListenerServerFactory = (
  onSocket: (socket: Socket) => void,
  options: { noDelay?: boolean; keepAlive?: boolean },
) => Server;

export const NATIVE_LISTENER_DEFAULTS = Object.freeze({
  host: '0.0.0.0',
  port: 61616,
  maxFrameSize: DEFAULT_MAX_FRAME_SIZE,
  heartbeatMs: 10_000,
  handshakeTimeoutMs: 10_000,
  slowConsumerTimeoutMs: 30_000,
  preHandshakeMaxFrameSize: 64 * 1024,
  maxPendingBytes: 16 * 1024 * 1024,
});

export interface NativeClientEvent {
  /** The broker connection id; null when the client never completed the handshake. */
  connectionId: string | null;
  remoteAddress: string;
}

export interface NativeListenerEvents {
  /** A client completed the handshake. */
  'client:open': [NativeClientEvent];
  /** A client socket closed (for any reason). */
  'client:close': [NativeClientEvent];
}

/** The smallest frame size that fits a WELCOME with a broker list. */
const MIN_MAX_FRAME_SIZE = 1024;

/**
 * The native protocol listener (`tcp://`, default port 61616, docs/protocol.md): accepts sockets
 * and runs one NativeConnection per client on top of the broker core. Started when the node
 * becomes master; `stop()` drops every client at once (mastership lost).
 */
export class NativeListener extends EventEmitter<NativeListenerEvents> {
  private readonly broker: Broker;
  private readonly logger: Logger;
  private readonly host: string;
  private readonly port: number;
  private readonly maxFrameSize: number;
  private readonly heartbeatMs: number;
  private readonly handshakeTimeoutMs: number;
  private readonly slowConsumerTimeoutMs: number;
  private readonly authenticate: NativeAuthenticate;
  private readonly describe: () => NativeBrokerInfo;
  private readonly allowLinkStealing: boolean;
  private readonly makeServer: ListenerServerFactory | undefined;
  private readonly limiter: ConnectionLimiter | null;
  private readonly preHandshakeMaxFrameSize: number;
  private readonly maxPendingBytes: number;

  private server: Server | null = null;
  private readonly sockets = new Map<Socket, NativeConnection>();
  private readonly byConnectionId = new Map<string, NativeConnection>();
  private readonly onBrokerClose = (conn: ConnectionState): void => {
    this.byConnectionId.get(conn.id)?.brokerClosed();
  };

  constructor(options: NativeListenerOptions) {
    super();
    if (!options || typeof options !== 'object')
      throw new InvalidArgumentError('NativeListener: options are required');
    if (!options.broker) throw new InvalidArgumentError('NativeListener: option broker is required');
    if (typeof options.describe !== 'function') {
      throw new InvalidArgumentError('NativeListener: option describe must be a function');
    }
    if (options.authenticate !== undefined && typeof options.authenticate !== 'function') {
      throw new InvalidArgumentError('NativeListener: option authenticate must be a function');
    }
    const d = NATIVE_LISTENER_DEFAULTS;
    this.broker = options.broker;
    this.logger = options.logger ?? silentLogger;
    this.host = options.host ?? d.host;
    this.port = options.port ?? d.port;
    this.maxFrameSize = options.maxFrameSize ?? d.maxFrameSize;
    this.heartbeatMs = options.heartbeatMs ?? d.heartbeatMs;
    this.handshakeTimeoutMs = options.handshakeTimeoutMs ?? d.handshakeTimeoutMs;
    this.slowConsumerTimeoutMs = options.slowConsumerTimeoutMs ?? d.slowConsumerTimeoutMs;
    this.authenticate = options.authenticate ?? (() => true);
    this.describe = options.describe;
    this.allowLinkStealing = options.allowLinkStealing === true;
    this.makeServer = options.createServer;
    this.limiter = options.connectionLimiter ?? null;
    this.preHandshakeMaxFrameSize = options.preHandshakeMaxFrameSize ?? d.preHandshakeMaxFrameSize;
    this.maxPendingBytes = options.maxPendingBytes ?? d.maxPendingBytes;
    checkInt('preHandshakeMaxFrameSize', this.preHandshakeMaxFrameSize, MIN_MAX_FRAME_SIZE, 0xffffffff);
    checkInt('maxPendingBytes', this.maxPendingBytes, 1024, Number.MAX_SAFE_INTEGER);
    if (typeof this.host !== 'string' || this.host === '')
      throw new InvalidArgumentError('NativeListener: option host must be a non-empty string');
    checkInt('port', this.port, 0, 65535);
    checkInt('maxFrameSize', this.maxFrameSize, MIN_MAX_FRAME_SIZE, 0xffffffff);
    checkInt('heartbeatMs', this.heartbeatMs, 0, 2 ** 31 - 1);
    checkInt('handshakeTimeoutMs', this.handshakeTimeoutMs, 1, 2 ** 31 - 1);
    checkInt('slowConsumerTimeoutMs', this.slowConsumerTimeoutMs, 1, 2 ** 31 - 1);
  }

  /** Sockets currently open (including those still in the handshake). */
  get connectionCount(): number {
    return this.sockets.size;
  }

  get listening(): boolean {
    return this.server?.listening === true;
  }

  /** Listen on host:port; resolves with the bound port (useful with port 0). */
  async start(): Promise<{ port: number }> {
    if (this.server) throw new InvalidArgumentError('NativeListener is already started');
    const onSocket = (socket: Socket): void => this.onSocket(socket);
    const server =
      this.makeServer?.(onSocket, { noDelay: true, keepAlive: true }) ??
      createServer({ noDelay: true, keepAlive: true }, onSocket);
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      const onError = (err: Error): void => {
        this.server = null;
        reject(err);
      };
      server.once('error', onError);
      server.listen(this.port, this.host, () => {
        server.off('error', onError);
        resolve();
      });
    });
    server.on('error', (err) => this.logger.error({ err: err.message }, 'native listener error'));
    this.broker.on('connection:close', this.onBrokerClose);
    const address = server.address();
    const port = typeof address === 'object' && address !== null ? address.port : this.port;
    this.logger.info(
      { host: this.host, port, heartbeatMs: this.heartbeatMs, maxFrameSize: this.maxFrameSize },
      'native listener started',
    );
    return { port };
  }

  /**
   * Stop accepting and close every client (their broker connections are closed). With `reason` (the
   * node steps down) each client gets a fatal ERROR with its code first, and is destroyed if it has
   * not closed within STEP_DOWN_CLOSE_MS; without, the sockets are destroyed at once.
   */
  async stop(reason?: KeelError): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = null;
    this.broker.off('connection:close', this.onBrokerClose);
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    const n = this.sockets.size;
    for (const c of [...this.sockets.values()]) reason ? c.stepDown(reason) : c.destroy();
    if (reason && this.sockets.size > 0) {
      await settleWithin(closed, STEP_DOWN_CLOSE_MS);
      for (const c of [...this.sockets.values()]) c.destroy();
    }
    await closed;
    this.logger.info({ dropped: n, code: reason?.code }, 'native listener stopped');
  }

  private onSocket(socket: Socket): void {
    // Every socket gets an 'error' listener before anything else can fail on it.
    socket.on('error', () => {});
    if (!this.server) {
      socket.destroy();
      return;
    }
    const refusal = this.limiter?.admit(socket) ?? null;
    if (refusal !== null) {
      // ActiveMQ closes such a socket too; the client's failover transport tries the next broker.
      this.logger.warn(
        {
          remote: socket.remoteAddress,
          limit: refusal,
          text: ConnectionLimiter.message(refusal, this.limiter!.limits),
        },
        'native connection refused',
      );
      closeRefused(socket);
      return;
    }
    try {
      const connection = new NativeConnection(socket, {
        broker: this.broker,
        logger: this.logger,
        maxFrameSize: this.maxFrameSize,
        heartbeatMs: this.heartbeatMs,
        handshakeTimeoutMs: this.handshakeTimeoutMs,
        slowConsumerTimeoutMs: this.slowConsumerTimeoutMs,
        authenticate: this.authenticate,
        describe: this.describe,
        allowLinkStealing: this.allowLinkStealing,
        preHandshakeMaxFrameSize: this.preHandshakeMaxFrameSize,
        maxPendingBytes: this.maxPendingBytes,
        onOpen: (c) => {
          const id = c.connectionId;
          if (id !== null) this.byConnectionId.set(id, c);
          this.emit('client:open', { connectionId: id, remoteAddress: c.remoteAddress });
        },
        onClose: (c) => {
          this.sockets.delete(socket);
          const id = c.connectionId;
          if (id !== null && this.byConnectionId.get(id) === c) this.byConnectionId.delete(id);
          this.emit('client:close', { connectionId: id, remoteAddress: c.remoteAddress });
        },
      });
      this.sockets.set(socket, connection);
    } catch (err) {
      this.logger.warn({ err: (err as Error).message }, 'native connection could not be set up');
      socket.destroy();
    }
  }
}

function checkInt(name: string, value: number, min: number, max: number): void {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new InvalidArgumentError(
      `NativeListener: option ${name} must be an integer ${min}..${max} (got ${value})`,
    );
  }
}
