import { EventEmitter } from 'node:events';
import * as net from 'node:net';
import * as tls from 'node:tls';
import {
  COMPACT_PROTOCOL_VERSION,
  ConnectionError,
  DEFAULT_MAX_FRAME_SIZE,
  encodeFrame,
  encodeFrameHead,
  errorFromCode,
  FRAME_END,
  type Frame,
  FrameDecoder,
  FrameType,
  frameBody,
  HEARTBEAT_FRAME_BYTES,
  KeelError,
  MIN_PROTOCOL_VERSION,
  NotMasterError,
  PROTOCOL_HEADER,
  PROTOCOL_VERSION,
  TickCork,
  TimeoutError,
  type WelcomeFrame,
} from '@keel/protocol';

export const DEFAULT_HEARTBEAT_MS = 10000;
export const DEFAULT_CONNECT_TIMEOUT_MS = 10000;
/** A broker silent for this many heartbeat intervals is taken for dead. */
export const HEARTBEAT_MISSES = 3;

export interface WireOptions {
  host: string;
  port: number;
  clientId?: string;
  username?: string;
  password?: string;
  heartbeatMs: number;
  maxFrameSize: number;
  connectTimeoutMs: number;
  /** `ssl://`: connect over TLS with these options (client-tls.ts); absent: plain TCP. */
  tls?: tls.ConnectionOptions | null;
}

export interface WireEvents {
  frame: [Frame];
  /** Emitted once, when the socket is gone; carries why. */
  close: [Error];
}

/**
 * One TCP connection to one broker speaking the native protocol (docs/protocol.md): the 8-byte
 * protocol header and HELLO out, WELCOME (or a fatal ERROR) back, then frames both ways and
 * heartbeats. The failover logic lives in Connection; a Wire never reconnects.
 */
export class Wire extends EventEmitter<WireEvents> {
  readonly maxFrameSize: number;
  private closed = false;
  private lastReceived = Date.now();
  private lastSent = Date.now();
  private timer: NodeJS.Timeout | null = null;
  /** Frames written in one tick leave in one writev (acks, sends of a batch). */
  private readonly cork: TickCork;
  /** Encoding options: the frame size limit, compact headers once the broker agreed on version 2. */
  private readonly encodeOptions: { maxFrameSize: number; compact: boolean };

  private constructor(
    private readonly socket: net.Socket,
    private readonly decoder: FrameDecoder,
    readonly welcome: WelcomeFrame,
    clientMaxFrameSize: number,
  ) {
    super();
    this.cork = new TickCork(socket);
    this.maxFrameSize = Math.min(clientMaxFrameSize, welcome.maxFrameSize || clientMaxFrameSize);
    this.encodeOptions = {
      maxFrameSize: this.maxFrameSize,
      compact: welcome.protocolVersion >= COMPACT_PROTOCOL_VERSION,
    };
  }

