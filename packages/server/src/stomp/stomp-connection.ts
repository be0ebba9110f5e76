import type { Socket } from 'node:net';
import {
  type Broker,
  type ConnectionState,
  checkActiveMqSubscribe,
  DEFAULT_PREFETCH,
  type Delivery,
  type Logger,
} from '@keel/core';
import {
  AuthError,
  encodeStompFrame,
  escapeStompValue,
  getStompHeader,
  InvalidArgumentError,
  KeelError,
  ProtocolError,
  STOMP_FRAME_END,
  STOMP_HEARTBEAT_BYTES,
  STOMP_VERSIONS,
  StompDecoder,
  type StompEvent,
  type StompFrame,
  type StompHeaders,
  type StompVersion,
  stompHeaderRecord,
  TickCork,
} from '@keel/protocol';
import { browseEndFrame, isBrowseSubscribe } from './stomp-browse';
import { stompToKeelDestination } from './stomp-destinations';
import { messageFrameHead, messageFrameHeaders, messageFromSend } from './stomp-message';
import { negotiateHeartbeat, negotiateStompVersion, parseHeartbeatHeader } from './stomp-negotiate';

/**
 * Checks a CONNECT frame's `login` and `passcode` (`remoteAddress`: the client's IP, for login
 * throttling). May throw an AuthError of its own (LOGIN_THROTTLED), which the client gets as is.
 */
export type StompAuthenticator = (
  login: string | undefined,
  passcode: string | undefined,
  remoteAddress?: string,
) => boolean | Promise<boolean>;

export type StompAckMode = 'auto' | 'client' | 'client-individual';

/**
 * A client silent for longer than this many times its promised heart-beat interval is dropped
 * (STOMP 1.2 "Heart-beating" leaves the tolerance to the implementation; the check runs once per
 * interval, so the drop comes between 2x and 3x).
 */
export const STOMP_HEARTBEAT_GRACE_MULTIPLIER = 2;

export interface StompConnectionOptions {
  broker: Broker;
  logger: Logger;
  serverName: string;
  /** The server's preferred heart-beat interval both ways (its `sx,sy`); 0 = none. */
  heartbeatMs: number;
  authenticate: StompAuthenticator;
  maxFrameSize: number;
  maxHeaders: number;
  maxHeaderLength: number;
  /** A socket that sends no CONNECT within this time is closed. */
  connectTimeoutMs: number;
  /** Frames received but not finished (sends awaiting the store) before reading pauses. */
  maxPendingFrames: number;
  /** After an ERROR or DISCONNECT, how long to wait for the client to close before destroying the socket. */
  closeGraceMs: number;
  /** A socket that stays congested this long is destroyed; 0 = never. */
  slowConsumerTimeoutMs: number;
  /** ActiveMQ transport connector option: a newer CONNECT with this `client-id` takes it over. */
  allowLinkStealing?: boolean;
  /** Largest frame before CONNECTED (issue #23.3); default maxFrameSize. */
  preConnectMaxFrameSize?: number;
  /** Bytes of frames taken whose reply has not gone out before reading pauses; default no bound. */
  maxPendingBytes?: number;
}

interface StompSubscription {
  id: string;
  ackMode: StompAckMode;
  /** Unacknowledged deliveries in delivery order: `ack` header value -> message id. */
  unacked: Map<string, string>;
}

const EMPTY_BODY = Buffer.alloc(0);

interface ReplySlot {
  /** Null until the reply is ready. */
  run: (() => void) | null;
}

interface AckTarget {
  sub: StompSubscription;
  ackId: string;
  messageId: string;
}

type Phase = 'awaiting-connect' | 'connecting' | 'connected';

/**
 * One STOMP client on one socket: decodes frames, runs them against the broker in order, and
 * writes MESSAGE, RECEIPT and ERROR frames back. Frames are processed one after another; a SEND
 * or ACK whose broker call waits for the store does not hold up the frames after it, but its
 * RECEIPT (or ERROR) is written in frame order, after the commit (DESIGN.md "Group commit").
 */
