import type { Socket } from 'node:net';
import {
  type Broker,
  type ConnectionState,
  checkActiveMqSend,
  checkActiveMqSubscribe,
  type Delivery,
  type Logger,
} from '@keel/core';
import {
  type AckFrame,
  AuthError,
  type BrokerDescription,
  type CloseFrame,
  COMPACT_PROTOCOL_VERSION,
  ConnectionError,
  type CreditFrame,
  encodeFrame,
  encodeFrameHead,
  FRAME_END,
  type Frame,
  FrameDecoder,
  FrameType,
  HEARTBEAT_FRAME_BYTES,
  type HelloFrame,
  InvalidArgumentError,
  KeelError,
  type NackFrame,
  negotiateProtocolVersion,
  ProtocolError,
  type ReceiptFrame,
  type RemoveDurableFrame,
  type RequestFrame,
  type SendFrame,
  type SessionCloseFrame,
  type SessionOpenFrame,
  type SubscribeFrame,
  TickCork,
  TimeoutError,
  type TxBeginFrame,
  type TxCommitFrame,
  type TxOutcomeFrame,
  type TxRollbackFrame,
  type UnsubscribeFrame,
} from '@keel/protocol';

/**
 * Checks a client's credentials; returns true when no users are configured. Never log the password.
 * `remoteAddress` (the client's IP) is for login throttling; an AuthError thrown (LOGIN_THROTTLED)
 * goes to the client as is.
 */
export type NativeAuthenticate = (
  username?: string,
  password?: string,
  remoteAddress?: string,
) => boolean | Promise<boolean>;

/** What WELCOME tells a client about this node and its cluster (for the failover transport). */
export interface NativeBrokerInfo {
  broker: BrokerDescription;
  brokers: string[];
}

export interface NativeConnectionOptions {
  broker: Broker;
  logger: Logger;
  /** Largest frame this broker accepts and sends (bytes, header to end marker). */
  maxFrameSize: number;
  /** The broker's heartbeat interval; 0 = none. Negotiated with the client's in the handshake. */
  heartbeatMs: number;
  handshakeTimeoutMs: number;
  slowConsumerTimeoutMs: number;
  authenticate: NativeAuthenticate;
  describe: () => NativeBrokerInfo;
  /** ActiveMQ transport connector option: a newer HELLO with this client id takes it over. */
  allowLinkStealing?: boolean;
  /** Largest frame before the handshake completed (issue #23.3); default maxFrameSize. */
  preHandshakeMaxFrameSize?: number;
  /** Body bytes of SENDs awaiting the broker before the socket stops reading; default no bound. */
  maxPendingBytes?: number;
  /** The handshake completed: the broker connection exists. */
  onOpen?: (connection: NativeConnection) => void;
  /** The socket closed. */
  onClose?: (connection: NativeConnection) => void;
}

/** Frames decoded but not yet handled; past this the socket stops reading (inbound backpressure). */
export const MAX_QUEUED_FRAMES = 1000;
/** Requests (sends, acks, commits …) awaiting the broker; past this the socket stops reading. */
export const MAX_PENDING_REQUESTS = 10_000;
/** After a fatal ERROR the socket is ended; it is destroyed if the peer has not closed by then. */
export const CLOSE_GRACE_MS = 2000;

/** The client is judged dead after this many heartbeat intervals without a byte from it. */
const HEARTBEAT_MISSES = 3;

type State = 'handshake' | 'open' | 'closing' | 'closed';

interface Session {
  channel: number;
  transacted: boolean;
  ackMode: SessionOpenFrame['ackMode'];
  consumers: Set<string>;
  transactions: Set<string>;
}

/**
 * One native protocol connection (docs/protocol.md): the handshake, then sessions on channels
 * 1..65535 whose frames become Broker calls. Frames are handled in arrival order; a handler that
 * later frames depend on (HELLO, SUBSCRIBE, SESSION_CLOSE, CLOSE …) holds the following frames
 * until it finishes, while SEND/ACK/COMMIT run concurrently and answer with RECEIPT or ERROR when
 * the broker resolves (after the store commit for persistent messages).
 *
 * A broker error for one request becomes a non-fatal ERROR with that request's receiptId; a
 * protocol violation becomes a fatal ERROR and closes this connection only.
 */
export class NativeConnection {
  readonly remoteAddress: string;
  private state: State = 'handshake';
  private conn: ConnectionState | null = null;
  private readonly broker: Broker;
  private logger: Logger;
  private readonly decoder: FrameDecoder;