  /** Connect and shake hands. Rejects with the broker's typed error, ConnectionError or TimeoutError. */
  static open(options: WireOptions): Promise<Wire> {
    return new Promise<Wire>((resolve, reject) => {
      const decoder = new FrameDecoder({
        maxFrameSize: Math.max(options.maxFrameSize, DEFAULT_MAX_FRAME_SIZE),
      });
      const socket = options.tls
        ? tls.connect({ host: options.host, port: options.port, ...options.tls })
        : net.connect({ host: options.host, port: options.port });
      socket.setNoDelay(true);
      const where = `${options.host}:${options.port}`;
      let done = false;
      const fail = (err: Error): void => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        socket.removeAllListeners('data');
        socket.destroy();
        reject(err);
      };
      const timer = setTimeout(
        () => fail(new TimeoutError(`no WELCOME from ${where} within ${options.connectTimeoutMs} ms`)),
        options.connectTimeoutMs,
      );
      socket.on('error', (err) =>
        fail(
          new ConnectionError(`cannot connect to ${where}: ${describeSocketError(err)}`, 'CONNECTION_LOST', {
            cause: err,
          }),
        ),
      );
      socket.on('close', () =>
        fail(new ConnectionError(`${where} closed the connection during the handshake`)),
      );
      // Over TLS the protocol starts once the handshake is done (and the broker verified).
      socket.on(options.tls ? 'secureConnect' : 'connect', () => {
        socket.write(PROTOCOL_HEADER);
        socket.write(
          encodeFrame({
            type: FrameType.Hello,
            channel: 0,
            protocolVersion: PROTOCOL_VERSION,
            minProtocolVersion: MIN_PROTOCOL_VERSION,
            clientId: options.clientId,
            username: options.username,
            password: options.password,
            heartbeatMs: options.heartbeatMs,
            maxFrameSize: options.maxFrameSize,
          }),
        );
      });
      const onData = (chunk: Buffer): void => {
        let frames: Frame[];
        try {
          frames = decoder.push(chunk);
        } catch (err) {
          fail(err as Error);
          return;
        }
        if (frames.length === 0) return;
        const first = frames[0]!;
        if (first.type === FrameType.Error) {
          fail(errorFromCode(first.code, `${where}: ${first.message}`, first.retryable));
          return;
        }
        if (first.type !== FrameType.Welcome) {
          fail(
            new ConnectionError(`${where} answered HELLO with ${FrameType[first.type]} instead of WELCOME`),
          );
          return;
        }
        if (first.broker.role !== 'master') {
          fail(new NotMasterError(`${where} is ${first.broker.role}, not master`));
          return;
        }
        done = true;
        clearTimeout(timer);
        socket.removeAllListeners();
        const wire = new Wire(socket, decoder, first, options.maxFrameSize);
        wire.attach();
        resolve(wire);
        // Frames that came in the same chunk as WELCOME.
        for (const f of frames.slice(1)) wire.emit('frame', f);
      };
      socket.on('data', onData);
    });
  }

  private attach(): void {
    const s = this.socket;
    s.on('data', (chunk: Buffer) => {
      this.lastReceived = Date.now();
      try {
        this.decoder.pushEach(chunk, (f) => {
          if (!this.closed) this.emit('frame', f);
        });
      } catch (err) {
        this.destroy(KeelError.isInstance(err) ? err : new ConnectionError(String(err)));
      }
    });
    s.on('error', (err) =>
      this.destroy(new ConnectionError(`connection lost: ${err.message}`, 'CONNECTION_LOST', { cause: err })),
    );
    s.on('close', () => this.destroy(new ConnectionError('the broker closed the connection')));
    const hb = this.welcome.heartbeatMs;
    if (hb > 0) {
      this.timer = setInterval(() => this.beat(hb), Math.max(1, Math.floor(hb / 2)));
      this.timer.unref();
    }
  }

  private beat(hb: number): void {
    const now = Date.now();
    if (now - this.lastReceived > HEARTBEAT_MISSES * hb) {
      this.destroy(
        new ConnectionError(
          `no data from the broker for ${HEARTBEAT_MISSES} x ${hb} ms`,
          'HEARTBEAT_TIMEOUT',
        ),
      );
      return;
    }
    if (now - this.lastSent >= hb) this.writeRaw(HEARTBEAT_FRAME_BYTES);
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** Encode and write. Throws a ProtocolError (FRAME_TOO_LARGE) before writing anything too big. */
  write(frame: Frame): void {
    const body = frameBody(frame);
    if (body.length === 0) {
      this.writeRaw(encodeFrame(frame, this.encodeOptions));
      return;
    }
    // SEND: the body goes straight into the tick's write, not through a frame buffer first.
    const head = encodeFrameHead(frame, this.encodeOptions);
    if (this.sending()) this.cork.writeFrame(head, body, FRAME_END);
  }

  private writeRaw(bytes: Buffer): void {
    if (this.sending()) this.cork.write(bytes);
  }

  /** False once closed; otherwise notes the write for the heartbeat. */
  private sending(): boolean {
    if (this.closed) return false;
    this.lastSent = Date.now();
    return true;
  }

  /** Close politely: flush what was written, then end the socket. */
  end(): void {
    if (this.closed) return;
    this.cork.flush();
    this.socket.end();
  }

  destroy(err: Error): void {
    if (this.closed) return;
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    this.cork.flush();
    this.socket.destroy();
    this.emit('close', err);
  }
}

/** A socket error with its code (TLS verification failures name what failed, e.g. SELF_SIGNED_CERT_IN_CHAIN). */
function describeSocketError(err: Error): string {
  const code = (err as { code?: string }).code;
  const tlsFailure = code !== undefined && /CERT|SELF_SIGNED|UNABLE_TO|TLS|SSL/.test(code);
  return tlsFailure ? `TLS: ${err.message} (${code})` : err.message;
}