export class StompConnection {
  private readonly decoder: StompDecoder;
  private readonly broker: Broker;
  private readonly logger: Logger;
  private version: StompVersion = '1.2';
  private phase: Phase = 'awaiting-connect';
  private conn: ConnectionState | null = null;
  /** Serial processing of frames. */
  private work: Promise<void> = Promise.resolve();
  /** Frames in the serial work chain whose processing has not finished. */
  private queued = 0;
  /** RECEIPT and ERROR frames, in frame order: a slot per reply, run once it and all before it are ready. */
  private readonly replySlots: ReplySlot[] = [];
  private replyHead = 0;
  /** Frames taken whose reply has not gone out yet (input flow control). */
  private pending = 0;
  /** Body bytes of those frames (input flow control, issue #23.3). */
  private pendingBytes = 0;
  private pausedByUs = false;
  /** Reading stops from a CONNECT until CONNECTED: no large frame is buffered before authentication. */
  private connectPaused = false;
  /** No more frames are taken (after DISCONNECT, an error, or a decoding failure). */
  private inputClosed = false;
  private failed = false;
  private ended = false;
  private closed = false;
  private waitingDrain = false;
  private readonly cork: TickCork;
  private readonly subs = new Map<string, StompSubscription>();
  private readonly ackIndex = new Map<string, StompSubscription>();
  private ackCounter = 0;
  private readonly txNacks = new Map<string, AckTarget[]>();
  private lastReadAt = Date.now();
  /** The client's promised heart-beat interval (ms); 0 = none. */
  private receiveIntervalMs = 0;
  private lastWriteAt = Date.now();
  private readonly timers: NodeJS.Timeout[] = [];
  private slowTimer: NodeJS.Timeout | null = null;
  private onClosed: (() => void) | null = null;

  constructor(
    readonly socket: Socket,
    private readonly options: StompConnectionOptions,
  ) {
    this.broker = options.broker;
    this.logger = options.logger;
    this.cork = new TickCork(socket);
    const preConnect = Math.min(options.maxFrameSize, options.preConnectMaxFrameSize ?? options.maxFrameSize);
    this.decoder = new StompDecoder({
      maxFrameSize: preConnect,
      maxBodySize: preConnect,
      maxHeaders: options.maxHeaders,
      maxHeaderLineLength: options.maxHeaderLength,
    });
    socket.setNoDelay(true);
    socket.on('error', (err) => this.logger.debug({ err: err.message }, 'STOMP socket error'));
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('close', () => this.onSocketClose());
    const connectTimer = setTimeout(() => {
      if (this.phase === 'awaiting-connect' && !this.closed) {
        this.logger.info({ timeoutMs: options.connectTimeoutMs }, 'STOMP client sent no CONNECT in time');
        this.socket.destroy();
      }
    }, options.connectTimeoutMs);
    connectTimer.unref();
    this.timers.push(connectTimer);
  }

  /** Called once when the socket has closed and the broker connection is gone. */
  onClose(fn: () => void): void {
    this.onClosed = fn;
  }

  get connectionId(): string | null {
    return this.conn?.id ?? null;
  }

  /** Drop the connection now (listener stop). */
  destroy(): void {
    this.inputClosed = true;
    this.closeBrokerConnection();
    this.socket.destroy();
  }

  /**
   * The node stops serving (step-down, issue #17.6): an ERROR whose `message` and `code` headers
   * say why (NOT_MASTER, FENCED, STORE_UNAVAILABLE), then close. STOMP 1.2 "ERROR": the server
   * closes the connection right after it. It goes out at once, before receipts still due: their
   * commits are not going to be answered by this master any more.
   */
  stepDown(err: KeelError): void {
    if (this.closed || this.ended || this.failed) {
      this.destroy();
      return;
    }
    this.failed = true;
    this.inputClosed = true;
    this.closeBrokerConnection();
    this.write({
      command: 'ERROR',
      headers: [
        ['message', firstLine(err.message)],
        ['code', err.code],
        ['content-type', 'text/plain'],
      ],
      body: Buffer.from(`${err.message.replace(/\0/g, '')}\n`, 'utf8'),
    });
    this.end();
  }

  // ----- input ---------------------------------------------------------------------------------

  private onData(chunk: Buffer): void {
    this.lastReadAt = Date.now();
    if (this.inputClosed) return;
    try {
      this.decoder.pushEach(chunk, (event) => this.onEvent(event));
    } catch (err) {
      // A malformed or oversized frame: the frames before it still run, then ERROR and close.
      if (this.inputClosed && !KeelError.isInstance(err)) return;
      this.inputClosed = true;
      this.work = this.work.then(() => this.fail(err, null));
    }
  }

  private onEvent(event: StompEvent): void {
    if (this.inputClosed || event.type === 'heartbeat') return;
    const frame = event.frame;
    if (frame.command === 'CONNECT' || frame.command === 'STOMP') {
      if (this.phase !== 'awaiting-connect') {
        this.closeInputAndFail(
          new ProtocolError('STOMP: CONNECT received on a connection that is already connected'),
          frame,
        );
        return;
      }
      this.phase = 'connecting';
      this.connectPaused = true;
      this.socket.pause();
      // Decide the version now, so the frames right behind CONNECT decode with its escaping rules.
      const version = negotiateStompVersion(stompHeaderRecord(frame)['accept-version']);
      if (version !== null) {
        this.version = version;
        this.decoder.version = version;
      }
      this.enqueue(frame);
      return;
    }
    if (this.phase === 'awaiting-connect') {
      this.closeInputAndFail(
        new ProtocolError(`STOMP: ${frame.command} frame received before CONNECT`),
        frame,
      );
      return;
    }
    if (frame.command === 'DISCONNECT') this.inputClosed = true;
    this.enqueue(frame);
  }

