/**
 * Test helpers for the STOMP listener: a broker over the memory store with a listener on an
 * ephemeral port, a raw STOMP socket (for what well-behaved clients never send), and small
 * promise wrappers around the third-party clients `stompit` and `@stomp/stompjs`.
 */
import { connect as netConnect, type Socket } from 'node:net';
import { Broker, type BrokerOptions, MemoryDatabase, MemoryStore, type Store } from '@keel/core';
import {
  encodeStompFrame,
  StompDecoder,
  type StompFrame,
  type StompVersion,
  stompFrame,
  stompHeaderRecord,
} from '@keel/protocol';
import { StompListener, type StompListenerOptions } from '../stomp-listener';

export interface StompFixture {
  broker: Broker;
  listener: StompListener;
  port: number;
  close(): Promise<void>;
}

export async function startStomp(
  listenerOptions: Partial<StompListenerOptions> = {},
  brokerOptions: Partial<BrokerOptions> & { store?: Store } = {},
): Promise<StompFixture> {
  let store = brokerOptions.store;
  const ownStore = store === undefined;
  if (!store) {
    store = new MemoryStore({ database: new MemoryDatabase(), cluster: 'test' });
    await store.open();
    await store.takeOver('node-1', 'test');
  }
  const broker = new Broker({
    nodeName: 'node-1',
    redelivery: { initialRedeliveryDelay: 0, redeliveryDelay: 0 },
    ...brokerOptions,
    store,
  });
  await broker.start();
  const listener = new StompListener({ broker, host: '127.0.0.1', port: 0, ...listenerOptions });
  const { port } = await listener.start();
  return {
    broker,
    listener,
    port,
    async close() {
      await listener.stop();
      await broker.stop();
      if (ownStore) await store!.close();
    },
  };
}

/** Resolve when `check()` is true, re-checking on every broker/socket turn (bounded). */
export async function until(
  check: () => boolean | Promise<boolean>,
  what: string,
  timeoutMs = 5000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

// ----- raw socket ------------------------------------------------------------------------------

/** A STOMP peer on a bare socket: writes whatever it is told, decodes what the server sends. */
export class RawStomp {
  readonly frames: StompFrame[] = [];
  heartbeats = 0;
  ended = false;
  /** Every byte received, as received. */
  readonly received: Buffer[] = [];
  private readonly decoder: StompDecoder;
  private next = 0;
  private notify: (() => void) | null = null;
  readonly closed: Promise<void>;

  private constructor(
    readonly socket: Socket,
    version: StompVersion,
  ) {
    this.decoder = new StompDecoder({
      version,
      maxFrameSize: 64 * 1024 * 1024,
      maxBodySize: 64 * 1024 * 1024,
    });
    socket.on('data', (chunk: Buffer) => {
      this.received.push(chunk);
      for (const e of this.decoder.push(chunk)) {
        if (e.type === 'heartbeat') this.heartbeats += 1;
        else this.frames.push(e.frame);
      }
      this.wake();
    });
    socket.on('error', () => {});
    this.closed = new Promise((resolve) =>
      socket.on('close', () => {
        this.ended = true;
        this.wake();
        resolve();
      }),
    );
  }

  static async open(port: number, version: StompVersion = '1.2'): Promise<RawStomp> {
    const socket = netConnect({ host: '127.0.0.1', port });
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    return new RawStomp(socket, version);
  }

  /** Open and CONNECT; resolves with the CONNECTED frame. */
  static async connect(
    port: number,
    headers: Record<string, string> = { 'accept-version': '1.2', host: 'keel' },
  ): Promise<RawStomp> {
    const accept = headers['accept-version'];
    const version: StompVersion =
      accept === undefined ? '1.0' : accept.includes('1.2') ? '1.2' : accept.includes('1.1') ? '1.1' : '1.0';
    const raw = await RawStomp.open(port, version);
    raw.send('CONNECT', headers);
    const f = await raw.frame();
    if (f.command !== 'CONNECTED')
      throw new Error(`expected CONNECTED, got ${f.command}: ${stompHeaderRecord(f).message}`);
    return raw;
  }

  private wake(): void {
    const n = this.notify;
    this.notify = null;
    n?.();
  }

  private async changed(timeoutMs: number, what: string): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), timeoutMs);
      this.notify = () => {
        clearTimeout(t);
        resolve();
      };
    });
  }

  write(data: string | Buffer): void {
    this.socket.write(data);
  }

  send(
    command: Parameters<typeof stompFrame>[0],
    headers: Record<string, string> = {},
    body?: Buffer | string,
    version: StompVersion = '1.2',
  ): void {
    this.socket.write(encodeStompFrame(stompFrame(command, headers, body), { version }));
  }

  /** The next frame the server sent (in order). */
  async frame(timeoutMs = 5000): Promise<StompFrame> {
    while (this.next >= this.frames.length) {
      if (this.ended) throw new Error('connection closed while waiting for a frame');
      await this.changed(timeoutMs, 'a frame');
    }
    return this.frames[this.next++]!;
  }

  async waitHeartbeats(n: number, timeoutMs = 5000): Promise<void> {
    while (this.heartbeats < n) {
      if (this.ended) throw new Error('connection closed while waiting for heart-beats');
      await this.changed(timeoutMs, `${n} heart-beats`);
    }
  }

  destroy(): void {
    this.socket.destroy();
  }
}