  private readonly sessions = new Map<number, Session>();
  private readonly consumerSessions = new Map<string, Session>();

  /** Inbound frames held while a blocking handler runs. */
  private readonly inbox: Frame[] = [];
  private inboxHead = 0;
  private blocked = false;
  private readPaused = false;
  private pendingRequests = 0;
  /** Body bytes of SENDs awaiting the broker (input flow control, issue #23.3). */
  private pendingBytes = 0;
  /** Reading stops from HELLO until WELCOME: nothing large is buffered before authentication. */
  private handshakePaused = false;
  private idleWaiters: (() => void)[] = [];

  private congested = false;
  private readonly cork: TickCork;
  private lastReadAt = Date.now();
  private lastWriteAt = Date.now();
  private heartbeatMs = 0;
  private maxFrameSizeOut: number;
  /** Protocol version 2 agreed: SEND/MESSAGE/ACK/RECEIPT go out with compact headers. */
  private compact = false;
  /**
   * Version 2: SEND receipts that became due in this tick, one RECEIPT frame per channel (its `more`
   * lists the rest), written on the next tick: a commit round answers hundreds of sends at once.
   */
  private dueReceipts = new Map<number, ReceiptFrame>();
  private readonly flushReceiptsBound = (): void => this.flushReceipts();

  private handshakeTimer: NodeJS.Timeout | null = null;
  private heartbeatTimer: NodeJS.Timeout | null = null;
  private slowTimer: NodeJS.Timeout | null = null;
  private graceTimer: NodeJS.Timeout | null = null;

  constructor(
    private readonly socket: Socket,
    private readonly options: NativeConnectionOptions,
  ) {
    this.broker = options.broker;
    this.cork = new TickCork(socket);
    this.remoteAddress = `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}`;
    this.logger = options.logger.child({ remote: this.remoteAddress });
    this.maxFrameSizeOut = options.maxFrameSize;
    this.decoder = new FrameDecoder({
      maxFrameSize: Math.min(options.maxFrameSize, options.preHandshakeMaxFrameSize ?? options.maxFrameSize),
      expectProtocolHeader: true,
    });

    socket.setNoDelay(true);
    socket.setKeepAlive(true, 30_000);
    socket.on('error', (err) => this.logger.debug({ err: err.message }, 'native socket error'));
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('drain', () => this.onDrain());
    socket.on('close', () => this.onSocketClose());

    this.handshakeTimer = setTimeout(() => {
      this.fail(new TimeoutError(`handshake not completed within ${options.handshakeTimeoutMs} ms`));
    }, options.handshakeTimeoutMs);
    this.handshakeTimer.unref();
  }

  /** The broker's connection id, once the handshake completed. */
  get connectionId(): string | null {
    return this.conn?.id ?? null;
  }

  get isOpen(): boolean {
    return this.state === 'open';
  }

  /** The broker closed this connection on its own (broker stop, admin): tell the client and close. */
  brokerClosed(): void {
    if (this.state !== 'open') return;
    this.fail(new ConnectionError('connection closed by the broker', 'CONNECTION_CLOSED'));
  }

  /** Close at once, without a goodbye (a slow consumer cut, a listener stop past its grace). */
  destroy(): void {
    this.release();
    this.socket.destroy();
  }

  /**
   * The node stops serving (step-down, issue #17.6): a fatal ERROR on channel 0 with the reason's
   * code (NOT_MASTER, FENCED, STORE_UNAVAILABLE; retryable, so a failover client reconnects
   * elsewhere and resends), then close.
   */
  stepDown(err: KeelError): void {
    if (this.state === 'closing' || this.state === 'closed') {
      this.destroy();
      return;
    }
    this.fail(err);
  }

  // ----- inbound ---------------------------------------------------------------------------------

  private onData(chunk: Buffer): void {
    if (this.state === 'closing' || this.state === 'closed') return;
    this.lastReadAt = Date.now();
    try {
      this.decoder.pushEach(chunk, (frame) => this.accept(frame));
    } catch (err) {
      // The decoder (or, by a bug, a handler) failed: the stream cannot be resynchronised.
      this.fail(err);
      return;
    }
    this.updateReadFlow();
  }

  private accept(frame: Frame): void {
    if (this.state === 'closing' || this.state === 'closed') return;
    if (this.blocked || this.inboxHead < this.inbox.length) {
      this.inbox.push(frame);
      return;
    }
    this.dispatch(frame);
  }