  private closeInputAndFail(err: unknown, frame: StompFrame | null): void {
    this.inputClosed = true;
    this.work = this.work.then(() => this.fail(err, frame));
  }

  private enqueue(frame: StompFrame): void {
    if (this.queued === 0) {
      if (frame.command === 'ACK' && this.ackFast(frame)) return;
      if (frame.command === 'SEND' && this.sendFast(frame)) return;
    }
    this.pending += 1;
    this.pendingBytes += frame.body.length;
    this.queued += 1;
    this.updatePause();
    this.work = this.work.then(async () => {
      if (this.failed || this.closed) {
        this.queued -= 1;
        this.done(frame);
        return;
      }
      let op: { settled: Promise<Error | null> } | undefined;
      try {
        op = await this.process(frame);
      } catch (err) {
        this.queued -= 1;
        this.done(frame);
        this.fail(err, frame);
        return;
      }
      if (op) this.replyWhenSettled(op.settled, frame);
      else {
        this.done(frame);
        this.reply(() => this.receipt(frame));
      }
      this.queued -= 1;
    });
  }

  /** The frame's RECEIPT, or ERROR, in frame order once `settled` says how its broker call ended. */
  private replyWhenSettled(settled: Promise<Error | null>, frame: StompFrame): void {
    const slot = this.openReply();
    void settled.then((err) =>
      this.fillReply(slot, () => {
        this.done(frame);
        if (err) this.fail(err, frame);
        else this.receipt(frame);
      }),
    );
  }

  /**
   * A SEND outside a transaction with nothing before it waiting in the work chain: handed to the
   * broker at once (most of a producer's frames), its RECEIPT still in frame order. False: take
   * the ordinary path.
   */
  private sendFast(frame: StompFrame): boolean {
    const conn = this.conn;
    if (this.failed || this.closed || this.phase !== 'connected' || conn === null || conn.closed)
      return false;
    let settled: Promise<Error | null>;
    try {
      if (getStompHeader(frame, 'transaction') !== undefined) return false;
      settled = this.later(this.broker.send(conn, messageFromSend(frame, conn.id))).settled;
    } catch (err) {
      this.fail(err, frame);
      return true;
    }
    this.pending += 1;
    this.pendingBytes += frame.body.length;
    this.updatePause();
    this.replyWhenSettled(settled, frame);
    return true;
  }

  /**
   * The common ACK — no receipt, no transaction, nothing before it still in progress — runs at once,
   * without the ordered work and reply chains (half of a consumer's frames are ACKs). Its failure,
   * if any, still goes out in frame order, behind every receipt already due. False: take the
   * ordinary path.
   */
  private ackFast(frame: StompFrame): boolean {
    if (this.failed || this.closed) return false;
    const h = stompHeaderRecord(frame);
    if (h.receipt !== undefined || h.transaction !== undefined) return false;
    try {
      // Every failure of an ACK is its checks, thrown here; its removal is retried until it commits.
      const a = this.takeAck(h);
      this.broker.ackOneWay(a.conn, a.subscription, [a.messageId], { cumulative: a.cumulative });
    } catch (err) {
      this.fail(err, frame); // its ERROR goes behind the receipts already due (the reply chain)
    }
    return true;
  }

  private done(frame: StompFrame): void {
    this.pending -= 1;
    this.pendingBytes -= frame.body.length;
    this.updatePause();
  }

  /**
   * Input flow control: stop reading while too many frames, or too many bytes of them, wait for the
   * broker (a producer blocked by memoryUsage stops being read: backpressure, not buffering).
   */
  private updatePause(): void {
    const max = this.options.maxPendingFrames;
    const maxBytes = this.options.maxPendingBytes ?? Number.POSITIVE_INFINITY;
    if (!this.pausedByUs && (this.pending >= max || this.pendingBytes >= maxBytes)) {
      this.pausedByUs = true;
      this.socket.pause();
    } else if (this.pausedByUs && this.pending <= max / 2 && this.pendingBytes <= maxBytes / 2) {
      this.pausedByUs = false;
      this.lastReadAt = Date.now();
      if (!this.connectPaused) this.socket.resume();
    }
  }

  /** Append a reply that is ready now; it runs after every reply before it. */
  private reply(step: () => void): void {
    this.fillReply(this.openReply(), step);
  }

  /** Reserve the next place in the reply order. */
  private openReply(): ReplySlot {
    const slot: ReplySlot = { run: null };
    this.replySlots.push(slot);
    return slot;
  }

