/**
 * A bare STOMP 1.2 client over a raw socket, for tests that drive a broker past its limits: every
 * frame it receives is kept, receipts are awaited per id, and the socket's close is observable.
 */
import * as net from 'node:net';
import {
  encodeStompFrame,
  getStompHeader,
  StompDecoder,
  type StompFrame,
  type StompHeaders,
} from '@keel/protocol';

export class RawStomp {
  readonly frames: StompFrame[] = [];
  readonly closed: Promise<void>;
  isClosed = false;
  private readonly decoder = new StompDecoder({
    maxFrameSize: 64 * 1024 * 1024,
    maxBodySize: 64 * 1024 * 1024,
  });
  private waiters: { test: (f: StompFrame) => boolean; resolve: (f: StompFrame) => void }[] = [];
  private receiptCounter = 0;
  private messageIndex = 0;

  constructor(readonly socket: net.Socket) {
    socket.on('error', () => {});
    socket.on('data', (chunk: Buffer) => {
      try {
        for (const e of this.decoder.push(chunk)) if (e.type === 'frame') this.onFrame(e.frame);
      } catch {
        socket.destroy();
      }
    });
    this.closed = new Promise((resolve) =>
      socket.once('close', () => {
        this.isClosed = true;
        resolve();
      }),
    );
  }

  /** A socket to the broker, connected (no STOMP yet). */
  static async open(port: number, localAddress?: string): Promise<RawStomp> {
    const socket = net.connect({ port, host: '127.0.0.1', localAddress });
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    return new RawStomp(socket);
  }

  /** open + CONNECT; resolves with CONNECTED or ERROR (whichever came). */
  static async connect(port: number, localAddress?: string, headers: StompHeaders = []): Promise<RawStomp> {
    const c = await RawStomp.open(port, localAddress);
    await c.handshake(headers);
    return c;
  }

  handshake(headers: StompHeaders = []): Promise<StompFrame> {
    this.write('CONNECT', [['accept-version', '1.2'], ['host', 'keel'], ...headers]);
    return this.next((f) => f.command === 'CONNECTED' || f.command === 'ERROR');
  }

  write(command: StompFrame['command'], headers: StompHeaders, body: Buffer = Buffer.alloc(0)): boolean {
    if (this.socket.destroyed) return false;
    return this.socket.write(encodeStompFrame({ command, headers, body }));
  }

  /** A SEND with a receipt: resolves with its RECEIPT, or the ERROR that came instead, or null on close. */
  send(destination: string, body: Buffer, headers: StompHeaders = []): Promise<StompFrame | null> {
    const receipt = `r${++this.receiptCounter}`;
    this.write('SEND', [['destination', destination], ['receipt', receipt], ...headers], body);
    return Promise.race([
      this.next(
        (f) =>
          (f.command === 'RECEIPT' && getStompHeader(f, 'receipt-id') === receipt) || f.command === 'ERROR',
      ),
      this.closed.then(() => this.frames.find((f) => f.command === 'ERROR') ?? null),
    ]);
  }

  subscribe(destination: string, id: string, headers: StompHeaders = []): void {
    this.write('SUBSCRIBE', [['destination', destination], ['id', id], ...headers]);
  }

  /** The next MESSAGE not taken yet (in arrival order). */
  async message(): Promise<StompFrame> {
    const seen = this.frames.filter((f) => f.command === 'MESSAGE');
    if (seen.length > this.messageIndex) return seen[this.messageIndex++]!;
    const want = this.messageIndex + 1;
    const f = await this.next(() => this.frames.filter((x) => x.command === 'MESSAGE').length >= want);
    this.messageIndex++;
    return f;
  }

  ack(message: StompFrame): void {
    this.write('ACK', [['id', getStompHeader(message, 'ack') ?? '']]);
  }

  /** The first frame (already received or to come) that passes `test`. */
  next(test: (f: StompFrame) => boolean): Promise<StompFrame> {
    const had = this.frames.find(test);
    if (had) return Promise.resolve(had);
    return new Promise((resolve) => this.waiters.push({ test, resolve }));
  }

  error(): StompFrame | undefined {
    return this.frames.find((f) => f.command === 'ERROR');
  }

  close(): void {
    this.socket.destroy();
  }

  private onFrame(frame: StompFrame): void {
    this.frames.push(frame);
    this.waiters = this.waiters.filter((w) => {
      if (!w.test(frame)) return true;
      w.resolve(frame);
      return false;
    });
  }
}

/** The broker process's resident set (VmRSS) in MiB. */
export function rssMiB(pid: number): number {
  const status = require('node:fs').readFileSync(`/proc/${pid}/status`, 'utf8') as string;
  const m = /VmRSS:\s+(\d+) kB/.exec(status);
  return m ? Math.round(Number(m[1]) / 1024) : Number.NaN;
}