  /** Handle frames in order until one blocks. */
  private pump(): void {
    while (!this.blocked && this.inboxHead < this.inbox.length) {
      if (this.state === 'closing' || this.state === 'closed') break;
      const frame = this.inbox[this.inboxHead]!;
      this.inbox[this.inboxHead] = undefined as unknown as Frame;
      this.inboxHead += 1;
      this.dispatch(frame);
    }
    if (this.inboxHead >= this.inbox.length) {
      this.inbox.length = 0;
      this.inboxHead = 0;
    }
    this.updateReadFlow();
  }

  private dispatch(frame: Frame): void {
    let wait: Promise<void> | undefined;
    try {
      wait = this.handle(frame);
    } catch (err) {
      this.logger.warn(
        { conn: this.conn?.id, err: errorText(err), frame: FrameType[frame.type] },
        'native frame handler failed',
      );
      this.fail(
        KeelError.isInstance(err) ? err : new KeelError('INTERNAL', 'internal error handling a frame'),
      );
      return;
    }
    if (wait) {
      this.blocked = true;
      wait
        .catch((err) =>
          this.logger.warn({ conn: this.conn?.id, err: errorText(err) }, 'native frame handler failed'),
        )
        .finally(() => {
          this.blocked = false;
          this.pump();
        });
    }
  }

  private updateReadFlow(): void {
    const queued = this.inbox.length - this.inboxHead;
    const maxBytes = this.options.maxPendingBytes ?? Number.POSITIVE_INFINITY;
    if (
      !this.readPaused &&
      (queued >= MAX_QUEUED_FRAMES ||
        this.pendingRequests >= MAX_PENDING_REQUESTS ||
        this.pendingBytes >= maxBytes)
    ) {
      this.readPaused = true;
      this.socket.pause();
    } else if (
      this.readPaused &&
      queued < MAX_QUEUED_FRAMES / 2 &&
      this.pendingRequests < MAX_PENDING_REQUESTS / 2 &&
      this.pendingBytes <= maxBytes / 2
    ) {
      this.readPaused = false;
      this.lastReadAt = Date.now();
      if (this.state !== 'closed' && !this.handshakePaused) this.socket.resume();
    }
  }

  /** Returns a promise when later frames must wait for this one. */
  private handle(frame: Frame): Promise<void> | undefined {
    if (this.state === 'handshake') {
      if (frame.type !== FrameType.Hello) {
        this.fail(new ProtocolError(`expected HELLO as the first frame, got ${FrameType[frame.type]}`));
        return;
      }
      this.handshakePaused = true;
      this.socket.pause();
      return this.onHello(frame);
    }
    if (this.state !== 'open') return;
    switch (frame.type) {
      case FrameType.Heartbeat:
        return;
      case FrameType.Close:
        return this.onClose(frame);
      case FrameType.SessionOpen:
        return this.onSessionOpen(frame);
      case FrameType.SessionClose:
        return this.onSessionClose(frame);
      case FrameType.Subscribe:
        return this.onSubscribe(frame);
      case FrameType.Unsubscribe:
        return this.onUnsubscribe(frame);
      case FrameType.RemoveDurable:
        return this.onRemoveDurable(frame);
      case FrameType.Send:
        return this.onSend(frame);
      case FrameType.Ack:
        return this.onAck(frame);
      case FrameType.Nack:
        return this.onNack(frame);
      case FrameType.Credit:
        return this.onCredit(frame);
      case FrameType.TxBegin:
        return this.onTxBegin(frame);
      case FrameType.TxCommit:
        return this.onTxCommit(frame);
      case FrameType.TxRollback:
        return this.onTxRollback(frame);
      case FrameType.TxOutcome:
        return this.onTxOutcome(frame);
      case FrameType.Request:
        return this.onRequest(frame);
      default:
        this.fail(new ProtocolError(`the broker does not accept ${FrameType[frame.type]} frames`));
        return;
    }
  }

  // ----- handshake -------------------------------------------------------------------------------

