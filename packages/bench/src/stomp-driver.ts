import { connect as netConnect, type Socket } from 'node:net';
import {
  ConnectionError,
  encodeStompFrame,
  escapeStompHeader,
  getStompHeader,
  ProtocolError,
  STOMP_FRAME_END,
  StompDecoder,
  type StompFrame,
  type StompVersion,
  stompFrame,
  stompHeaderRecord,
  TickCork,
  TimeoutError,
} from '@keel/protocol';
import type {
  BenchConnection,
  BenchDestination,
  BenchDriver,
  BenchMessage,
  BenchSubscribeOptions,
  BenchSubscription,
} from './bench-driver';
import type { TargetProfile } from './target-profile';

const EMPTY = Buffer.alloc(0);

export interface StompDriverOptions {
  host: string;
  port: number;
  login?: string;
  passcode?: string;
  profile: TargetProfile;
  /** Time allowed for TCP connect plus CONNECTED (default 10 s). */
  connectTimeoutMs?: number;
  /** Time DISCONNECT may wait for its receipt before the socket is cut (default 3 s). */
  closeTimeoutMs?: number;
}

export const DEFAULT_STOMP_CONNECT_TIMEOUT_MS = 10_000;
export const DEFAULT_STOMP_CLOSE_TIMEOUT_MS = 3_000;

/** A small STOMP 1.2 client for load: no heart-beats, one socket, writes batched per tick. */
export class StompDriver implements BenchDriver {
  readonly protocol = 'stomp';

  constructor(private readonly options: StompDriverOptions) {}

  async connect(name: string): Promise<BenchConnection> {
    const conn = new StompBenchConnection(this.options, name);
    await conn.open();
    return conn;
  }
}

interface Pending {
  resolve(): void;
  reject(err: Error): void;
}

type MessageHandler = (frame: StompFrame) => void;

class StompBenchConnection implements BenchConnection {
  private socket: Socket | null = null;
  private readonly decoder = new StompDecoder();
  private version: StompVersion = '1.2';
  private readonly receipts = new Map<string, Pending>();
  private readonly subscriptions = new Map<string, MessageHandler>();
  private nextId = 0;
  private cork: TickCork | null = null;
  private failure: Error | null = null;
  private closing = false;
  private errorListeners: Array<(err: Error) => void> = [];
  private onConnected: Pending | null = null;

  constructor(
    private readonly options: StompDriverOptions,
    private readonly name: string,
  ) {}