  /** Make a reserved reply ready, and run every ready reply at the head of the order. */
  private fillReply(slot: ReplySlot, run: () => void): void {
    slot.run = run;
    const slots = this.replySlots;
    if (slots[this.replyHead] !== slot) return;
    while (this.replyHead < slots.length) {
      const next = slots[this.replyHead]!;
      if (next.run === null) break;
      this.replyHead += 1;
      try {
        next.run();
      } catch (err) {
        this.logger.warn({ err: (err as Error)?.message }, 'STOMP reply failed');
      }
    }
    if (this.replyHead === slots.length) {
      slots.length = 0;
      this.replyHead = 0;
    } else if (this.replyHead >= 1024) {
      slots.splice(0, this.replyHead);
      this.replyHead = 0;
    }
  }

  /** Run a broker call whose completion is reported in frame order (RECEIPT or ERROR). */
  private later(p: Promise<unknown>): { settled: Promise<Error | null> } {
    return {
      settled: p.then(
        () => null,
        (err: unknown) => (err instanceof Error ? err : new Error(String(err))),
      ),
    };
  }

  // ----- frames --------------------------------------------------------------------------------

  private async process(frame: StompFrame): Promise<{ settled: Promise<Error | null> } | undefined> {
    const h = stompHeaderRecord(frame);
    switch (frame.command) {
      case 'CONNECT':
      case 'STOMP':
        await this.connect(h);
        return undefined;
      case 'SEND': {
        const conn = this.connection();
        const message = messageFromSend(frame, conn.id);
        return this.later(this.broker.send(conn, message, h.transaction));
      }
      case 'SUBSCRIBE':
        await this.subscribe(h);
        return undefined;
      case 'UNSUBSCRIBE':
        await this.unsubscribe(h);
        return undefined;
      case 'ACK':
        return this.ack(h);
      case 'NACK':
        this.nack(h);
        return undefined;
      case 'BEGIN':
        this.broker.begin(this.connection(), requireHeader(h, 'transaction', 'BEGIN'));
        return undefined;
      case 'COMMIT': {
        const tx = requireHeader(h, 'transaction', 'COMMIT');
        const conn = this.connection();
        const nacks = this.txNacks.get(tx) ?? [];
        this.txNacks.delete(tx);
        await this.broker.commit(conn, tx);
        for (const t of nacks) this.applyNack(t);
        return undefined;
      }
      case 'ABORT': {
        const tx = requireHeader(h, 'transaction', 'ABORT');
        this.txNacks.delete(tx);
        this.broker.rollback(this.connection(), tx);
        return undefined;
      }
      case 'DISCONNECT':
        // STOMP 1.2 "DISCONNECT": every frame before it has been processed when its RECEIPT goes
        // out (the reply chain runs in frame order); then the server closes the connection.
        this.closeBrokerConnection();
        this.reply(() => {
          this.receipt(frame);
          this.end();
        });
        return undefined;
      default:
        throw new ProtocolError(`STOMP: ${frame.command} is a server frame; a client must not send it`);
    }
  }

  private connection(): ConnectionState {
    if (!this.conn || this.conn.closed) throw new ProtocolError('STOMP: the connection is closed');
    return this.conn;
  }

  private async connect(h: Record<string, string>): Promise<void> {
    const version = negotiateStompVersion(h['accept-version']);
    if (version === null) {
      const err = new ProtocolError(
        `STOMP: no common protocol version; this server supports ${STOMP_VERSIONS.join(',')}`,
        'UNSUPPORTED_VERSION',
      );
      (err as ProtocolError & { stompHeaders?: StompHeaders }).stompHeaders = [
        ['version', STOMP_VERSIONS.join(',')],
      ];
      throw err;
    }
    const clientBeat = parseHeartbeatHeader(h['heart-beat']);
    let ok: boolean;
    try {
      ok = (await this.options.authenticate(h.login, h.passcode, this.socket.remoteAddress)) === true;
    } catch (err) {
      if (err instanceof AuthError) throw err;
      throw new AuthError('Authentication failed: the authenticator threw', 'AUTH_FAILED', { cause: err });
    }
    if (!ok)
      throw new AuthError(
        `Authentication failed: wrong login or passcode${h.login === undefined ? '' : ` for user ${h.login}`}`,
      );
    if (this.closed) return;
    const conn = this.broker.openConnection({
      protocol: 'stomp',
      clientId: h['client-id'],
      username: h.login,
      remoteAddress: this.socket.remoteAddress,
      transport: { alive: () => this.transportAlive(), close: (err) => this.stepDown(err) },
      allowLinkStealing: this.options.allowLinkStealing,
    });
    this.conn = conn;
    this.phase = 'connected';
    // Authenticated: the full frame size applies from now on, and reading goes on.
    this.decoder.maxFrameSize = this.options.maxFrameSize;
    this.decoder.maxBodySize = this.options.maxFrameSize;
    this.connectPaused = false;
    if (!this.pausedByUs) this.socket.resume();
    const beat = this.options.heartbeatMs;
    const negotiated = negotiateHeartbeat(clientBeat, [beat, beat]);
    this.write({
      command: 'CONNECTED',
      headers: [
        ['version', version],
        ['session', conn.id],
        ['server', this.options.serverName],
        ['heart-beat', `${beat},${beat}`],
      ],
      body: Buffer.alloc(0),
    });
    this.startHeartbeats(negotiated.sendIntervalMs, negotiated.receiveIntervalMs);
    this.logger.debug(
      { conn: conn.id, version, clientId: conn.clientId, heartbeat: negotiated },
      'STOMP client connected',
    );
  }