  private async onHello(hello: HelloFrame): Promise<void> {
    let version: number;
    try {
      version = negotiateProtocolVersion(hello);
    } catch (err) {
      this.fail(err);
      return;
    }
    let accepted: boolean;
    try {
      accepted =
        (await this.options.authenticate(hello.username, hello.password, this.socket.remoteAddress)) === true;
    } catch (err) {
      if (err instanceof AuthError) {
        this.logger.warn({ username: hello.username ?? null, code: err.code }, 'native client login refused');
        this.fail(err);
        return;
      }
      this.logger.warn({ err: errorText(err), username: hello.username }, 'authentication check failed');
      this.fail(new KeelError('INTERNAL', 'authentication could not be checked', { retryable: true }));
      return;
    }
    if (this.state !== 'handshake') return;
    if (!accepted) {
      this.logger.warn({ username: hello.username ?? null }, 'native client failed authentication');
      this.fail(new AuthError('authentication failed'));
      return;
    }
    let info: NativeBrokerInfo;
    let conn: ConnectionState;
    try {
      info = this.options.describe();
      conn = this.broker.openConnection({
        protocol: 'native',
        clientId: hello.clientId,
        username: hello.username,
        remoteAddress: this.remoteAddress,
        transport: { alive: () => this.transportAlive(), close: (err) => this.stepDown(err) },
        allowLinkStealing: this.options.allowLinkStealing,
      });
    } catch (err) {
      this.fail(err);
      return;
    }
    this.conn = conn;
    this.logger = this.options.logger.child({ conn: conn.id, remote: this.remoteAddress });
    if (this.handshakeTimer) clearTimeout(this.handshakeTimer);
    this.handshakeTimer = null;

    // Heartbeats: off when either side asks for none; otherwise the larger interval, so a client
    // cannot make the broker beat faster than configured (STOMP 1.2 "Heart-beating" takes the max
    // as well; ActiveMQ's maxInactivityDuration 0 disables monitoring).
    const hb = this.options.heartbeatMs;
    this.heartbeatMs = hb > 0 && hello.heartbeatMs > 0 ? Math.max(hb, hello.heartbeatMs) : 0;
    // Frame size: the smaller limit holds in both directions.
    const clientMax = hello.maxFrameSize;
    this.maxFrameSizeOut =
      clientMax !== undefined && clientMax > 0
        ? Math.min(clientMax, this.options.maxFrameSize)
        : this.options.maxFrameSize;

    this.compact = version >= COMPACT_PROTOCOL_VERSION;
    this.state = 'open';
    // Authenticated: the full frame size applies from now on, and reading goes on.
    this.decoder.maxFrameSize = this.options.maxFrameSize;
    this.handshakePaused = false;
    if (!this.readPaused) this.socket.resume();
    this.options.onOpen?.(this);
    if (this.congested) this.broker.setWritable(conn, false);
    this.send({
      type: FrameType.Welcome,
      channel: 0,
      protocolVersion: version,
      connectionId: conn.id,
      clientId: conn.clientId,
      broker: info.broker,
      brokers: info.brokers,
      heartbeatMs: this.heartbeatMs,
      maxFrameSize: this.maxFrameSizeOut,
    });
    if (this.heartbeatMs > 0) {
      this.heartbeatTimer = setInterval(
        () => this.heartbeatTick(),
        Math.max(1, Math.floor(this.heartbeatMs / 2)),
      );
      this.heartbeatTimer.unref();
    }
    this.logger.info(
      {
        clientId: conn.clientId,
        username: hello.username ?? null,
        heartbeatMs: this.heartbeatMs,
        protocolVersion: version,
      },
      'native connection opened',
    );
  }

  /**
   * For the client id check (ClientIdRegistry): the socket is there and, with heart-beats agreed,
   * the client was heard from within two intervals (it writes at least every interval and a half
   * when idle); a half-open connection whose heart-beats stopped is dead before heartbeatTick
   * gives up on it. A connection whose reading we paused is not judged by silence.
   */
  private transportAlive(): boolean {
    if (this.state !== 'open' || !this.writable()) return false;
    if (this.heartbeatMs === 0 || this.readPaused) return true;
    return Date.now() - this.lastReadAt <= 2 * this.heartbeatMs;
  }

  private heartbeatTick(): void {
    if (this.state !== 'open') return;
    const now = Date.now();
    const limit = HEARTBEAT_MISSES * this.heartbeatMs;
    if (!this.readPaused && now - this.lastReadAt > limit) {
      this.fail(new ConnectionError(`nothing received from the client for ${limit} ms`, 'HEARTBEAT_TIMEOUT'));
      return;
    }
    if (!this.congested && now - this.lastWriteAt >= this.heartbeatMs) this.write(HEARTBEAT_FRAME_BYTES);
  }

  // ----- sessions and consumers ------------------------------------------------------------------

  /** The open session on the frame's channel, or a fatal protocol error. */
  private session(frame: Frame): Session | null {
    const s = this.sessions.get(frame.channel);
    if (s) return s;
    this.fail(
      new ProtocolError(
        `${FrameType[frame.type]} frame on channel ${frame.channel}, which has no open session`,
      ),
    );
    return null;
  }

