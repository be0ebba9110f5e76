import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import {
  type BrokerDescription,
  ConnectionError,
  DEFAULT_MAX_FRAME_SIZE,
  errorFromCode,
  type Frame,
  FrameType,
  InvalidArgumentError,
  KeelError,
  type Message,
  type PropertyValue,
  TimeoutError,
} from '@keel/protocol';
import { reconnectDelayMs } from './backoff';
import {
  type ClientTlsOptions,
  type ResolvedClientTls,
  resolveClientTls,
  tlsConnectOptions,
} from './client-tls';
import type { Consumer } from './consumer';
import { Deferred } from './deferred';
import {
  type ConnectTarget,
  endpointFromAnnounced,
  type FailoverOptionOverrides,
  type FailoverOptions,
  parseConnectUrl,
  type ServerEndpoint,
} from './failover-options';
import { type ClientLogger, silentClientLogger } from './logger';
import { DEFAULT_AUDIT_DEPTH } from './message-audit';
import type { Producer } from './producer';
import type { ReceivedMessage } from './received-message';
import { Session, type SessionOptions } from './session';
import { DEFAULT_CONNECT_TIMEOUT_MS, DEFAULT_HEARTBEAT_MS, Wire } from './wire';

export interface ConnectOptions extends FailoverOptionOverrides {
  /** Client id (needed for durable subscriptions); the broker assigns one when absent. */
  clientId?: string;
  username?: string;
  password?: string;
  /** pino-compatible logger; silent by default. */
  logger?: ClientLogger;
  /** Heartbeat interval asked of the broker, ms (0 = none); a broker silent 3 x this long is dead. */
  heartbeatMs?: number;
  /** Largest frame this client accepts and sends, bytes. */
  maxFrameSize?: number;
  /** Per-attempt bound on TCP connect + handshake, ms. */
  connectTimeoutMs?: number;
  /** Message ids per consumer remembered by the duplicate audit (failover). */
  auditDepth?: number;
  /**
   * ActiveMQ's `sendAcksAsync`: `ack()` of a client or individual session resolves once the ACK is
   * written, without waiting for the broker's confirmation (a lost ack means a redelivery, which
   * the duplicate audit and the failover ack-replay handle). Default false: `ack()` resolves after
   * the broker removed the message.
   */
  sendAcksAsync?: boolean;
  /** Uniform [0,1) source for randomize and jitter (tests inject a fixed one). */
  random?: () => number;
  /** `ssl://` brokers: CA, client certificate, verification (client-tls.ts). The broker is verified by default. */
  tls?: ClientTlsOptions;
}

export interface SendResult {
  /** The id the broker gave the message ('' if the broker's receipt did not say). */
  messageId: string;
}

export interface RequestOptions {
  /** How long to wait for the reply, ms (default 30000). */
  timeoutMs?: number;
  properties?: Record<string, PropertyValue>;
  type?: string;
  /** Default false: a request is usually not worth storing. */
  persistent?: boolean;
}

export type ConnectionStatus = 'connected' | 'reconnecting' | 'closed';

/** Events, typed (graphile-worker style). */
export interface ConnectionEvents {
  /** The link to the broker dropped; the failover transport is reconnecting. */
  interrupted: [{ url: string; error: Error }];
  /** Reconnected and restored (sessions, consumers, transactions, unreceipted sends). */
  resumed: [{ url: string }];
  /** A dial attempt of the failover transport. `attempt` counts passes over the URI list. */
  'reconnect:attempt': [{ url: string; attempt: number; delayMs: number }];
  /** Asynchronous errors that belong to no call (only emitted when someone listens). */
  error: [Error];
  /** The connection is closed for good: `error` is set unless `close()` was called. */
  close: [{ error?: Error }];
}

type LostPolicy = 'resolve' | 'replay' | 'restore' | 'reject';

interface PendingCall {
  receiptId: string;
  frame: Frame;
  policy: LostPolicy;
  restoreKey?: string;
  deferred: Deferred<Frame | null>;
  /** The generation it was written on (0 = not yet). */
  writtenGen: number;
  timer?: NodeJS.Timeout;
}

interface SendOp {
  receiptId: string;
  session: Session;
  message: Message;
  transacted: boolean;
  writtenGen: number;
  /** Written to a link that was lost before the receipt came: the next write is a resend. */
  resent?: boolean;
  /** How many times the broker answered it with an error it is resent on (resendSend). */
  refusals?: number;
  deferred: Deferred<SendResult>;
  timer?: NodeJS.Timeout;
}

interface ServerState {
  endpoint: ServerEndpoint;
  /** Attempts since the last successful connect. */
  attempts: number;
  lastAttemptAt: number;
  lastConnectedAt: number;
  lastError?: Error;
  /** Learned from a broker's announced list (updateURIsSupported). */
  discovered: boolean;
}

interface DialToken {
  stopped: boolean;
  wake?: () => void;
}

const FAILOVER_KEYS: (keyof FailoverOptions)[] = [
  'initialReconnectDelay',
  'maxReconnectDelay',
  'useExponentialBackOff',
  'backOffMultiplier',
  'maxReconnectAttempts',
  'startupMaxReconnectAttempts',
  'randomize',
  'timeout',
  'priorityBackup',
  'priorityURIs',
  'backup',
  'updateURIsSupported',
  'reconnectDelayJitterPercent',
  'maxBufferedSends',
];