  private async subscribe(h: Record<string, string>): Promise<void> {
    const conn = this.connection();
    const destination = requireHeader(h, 'destination', 'SUBSCRIBE');
    let id = h.id;
    if (id === undefined) {
      // STOMP 1.1+ "SUBSCRIBE": id is REQUIRED; a 1.0 subscription is known by its destination.
      if (this.version !== '1.0')
        throw new ProtocolError('STOMP: SUBSCRIBE frame has no id header (required since STOMP 1.1)');
      id = destination;
    }
    const ackMode = (h.ack ?? 'auto') as StompAckMode;
    if (ackMode !== 'auto' && ackMode !== 'client' && ackMode !== 'client-individual') {
      throw new ProtocolError(
        `STOMP: invalid ack mode ${JSON.stringify(h.ack)}; expected auto, client or client-individual`,
      );
    }
    if (this.subs.has(id))
      throw new InvalidArgumentError(`STOMP: subscription id ${JSON.stringify(id)} is already in use`);
    // ActiveMQ's `activemq.prefetchSize`: the window of unacknowledged messages. For ack:auto the
    // broker acknowledges on delivery and socket backpressure paces the consumer.
    const prefetch =
      h['activemq.prefetchSize'] === undefined
        ? DEFAULT_PREFETCH
        : positiveIntHeader(h, 'activemq.prefetchSize');
    // ActiveMQ consumer priority: a Java byte (-128..127; clients use 0..127, 127 highest).
    const priority = h['activemq.priority'] === undefined ? undefined : Number(h['activemq.priority']);
    if (priority !== undefined && !(Number.isInteger(priority) && priority >= -128 && priority <= 127)) {
      throw new InvalidArgumentError(
        `activemq.priority must be an integer -128..127, got ${JSON.stringify(h['activemq.priority'])}`,
      );
    }
    const keelDestination = stompToKeelDestination(destination, conn.id);
    checkActiveMqSubscribe(keelDestination, h); // NOT_SUPPORTED: ActiveMQ features Keel lacks
    if (
      keelDestination.startsWith('temp-') &&
      !keelDestination.slice(keelDestination.indexOf('://') + 3).startsWith(`${conn.id}.`)
    ) {
      // JMS / ActiveMQ: only the connection that owns a temporary destination consumes from it.
      throw new InvalidArgumentError(
        `STOMP: cannot subscribe to ${destination}: it is another connection's temporary destination`,
      );
    }
    const sub: StompSubscription = { id, ackMode, unacked: new Map() };
    this.subs.set(id, sub);
    try {
      await this.broker.subscribe(
        conn,
        {
          consumerId: id,
          destination: keelDestination,
          prefetch,
          // A browse needs no acks (they do nothing): it is paced by the socket, as ack:auto is.
          ackOnDelivery: ackMode === 'auto' || isBrowseSubscribe(h),
          browse: isBrowseSubscribe(h),
          selector: h.selector,
          durableName: h['activemq.subscriptionName'] ?? h['durable-subscription-name'],
          noLocal: h['activemq.noLocal'] === 'true',
          priority,
          exclusive: h['activemq.exclusive']?.trim().toLowerCase() === 'true',
        },
        (d) => this.deliver(d),
      );
    } catch (err) {
      if (this.subs.get(id) === sub) this.subs.delete(id);
      throw err;
    }
  }

  private async unsubscribe(h: Record<string, string>): Promise<void> {
    const conn = this.connection();
    const id = h.id ?? (this.version === '1.0' ? h.destination : undefined);
    const durableName = h['activemq.subscriptionName'] ?? h['durable-subscription-name'];
    if (id === undefined && durableName === undefined) {
      throw new ProtocolError('STOMP: UNSUBSCRIBE frame has no id header');
    }
    const sub = id === undefined ? undefined : this.subs.get(id);
    if (sub) {
      this.subs.delete(sub.id);
      for (const ackId of sub.unacked.keys()) this.ackIndex.delete(ackId);
      sub.unacked.clear();
      this.broker.unsubscribe(conn, sub.id);
    } else if (durableName === undefined) {
      throw new InvalidArgumentError(
        `STOMP: no subscription with id ${JSON.stringify(id)}`,
        'UNKNOWN_CONSUMER',
      );
    }
    // ActiveMQ: UNSUBSCRIBE with activemq.subscriptionName removes the durable subscription.
    if (durableName !== undefined) await this.broker.removeDurable(conn.clientId, durableName);
  }

