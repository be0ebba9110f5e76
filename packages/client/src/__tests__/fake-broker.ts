import { EventEmitter } from 'node:events';
import * as net from 'node:net';
import {
  type BrokerDescription,
  type DeliveredMessage,
  encodeFrame,
  type Frame,
  FrameDecoder,
  FrameType,
  HEARTBEAT_FRAME_BYTES,
  type Message,
} from '@keel/protocol';

/**
 * A small broker for the client's tests: a real TCP server speaking the native codec, with just
 * enough semantics (queues, topics, durable subscriptions, credit, acks, nacks, transactions,
 * duplicate detection, TX_OUTCOME) to exercise the client. Two FakeBrokers sharing one FakeStore
 * play a master and the slave that takes over from the same database.
 */
export interface Entry {
  id: string;
  message: Message;
  deliveryCount: number;
  redelivered: boolean;
}

export class FakeStore {
  nextId = 1;
  readonly queues = new Map<string, Entry[]>();
  readonly producers = new Map<string, number>();
  readonly producerIds = new Map<string, string>();
  readonly committedTx = new Set<string>();
  readonly durables = new Map<string, string>(); // `${clientId}:${name}` -> topic
  /** Every message stored, in order (to count duplicates). */
  readonly stored: Entry[] = [];

  queue(key: string): Entry[] {
    let q = this.queues.get(key);
    if (!q) {
      q = [];
      this.queues.set(key, q);
    }
    return q;
  }
}

interface FakeConsumer {
  id: string;
  channel: number;
  queueKey: string;
  destination: string;
  credit: number;
  inflight: Map<string, Entry>;
  conn: FakeConn;
  durable: boolean;
}

interface FakeTx {
  sends: Message[];
  acks: { consumer: FakeConsumer; entry: Entry }[];
}

class FakeConn {
  clientId = '';
  readonly consumers = new Map<string, FakeConsumer>();
  readonly txs = new Map<string, FakeTx>();
  closed = false;
  heartbeat: NodeJS.Timeout | null = null;
  constructor(
    readonly id: string,
    readonly socket: net.Socket,
  ) {}
}

export interface ErrorSpec {
  code: string;
  message: string;
  fatal?: boolean;
  retryable?: boolean;
}

export interface FakeBrokerOptions {
  store?: FakeStore;
  name?: string;
  role?: BrokerDescription['role'];
  brokers?: string[];
  /** Send no heartbeats (to test the client's dead-broker detection). */
  silent?: boolean;
  /** Listen on this port (default: any free one). */
  port?: number;
}

export class FakeBroker extends EventEmitter {
  readonly store: FakeStore;
  readonly name: string;
  role: BrokerDescription['role'];
  brokers: string[];
  silent: boolean;
  port = 0;
  readonly received: { conn: string; frame: Frame }[] = [];
  /** Persistent SENDs are stored but their RECEIPT is held back (until releaseReceipts()). */
  holdReceipts = false;
  private held: { conn: FakeConn; frame: Frame; id: string }[] = [];
  /** ACK frames are ignored (as if lost with the link). */
  dropAcks = false;
  /** On TX_COMMIT: 'after' commits then dies without answering; 'before' dies without committing. */
  dieOnCommit: 'after' | 'before' | null = null;
  errorFor: ((frame: Frame) => ErrorSpec | undefined) | null = null;
  private server: net.Server | null = null;
  private readonly conns = new Set<FakeConn>();
  private connCounter = 0;
  private dead = false;
  private readonly allSockets = new Set<net.Socket>();

  private constructor(options: FakeBrokerOptions) {
    super();
    this.store = options.store ?? new FakeStore();
    this.name = options.name ?? 'fake';
    this.role = options.role ?? 'master';
    this.brokers = options.brokers ?? [];
    this.silent = options.silent ?? false;
  }