/**
 * Errors after which reconnecting is pointless: the broker will say the same again. INVALID_CLIENT_ID
 * too: ActiveMQ's failover transport does not retry an InvalidClientIDException (the id is in use,
 * or another connection took it over with allowLinkStealing, and stealing it back would ping-pong).
 */
function isPermanent(err: Error): boolean {
  if (!KeelError.isInstance(err)) return false;
  return [
    'AUTH_FAILED',
    'NOT_AUTHORIZED',
    'UNSUPPORTED_VERSION',
    'INVALID_ARGUMENT',
    'INVALID_CLIENT_ID',
  ].includes(err.code);
}

/**
 * Non-fatal answers to a send after which a failover producer sends it again (resendSend): the
 * message may be with a consumer but is not stored, or it is not stored because the node or its store
 * is failing; the broker, or the next master, takes the resend.
 */
const RESEND_SEND_ON = new Set(['IN_DOUBT', 'STORE_UNAVAILABLE', 'FENCED', 'NOT_MASTER']);

/** Errors that mean "this broker connection is no good", as opposed to "this request failed". */
export function isLinkError(err: unknown): boolean {
  if (err instanceof ConnectionError) return true;
  return KeelError.isInstance(err) && (err.code === 'NOT_MASTER' || err.code === 'FENCED');
}

function asConnectionError(err: Error): ConnectionError {
  if (err instanceof ConnectionError) return err;
  return new ConnectionError(`connection lost: ${err.message}`, 'CONNECTION_LOST', { cause: err });
}

/**
 * A connection to a Keel broker (`tcp://`) or to a cluster through the failover transport
 * (`failover:(…)`). Create it with `connect()`.
 */
export class Connection extends EventEmitter<ConnectionEvents> {
  /** The broker's id for the current link (changes on every reconnect). */
  connectionId = '';
  clientId = '';
  broker: BrokerDescription | null = null;
  /** URL of the broker currently connected (or last connected). */
  url = '';
  /** @internal One per broker link; deliveries remember theirs. */
  _generation = 0;
  /** @internal */
  readonly _logger: ClientLogger;
  /** @internal */
  readonly _auditDepth: number;
  /** @internal ConnectOptions.sendAcksAsync */
  readonly _sendAcksAsync: boolean;
  /** @internal */
  readonly _failover: FailoverOptions;

  private readonly target: ConnectTarget;
  private readonly servers: ServerState[];
  private readonly random: () => number;
  private link: Wire | null = null;
  private currentServer: ServerState | null = null;
  private state: 'connecting' | 'connected' | 'restoring' | 'interrupted' | 'closing' | 'closed' =
    'connecting';
  private readonly pending = new Map<string, PendingCall>();
  private readonly orphans = new Map<string, PendingCall>();
  private readonly sendOps = new Map<string, SendOp>();
  private readonly waiters = new Set<{ deferred: Deferred<void>; timer?: NodeJS.Timeout }>();
  private readonly sessions = new Map<number, Session>();
  /** TLS of ssl:// servers (files read once, here). */
  private readonly tls: ResolvedClientTls;
  private receiptCounter = 0;
  private consumerCounter = 0;
  private dial: DialToken | null = null;
  private closeDeferred: Deferred<void> | null = null;
  private requestSession: Promise<{ session: Session; consumer: Consumer; replyTo: string }> | null = null;
  private readonly requestProducers = new Map<string, Producer>();
  private readonly replies = new Map<string, Deferred<ReceivedMessage>>();

  /** @internal Use connect(). */
  constructor(
    url: string,
    private readonly options: ConnectOptions = {},
  ) {
    super();
    const overrides: Record<string, unknown> = {};
    for (const k of FAILOVER_KEYS) if (options[k] !== undefined) overrides[k] = options[k];
    this.target = parseConnectUrl(url, overrides as FailoverOptionOverrides);
    this.tls = resolveClientTls(options.tls);
    this._failover = this.target.options;
    for (const [name, v] of [
      ['heartbeatMs', options.heartbeatMs],
      ['maxFrameSize', options.maxFrameSize],
      ['connectTimeoutMs', options.connectTimeoutMs],
      ['auditDepth', options.auditDepth],
    ] as const) {
      if (v !== undefined && (!Number.isSafeInteger(v) || v < 0)) {
        throw new InvalidArgumentError(
          `invalid value ${JSON.stringify(v)} for option "${name}": expected an integer >= 0`,
        );
      }
    }
    this._logger = options.logger ?? silentClientLogger;
    this._auditDepth = options.auditDepth ?? DEFAULT_AUDIT_DEPTH;
    this._sendAcksAsync = options.sendAcksAsync === true;
    this.random = options.random ?? Math.random;
    this.servers = this.target.servers.map((endpoint) => ({
      endpoint,
      attempts: 0,
      lastAttemptAt: 0,
      lastConnectedAt: 0,
      discovered: false,
    }));
    if (this._failover.priorityBackup || this._failover.backup) {
      this._logger.warn({}, 'failover options priorityBackup/backup are accepted but not implemented yet');
    }
  }

  /** 'connected', 'reconnecting' (failover at work) or 'closed'. */
  get status(): ConnectionStatus {
    if (this.state === 'closed' || this.state === 'closing') return 'closed';
    return this.state === 'connected' ? 'connected' : 'reconnecting';
  }

  /** The URLs the failover transport knows (configured and announced). */
  get knownBrokers(): string[] {
    return this.servers.map((s) => s.endpoint.url);
  }