  /** Find the delivery an ACK or NACK names (STOMP 1.2: `id` = the MESSAGE's `ack`; 1.0/1.1: `message-id` [+ `subscription`]). */
  private ackTarget(h: Record<string, string>, command: string): AckTarget {
    if (h.id !== undefined) {
      const sub = this.ackIndex.get(h.id);
      const messageId = sub?.unacked.get(h.id);
      if (sub && messageId !== undefined) return { sub, ackId: h.id, messageId };
    }
    const messageId = h['message-id'];
    if (messageId !== undefined) {
      const candidates =
        h.subscription !== undefined ? [this.subs.get(h.subscription)] : [...this.subs.values()];
      for (const sub of candidates) {
        if (!sub) continue;
        for (const [ackId, mid] of sub.unacked) if (mid === messageId) return { sub, ackId, messageId };
      }
    }
    if (h.id === undefined && messageId === undefined) {
      throw new ProtocolError(
        `STOMP: ${command} frame has no ${this.version === '1.2' ? 'id' : 'message-id'} header`,
      );
    }
    throw new InvalidArgumentError(
      `STOMP: ${command} for a message that is not awaiting acknowledgement on this connection (${h.id !== undefined ? `id ${h.id}` : `message-id ${messageId}`})`,
      'UNKNOWN_MESSAGE',
    );
  }

  private ack(h: Record<string, string>): { settled: Promise<Error | null> } {
    const a = this.takeAck(h);
    return this.later(
      this.broker.ack(a.conn, a.subscription, [a.messageId], {
        cumulative: a.cumulative,
        txId: h.transaction,
      }),
    );
  }

  /** The ACK's target, taken off the subscription's unacknowledged list. */
  private takeAck(h: Record<string, string>): {
    conn: ConnectionState;
    subscription: string;
    messageId: string;
    cumulative: boolean;
  } {
    const conn = this.connection();
    const t = this.ackTarget(h, 'ACK');
    const cumulative = t.sub.ackMode === 'client';
    if (cumulative) {
      // STOMP 1.2 "SUBSCRIBE" ack:client: the ACK covers every earlier message of the subscription.
      for (const ackId of [...t.sub.unacked.keys()]) {
        t.sub.unacked.delete(ackId);
        this.ackIndex.delete(ackId);
        if (ackId === t.ackId) break;
      }
    } else {
      t.sub.unacked.delete(t.ackId);
      this.ackIndex.delete(t.ackId);
    }
    return { conn, subscription: t.sub.id, messageId: t.messageId, cumulative };
  }

  private nack(h: Record<string, string>): void {
    this.connection();
    const t = this.ackTarget(h, 'NACK');
    const tx = h.transaction;
    if (tx !== undefined) {
      if (!this.connection().transactions.has(tx)) {
        throw new InvalidArgumentError(`unknown transaction ${tx}`, 'UNKNOWN_TRANSACTION');
      }
      // The NACK takes effect at COMMIT; an ABORT leaves the message unacknowledged.
      const list = this.txNacks.get(tx) ?? [];
      list.push(t);
      this.txNacks.set(tx, list);
      return;
    }
    this.applyNack(t);
  }

  private applyNack(t: AckTarget): void {
    if (t.sub.unacked.get(t.ackId) !== t.messageId) return;
    t.sub.unacked.delete(t.ackId);
    this.ackIndex.delete(t.ackId);
    if (!this.subs.has(t.sub.id) || !this.conn) return;
    // The broker redelivers it (redelivery policy) or moves it to the dead-letter queue.
    this.broker.nack(this.conn, t.sub.id, [t.messageId]);
  }

  private deliver(d: Delivery): void {
    const sub = this.subs.get(d.consumerId);
    if (!sub || !this.conn || this.closed) return;
    if (d.browseEnd) {
      this.write(browseEndFrame(sub.id, d.message.destination, this.conn.id));
      return;
    }
    let ackId: string | undefined;
    if (sub.ackMode !== 'auto') {
      this.ackCounter += 1;
      ackId = String(this.ackCounter);
      sub.unacked.set(ackId, d.message.messageId);
      this.ackIndex.set(ackId, sub);
    }
    const ctx = { subscription: sub.id, ackId, connectionId: this.conn.id };
    const version = this.version;
    if (version === '1.0') {
      this.write({ command: 'MESSAGE', headers: messageFrameHeaders(d.message, ctx), body: d.message.body });
    } else this.writeHead(messageFrameHead(d.message, ctx, version), d.message.body);
  }

