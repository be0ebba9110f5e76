import { createServer, type Server, type Socket } from 'node:net';
import { type Broker, type Logger, silentLogger } from '@keel/core';
import {
  DEFAULT_STOMP_MAX_FRAME_SIZE,
  DEFAULT_STOMP_MAX_HEADER_LINE_LENGTH,
  DEFAULT_STOMP_MAX_HEADERS,
  encodeStompFrame,
  InvalidArgumentError,
  type KeelError,
} from '@keel/protocol';
import { ConnectionLimiter, closeRefused } from '../limits/connection-limiter';
import type { ListenerServerFactory } from '../native/native-listener';
import { STEP_DOWN_CLOSE_MS, settleWithin } from '../step-down';
import { type StompAuthenticator, StompConnection } from './stomp-connection';

export type { StompAckMode, StompAuthenticator } from './stomp-connection';

export const STOMP_LISTENER_DEFAULTS = Object.freeze({
  host: '0.0.0.0',
  /** ActiveMQ's STOMP port. */
  port: 61613,
  maxFrameSize: DEFAULT_STOMP_MAX_FRAME_SIZE,
  maxHeaders: DEFAULT_STOMP_MAX_HEADERS,
  maxHeaderLength: DEFAULT_STOMP_MAX_HEADER_LINE_LENGTH,
  /** The server's preferred heart-beat interval (its `sx,sy` in CONNECTED). */
  heartbeatMs: 10_000,
  serverName: 'Keel',
  /** ActiveMQ's `transport.connectAttemptTimeout` for STOMP: 30 s to send CONNECT. */
  connectTimeoutMs: 30_000,
  maxPendingFrames: 1000,
  closeGraceMs: 5_000,
  slowConsumerTimeoutMs: 30_000,
  /** Largest frame before CONNECTED (issue #23.3): a CONNECT needs kilobytes, not megabytes. */
  preConnectMaxFrameSize: 64 * 1024,
  /** Bytes of received frames not finished (sends awaiting the store) before reading pauses. */
  maxPendingBytes: 16 * 1024 * 1024,
});

export interface StompListenerOptions {
  broker: Broker;
  host?: string;
  /** 0 = an ephemeral port (see the result of start()). */
  port?: number;
  logger?: Logger;
  /** Largest frame (and body) in bytes. */
  maxFrameSize?: number;
  /** Most headers in one frame. */
  maxHeaders?: number;
  /** Longest command or header line in bytes. */
  maxHeaderLength?: number;
  /** The server's preferred heart-beat interval both ways; 0 = no heart-beats. */
  heartbeatMs?: number;
  /** Checks login/passcode of CONNECT; default: everyone is let in. */
  authenticate?: StompAuthenticator;
  /** The `server` header of CONNECTED. */
  serverName?: string;
  connectTimeoutMs?: number;
  maxPendingFrames?: number;
  closeGraceMs?: number;
  /** A client whose socket stays congested this long is cut (aedes, ActiveMQ slow consumers); 0 = never. */
  slowConsumerTimeoutMs?: number;
  /** ActiveMQ transport connector option: a newer connection with a live connection's client id takes it over (default false). */
  allowLinkStealing?: boolean;
  /** Makes the server instead of a plain TCP one: TlsContext.createServer gives `stomp+ssl://`. */
  createServer?: ListenerServerFactory;
  /** maximumConnections (shared with the native listener); none = no limit. */
  connectionLimiter?: ConnectionLimiter;
  /** Largest frame (and header block) accepted before CONNECTED, bytes. */
  preConnectMaxFrameSize?: number;
  /** Bytes of received frames still in progress before reading pauses (backpressure). */
  maxPendingBytes?: number;
}

function checkInt(name: string, value: number, min: number): number {
  if (!Number.isSafeInteger(value) || value < min) {
    throw new InvalidArgumentError(`StompListener option ${name} must be an integer >= ${min}, got ${value}`);
  }
  return value;
}

/**
 * The STOMP 1.2 listener (with 1.0 and 1.1), speaking ActiveMQ's conventions so existing STOMP
 * clients work against Keel: `/queue/x`, `/topic/x`, `/temp-queue/x`, `persistent:true`,
 * `activemq.subscriptionName`, `activemq.prefetchSize`, `activemq.noLocal`.
 */
export class StompListener {
  private readonly broker: Broker;
  private readonly logger: Logger;
  private readonly host: string;
  private readonly port: number;
  private readonly connectionOptions: ConstructorParameters<typeof StompConnection>[1];
  private server: Server | null = null;
  private readonly connections = new Set<StompConnection>();
  private stopping = false;
  private readonly limiter: ConnectionLimiter | null;
  private readonly makeServer: ListenerServerFactory | undefined;