  open(): Promise<void> {
    const { host, port, login, passcode, profile } = this.options;
    const timeoutMs = this.options.connectTimeoutMs ?? DEFAULT_STOMP_CONNECT_TIMEOUT_MS;
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.fail(new TimeoutError(`${this.name}: no CONNECTED from ${host}:${port} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.onConnected = {
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
        reject: (err) => {
          clearTimeout(timer);
          reject(err);
        },
      };
      const socket = netConnect({ host, port });
      this.socket = socket;
      this.cork = new TickCork(socket);
      socket.setNoDelay(true);
      socket.on('data', (chunk: Buffer) => this.onData(chunk));
      socket.on('error', (err) =>
        this.fail(new ConnectionError(`${this.name}: ${err.message}`, 'CONNECTION_LOST', { cause: err })),
      );
      socket.on('close', () => {
        if (!this.closing) this.fail(new ConnectionError(`${this.name}: the broker closed the connection`));
      });
      socket.once('connect', () => {
        // STOMP 1.2 "CONNECT or STOMP Frame": accept-version and host are required; no heart-beats.
        const headers: Record<string, string> = {
          'accept-version': '1.2',
          host: profile.connectHost(host),
          'heart-beat': '0,0',
        };
        if (login !== undefined) headers.login = login;
        if (passcode !== undefined) headers.passcode = passcode;
        this.write(stompFrame('CONNECT', headers));
      });
    });
  }

  onError(listener: (err: Error) => void): void {
    this.errorListeners.push(listener);
  }

  send(destination: BenchDestination, body: Buffer): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    const receipt = `r${++this.nextId}`;
    const p = this.awaitReceipt(receipt);
    const { profile } = this.options;
    this.writeHot(
      'SEND',
      {
        destination: profile.destination(destination),
        persistent: 'true',
        receipt,
        ...profile.sendHeaders(destination),
        'content-length': String(body.length),
      },
      body,
    );
    return p;
  }

  async subscribe(destination: BenchDestination, options: BenchSubscribeOptions): Promise<BenchSubscription> {
    if (this.failure) throw this.failure;
    const id = `s${++this.nextId}`;
    const { profile } = this.options;
    const onMessage = options.onMessage;
    this.subscriptions.set(id, (frame) => {
      // STOMP 1.2 "ACK": `id` is the MESSAGE's `ack` header; 1.0/1.1 name the message-id instead.
      const ack = getStompHeader(frame, 'ack');
      const ackHeaders: Record<string, string> =
        ack !== undefined
          ? { id: ack }
          : { 'message-id': getStompHeader(frame, 'message-id') ?? '', subscription: id };
      const message: BenchMessage = {
        body: frame.body,
        ack: () => {
          if (!this.failure) this.writeHot('ACK', ackHeaders, EMPTY);
        },
      };
      onMessage(message);
    });
    const receipt = `r${++this.nextId}`;
    const p = this.awaitReceipt(receipt);
    this.write(
      stompFrame('SUBSCRIBE', {
        id,
        destination: profile.destination(destination),
        ack: 'client-individual',
        receipt,
        ...profile.subscribeHeaders(destination, options.prefetch),
      }),
    );
    await p;
    return {
      unsubscribe: async () => {
        if (this.failure) return;
        const r = `r${++this.nextId}`;
        const done = this.awaitReceipt(r);
        this.write(stompFrame('UNSUBSCRIBE', { id, receipt: r }));
        await done;
        this.subscriptions.delete(id);
      },
    };
  }

  async close(): Promise<void> {
    const socket = this.socket;
    if (socket === null || this.closing) return;
    this.closing = true;
    const timeoutMs = this.options.closeTimeoutMs ?? DEFAULT_STOMP_CLOSE_TIMEOUT_MS;
    if (!this.failure && !socket.destroyed) {
      // STOMP 1.2 "Connecting" / graceful disconnect: DISCONNECT with a receipt, wait for it, then close.
      const receipt = `r${++this.nextId}`;
      const done = this.awaitReceipt(receipt);
      this.write(stompFrame('DISCONNECT', { receipt }));
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        done.catch(() => undefined),
        new Promise<void>((r) => {
          timer = setTimeout(r, timeoutMs);
        }),
      ]);
      clearTimeout(timer);
    }
    if (!socket.destroyed) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => socket.destroy(), timeoutMs);
        socket.once('close', () => {
          clearTimeout(timer);
          resolve();
        });
        this.cork?.flush();
        socket.end();
      });
    }
    this.rejectAll(new ConnectionError(`${this.name}: closed`, 'CONNECTION_CLOSED'));
  }

  private awaitReceipt(receipt: string): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.receipts.set(receipt, { resolve, reject });
    });
  }

  /** Gather every frame written in one tick into one socket write (TickCork). */
  private write(frame: StompFrame): void {
    const socket = this.socket;
    if (socket === null || socket.destroyed) return;
    this.cork!.write(encodeStompFrame(frame, { version: this.version }));
  }

  /**
   * SEND and ACK, the load generator's own hot path: the head is built as text and written with
   * the body straight into the tick's buffer, so the tool spends less of the machine the brokers
   * share with it (STOMP 1.0 has no escaping and goes through the checking encoder).
   */
  private writeHot(command: 'SEND' | 'ACK', headers: Record<string, string>, body: Buffer): void {
    const version = this.version;
    if (version === '1.0') {
      this.write(stompFrame(command, headers, body));
      return;
    }
    const socket = this.socket;
    if (socket === null || socket.destroyed) return;
    let head = `${command}\n`;
    for (const name in headers) {
      head += `${escapeStompHeader(name, version)}:${escapeStompHeader(headers[name]!, version)}\n`;
    }
    this.cork!.writeFrame(`${head}\n`, body, STOMP_FRAME_END);
  }

  private onData(chunk: Buffer): void {
    try {
      this.decoder.pushEach(chunk, (event) => {
        if (event.type === 'frame') this.onFrame(event.frame);
      });
    } catch (err) {
      this.fail(err instanceof Error ? err : new ProtocolError(String(err)));
    }
  }

  private onFrame(frame: StompFrame): void {
    switch (frame.command) {
      case 'MESSAGE': {
        const sub = frame.headers.find(([n]) => n === 'subscription')?.[1];
        const handler = sub === undefined ? undefined : this.subscriptions.get(sub);
        if (handler) handler(frame);
        return;
      }
      case 'RECEIPT': {
        const id = frame.headers.find(([n]) => n === 'receipt-id')?.[1];
        if (id === undefined) return;
        const p = this.receipts.get(id);
        if (p) {
          this.receipts.delete(id);
          p.resolve();
        }
        return;
      }
      case 'CONNECTED': {
        const v = stompHeaderRecord(frame).version;
        if (v === '1.0' || v === '1.1' || v === '1.2') {
          this.version = v;
          this.decoder.version = v;
        } else if (v === undefined) {
          this.version = '1.0';
          this.decoder.version = '1.0';
        }
        this.onConnected?.resolve();
        this.onConnected = null;
        return;
      }
      case 'ERROR': {
        const h = stompHeaderRecord(frame);
        const detail = frame.body.toString('utf8').trim().split('\n')[0] ?? '';
        this.fail(
          new ProtocolError(
            `${this.name}: broker ERROR: ${h.message ?? '(no message)'}${detail ? ` — ${detail}` : ''}`,
            h.code ?? 'PROTOCOL_ERROR',
          ),
        );
        return;
      }
      default:
        return;
    }
  }

  private fail(err: Error): void {
    if (this.failure) return;
    this.failure = err;
    this.onConnected?.reject(err);
    this.onConnected = null;
    this.rejectAll(err);
    this.socket?.destroy();
    if (!this.closing) for (const l of this.errorListeners) l(err);
  }

  private rejectAll(err: Error): void {
    const pending = [...this.receipts.values()];
    this.receipts.clear();
    for (const p of pending) p.reject(err);
  }
}