  /**
   * @internal close() has begun: deliveries that arrive now are not handed to the application
   * (their acknowledgements would reach the broker after CLOSE; it redelivers them instead).
   */
  get _closing(): boolean {
    return this.state === 'closing' || this.state === 'closed';
  }

  /** @internal Connected and restored: new work may go out. */
  get _isConnected(): boolean {
    return this.state === 'connected' && this.link !== null;
  }

  /**
   * @internal A link is up (also while the restore runs): acks of deliveries made on it may go
   * out. Deliveries start as soon as the restore re-subscribed their consumer.
   */
  get _linkUp(): boolean {
    return this.link !== null && (this.state === 'connected' || this.state === 'restoring');
  }

  // ----- startup and the dial loop ---------------------------------------------------------------

  /** @internal */
  async _start(): Promise<void> {
    if (!this.target.failover) {
      const server = this.servers[0]!;
      const wire = await Wire.open(this.wireOptions(server.endpoint));
      this.adopt(wire, server);
      this.state = 'connected';
      return;
    }
    const token: DialToken = { stopped: false };
    this.dial = token;
    const timeout = this._failover.timeout;
    let timer: NodeJS.Timeout | undefined;
    try {
      const dialed = this.dialLoop(token, true);
      const result =
        timeout < 0
          ? await dialed
          : await Promise.race([
              dialed,
              new Promise<never>((_, reject) => {
                timer = setTimeout(() => {
                  this.stopDialing(token);
                  reject(
                    new TimeoutError(
                      `no broker available within ${timeout} ms (failover timeout) among ${this.knownBrokers.join(', ')}`,
                    ),
                  );
                }, timeout);
              }),
            ]);
      this.adopt(result.wire, result.server);
      this.state = 'connected';
    } catch (err) {
      this.stopDialing(token);
      this.state = 'closed';
      throw err;
    } finally {
      clearTimeout(timer);
      if (this.dial === token) this.dial = null;
    }
  }

  private wireOptions(ep: ServerEndpoint) {
    return {
      host: ep.host,
      port: ep.port,
      clientId: this.options.clientId,
      username: this.options.username,
      password: this.options.password,
      heartbeatMs: ep.options.heartbeatMs ?? this.options.heartbeatMs ?? DEFAULT_HEARTBEAT_MS,
      maxFrameSize: ep.options.maxFrameSize ?? this.options.maxFrameSize ?? DEFAULT_MAX_FRAME_SIZE,
      connectTimeoutMs:
        ep.options.connectTimeoutMs ?? this.options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS,
      tls: ep.tls ? tlsConnectOptions(this.tls, ep.host, ep.options.verifyHostName) : null,
    };
  }

  /** The order of one pass: shuffled with `randomize`, the server that just dropped us last. */
  private passOrder(): ServerState[] {
    const list = [...this.servers];
    if (this._failover.randomize) {
      for (let i = list.length - 1; i > 0; i--) {
        const j = Math.floor(this.random() * (i + 1));
        [list[i], list[j]] = [list[j]!, list[i]!];
      }
    }
    const last = this.currentServer;
    if (last && list.length > 1) {
      const i = list.indexOf(last);
      if (i >= 0) list.push(...list.splice(i, 1));
    }
    return list;
  }