  constructor(options: StompListenerOptions) {
    if (!options || typeof options.broker !== 'object' || options.broker === null) {
      throw new InvalidArgumentError('StompListener option broker is required');
    }
    this.broker = options.broker;
    this.logger = options.logger ?? silentLogger;
    this.makeServer = options.createServer;
    this.limiter = options.connectionLimiter ?? null;
    const d = STOMP_LISTENER_DEFAULTS;
    this.host = options.host ?? d.host;
    this.port = checkInt('port', options.port ?? d.port, 0);
    if (this.port > 65535)
      throw new InvalidArgumentError(`StompListener option port must be at most 65535, got ${this.port}`);
    const authenticate = options.authenticate ?? (() => true);
    if (typeof authenticate !== 'function')
      throw new InvalidArgumentError('StompListener option authenticate must be a function');
    this.connectionOptions = {
      broker: this.broker,
      logger: this.logger,
      serverName: options.serverName ?? d.serverName,
      heartbeatMs: checkInt('heartbeatMs', options.heartbeatMs ?? d.heartbeatMs, 0),
      authenticate,
      maxFrameSize: checkInt('maxFrameSize', options.maxFrameSize ?? d.maxFrameSize, 64),
      maxHeaders: checkInt('maxHeaders', options.maxHeaders ?? d.maxHeaders, 1),
      maxHeaderLength: checkInt('maxHeaderLength', options.maxHeaderLength ?? d.maxHeaderLength, 16),
      connectTimeoutMs: checkInt('connectTimeoutMs', options.connectTimeoutMs ?? d.connectTimeoutMs, 1),
      maxPendingFrames: checkInt('maxPendingFrames', options.maxPendingFrames ?? d.maxPendingFrames, 1),
      closeGraceMs: checkInt('closeGraceMs', options.closeGraceMs ?? d.closeGraceMs, 0),
      slowConsumerTimeoutMs: checkInt(
        'slowConsumerTimeoutMs',
        options.slowConsumerTimeoutMs ?? d.slowConsumerTimeoutMs,
        0,
      ),
      allowLinkStealing: options.allowLinkStealing === true,
      preConnectMaxFrameSize: checkInt(
        'preConnectMaxFrameSize',
        options.preConnectMaxFrameSize ?? d.preConnectMaxFrameSize,
        64,
      ),
      maxPendingBytes: checkInt('maxPendingBytes', options.maxPendingBytes ?? d.maxPendingBytes, 1024),
    };
  }

  get connectionCount(): number {
    return this.connections.size;
  }

  async start(): Promise<{ port: number }> {
    if (this.server) throw new InvalidArgumentError('StompListener already started');
    this.stopping = false;
    const accept = (socket: Socket): void => this.accept(socket);
    const server = this.makeServer?.(accept, {}) ?? createServer(accept);
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
    server.on('error', (err) => this.logger.error({ err: err.message }, 'STOMP listener error'));
    const address = server.address();
    const port = typeof address === 'object' && address !== null ? address.port : this.port;
    this.logger.info({ host: this.host, port, ...this.loggedOptions() }, 'STOMP listener started');
    return { port };
  }

  /**
   * Close the server and drop every client (their broker connections close too). With `reason`
   * (the node steps down) each client gets an ERROR with its code first, and is destroyed if it has
   * not closed within STEP_DOWN_CLOSE_MS.
   */
  async stop(reason?: KeelError): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.stopping = true;
    this.server = null;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    for (const c of [...this.connections]) reason ? c.stepDown(reason) : c.destroy();
    if (reason && this.connections.size > 0) {
      await settleWithin(closed, STEP_DOWN_CLOSE_MS);
      for (const c of [...this.connections]) c.destroy();
    }
    await closed;
    this.logger.info({ code: reason?.code }, 'STOMP listener stopped');
  }

  private accept(socket: Socket): void {
    if (this.stopping) {
      socket.on('error', () => {});
      socket.destroy();
      return;
    }
    const refusal = this.limiter?.admit(socket) ?? null;
    if (refusal !== null) {
      const text = ConnectionLimiter.message(refusal, this.limiter!.limits);
      this.logger.warn({ remote: socket.remoteAddress, limit: refusal }, 'STOMP connection refused');
      const error = encodeStompFrame(
        {
          command: 'ERROR',
          headers: [
            ['message', text],
            ['code', 'RESOURCE_LIMIT'],
          ],
          body: Buffer.from(text),
        },
        { version: '1.0', contentLength: false },
      );
      closeRefused(socket, error);
      return;
    }
    const connection = new StompConnection(socket, this.connectionOptions);
    this.connections.add(connection);
    connection.onClose(() => this.connections.delete(connection));
  }

  private loggedOptions(): Record<string, unknown> {
    const { broker: _b, logger: _l, authenticate: _a, ...rest } = this.connectionOptions;
    return rest;
  }
}