  /** Frames that may travel on the connection's channel 0 or on an open session. */
  private anyChannel(frame: Frame): boolean {
    return frame.channel === 0 || this.session(frame) !== null;
  }

  private onSessionOpen(frame: SessionOpenFrame): Promise<void> | undefined {
    if (frame.channel === 0) {
      this.fail(new ProtocolError('SESSION_OPEN on channel 0: sessions use channels 1..65535'));
      return;
    }
    if (this.sessions.has(frame.channel)) {
      this.fail(
        new ProtocolError(`SESSION_OPEN on channel ${frame.channel}, which already has an open session`),
      );
      return;
    }
    this.sessions.set(frame.channel, {
      channel: frame.channel,
      transacted: frame.transacted,
      ackMode: frame.ackMode,
      consumers: new Set(),
      transactions: new Set(),
    });
    this.receipt(frame.channel, frame.receiptId);
    return;
  }

  private onSessionClose(frame: SessionCloseFrame): Promise<void> | undefined {
    const s = this.session(frame);
    if (!s) return;
    const conn = this.conn!;
    return this.run(frame.channel, frame.receiptId, () => {
      this.sessions.delete(s.channel);
      // JMS: closing a session closes its consumers and rolls back its open transaction.
      for (const id of s.consumers) {
        this.consumerSessions.delete(id);
        if (conn.consumers.has(id)) this.broker.unsubscribe(conn, id);
      }
      for (const txId of s.transactions) {
        if (conn.transactions.has(txId)) this.broker.rollback(conn, txId);
      }
    });
  }

  private onSubscribe(frame: SubscribeFrame): Promise<void> | undefined {
    const s = this.session(frame);
    if (!s) return;
    const conn = this.conn!;
    const channel = frame.channel;
    return this.run(channel, frame.receiptId, async () => {
      if (this.consumerSessions.has(frame.consumerId)) {
        throw new InvalidArgumentError(`consumer id ${frame.consumerId} already in use on this connection`);
      }
      checkActiveMqSubscribe(frame.destination); // NOT_SUPPORTED: ActiveMQ features Keel lacks
      // The client acknowledges in every ack mode (auto: the client library acks after the
      // listener returns), so the broker never acknowledges on delivery for native consumers.
      await this.broker.subscribe(
        conn,
        {
          consumerId: frame.consumerId,
          destination: frame.destination,
          prefetch: frame.prefetch,
          selector: frame.selector,
          durableName: frame.durableName,
          noLocal: frame.noLocal,
          // A browse takes credit per message (CREDIT frames give it back) and ends with a
          // MESSAGE that has `browseEnd` (docs/protocol.md section 5.1).
          browse: frame.browse === true,
          exclusive: frame.exclusive === true,
          priority: frame.priority,
        },
        (d) => this.deliver(channel, d),
      );
      s.consumers.add(frame.consumerId);
      this.consumerSessions.set(frame.consumerId, s);
    });
  }

  private onUnsubscribe(frame: UnsubscribeFrame): Promise<void> | undefined {
    if (!this.session(frame)) return;
    const conn = this.conn!;
    return this.run(frame.channel, frame.receiptId, () => {
      const s = this.consumerSessions.get(frame.consumerId);
      s?.consumers.delete(frame.consumerId);
      this.consumerSessions.delete(frame.consumerId);
      this.broker.unsubscribe(conn, frame.consumerId);
    });
  }

  private onRemoveDurable(frame: RemoveDurableFrame): Promise<void> | undefined {
    if (!this.anyChannel(frame)) return;
    const conn = this.conn!;
    return this.run(frame.channel, frame.receiptId, () =>
      this.broker.removeDurable(conn.clientId, frame.durableName),
    );
  }

  /** A consumer's delivery: one MESSAGE frame on the consumer's session channel. */
  private deliver(channel: number, d: Delivery): void {
    if (this.state !== 'open') return;
    let head: Buffer;
    try {
      // The head only: the body goes straight into the tick's write (TickCork.writeFrame).
      head = encodeFrameHead(
        {
          type: FrameType.Message,
          channel,
          consumerId: d.consumerId,
          message: d.message,
          browseEnd: d.browseEnd,
        },
        { maxFrameSize: this.maxFrameSizeOut, compact: this.compact },
      );
    } catch (err) {
      // Too large for this client: hand it back, so redelivery ends in the dead-letter queue.
      this.logger.warn(
        { err: errorText(err), consumerId: d.consumerId, messageId: d.message.messageId },
        'message cannot be sent to this client; negatively acknowledged',
      );
      const conn = this.conn!;
      queueMicrotask(() => {
        try {
          if (!conn.closed) this.broker.nack(conn, d.consumerId, [d.message.messageId]);
        } catch {
          // consumer already gone: its in-flight messages were redelivered
        }
      });
      return;
    }
    if (this.writable()) this.afterWrite(this.cork.writeFrame(head, d.message.body, FRAME_END));
  }