  private receipt(frame: StompFrame): void {
    const receipt = getStompHeader(frame, 'receipt');
    if (receipt === undefined) return;
    const version = this.version;
    if (version === '1.0') {
      this.write({ command: 'RECEIPT', headers: [['receipt-id', receipt]], body: EMPTY_BODY });
    } else this.writeHead(`RECEIPT\nreceipt-id:${escapeStompValue(receipt, version)}\n\n`, EMPTY_BODY);
  }

  // ----- errors and closing --------------------------------------------------------------------

  /**
   * STOMP 1.2 "ERROR": send an ERROR frame (with `receipt-id` when the failing frame asked for a
   * receipt, a short `message` header and the details as a text/plain body), then close. The
   * ERROR goes after every RECEIPT already due; the broker connection closes at once, so its
   * transactions roll back and its unacknowledged messages are redelivered.
   */
  private fail(err: unknown, frame: StompFrame | null): void {
    if (this.failed || this.closed) return;
    this.failed = true;
    this.inputClosed = true;
    this.closeBrokerConnection();
    const keel = KeelError.isInstance(err) ? err : null;
    const message = err instanceof Error ? err.message : String(err);
    const code = keel?.code ?? 'INTERNAL';
    if (code === 'INTERNAL') this.logger.error({ err: message }, 'STOMP frame processing failed');
    else this.logger.info({ conn: this.conn?.id, code, err: message }, 'STOMP client error');
    const headers: StompHeaders = [
      ['message', firstLine(message)],
      ['code', code],
      ['content-type', 'text/plain'],
    ];
    const receipt = frame ? stompHeaderRecord(frame).receipt : undefined;
    if (receipt !== undefined) headers.unshift(['receipt-id', receipt]);
    const extra = (err as { stompHeaders?: StompHeaders } | null)?.stompHeaders;
    if (extra) headers.push(...extra);
    let details = message;
    if (frame)
      details += `\n\nThe failing frame: ${frame.command}${receipt === undefined ? '' : ` (receipt ${receipt})`}`;
    this.reply(() => {
      this.write({ command: 'ERROR', headers, body: Buffer.from(`${details.replace(/\0/g, '')}\n`, 'utf8') });
      this.end();
    });
  }

  /** Half-close after the last frame; destroy if the client does not close within the grace time. */
  private end(): void {
    if (this.ended) return;
    this.ended = true;
    this.inputClosed = true;
    this.cork.flush();
    this.socket.end();
    // Read again (and drop: input is closed) so the client's close is seen, even from a socket
    // paused for flow control or between CONNECT and CONNECTED.
    this.socket.resume();
    const t = setTimeout(() => this.socket.destroy(), this.options.closeGraceMs);
    t.unref();
    this.timers.push(t);
  }

  private closeBrokerConnection(): void {
    const conn = this.conn;
    if (!conn || conn.closed) return;
    try {
      this.broker.closeConnection(conn);
    } catch (err) {
      this.logger.warn(
        { conn: conn.id, err: (err as Error).message },
        'closing the broker connection failed',
      );
    }
  }

  private onSocketClose(): void {
    if (this.closed) return;
    this.closed = true;
    this.inputClosed = true;
    for (const t of this.timers) clearTimeout(t);
    this.timers.length = 0;
    if (this.slowTimer) clearTimeout(this.slowTimer);
    this.closeBrokerConnection();
    this.subs.clear();
    this.ackIndex.clear();
    if (this.conn) this.logger.debug({ conn: this.conn.id }, 'STOMP client disconnected');
    this.onClosed?.();
  }

  // ----- output and heart-beats ----------------------------------------------------------------

  private write(frame: StompFrame): void {
    if (this.ended || this.socket.destroyed) return;
    let buf: Buffer;
    try {
      // Before CONNECTED the client cannot know the version: an ERROR then goes out unescaped.
      const version = this.phase === 'connected' ? this.version : '1.0';
      // An ERROR carries no content-length (STOMP 1.2 lets any frame omit it; its text body has no
      // NUL): stompit (1.0.0) throws an unhandled error on a text/plain ERROR that has one.
      buf = encodeStompFrame(version === '1.0' ? unescapable(frame) : frame, {
        version,
        contentLength: frame.command !== 'ERROR',
      });
    } catch (err) {
      this.logger.warn(
        { command: frame.command, err: (err as Error).message },
        'STOMP frame could not be encoded',
      );
      return;
    }
    this.send(buf);
  }

  private send(buf: Buffer): void {
    this.lastWriteAt = Date.now();
    this.afterWrite(this.cork.write(buf));
  }

  /**
   * A STOMP 1.1/1.2 frame from its head built as text (escaped by the caller) and its body, written
   * straight into the tick's buffer: the hot frames (MESSAGE, RECEIPT).
   */
  private writeHead(head: string, body: Buffer): void {
    if (this.ended || this.socket.destroyed) return;
    this.lastWriteAt = Date.now();
    this.afterWrite(this.cork.writeFrame(head, body, STOMP_FRAME_END));
  }