  static async start(options: FakeBrokerOptions = {}): Promise<FakeBroker> {
    const b = new FakeBroker(options);
    const server = net.createServer((s) => b.accept(s));
    b.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(options.port ?? 0, '127.0.0.1', () => resolve());
    });
    b.port = (server.address() as net.AddressInfo).port;
    return b;
  }

  get url(): string {
    return `tcp://127.0.0.1:${this.port}`;
  }

  get connectionCount(): number {
    return this.conns.size;
  }

  /** Messages waiting in a queue (not in flight). */
  depth(key: string): number {
    return this.store.queue(key).length;
  }

  /** Resolves with the first received frame (past or future) matching `pred`. */
  waitFrame<T extends Frame = Frame>(pred: (f: Frame) => boolean, timeoutMs = 5000): Promise<T> {
    const found = this.received.find((r) => pred(r.frame));
    if (found) return Promise.resolve(found.frame as T);
    return new Promise<T>((resolve, reject) => {
      const t = setTimeout(() => {
        this.off('frame', on);
        reject(new Error(`${this.name}: no matching frame within ${timeoutMs} ms`));
      }, timeoutMs);
      const on = (f: Frame): void => {
        if (!pred(f)) return;
        clearTimeout(t);
        this.off('frame', on);
        resolve(f as T);
      };
      this.on('frame', on);
    });
  }

  framesOf(type: FrameType): Frame[] {
    return this.received.filter((r) => r.frame.type === type).map((r) => r.frame);
  }

  releaseReceipts(): void {
    const held = this.held;
    this.held = [];
    for (const h of held) this.receipt(h.conn, h.frame, { messageId: h.id });
  }

  broadcastBrokerInfo(brokers: string[]): void {
    for (const c of this.conns) {
      this.write(c, {
        type: FrameType.BrokerInfo,
        channel: 0,
        broker: this.describe(),
        brokers,
      });
    }
  }

  private describe(): BrokerDescription {
    return { name: this.name, cluster: 'test', role: this.role, epoch: 1, version: '0.0.0-fake' };
  }

  private accept(socket: net.Socket): void {
    if (this.dead) {
      socket.destroy();
      return;
    }
    socket.setNoDelay(true);
    this.allSockets.add(socket);
    socket.on('close', () => this.allSockets.delete(socket));
    this.connCounter += 1;
    const conn = new FakeConn(`${this.name}-conn-${this.connCounter}`, socket);
    this.conns.add(conn);
    const decoder = new FrameDecoder({ expectProtocolHeader: true });
    socket.on('data', (chunk) => {
      try {
        decoder.pushEach(chunk, (f) => this.onFrame(conn, f));
      } catch {
        socket.destroy();
      }
    });
    socket.on('error', () => {});
    socket.on('close', () => this.drop(conn));
  }

  private write(conn: FakeConn, frame: Frame): void {
    if (conn.closed || this.dead) return;
    conn.socket.write(encodeFrame(frame));
  }

  private receipt(conn: FakeConn, frame: Frame, extra: Record<string, unknown> = {}): void {
    const receiptId = (frame as { receiptId?: string }).receiptId;
    if (receiptId === undefined) return;
    this.write(conn, { type: FrameType.Receipt, channel: frame.channel, receiptId, ...extra } as Frame);
  }

  private error(conn: FakeConn, frame: Frame, spec: ErrorSpec): void {
    this.write(conn, {
      type: FrameType.Error,
      channel: frame.channel,
      code: spec.code,
      message: spec.message,
      retryable: spec.retryable ?? false,
      fatal: spec.fatal ?? false,
      receiptId: (frame as { receiptId?: string }).receiptId,
    });
    if (spec.fatal) conn.socket.end();
  }

  private onFrame(conn: FakeConn, frame: Frame): void {
    if (this.dead || conn.closed) return;
    this.received.push({ conn: conn.id, frame });
    this.emit('frame', frame);
    const injected = this.errorFor?.(frame);
    if (injected) {
      this.error(conn, frame, injected);
      return;
    }
    switch (frame.type) {
      case FrameType.Hello: {
        if (this.role !== 'master') {
          this.error(conn, frame, {
            code: 'NOT_MASTER',
            message: `${this.name} is ${this.role}`,
            fatal: true,
            retryable: true,
          });
          return;
        }
        if (frame.username === 'bad') {
          this.error(conn, frame, { code: 'AUTH_FAILED', message: 'bad credentials', fatal: true });
          return;
        }
        conn.clientId = frame.clientId ?? `ID:${conn.id}`;
        const hb = frame.heartbeatMs;
        this.write(conn, {
          type: FrameType.Welcome,
          channel: 0,
          protocolVersion: 1,
          connectionId: conn.id,
          clientId: conn.clientId,
          broker: this.describe(),
          brokers: this.brokers,
          heartbeatMs: hb,
          maxFrameSize: frame.maxFrameSize ?? 4 * 1024 * 1024,
        });
        if (hb > 0 && !this.silent) {
          conn.heartbeat = setInterval(
            () => {
              if (!conn.closed && !this.dead) conn.socket.write(HEARTBEAT_FRAME_BYTES);
            },
            Math.max(1, Math.floor(hb / 2)),
          );
        }
        return;
      }
      case FrameType.Heartbeat:
        return;
      case FrameType.SessionOpen:
      case FrameType.SessionClose:
        this.receipt(conn, frame);
        return;
      case FrameType.Close:
        this.receipt(conn, frame);
        conn.socket.end();
        return;
      case FrameType.Subscribe: {
        const dest = frame.destination;
        let queueKey = dest;
        let durable = false;
        if (dest.startsWith('topic://')) {
          if (frame.durableName) {
            const key = `${conn.clientId}:${frame.durableName}`;
            this.store.durables.set(key, dest);
            queueKey = `durable:${key}`;
            durable = true;
          } else {
            queueKey = `sub:${conn.id}:${frame.consumerId}`;
          }
        }
        const c: FakeConsumer = {
          id: frame.consumerId,
          channel: frame.channel,
          queueKey,
          destination: dest,
          credit: frame.prefetch,
          inflight: new Map(),
          conn,
          durable,
        };
        conn.consumers.set(c.id, c);
        this.receipt(conn, frame);
        this.dispatch(queueKey);
        return;
      }
      case FrameType.Unsubscribe: {
        const c = conn.consumers.get(frame.consumerId);
        if (c) this.closeConsumer(c);
        this.receipt(conn, frame);
        return;
      }
      case FrameType.RemoveDurable: {
        const key = `${conn.clientId}:${frame.durableName}`;
        if (!this.store.durables.delete(key)) {
          this.error(conn, frame, {
            code: 'UNKNOWN_DESTINATION',
            message: `no durable ${frame.durableName}`,
          });
          return;
        }
        this.store.queues.delete(`durable:${key}`);
        this.receipt(conn, frame);
        return;
      }
      case FrameType.Send: {
        const m = frame.message;
        if (frame.txId !== undefined) {
          const tx = conn.txs.get(frame.txId);
          if (!tx) {
            this.error(conn, frame, {
              code: 'UNKNOWN_TRANSACTION',
              message: `unknown transaction ${frame.txId}`,
            });
            return;
          }
          tx.sends.push(m);
          this.receipt(conn, frame);
          return;
        }
        const id = this.accept1(m);
        if (this.holdReceipts && m.persistent) {
          this.held.push({ conn, frame, id });
          return;
        }
        this.receipt(conn, frame, { messageId: id });
        return;
      }
      case FrameType.Ack: {
        if (this.dropAcks) return;
        const c = conn.consumers.get(frame.consumerId);
        if (!c) {
          this.error(conn, frame, {
            code: 'UNKNOWN_CONSUMER',
            message: `unknown consumer ${frame.consumerId}`,
          });
          return;
        }
        const taken: Entry[] = [];
        for (const id of frame.messageIds) {
          if (frame.cumulative) {
            if (!c.inflight.has(id)) continue;
            for (const [k, e] of c.inflight) {
              c.inflight.delete(k);
              taken.push(e);
              if (k === id) break;
            }
          } else {
            const e = c.inflight.get(id);
            if (e) {
              c.inflight.delete(id);
              taken.push(e);
            }
          }
        }
        if (frame.txId !== undefined) {
          const tx = conn.txs.get(frame.txId);
          if (tx) for (const e of taken) tx.acks.push({ consumer: c, entry: e });
        }
        c.credit += taken.length;
        this.receipt(conn, frame);
        this.dispatch(c.queueKey);
        return;
      }
      case FrameType.Nack: {
        const c = conn.consumers.get(frame.consumerId);
        if (!c) return;
        for (const id of frame.messageIds) {
          const e = c.inflight.get(id);
          if (!e) continue;
          c.inflight.delete(id);
          c.credit += 1;
          this.requeue(c.queueKey, e);
        }
        this.receipt(conn, frame);
        this.dispatch(c.queueKey);
        return;
      }
      case FrameType.Credit: {
        const c = conn.consumers.get(frame.consumerId);
        if (c) {
          c.credit += frame.credit;
          this.dispatch(c.queueKey);
        }
        return;
      }
      case FrameType.TxBegin:
        conn.txs.set(frame.txId, { sends: [], acks: [] });
        this.receipt(conn, frame);
        return;
      case FrameType.TxCommit: {
        const tx = conn.txs.get(frame.txId);
        if (!tx) {
          this.error(conn, frame, {
            code: 'UNKNOWN_TRANSACTION',
            message: `unknown transaction ${frame.txId}`,
          });
          return;
        }
        if (this.dieOnCommit === 'before') {
          void this.kill();
          return;
        }
        conn.txs.delete(frame.txId);
        for (const m of tx.sends) this.accept1(m);
        this.store.committedTx.add(frame.txId);
        if (this.dieOnCommit === 'after') {
          void this.kill();
          return;
        }
        this.receipt(conn, frame);
        return;
      }
      case FrameType.TxRollback: {
        const tx = conn.txs.get(frame.txId);
        conn.txs.delete(frame.txId);
        if (tx) this.rollbackTx(tx);
        this.receipt(conn, frame);
        return;
      }
      case FrameType.TxOutcome:
        this.write(conn, {
          type: FrameType.TxOutcome,
          channel: frame.channel,
          txId: frame.txId,
          outcome: this.store.committedTx.has(frame.txId) ? 'committed' : 'unknown',
          receiptId: frame.receiptId,
        });
        return;
      case FrameType.Request:
        this.write(conn, {
          type: FrameType.Response,
          channel: frame.channel,
          receiptId: frame.receiptId,
          result: { op: frame.op },
        });
        return;
      default:
        return;
    }
  }

  /** Store a message (duplicate detection by producerId/producerSeq) and route it; returns its id. */
  private accept1(m: Message): string {
    const pid = m.producerId;
    const seq = m.producerSeq;
    if (pid !== undefined && seq !== undefined) {
      const last = this.store.producers.get(pid) ?? 0;
      if (seq <= last) return this.store.producerIds.get(`${pid}:${seq}`) ?? '';
      this.store.producers.set(pid, seq);
    }
    const id = String(this.store.nextId++);
    if (pid !== undefined && seq !== undefined) this.store.producerIds.set(`${pid}:${seq}`, id);
    const msg: Message = { ...m, messageId: id };
    const entry: Entry = { id, message: msg, deliveryCount: 0, redelivered: false };
    this.store.stored.push(entry);
    const keys: string[] = [];
    if (m.destination.startsWith('topic://')) {
      for (const [key, topic] of this.store.durables)
        if (topic === m.destination) keys.push(`durable:${key}`);
      for (const c of this.conns) {
        for (const cons of c.consumers.values()) {
          if (!cons.durable && cons.destination === m.destination) keys.push(cons.queueKey);
        }
      }
    } else {
      keys.push(m.destination);
    }
    for (const k of keys) {
      this.store.queue(k).push({ ...entry });
      this.dispatch(k);
    }
    return id;
  }

  private requeue(key: string, e: Entry): void {
    e.deliveryCount += 1;
    e.redelivered = true;
    this.store.queue(key).unshift(e);
  }

  private dispatch(key: string): void {
    if (this.dead) return;
    const q = this.store.queue(key);
    for (const conn of this.conns) {
      for (const c of conn.consumers.values()) {
        if (c.queueKey !== key) continue;
        while (c.credit > 0 && q.length > 0) {
          const e = q.shift()!;
          c.credit -= 1;
          c.inflight.set(e.id, e);
          const message: DeliveredMessage = {
            ...e.message,
            messageId: e.id,
            deliveryCount: e.deliveryCount,
            redelivered: e.redelivered,
          };
          this.write(conn, { type: FrameType.Message, channel: c.channel, consumerId: c.id, message });
        }
      }
    }
  }

  private rollbackTx(tx: FakeTx): void {
    for (const a of tx.acks) this.requeue(a.consumer.queueKey, a.entry);
    for (const a of tx.acks) this.dispatch(a.consumer.queueKey);
  }

  private closeConsumer(c: FakeConsumer): void {
    c.conn.consumers.delete(c.id);
    const entries = [...c.inflight.values()].reverse();
    c.inflight.clear();
    for (const e of entries) this.requeue(c.queueKey, e);
    if (!c.durable && c.queueKey.startsWith('sub:')) this.store.queues.delete(c.queueKey);
    else this.dispatch(c.queueKey);
  }

  private drop(conn: FakeConn): void {
    if (conn.closed) return;
    conn.closed = true;
    if (conn.heartbeat) clearInterval(conn.heartbeat);
    this.conns.delete(conn);
    for (const tx of conn.txs.values()) this.rollbackTx(tx);
    conn.txs.clear();
    for (const c of [...conn.consumers.values()]) this.closeConsumer(c);
  }

  /** Die: what was in flight goes back to the (shared) store as redelivered; sockets are cut. */
  async kill(): Promise<void> {
    if (this.dead) return;
    this.dead = true;
    for (const conn of [...this.conns]) this.drop(conn);
    this.held = [];
    const server = this.server;
    this.server = null;
    const closed = server ? new Promise<void>((resolve) => server.close(() => resolve())) : Promise.resolve();
    for (const s of this.allSockets) s.destroy();
    await closed;
  }

  /** Graceful stop for test teardown. */
  close(): Promise<void> {
    return this.kill();
  }
}