  // ----- messages, acks, transactions ------------------------------------------------------------

  private onSend(frame: SendFrame): undefined {
    if (!this.session(frame)) return;
    const conn = this.conn!;
    const receiptId = frame.receiptId;
    const bytes = frame.message.body.length;
    this.pendingBytes += bytes;
    void this.run(
      frame.channel,
      receiptId,
      () => {
        checkActiveMqSend(frame.message); // NOT_SUPPORTED: ActiveMQ features Keel lacks
        return this.broker.send(conn, frame.message, frame.txId, { resent: frame.resent === true });
      },
      receiptId === undefined
        ? undefined
        : (r) => {
            this.receiptDue(frame.channel, receiptId, r.messageId);
            return null;
          },
    ).finally(() => {
      this.pendingBytes -= bytes;
      if (this.readPaused) this.updateReadFlow();
    });
    return;
  }

  /** A SEND's receipt: gathered per channel with version 2, at once with version 1. */
  private receiptDue(channel: number, receiptId: string, messageId: string): void {
    if (!this.compact) {
      this.send({ type: FrameType.Receipt, channel, receiptId, messageId });
      return;
    }
    const due = this.dueReceipts.get(channel);
    if (due === undefined) {
      if (this.dueReceipts.size === 0) process.nextTick(this.flushReceiptsBound);
      this.dueReceipts.set(channel, { type: FrameType.Receipt, channel, receiptId, messageId });
    } else if (due.more === undefined) due.more = [{ receiptId, messageId }];
    else due.more.push({ receiptId, messageId });
  }

  /** Write the gathered receipts; before any other frame too, so a channel's answers keep their order. */
  private flushReceipts(): void {
    if (this.dueReceipts.size === 0) return;
    const due = this.dueReceipts;
    this.dueReceipts = new Map();
    for (const frame of due.values()) this.send(frame);
  }

  private onAck(frame: AckFrame): undefined {
    if (!this.session(frame)) return;
    const conn = this.conn!;
    if (frame.receiptId === undefined && frame.txId === undefined) {
      // Nobody waits for it (sendAcksAsync): checked and applied now, no request kept until the
      // removals commit (they are retried until they do).
      try {
        this.broker.ackOneWay(conn, frame.consumerId, frame.messageIds, { cumulative: frame.cumulative });
      } catch (err) {
        this.requestFailed(frame.channel, undefined, err);
      }
      return;
    }
    this.run(frame.channel, frame.receiptId, () =>
      this.broker.ack(conn, frame.consumerId, frame.messageIds, {
        cumulative: frame.cumulative,
        txId: frame.txId,
      }),
    );
    return;
  }

  private onNack(frame: NackFrame): undefined {
    if (!this.session(frame)) return;
    const conn = this.conn!;
    this.run(frame.channel, frame.receiptId, () =>
      this.broker.nack(conn, frame.consumerId, frame.messageIds),
    );
    return;
  }

  private onCredit(frame: CreditFrame): undefined {
    if (!this.session(frame)) return;
    const consumer = this.conn!.consumers.get(frame.consumerId);
    // A CREDIT racing an UNSUBSCRIBE is harmless: nothing to answer.
    if (consumer) consumer.addCredit(frame.credit);
    else this.logger.debug({ consumerId: frame.consumerId }, 'credit for an unknown consumer ignored');
    return;
  }

  private onTxBegin(frame: TxBeginFrame): undefined {
    const s = this.session(frame);
    if (!s) return;
    const conn = this.conn!;
    this.run(frame.channel, frame.receiptId, () => {
      this.broker.begin(conn, frame.txId);
      s.transactions.add(frame.txId);
    });
    return;
  }

  private onTxCommit(frame: TxCommitFrame): undefined {
    const s = this.session(frame);
    if (!s) return;
    const conn = this.conn!;
    s.transactions.delete(frame.txId);
    this.run(frame.channel, frame.receiptId, () => this.broker.commit(conn, frame.txId));
    return;
  }