  /** `accepted`: what the write returned; false stops deliveries until 'drain'. */
  private afterWrite(accepted: boolean): void {
    if (accepted || this.waitingDrain) return;
    // Backpressure (STYLE.md "Connections and backpressure"): no more deliveries until 'drain'.
    this.waitingDrain = true;
    const conn = this.conn;
    if (conn && !conn.closed) this.broker.setWritable(conn, false);
    if (this.options.slowConsumerTimeoutMs > 0) {
      this.slowTimer = setTimeout(() => {
        if (!this.waitingDrain || this.closed) return;
        this.logger.info(
          { conn: conn?.id, timeoutMs: this.options.slowConsumerTimeoutMs },
          'STOMP client too slow to read; closing',
        );
        this.destroy();
      }, this.options.slowConsumerTimeoutMs);
      this.slowTimer.unref();
    }
    this.socket.once('drain', () => {
      this.waitingDrain = false;
      if (this.slowTimer) clearTimeout(this.slowTimer);
      this.slowTimer = null;
      if (conn && !conn.closed) this.broker.setWritable(conn, true);
    });
  }

  /**
   * For the client id check (ClientIdRegistry): the socket is there and, when the client promised
   * heart-beats, it was heard from within 1.5 intervals (ActiveMQ's STOMP hbGracePeriodMultiplier,
   * 1.5): a half-open connection whose heart-beats stopped is dead before the receive check drops
   * it. A connection whose reading we paused is not judged by silence.
   */
  private transportAlive(): boolean {
    if (this.closed || this.ended || this.failed || this.socket.destroyed || !this.socket.writable)
      return false;
    if (this.receiveIntervalMs === 0 || this.pausedByUs) return true;
    return Date.now() - this.lastReadAt <= this.receiveIntervalMs * 1.5;
  }

  /** STOMP 1.2 "Heart-beating": send an EOL when idle; drop a client that stays silent. */
  private startHeartbeats(sendIntervalMs: number, receiveIntervalMs: number): void {
    this.receiveIntervalMs = receiveIntervalMs;
    if (sendIntervalMs > 0) {
      const half = Math.max(1, Math.floor(sendIntervalMs / 2));
      const t = setInterval(() => {
        if (this.ended || this.socket.destroyed) return;
        if (Date.now() - this.lastWriteAt >= half) this.send(STOMP_HEARTBEAT_BYTES);
      }, half);
      t.unref();
      this.timers.push(t);
    }
    if (receiveIntervalMs > 0) {
      this.lastReadAt = Date.now();
      const limit = receiveIntervalMs * STOMP_HEARTBEAT_GRACE_MULTIPLIER;
      const t = setInterval(() => {
        if (this.pausedByUs || this.closed) return;
        const silentMs = Date.now() - this.lastReadAt;
        if (silentMs <= limit) return;
        this.logger.info(
          { conn: this.conn?.id, silentMs, receiveIntervalMs },
          'STOMP client missed its heart-beats; closing',
        );
        this.inputClosed = true;
        this.failed = true;
        this.closeBrokerConnection();
        this.write({
          command: 'ERROR',
          headers: [
            ['message', `No heart-beat received for ${silentMs} ms (promised every ${receiveIntervalMs} ms)`],
            ['code', 'HEARTBEAT_TIMEOUT'],
          ],
          body: Buffer.alloc(0),
        });
        this.cork.flush();
        this.socket.destroy();
      }, receiveIntervalMs);
      t.unref();
      this.timers.push(t);
    }
  }
}

function requireHeader(h: Record<string, string>, name: string, command: string): string {
  const v = h[name];
  if (v === undefined || v.length === 0)
    throw new ProtocolError(`STOMP: ${command} frame has no ${name} header`);
  return v;
}

function positiveIntHeader(h: Record<string, string>, name: string): number {
  const v = h[name]!;
  if (!/^\d{1,9}$/.test(v) || Number(v) < 1) {
    throw new InvalidArgumentError(`${name} must be a positive integer, got ${JSON.stringify(v)}`);
  }
  return Number(v);
}

function firstLine(s: string): string {
  const line = s.split(/\r?\n/, 1)[0] ?? '';
  return line.length > 500 ? `${line.slice(0, 500)}…` : line;
}

/** STOMP 1.0 has no header escaping: drop names it cannot carry and flatten line breaks in values. */
function unescapable(frame: StompFrame): StompFrame {
  const headers: StompHeaders = [];
  for (const [name, value] of frame.headers) {
    if (name.length === 0 || /[\r\n:]/.test(name)) continue;
    headers.push([name, value.replace(/\r?\n|\r/g, ' ')]);
  }
  return { ...frame, headers };
}