export function headersOf(f: StompFrame): Record<string, string> {
  return stompHeaderRecord(f);
}

// ----- stompit ---------------------------------------------------------------------------------

interface StompitWritable {
  write(chunk: string | Buffer): boolean;
  end(cb?: () => void): void;
}

export interface StompitMessage extends NodeJS.ReadableStream {
  headers: Record<string, string>;
}

export interface StompitClient {
  send(
    headers: Record<string, unknown>,
    options?: { onReceipt?: () => void; onError?: (e: Error) => void },
  ): StompitWritable;
  subscribe(
    headers: Record<string, unknown>,
    listener: (err: Error | null, message: StompitMessage) => void,
  ): { unsubscribe(headers?: Record<string, unknown>): void };
  ack(message: StompitMessage, headers?: Record<string, unknown>, options?: { onReceipt?: () => void }): void;
  nack(
    message: StompitMessage,
    headers?: Record<string, unknown>,
    options?: { onReceipt?: () => void },
  ): void;
  begin(headers?: Record<string, unknown>): {
    id: string | number;
    send(headers: Record<string, unknown>): StompitWritable;
    commit(options?: { onReceipt?: () => void }): void;
    abort(options?: { onReceipt?: () => void }): void;
  };
  disconnect(cb?: (err: Error | null) => void): void;
  destroy(err?: Error): void;
  on(event: 'error', fn: (err: Error) => void): void;
  getTransportSocket(): Socket;
}

interface StompitModule {
  connect(
    options: Record<string, unknown>,
    cb: (err: Error | null, client: StompitClient) => void,
  ): StompitClient;
}

// stompit ships no type declarations: a require with a local interface.
export const stompit = require('stompit') as StompitModule;

/** Connect with stompit; every client gets an 'error' listener that records the error. */
export function stompitConnect(
  port: number,
  connectHeaders: Record<string, string> = {},
): Promise<StompitClient & { errors: Error[] }> {
  return new Promise((resolve, reject) => {
    const errors: Error[] = [];
    const c = stompit.connect(
      { host: '127.0.0.1', port, connectHeaders: { host: '/', ...connectHeaders } },
      (err, client) => {
        if (err) reject(err);
        else resolve(Object.assign(client, { errors }));
      },
    );
    c.on('error', (e) => errors.push(e));
  });
}

export function stompitDisconnect(client: StompitClient): Promise<void> {
  return new Promise((resolve) => client.disconnect(() => resolve()));
}

/** Send with stompit and resolve on the RECEIPT. */
export function stompitSend(
  client: StompitClient,
  headers: Record<string, unknown>,
  body: string | Buffer,
): Promise<void> {
  return new Promise((resolve, reject) => {
    const frame = client.send(headers, { onReceipt: resolve, onError: reject });
    frame.write(body);
    frame.end();
  });
}

export interface ReceivedMessage {
  headers: Record<string, string>;
  body: Buffer;
  raw: StompitMessage;
}

/** Subscribe with stompit and collect the messages with their bodies. */
export function stompitCollect(client: StompitClient, headers: Record<string, unknown>) {
  const items: ReceivedMessage[] = [];
  let notify: (() => void) | null = null;
  const subscription = client.subscribe(headers, (err, message) => {
    if (err) return;
    const chunks: Buffer[] = [];
    message.on('data', (c: Buffer) => chunks.push(Buffer.from(c)));
    message.on('end', () => {
      items.push({ headers: message.headers, body: Buffer.concat(chunks), raw: message });
      const n = notify;
      notify = null;
      n?.();
    });
  });
  return {
    items,
    subscription,
    async wait(n: number, timeoutMs = 5000): Promise<ReceivedMessage[]> {
      const deadline = Date.now() + timeoutMs;
      while (items.length < n) {
        const left = deadline - Date.now();
        if (left <= 0) throw new Error(`timed out waiting for ${n} messages, got ${items.length}`);
        await new Promise<void>((resolve) => {
          const t = setTimeout(resolve, left);
          notify = () => {
            clearTimeout(t);
            resolve();
          };
        });
      }
      return items;
    },
    texts(): string[] {
      return items.map((m) => m.body.toString('utf8'));
    },
  };
}

/** Resolve on a RECEIPT for an ack/nack (stompit). */
export function stompitAck(
  client: StompitClient,
  kind: 'ack' | 'nack',
  message: StompitMessage,
  headers: Record<string, unknown> = {},
): Promise<void> {
  return new Promise((resolve) => client[kind](message, headers, { onReceipt: resolve }));
}