  private sleep(token: DialToken, ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const t = setTimeout(resolve, ms);
      token.wake = () => {
        clearTimeout(t);
        resolve();
      };
    });
  }

  private stopDialing(token: DialToken | null): void {
    if (!token) return;
    token.stopped = true;
    token.wake?.();
  }

  /**
   * Exactly one dial loop at a time (STYLE.md, nats.js servers.ts): passes over the URI list with
   * ActiveMQ's backoff between passes. A broker that refuses (closes, answers NOT_MASTER, is not
   * master) just makes the loop move on to the next URI.
   */
  private async dialLoop(token: DialToken, startup: boolean): Promise<{ wire: Wire; server: ServerState }> {
    const o = this._failover;
    const maxPasses = startup ? o.startupMaxReconnectAttempts : o.maxReconnectAttempts;
    for (let pass = 0; ; pass++) {
      if (maxPasses >= 0 && pass > maxPasses) {
        throw new ConnectionError(
          `no broker reachable after ${pass} attempt(s) (${startup ? 'startupMaxReconnectAttempts' : 'maxReconnectAttempts'}=${maxPasses}) among ${this.knownBrokers.join(', ')}`,
        );
      }
      const delayMs = reconnectDelayMs(pass, o, this.random);
      if (delayMs > 0) await this.sleep(token, delayMs);
      for (const server of this.passOrder()) {
        if (token.stopped) throw new ConnectionError('connection closed', 'CONNECTION_CLOSED');
        if (!startup)
          this.emit('reconnect:attempt', { url: server.endpoint.url, attempt: pass + 1, delayMs });
        server.attempts += 1;
        server.lastAttemptAt = Date.now();
        try {
          const wire = await Wire.open(this.wireOptions(server.endpoint));
          if (token.stopped) {
            wire.destroy(new ConnectionError('connection closed', 'CONNECTION_CLOSED'));
            throw new ConnectionError('connection closed', 'CONNECTION_CLOSED');
          }
          server.attempts = 0;
          server.lastConnectedAt = Date.now();
          return { wire, server };
        } catch (err) {
          if (token.stopped) throw err;
          server.lastError = err as Error;
          if (isPermanent(err as Error)) throw err;
          this._logger.debug(
            { url: server.endpoint.url, err: (err as Error).message, pass },
            'failover: broker refused',
          );
        }
      }
    }
  }

  private adopt(wire: Wire, server: ServerState): void {
    this.link = wire;
    this.currentServer = server;
    this._generation += 1;
    const w = wire.welcome;
    this.connectionId = w.connectionId;
    this.clientId = w.clientId;
    this.broker = w.broker;
    this.url = server.endpoint.url;
    this.mergeBrokers(w.brokers);
    wire.on('frame', (f) => this.onFrame(wire, f));
    wire.on('close', (err) => this.onWireClose(wire, err));
    this._logger.info({ url: this.url, connectionId: this.connectionId, broker: w.broker.name }, 'connected');
  }

  private get usesTls(): boolean {
    return this.target.servers.some((s) => s.tls);
  }

  /** updateURIsSupported: add the brokers a broker announced (WELCOME, BROKER_INFO). */
  private mergeBrokers(urls: string[]): void {
    if (!this.target.failover || !this._failover.updateURIsSupported) return;
    for (const u of urls) {
      const ep = endpointFromAnnounced(u);
      if (ep === null) {
        this._logger.warn(
          { url: u },
          'failover: ignoring an announced broker URL that is not tcp:// or ssl://',
        );
        continue;
      }
      // A TLS client takes only ssl:// brokers (never falls back to plain text), a TCP one only tcp://.
      if (ep.tls !== this.usesTls) continue;
      if (this.servers.some((s) => s.endpoint.url === ep.url)) continue;
      this.servers.push({
        endpoint: ep,
        attempts: 0,
        lastAttemptAt: 0,
        lastConnectedAt: 0,
        discovered: true,
      });
      this._logger.info({ url: ep.url }, 'failover: broker added from the cluster list');
    }
  }

  // ----- frames in -------------------------------------------------------------------------------

  private onFrame(wire: Wire, frame: Frame): void {
    if (wire !== this.link) return;
    switch (frame.type) {
      case FrameType.Receipt:
        this.settle(frame.receiptId, frame);
        if (frame.more !== undefined) {
          for (const e of frame.more) {
            const r = e.receiptId;
            this.settle(r, {
              type: FrameType.Receipt,
              channel: frame.channel,
              receiptId: r,
              messageId: e.messageId,
            });
          }
        }
        return;
      case FrameType.TxOutcome:
      case FrameType.Response:
        if (frame.receiptId !== undefined) this.settle(frame.receiptId, frame);
        return;
      case FrameType.Error: {
        if (
          frame.receiptId !== undefined &&
          !frame.fatal &&
          frame.retryable !== false &&
          RESEND_SEND_ON.has(frame.code) &&
          this.resendSend(frame.receiptId, frame.code)
        )
          return;
        const typed = errorFromCode(frame.code, frame.message, frame.retryable);
        // A fatal, retryable error (NOT_MASTER …) with failover: the request is resent elsewhere.
        const keep = frame.fatal && this.target.failover && (typed.retryable || isLinkError(typed));
        if (frame.receiptId !== undefined && !keep) this.fail1(frame.receiptId, typed);
        if (frame.fatal) {
          wire.destroy(typed);
        } else if (frame.receiptId === undefined) {
          this.asyncError(typed);
        }
        return;
      }
      case FrameType.Message:
        this.sessions
          .get(frame.channel)
          ?._deliver(frame.consumerId, frame.message, this._generation, frame.browseEnd === true);
        return;
      case FrameType.BrokerInfo:
        this.broker = frame.broker;
        this.mergeBrokers(frame.brokers);
        return;
      case FrameType.Close:
        wire.destroy(new ConnectionError('the broker closed the connection', 'CONNECTION_CLOSED'));
        return;
      default:
        return;
    }
  }

  /**
   * A send answered IN_DOUBT (its message may be with a consumer but is not stored), or refused for
   * a passing reason of the node or its store (STORE_UNAVAILABLE, FENCED, NOT_MASTER: not stored;
   * docs/errors.md). With failover the producer rides through it as through a lost link: the same
   * message (producer id and sequence) goes out again with the `resent` flag, and the broker stores
   * it once or, if its consumer acknowledged it meanwhile, answers at once. The first resend goes at
   * once (on the same link, ahead of any later send of the application), later ones after the
   * reconnect back-off (the store may be away; a node that stops serving closes the link, and the
   * send goes to the next master); the failover `timeout` bounds the wait. False when the error is
   * the application's to see.
   */
  private resendSend(receiptId: string, code: string): boolean {
    const op = this.sendOps.get(receiptId);
    if (!op || op.transacted || !this.target.failover) return false;
    op.resent = true;
    op.refusals = (op.refusals ?? 0) + 1;
    const gen = op.writtenGen;
    const f = this._failover;
    const delay =
      op.refusals === 1 ? 0 : Math.min(f.maxReconnectDelay, f.initialReconnectDelay * 2 ** (op.refusals - 2));
    this._logger.warn(
      { receiptId, code, attempt: op.refusals, delayMs: delay },
      code === 'IN_DOUBT' ? 'send in doubt: resending it' : 'send refused for a passing reason: resending it',
    );
    this.armSend(op);
    const resend = (): void => {
      // Rewritten on a new link meanwhile (failover), or settled: nothing to do.
      if (this.sendOps.get(receiptId) !== op || op.writtenGen !== gen || !this._isConnected) return;
      this.writeSend(op, this.link!);
    };
    if (delay === 0) resend();
    else setTimeout(resend, delay).unref();
    return true;
  }

  private settle(receiptId: string, frame: Frame): void {
    const op = this.sendOps.get(receiptId);
    if (op) {
      this.sendOps.delete(receiptId);
      clearTimeout(op.timer);
      const id = (frame as { messageId?: unknown }).messageId;
      op.deferred.resolve({ messageId: typeof id === 'string' ? id : (op.message.messageId ?? '') });
      return;
    }
    const call = this.pending.get(receiptId);
    if (call) {
      this.pending.delete(receiptId);
      clearTimeout(call.timer);
      call.deferred.resolve(frame);
    }
  }

  private fail1(receiptId: string, err: Error): void {
    const op = this.sendOps.get(receiptId);
    if (op) {
      this.sendOps.delete(receiptId);
      clearTimeout(op.timer);
      op.deferred.reject(err);
      return;
    }
    const call = this.pending.get(receiptId);
    if (call) {
      this.pending.delete(receiptId);
      clearTimeout(call.timer);
      call.deferred.reject(err);
    }
  }

  /** @internal Report an error that belongs to no call: logged, and emitted if anyone listens. */
  _asyncError(err: Error): void {
    this.asyncError(err);
  }

  private asyncError(err: Error): void {
    this._logger.warn({ err: err.message, code: (err as KeelError).code }, 'asynchronous error');
    if (this.listenerCount('error') > 0) this.emit('error', err);
  }

  // ----- link loss, reconnect and restore --------------------------------------------------------

  private onWireClose(wire: Wire, err: Error): void {
    if (wire !== this.link) return;
    this.link = null;
    if (this.state === 'closing' || this.state === 'closed') {
      this.finishClose();
      return;
    }
    if (!this.target.failover || isPermanent(err)) {
      this._logger.warn({ url: this.url, err: err.message }, 'connection lost');
      this.fail(err);
      return;
    }
    this.interrupt(err);
  }

  private arm(entry: { timer?: NodeJS.Timeout }, onTimeout: (err: TimeoutError) => void, what: string): void {
    const timeout = this._failover.timeout;
    if (timeout < 0 || entry.timer !== undefined) return;
    entry.timer = setTimeout(() => {
      entry.timer = undefined;
      onTimeout(new TimeoutError(`${what}: no broker came back within ${timeout} ms (failover timeout)`));
    }, timeout);
  }

  private interrupt(err: Error): void {
    const wasRestoring = this.state === 'restoring';
    this.state = 'interrupted';
    this._logger.warn({ url: this.url, err: err.message }, 'connection interrupted, failing over');
    for (const call of [...this.pending.values()]) {
      if (call.policy === 'replay') {
        this.armCall(call);
        continue;
      }
      this.pending.delete(call.receiptId);
      if (call.policy === 'resolve') call.deferred.resolve(null);
      else if (call.policy === 'reject') call.deferred.reject(asConnectionError(err));
      else this.orphan(call);
    }
    for (const op of [...this.sendOps.values()]) {
      if (op.transacted && op.writtenGen > 0) {
        this.sendOps.delete(op.receiptId);
        clearTimeout(op.timer);
        op.deferred.reject(op.session._txLostError());
        continue;
      }
      if (op.writtenGen > 0) op.resent = true;
      op.writtenGen = 0;
      this.armSend(op);
    }
    for (const s of this.sessions.values()) s._onInterrupted();
    if (!wasRestoring) this.emit('interrupted', { url: this.url, error: err });
    void this.reconnect();
  }

  private orphan(call: PendingCall): void {
    const key = call.restoreKey ?? call.receiptId;
    this.orphans.set(key, call);
    this.arm(
      call,
      (e) => {
        if (this.orphans.get(key) === call) this.orphans.delete(key);
        call.deferred.reject(e);
      },
      FrameType[call.frame.type] ?? 'request',
    );
  }

  private armCall(call: PendingCall): void {
    this.arm(
      call,
      (e) => {
        if (this.pending.get(call.receiptId) === call) this.pending.delete(call.receiptId);
        call.deferred.reject(e);
      },
      FrameType[call.frame.type] ?? 'request',
    );
  }

  private armSend(op: SendOp): void {
    this.arm(
      op,
      (e) => {
        if (this.sendOps.get(op.receiptId) === op) this.sendOps.delete(op.receiptId);
        op.deferred.reject(e);
      },
      `send to ${op.message.destination}`,
    );
  }

  private async reconnect(): Promise<void> {
    if (this.dial !== null) return;
    const token: DialToken = { stopped: false };
    this.dial = token;
    let wire: Wire;
    try {
      const result = await this.dialLoop(token, false);
      wire = result.wire;
      if (this.dial === token) this.dial = null;
      this.adopt(wire, result.server);
    } catch (err) {
      if (this.dial === token) this.dial = null;
      if (this.state === 'closing' || this.state === 'closed') return;
      this._logger.error({ err: (err as Error).message }, 'failover gave up');
      this.fail(err as Error);
      return;
    }
    this.state = 'restoring';
    try {
      await this.restore(wire);
    } catch (err) {
      if (wire !== this.link) return; // lost again: interrupt() started the next loop
      this._logger.warn(
        { url: this.url, err: (err as Error).message },
        'restore failed, trying the next broker',
      );
      wire.destroy(isLinkError(err) ? (err as Error) : asConnectionError(err as Error));
      return;
    }
    if (wire !== this.link || this.state !== 'restoring') return;
    this.state = 'connected';
    // Work queued between the end of the restore and now.
    this.flushUnwritten(wire);
    for (const w of this.waiters) {
      clearTimeout(w.timer);
      w.deferred.resolve();
    }
    this.waiters.clear();
    this._logger.info({ url: this.url }, 'connection resumed');
    this.emit('resumed', { url: this.url });
  }

  /** Re-create the whole client state on the new broker, then resend what was not confirmed. */
  private async restore(wire: Wire): Promise<void> {
    for (const s of [...this.sessions.values()]) {
      if (s.closed) continue;
      await s._restore(wire);
    }
    this.flushUnwritten(wire);
  }

  /**
   * Write what waited for a link: replayable calls, calls made while there was none, sends
   * (unreceipted ones first, in map order, with their original producerId/producerSeq: the
   * broker's duplicate detection keeps each one single; then the ones buffered meanwhile).
   * Orphans the restore did not claim belong to closed sessions or consumers: resolved.
   */
  private flushUnwritten(wire: Wire): void {
    const gen = this._generation;
    for (const [key, call] of this.orphans) {
      this.orphans.delete(key);
      clearTimeout(call.timer);
      call.timer = undefined;
      if (call.writtenGen !== 0) {
        call.deferred.resolve(null);
        continue;
      }
      this.pending.set(call.receiptId, call);
      this.writeCall(call, wire);
    }
    for (const call of this.pending.values()) {
      if (call.writtenGen === gen || (call.policy !== 'replay' && call.writtenGen !== 0)) continue;
      clearTimeout(call.timer);
      call.timer = undefined;
      this.writeCall(call, wire);
    }
    for (const op of this.sendOps.values()) {
      if (op.writtenGen !== 0) continue;
      clearTimeout(op.timer);
      op.timer = undefined;
      this.writeSend(op, wire);
    }
  }

  private writeCall(call: PendingCall, wire: Wire): void {
    try {
      wire.write(call.frame);
      call.writtenGen = this._generation;
    } catch (err) {
      this.pending.delete(call.receiptId);
      call.deferred.reject(err as Error);
    }
  }

  /** @internal A call made by the restore on the new link, before it counts as connected. */
  _restoreCall(wire: Wire, frame: Frame): Promise<Frame | null> {
    if (wire !== this.link) return Promise.reject(new ConnectionError('connection lost during restore'));
    return this.callNow(frame, 'reject', undefined, wire);
  }

  /** @internal */
  _hasOrphan(key: string): boolean {
    return this.orphans.has(key);
  }

  /** @internal Settle a call that was waiting for the restore (createSession, subscribe …). */
  _takeOrphan(
    key: string,
  ): { frame: Frame; resolve: (f: Frame | null) => void; reject: (e: Error) => void } | null {
    const call = this.orphans.get(key);
    if (!call) return null;
    this.orphans.delete(key);
    clearTimeout(call.timer);
    call.timer = undefined;
    return {
      frame: call.frame,
      resolve: (f) => call.deferred.resolve(f),
      reject: (e) => call.deferred.reject(e),
    };
  }

  /** The end: failover gave up, or no failover. Everything pending rejects with ConnectionError. */
  private fail(cause: Error): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    this.stopDialing(this.dial);
    // INVALID_CLIENT_ID stays itself (ActiveMQ's ExceptionListener gets the InvalidClientIDException):
    // the application must learn that another connection holds, or took over, its client id.
    const err =
      KeelError.isInstance(cause) && cause.code === 'INVALID_CLIENT_ID' ? cause : asConnectionError(cause);
    this.rejectAll(err);
    for (const s of this.sessions.values()) s._onClosed(err);
    this.sessions.clear();
    this.link?.destroy(err);
    this.link = null;
    this.asyncError(err);
    this.emit('close', { error: err });
  }

  private rejectAll(err: Error): void {
    for (const call of this.pending.values()) {
      clearTimeout(call.timer);
      call.deferred.reject(err);
    }
    this.pending.clear();
    for (const call of this.orphans.values()) {
      clearTimeout(call.timer);
      call.deferred.reject(err);
    }
    this.orphans.clear();
    for (const op of this.sendOps.values()) {
      clearTimeout(op.timer);
      op.deferred.reject(err);
    }
    this.sendOps.clear();
    for (const w of this.waiters) {
      clearTimeout(w.timer);
      w.deferred.reject(err);
    }
    this.waiters.clear();
    for (const d of this.replies.values()) d.reject(err);
    this.replies.clear();
  }

  // ----- frames out ------------------------------------------------------------------------------

  /** @internal */
  _nextReceiptId(): string {
    this.receiptCounter += 1;
    return `r${this.receiptCounter}`;
  }

  /** @internal */
  _nextConsumerId(): string {
    this.consumerCounter += 1;
    return `c${this.consumerCounter}`;
  }

  /** @internal Resolves once connected; TimeoutError after the failover timeout; ConnectionError when closed. */
  _whenConnected(what = 'operation'): Promise<void> {
    if (this.state === 'connected') return Promise.resolve();
    if (this.state === 'closing' || this.state === 'closed') {
      return Promise.reject(new ConnectionError('connection closed', 'CONNECTION_CLOSED'));
    }
    const w: { deferred: Deferred<void>; timer?: NodeJS.Timeout } = { deferred: new Deferred<void>() };
    this.waiters.add(w);
    this.arm(
      w,
      (e) => {
        this.waiters.delete(w);
        w.deferred.reject(e);
      },
      what,
    );
    return w.deferred.promise;
  }

  /**
   * @internal Send a frame that asks for a receipt and wait for it (the frame's receiptId is
   * set here). `policy` says what happens to the call if the link drops before the answer:
   * resolve (null), replay (resend after the restore), restore (the restore settles it, keyed
   * by `restoreKey`) or reject. With no link the call waits as if the link had just dropped.
   */
  _call(frame: Frame, policy: LostPolicy, restoreKey?: string): Promise<Frame | null> {
    if (this.state === 'closing' || this.state === 'closed') {
      return Promise.reject(new ConnectionError('connection closed', 'CONNECTION_CLOSED'));
    }
    // Acks and nacks concern deliveries, which start on a new link while the restore still runs.
    const writable =
      this.state === 'connected' ||
      (this._linkUp && (frame.type === FrameType.Ack || frame.type === FrameType.Nack));
    return this.callNow(frame, policy, restoreKey, writable ? this.link : null);
  }

  private callNow(
    frame: Frame,
    policy: LostPolicy,
    restoreKey: string | undefined,
    wire: Wire | null,
  ): Promise<Frame | null> {
    const receiptId = this._nextReceiptId();
    (frame as { receiptId?: string }).receiptId = receiptId;
    const call: PendingCall = {
      receiptId,
      frame,
      policy,
      restoreKey,
      deferred: new Deferred(),
      writtenGen: 0,
    };
    if (wire === null) {
      if (policy === 'resolve') call.deferred.resolve(null);
      else if (policy === 'reject') call.deferred.reject(new ConnectionError('not connected'));
      else if (policy === 'replay') {
        this.pending.set(receiptId, call);
        this.armCall(call);
      } else this.orphan(call);
      return call.deferred.promise;
    }
    this.pending.set(receiptId, call);
    this.writeCall(call, wire);
    return call.deferred.promise;
  }

  /** @internal Write a frame that needs no answer; false when there is no link to write it to. */
  _write(frame: Frame): boolean {
    if (!this._linkUp) return false;
    try {
      this.link!.write(frame);
      return true;
    } catch (err) {
      this.asyncError(err as Error);
      return false;
    }
  }

  /**
   * @internal Send a message and resolve after the broker's RECEIPT (for a persistent message:
   * after the store commit). While disconnected the send waits in a bounded buffer; a send not
   * receipted when the link dropped is resent on the new link with the same producerId/Seq.
   */
  _sendMessage(session: Session, message: Message, transacted: boolean, resent = false): Promise<SendResult> {
    if (this.state === 'closing' || this.state === 'closed') {
      return Promise.reject(new ConnectionError('connection closed', 'CONNECTION_CLOSED'));
    }
    if (!this._isConnected && this.sendOps.size >= this._failover.maxBufferedSends) {
      return Promise.reject(
        new KeelError(
          'RESOURCE_LIMIT',
          `${this.sendOps.size} sends are already waiting for a broker (maxBufferedSends=${this._failover.maxBufferedSends})`,
          { retryable: true },
        ),
      );
    }
    const op: SendOp = {
      receiptId: this._nextReceiptId(),
      session,
      message,
      transacted,
      writtenGen: 0,
      resent: resent || undefined,
      deferred: new Deferred(),
    };
    this.sendOps.set(op.receiptId, op);
    if (this._isConnected) {
      try {
        this.writeSend(op, this.link!);
      } catch {
        // writeSend rejected the op
      }
    } else {
      this.armSend(op);
    }
    return op.deferred.promise;
  }

  private writeSend(op: SendOp, wire: Wire): void {
    try {
      wire.write({
        type: FrameType.Send,
        channel: op.session.channel,
        receiptId: op.receiptId,
        txId: op.transacted ? (op.session._currentTxId ?? undefined) : undefined,
        // Written to an earlier link and never confirmed: the new master may hold it until
        // consumers replayed what they consumed (Broker.ackReplay).
        resent: op.resent,
        message: op.message,
      });
      op.writtenGen = this._generation;
    } catch (err) {
      this.sendOps.delete(op.receiptId);
      op.deferred.reject(err as Error);
    }
  }

  // ----- public API ------------------------------------------------------------------------------

  /** Open a session (a channel): transacted, or with an acknowledgement mode (default 'auto'). */
  async createSession(options: SessionOptions = {}): Promise<Session> {
    const transacted = options.transacted === true;
    const ackMode = options.ackMode ?? 'auto';
    if (!['auto', 'client', 'individual'].includes(ackMode)) {
      throw new InvalidArgumentError(
        `invalid value ${JSON.stringify(ackMode)} for option "ackMode": expected auto, client or individual`,
      );
    }
    await this._whenConnected('createSession');
    let channel = 1;
    while (this.sessions.has(channel)) channel += 1;
    if (channel > 0xffff)
      throw new KeelError('RESOURCE_LIMIT', 'no free session channel (65535 sessions open)');
    const session = new Session(this, channel, transacted, ackMode);
    this.sessions.set(channel, session);
    try {
      await this._call(
        { type: FrameType.SessionOpen, channel, transacted, ackMode },
        'restore',
        `session:${channel}`,
      );
      if (transacted) await session._beginNext();
    } catch (err) {
      if (this.sessions.get(channel) === session) this.sessions.delete(channel);
      session._onClosed(null);
      throw err;
    }
    return session;
  }

  /** @internal */
  _forgetSession(session: Session): void {
    if (this.sessions.get(session.channel) === session) this.sessions.delete(session.channel);
  }

  /** Delete a durable topic subscription of this connection's client id (it must be inactive). */
  async removeDurable(name: string): Promise<void> {
    if (typeof name !== 'string' || name.length === 0) {
      throw new InvalidArgumentError('removeDurable needs a subscription name');
    }
    await this._whenConnected('removeDurable');
    await this._call({ type: FrameType.RemoveDurable, channel: 0, durableName: name }, 'replay');
  }

  /**
   * Request/reply: send `body` to `destination` with a `replyTo` temporary queue
   * (`temp-queue://<unique>`, one per connection) and a fresh correlationId, and resolve with
   * the first reply that carries that correlationId. TimeoutError after `timeoutMs` (30000).
   */
  async request(
    destination: string,
    body: Buffer | string,
    options: RequestOptions = {},
  ): Promise<ReceivedMessage> {
    const timeoutMs = options.timeoutMs ?? 30000;
    if (!Number.isSafeInteger(timeoutMs) || timeoutMs <= 0) {
      throw new InvalidArgumentError(`invalid value ${JSON.stringify(timeoutMs)} for option "timeoutMs"`);
    }
    const rr = await this.replyChannel();
    let producer = this.requestProducers.get(destination);
    if (!producer) {
      producer = rr.session.createProducer(destination, { persistent: options.persistent ?? false });
      this.requestProducers.set(destination, producer);
    }
    const correlationId = randomUUID();
    const reply = new Deferred<ReceivedMessage>();
    this.replies.set(correlationId, reply);
    const timer = setTimeout(() => {
      this.replies.delete(correlationId);
      reply.reject(new TimeoutError(`no reply from ${destination} within ${timeoutMs} ms`));
    }, timeoutMs);
    try {
      await producer.send(body, {
        correlationId,
        replyTo: rr.replyTo,
        properties: options.properties,
        type: options.type,
        persistent: options.persistent ?? false,
      });
      return await reply.promise;
    } finally {
      clearTimeout(timer);
      this.replies.delete(correlationId);
    }
  }

  private replyChannel(): Promise<{ session: Session; consumer: Consumer; replyTo: string }> {
    if (!this.requestSession) {
      const p = (async () => {
        const session = await this.createSession({ ackMode: 'auto' });
        const replyTo = `temp-queue://${randomUUID()}`;
        const consumer = await session.createConsumer(replyTo, { prefetch: 1000 });
        consumer.onMessage((m) => {
          if (m.correlationId === undefined) return;
          this.replies.get(m.correlationId)?.resolve(m);
        });
        return { session, consumer, replyTo };
      })();
      this.requestSession = p;
      p.catch(() => {
        if (this.requestSession === p) this.requestSession = null;
      });
    }
    return this.requestSession;
  }

  /**
   * Close: flush pending acknowledgements, say CLOSE to the broker, close the socket. Every
   * pending call rejects with ConnectionError (CONNECTION_CLOSED); async iterators end.
   */
  async close(): Promise<void> {
    if (this.closeDeferred) return this.closeDeferred.promise;
    if (this.state === 'closed') return;
    this.closeDeferred = new Deferred<void>();
    const wasConnected = this._isConnected;
    // Acknowledgements the application made go out before CLOSE, while the link still counts as
    // up (_write refuses once closing: they were dropped, and the broker redelivered messages
    // already processed to the next consumer).
    for (const s of this.sessions.values()) s._flushAcks();
    this.state = 'closing';
    this.stopDialing(this.dial);
    const wire = this.link;
    if (wire && wasConnected) {
      const bye = this.callNow({ type: FrameType.Close, channel: 0 }, 'resolve', undefined, wire);
      const t = setTimeout(
        () => wire.destroy(new ConnectionError('connection closed', 'CONNECTION_CLOSED')),
        2000,
      );
      try {
        await bye;
      } catch {
        // closing anyway
      }
      clearTimeout(t);
      wire.end();
      wire.destroy(new ConnectionError('connection closed', 'CONNECTION_CLOSED'));
    } else {
      wire?.destroy(new ConnectionError('connection closed', 'CONNECTION_CLOSED'));
    }
    this.finishClose();
    return this.closeDeferred.promise;
  }

  private finishClose(): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    this.link = null;
    this.rejectAll(new ConnectionError('connection closed', 'CONNECTION_CLOSED'));
    for (const s of this.sessions.values()) s._onClosed(null);
    this.sessions.clear();
    this._logger.info({ url: this.url }, 'connection closed');
    this.emit('close', {});
    this.closeDeferred?.resolve();
  }
}

/**
 * Connect to a broker: `tcp://host:port` (one broker, no reconnect) or
 * `failover:(tcp://a:61616,tcp://b:61617)?randomize=false&timeout=5000` (ActiveMQ's failover
 * transport: reconnects, restores sessions and consumers, resends unreceipted sends). Failover
 * options may also be given in `options` (they win over the URL).
 */
export async function connect(url: string, options: ConnectOptions = {}): Promise<Connection> {
  const conn = new Connection(url, options);
  await conn._start();
  return conn;
}