  private onTxRollback(frame: TxRollbackFrame): undefined {
    const s = this.session(frame);
    if (!s) return;
    const conn = this.conn!;
    s.transactions.delete(frame.txId);
    this.run(frame.channel, frame.receiptId, () => this.broker.rollback(conn, frame.txId));
    return;
  }

  private onTxOutcome(frame: TxOutcomeFrame): undefined {
    if (!this.anyChannel(frame)) return;
    const channel = frame.channel;
    this.run(
      channel,
      frame.receiptId,
      () => this.broker.txOutcome(frame.txId),
      (outcome) => ({
        type: FrameType.TxOutcome,
        channel,
        txId: frame.txId,
        outcome,
        ...(frame.receiptId !== undefined ? { receiptId: frame.receiptId } : {}),
      }),
    );
    return;
  }

  private onRequest(frame: RequestFrame): undefined {
    if (!this.anyChannel(frame)) return;
    const channel = frame.channel;
    this.run(
      channel,
      frame.receiptId,
      () => {
        switch (frame.op) {
          case 'ping':
            return { pong: true, time: Date.now() };
          case 'describe':
            return this.options.describe();
          case 'ack-replay': {
            // Failover: acks the client sent to the old master, which may have died with it.
            const a = frame.args;
            const ids = Array.isArray(a.messageIds) ? a.messageIds.map(String) : [];
            return this.broker.ackReplay(this.conn!, {
              destination: String(a.destination ?? ''),
              durableName: typeof a.durableName === 'string' ? a.durableName : undefined,
              messageIds: ids,
              producerSeqs: producerSeqsOf(a.producerIds, a.producerSeqs),
            });
          }
          default:
            throw new InvalidArgumentError(`unknown request op ${JSON.stringify(frame.op)}`);
        }
      },
      (result) => ({ type: FrameType.Response, channel, receiptId: frame.receiptId, result }),
    );
    return;
  }

  private async onClose(frame: CloseFrame): Promise<void> {
    // Let every request in progress answer first, then acknowledge the CLOSE and end.
    await this.idle();
    this.receipt(0, frame.receiptId);
    this.close('client closed the connection');
  }

  /**
   * Run one request: on success answer with `reply` (or a RECEIPT when the client asked for one);
   * on failure with a non-fatal ERROR carrying the receiptId and the error's code.
   */
  private run<T>(
    channel: number,
    receiptId: string | undefined,
    work: () => T | Promise<T>,
    /** The answer to send; null when `reply` answered by itself. */
    reply?: (result: T) => Frame | null,
  ): Promise<void> {
    let p: Promise<T>;
    try {
      p = Promise.resolve(work());
    } catch (err) {
      p = Promise.reject(err);
    }
    this.pendingRequests += 1;
    return p
      .then(
        (result) => {
          if (reply) {
            const answer = reply(result);
            if (answer !== null) this.send(answer);
          } else this.receipt(channel, receiptId);
        },
        (err) => this.requestFailed(channel, receiptId, err),
      )
      .finally(() => {
        this.pendingRequests -= 1;
        if (this.pendingRequests === 0 && this.idleWaiters.length > 0) {
          const waiters = this.idleWaiters;
          this.idleWaiters = [];
          for (const w of waiters) w();
        }
        if (this.readPaused) this.updateReadFlow();
      });
  }

  private idle(): Promise<void> {
    if (this.pendingRequests === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private requestFailed(channel: number, receiptId: string | undefined, err: unknown): void {
    let e: KeelError;
    if (KeelError.isInstance(err)) {
      e = err;
      this.logger.debug({ code: e.code, err: e.message, receiptId }, 'native request failed');
    } else {
      this.logger.warn({ err: errorText(err), receiptId }, 'native request failed with an unexpected error');
      e = new KeelError('INTERNAL', 'internal error');
    }
    this.send({
      type: FrameType.Error,
      channel,
      code: e.code,
      message: e.message,
      retryable: e.retryable,
      fatal: false,
      ...(receiptId !== undefined ? { receiptId } : {}),
    });
  }

  private receipt(channel: number, receiptId: string | undefined): void {
    if (receiptId !== undefined) this.send({ type: FrameType.Receipt, channel, receiptId });
  }

  // ----- outbound and backpressure ---------------------------------------------------------------

  private send(frame: Frame): void {
    // Gathered receipts first (flushReceipts empties the map before it sends them).
    if (this.dueReceipts.size > 0) this.flushReceipts();
    let buf: Buffer;
    try {
      buf = encodeFrame(frame, { compact: this.compact });
    } catch (err) {
      this.logger.warn(
        { err: errorText(err), frame: FrameType[frame.type] },
        'native frame could not be encoded',
      );
      return;
    }
    this.write(buf);
  }

  /**
   * Writes are gathered until the next tick (TickCork), so many MESSAGE frames go out in one write. When the
   * socket's buffer is full the broker stops dispatching to this connection until 'drain'
   * (aedes lib/write.js); a connection that stays congested too long is cut (aedes lib/client.js).
   */
  private write(buf: Buffer): void {
    if (this.writable()) this.afterWrite(this.cork.write(buf));
  }

  private writable(): boolean {
    const socket = this.socket;
    return !socket.destroyed && socket.writable;
  }

  /** `accepted`: what TickCork answered; false means the socket's buffer is full. */
  private afterWrite(accepted: boolean): void {
    this.lastWriteAt = Date.now();
    if (!accepted && !this.congested) this.setCongested(true);
  }

  private onDrain(): void {
    if (this.congested) this.setCongested(false);
  }

  private setCongested(congested: boolean): void {
    this.congested = congested;
    if (this.conn && this.state === 'open') this.broker.setWritable(this.conn, !congested);
    if (congested) {
      const ms = this.options.slowConsumerTimeoutMs;
      this.slowTimer = setTimeout(() => {
        if (!this.congested || this.state === 'closed') return;
        this.logger.warn(
          { slowConsumerTimeoutMs: ms, buffered: this.socket.writableLength },
          'slow consumer cut',
        );
        this.destroy();
      }, ms);
      this.slowTimer.unref();
    } else if (this.slowTimer) {
      clearTimeout(this.slowTimer);
      this.slowTimer = null;
    }
  }

  // ----- closing ---------------------------------------------------------------------------------

  /** Fatal: an ERROR frame on channel 0, then close this connection (only). */
  private fail(err: unknown): void {
    if (this.state === 'closing' || this.state === 'closed') return;
    const e = KeelError.isInstance(err) ? err : new KeelError('INTERNAL', 'internal error');
    this.logger.warn({ conn: this.conn?.id, code: e.code, err: e.message }, 'native connection failed');
    this.send({
      type: FrameType.Error,
      channel: 0,
      code: e.code,
      message: e.message,
      retryable: e.retryable,
      fatal: true,
    });
    this.close(e.code);
  }

  /** End the socket after what is written (the ERROR or RECEIPT) has gone out. */
  private close(reason: string): void {
    if (this.state === 'closing' || this.state === 'closed') return;
    this.logger.debug({ reason }, 'closing native connection');
    this.release();
    this.state = 'closing';
    this.cork.flush();
    this.socket.end();
    this.graceTimer = setTimeout(() => this.socket.destroy(), CLOSE_GRACE_MS);
    this.graceTimer.unref();
  }

  /** Give the broker connection back (its consumers' unacked messages are redelivered) and stop timers. */
  private release(): void {
    if (this.state !== 'closed') this.state = 'closing';
    for (const t of [this.handshakeTimer, this.slowTimer]) if (t) clearTimeout(t);
    if (this.heartbeatTimer) clearInterval(this.heartbeatTimer);
    this.handshakeTimer = this.slowTimer = this.heartbeatTimer = null;
    this.inbox.length = 0;
    this.inboxHead = 0;
    const conn = this.conn;
    if (conn && !conn.closed) {
      try {
        this.broker.closeConnection(conn);
      } catch (err) {
        this.logger.warn({ err: errorText(err) }, 'closing the broker connection failed');
      }
    }
  }

  private onSocketClose(): void {
    const wasOpen = this.conn !== null;
    this.release();
    this.state = 'closed';
    if (this.graceTimer) clearTimeout(this.graceTimer);
    this.graceTimer = null;
    for (const w of this.idleWaiters) w();
    this.idleWaiters = [];
    if (wasOpen) this.logger.info({}, 'native connection closed');
    this.options.onClose?.(this);
  }
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** ack-replay's parallel lists producerIds[i] / producerSeqs[i]; malformed pairs are skipped. */
function producerSeqsOf(ids: unknown, seqs: unknown): { producerId: string; producerSeq: number }[] {
  if (!Array.isArray(ids) || !Array.isArray(seqs)) return [];
  const out: { producerId: string; producerSeq: number }[] = [];
  for (let i = 0; i < ids.length && i < seqs.length; i++) {
    const producerId = ids[i];
    const producerSeq = seqs[i];
    if (typeof producerId === 'string' && Number.isSafeInteger(producerSeq)) {
      out.push({ producerId, producerSeq: producerSeq as number });
    }
  }
  return out;
}
