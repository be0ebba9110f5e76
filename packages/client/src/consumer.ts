import {
  type AckFrame,
  type DeliveredMessage,
  FrameType,
  InvalidArgumentError,
  type RequestFrame,
  type SubscribeFrame,
} from '@keel/protocol';
import { Deferred } from './deferred';
import { type AuditedMessage, MessageAudit } from './message-audit';
import { ReceivedMessage } from './received-message';
import type { Session } from './session';

/** Acknowledged ids a consumer remembers for replay after a failover. */
const RESOLVED: Promise<void> = Promise.resolve();
const noop = (): void => {};

export const ACK_REPLAY_DEPTH = 5000;

export interface ConsumerOptions {
  /** Window of unacknowledged messages the broker may push (ActiveMQ prefetch). Default 1000. */
  prefetch?: number;
  /** Durable topic subscription name (needs a clientId on the connection). */
  durableName?: string;
  /** Do not receive messages this connection sent (topics). */
  noLocal?: boolean;
  /** JMS message selector (docs/protocol.md section 5.3); an invalid one fails with INVALID_SELECTOR. */
  selector?: string;
  /** ActiveMQ exclusive consumer: while on the queue it gets every message; the next takes over when it leaves. */
  exclusive?: boolean;
  /** ActiveMQ consumer priority -128..127 (default 0): higher ones get messages while they have credit. */
  priority?: number;
}

export type MessageListener = (message: ReceivedMessage) => void | Promise<void>;
export type ConsumerErrorListener = (err: Error) => void;

/**
 * Receives from one destination. Use it as an async iterator (`for await (const m of consumer)`)
 * or with a listener (`consumer.on('message', cb)` / `consumer.onMessage(cb)`), not both.
 * Messages come one at a time, in order: a listener that returns a promise is awaited before the
 * next message. In 'auto' mode (and in transacted sessions) the client acknowledges a message
 * after its listener returned, or when the iterator moves past it.
 */
export class Consumer implements AsyncIterable<ReceivedMessage> {
  readonly destination: string;
  readonly prefetch: number;
  readonly durableName?: string;
  readonly noLocal: boolean;
  readonly selector?: string;
  readonly exclusive: boolean;
  readonly priority?: number;
  closed = false;
  /** @internal Ids the application acknowledged (failover duplicate suppression). */
  readonly _audit: MessageAudit;

  private buffer: ReceivedMessage[] = [];
  private readonly listeners: MessageListener[] = [];
  private readonly errorListeners: ConsumerErrorListener[] = [];
  private iterating = false;
  private readonly waiters: Deferred<IteratorResult<ReceivedMessage>>[] = [];
  private lastYielded: ReceivedMessage | null = null;
  /** The message a listener is processing. */
  private current: ReceivedMessage | null = null;
  private dispatching = false;
  /** Delivered to the application, not yet acked (client/individual modes), in delivery order. */
  private readonly unacked = new Set<ReceivedMessage>();
  private pendingAcks: AuditedMessage[] = [];
  /** Individual acks gathering for one ACK frame (see individualAck). */
  private ackBatchPending: { gen: number; messages: ReceivedMessage[]; done: Promise<unknown> } | null = null;
  private flushScheduled = false;
  private endError: Error | null = null;
  private readonly ackBatch: number;

  /** @internal Use session.createConsumer(). */
  constructor(
    readonly session: Session,
    readonly id: string,
    destination: string,
    options: ConsumerOptions & { prefetch: number },
  ) {
    this.destination = destination;
    this.prefetch = options.prefetch;
    this.durableName = options.durableName;
    this.noLocal = options.noLocal === true;
    this.selector = options.selector;
    this.exclusive = options.exclusive === true;
    this.priority = options.priority;
    this._audit = new MessageAudit(session.connection._auditDepth);
    this.ackBatch = Math.max(1, Math.floor(this.prefetch / 2));
  }

  private get mode(): 'auto' | 'client' | 'individual' | 'tx' {
    return this.session.transacted ? 'tx' : this.session.ackMode;
  }

  /** @internal */
  /**
   * @internal Ids this consumer acknowledged (outside transactions), most recent last. After a
   * failover they are replayed to the new master (REQUEST ack-replay) before the consumer
   * subscribes again: an ack that died with the old master must not let the message go to another
   * consumer.
   */
  readonly _acked: AuditedMessage[] = [];

  /** @internal */
  _noteAcked(messages: readonly AuditedMessage[]): void {
    for (const m of messages) this._noteAcked1(m);
  }

  /** @internal */
  _noteAcked1(m: AuditedMessage): void {
    // The keys only: a ReceivedMessage kept here would keep its body alive for thousands of acks.
    this._acked.push({ messageId: m.messageId, producerId: m.producerId, producerSeq: m.producerSeq });
    // Trimmed in bulk once it holds twice the depth: a splice per ack would copy the whole list.
    if (this._acked.length >= 2 * ACK_REPLAY_DEPTH)
      this._acked.splice(0, this._acked.length - ACK_REPLAY_DEPTH);
  }

  /**
   * @internal The REQUEST that replays acknowledgements (`acked` by default: every remembered
   * one): their ids, and the producer keys of those that have one, so the new master can drop a
   * producer's resend of a message the old one delivered before storing it.
   */
  _ackReplayFrame(acked: readonly AuditedMessage[] = this._acked): RequestFrame {
    // Parallel lists (REQUEST args hold plain values): producerIds[i] sent producerSeqs[i].
    const producerIds: string[] = [];
    const producerSeqs: number[] = [];
    for (const m of acked) {
      if (m.producerId !== undefined && m.producerSeq !== undefined) {
        producerIds.push(m.producerId);
        producerSeqs.push(m.producerSeq);
      }
    }
    return {
      type: FrameType.Request,
      channel: this.session.channel,
      receiptId: '',
      op: 'ack-replay',
      args: {
        destination: this.destination,
        ...(this.durableName ? { durableName: this.durableName } : {}),
        messageIds: acked.map((m) => m.messageId),
        ...(producerIds.length > 0 ? { producerIds, producerSeqs } : {}),
      },
    };
  }

  _subscribeFrame(): SubscribeFrame {
    return {
      type: FrameType.Subscribe,
      channel: this.session.channel,
      consumerId: this.id,
      destination: this.destination,
      prefetch: this.prefetch,
      durableName: this.durableName,
      noLocal: this.noLocal || undefined,
      selector: this.selector,
      ...(this.exclusive ? { exclusive: true } : {}),
      ...(this.priority !== undefined ? { priority: this.priority } : {}),
    };
  }

  // ----- listeners and iteration ------------------------------------------------------------------

  on(event: 'message', listener: MessageListener): this;
  on(event: 'error', listener: ConsumerErrorListener): this;
  on(event: 'message' | 'error', listener: MessageListener | ConsumerErrorListener): this {
    if (event === 'error') {
      this.errorListeners.push(listener as ConsumerErrorListener);
      return this;
    }
    if (event !== 'message') throw new InvalidArgumentError(`unknown consumer event "${String(event)}"`);
    if (this.iterating)
      throw new InvalidArgumentError('this consumer is iterated; use a listener or the iterator, not both');
    this.listeners.push(listener as MessageListener);
    this.pump();
    return this;
  }

  /** Same as `on('message', listener)`. */
  onMessage(listener: MessageListener): this {
    return this.on('message', listener);
  }

  off(event: 'message' | 'error', listener: MessageListener | ConsumerErrorListener): this {
    const list: unknown[] = event === 'message' ? this.listeners : this.errorListeners;
    const i = list.indexOf(listener);
    if (i >= 0) list.splice(i, 1);
    return this;
  }

  [Symbol.asyncIterator](): AsyncIterator<ReceivedMessage> {
    if (this.listeners.length > 0) {
      throw new InvalidArgumentError(
        'this consumer has a message listener; use a listener or the iterator, not both',
      );
    }
    this.iterating = true;
    return {
      next: () => this.next(),
      return: async () => {
        this._ackLastYielded();
        this._flushAcks();
        return { done: true, value: undefined };
      },
    };
  }

  private next(): Promise<IteratorResult<ReceivedMessage>> {
    this._ackLastYielded();
    // Once the connection is closing, a buffered message is not handed out: its ack could no
    // longer be sent, and the broker would give it to the next consumer as well. The iterator
    // waits for the close, which ends it.
    const m = this.session.connection._closing ? undefined : this.buffer.shift();
    if (m) {
      this.lastYielded = m;
      return Promise.resolve({ value: m, done: false });
    }
    if (this.closed) {
      return this.endError
        ? Promise.reject(this.endError)
        : Promise.resolve({ value: undefined, done: true });
    }
    const d = new Deferred<IteratorResult<ReceivedMessage>>();
    this.waiters.push(d);
    return d.promise;
  }

  /** @internal In auto mode and transactions, moving past a message acknowledges it. */
  _ackLastYielded(): void {
    const m = this.lastYielded;
    this.lastYielded = null;
    if (m && (this.mode === 'auto' || this.mode === 'tx')) this.autoAck(m);
  }

  private pump(): void {
    if (this.listeners.length > 0) {
      if (!this.dispatching) void this.dispatchLoop();
      return;
    }
    while (this.waiters.length > 0 && this.buffer.length > 0) {
      const m = this.buffer.shift()!;
      this.lastYielded = m;
      this.waiters.shift()!.resolve({ value: m, done: false });
    }
  }

  /** Hand the buffered messages to the listeners, synchronously until a listener returns a promise. */
  private dispatchLoop(): void {
    this.dispatching = true;
    try {
      const conn = this.session.connection;
      while (!this.closed && !conn._closing && this.buffer.length > 0 && this.listeners.length > 0) {
        const pending = this.dispatchOne(this.buffer.shift()!);
        if (pending !== undefined) {
          // An async listener: the next message waits until it settled.
          void pending.then(() => {
            this.dispatching = false;
            this.pump();
          });
          return;
        }
      }
    } catch (err) {
      this.current = null;
      this.dispatching = false;
      throw err;
    }
    this.dispatching = false;
  }

  /** Give `m` to every listener; a promise when one of them returned one (the rest follow it). */
  private dispatchOne(m: ReceivedMessage): Promise<void> | undefined {
    this.current = m;
    // A copy only when there are several: a listener may remove itself while it runs.
    const listeners = this.listeners.length === 1 ? this.listeners : [...this.listeners];
    for (let i = 0; i < listeners.length; i++) {
      let r: unknown;
      try {
        r = listeners[i]!(m);
      } catch (err) {
        this.afterDispatch(m, err);
        return undefined;
      }
      if (r && typeof (r as Promise<void>).then === 'function') {
        return this.dispatchRest(m, r as Promise<void>, listeners, i + 1);
      }
    }
    this.afterDispatch(m, undefined);
    return undefined;
  }

  private async dispatchRest(
    m: ReceivedMessage,
    first: Promise<void>,
    listeners: readonly MessageListener[],
    next: number,
  ): Promise<void> {
    let failure: unknown;
    try {
      await first;
      for (let i = next; i < listeners.length; i++) {
        const r = listeners[i]!(m);
        if (r && typeof (r as Promise<void>).then === 'function') await r;
      }
    } catch (err) {
      failure = err;
    }
    this.afterDispatch(m, failure);
  }

  /** After the listeners: a failure is reported (and in auto mode redelivered); else auto-ack. */
  private afterDispatch(m: ReceivedMessage, failure: unknown): void {
    this.current = null;
    if (failure !== undefined) {
      this.reportError(failure instanceof Error ? failure : new Error(String(failure)));
      // auto mode: a failed listener means "not processed", so the broker redelivers.
      if (this.mode === 'auto') void this._nack(m).catch(() => {});
    } else if (this.mode === 'auto' || this.mode === 'tx') {
      this.autoAck(m);
    }
  }

  private reportError(err: Error): void {
    if (this.errorListeners.length === 0) {
      this.session.connection._asyncError(err);
      return;
    }
    for (const l of this.errorListeners) {
      try {
        l(err);
      } catch {
        // an error listener that throws is ignored
      }
    }
  }

  // ----- deliveries and acknowledgements ----------------------------------------------------------

  /** @internal A MESSAGE frame for this consumer. */
  _deliver(message: DeliveredMessage, generation: number): void {
    if (this.closed) return;
    const conn = this.session.connection;
    if (this._audit.knows(message)) {
      // Failover: the new master redelivered a message the application already acknowledged
      // (the ack was lost with the old link), or a producer resent one the old master had
      // delivered before storing it. Do not hand it over again; acknowledge it again.
      conn._logger.debug(
        { messageId: message.messageId, consumer: this.id },
        'duplicate delivery suppressed',
      );
      conn._write({
        type: FrameType.Ack,
        channel: this.session.channel,
        consumerId: this.id,
        messageIds: [message.messageId],
      });
      return;
    }
    const m = new ReceivedMessage(this, message, generation);
    if (this.mode === 'client' || this.mode === 'individual') this.unacked.add(m);
    this.buffer.push(m);
    this.pump();
  }

  /** Auto mode / transactions: acknowledge after processing, batched. */
  private autoAck(m: ReceivedMessage): void {
    if (m.settled) return;
    m.settled = true;
    const conn = this.session.connection;
    const tx = this.mode === 'tx';
    if (m.generation !== conn._generation || !conn._linkUp) {
      // Delivered on a previous link. In a transaction: that transaction is lost anyway and the
      // broker redelivers. Otherwise: drop the ack if the audit knows the id, else send it (it
      // acknowledges the redelivery if that came already) and remember it.
      if (tx || this._audit.knows(m)) return;
      this._audit.addMessage(m);
      this._noteAcked([m]);
      // Redelivered to us already: the ACK consumes it. Still held by the new master as a
      // recovered message: the ack-replay removes it.
      conn._write({
        type: FrameType.Ack,
        channel: this.session.channel,
        consumerId: this.id,
        messageIds: [m.messageId],
      });
      if (conn._linkUp) void conn._call(this._ackReplayFrame([m]), 'resolve').catch(() => {});
      return;
    }
    if (tx) {
      this.session._txAcked.push({ consumer: this, id: m.messageId });
      this.session._noteTxWork();
    } else {
      this._audit.addMessage(m);
    }
    this.pendingAcks.push(m);
    if (this.pendingAcks.length >= this.ackBatch) this._flushAcks();
    else if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(() => {
        this.flushScheduled = false;
        this._flushAcks();
      });
    }
  }

  /** @internal Write the batched acks (no receipt). */
  _flushAcks(): void {
    if (this.pendingAcks.length === 0) return;
    const acked = this.pendingAcks;
    this.pendingAcks = [];
    const ids = acked.map((m) => m.messageId);
    const tx = this.mode === 'tx';
    if (!tx) this._noteAcked(acked);
    this.session.connection._write({
      type: FrameType.Ack,
      channel: this.session.channel,
      consumerId: this.id,
      messageIds: ids,
      txId: tx ? (this.session._currentTxId ?? undefined) : undefined,
    });
  }

  /**
   * @internal Before a commit or rollback: the messages the application has (the one the
   * iterator last gave, the one a listener is processing) belong to the ending transaction, so
   * a rollback makes the broker redeliver them and a commit consumes them.
   */
  _settleDelivered(): void {
    this._ackLastYielded();
    if (this.current && (this.mode === 'auto' || this.mode === 'tx')) this.autoAck(this.current);
    this._flushAcks();
  }

  /** @internal ReceivedMessage.ack() */
  _ack(m: ReceivedMessage): Promise<void> {
    // The common case first, without the lists of the general path: one message, individual
    // mode, delivered on the current link and not acknowledged before.
    if (this.mode === 'individual' && this.unacked.has(m)) {
      const conn = this.session.connection;
      const gen = conn._generation;
      if (conn._linkUp && m.generation === gen && !this._audit.knows(m)) {
        this.unacked.delete(m);
        m.settled = true;
        this._audit.addMessage(m);
        this._noteAcked1(m);
        return this.individualAck(m, gen) as Promise<void>;
      }
    }
    return this.ackGeneral(m);
  }

  private async ackGeneral(m: ReceivedMessage): Promise<void> {
    const mode = this.mode;
    if (mode === 'auto' || mode === 'tx') {
      if (this.lastYielded === m) this.lastYielded = null;
      this.autoAck(m);
      return;
    }
    if (!this.unacked.has(m)) return;
    const list: ReceivedMessage[] = [];
    if (mode === 'client') {
      // Cumulative (JMS CLIENT_ACKNOWLEDGE): this message and every earlier one.
      for (const x of this.unacked) {
        list.push(x);
        if (x === m) break;
      }
    } else {
      list.push(m);
    }
    const conn = this.session.connection;
    const live = conn._linkUp;
    const gen = conn._generation;
    const current: ReceivedMessage[] = [];
    const old: ReceivedMessage[] = [];
    for (const x of list) {
      this.unacked.delete(x);
      x.settled = true;
      // An id the audit knows was acknowledged on this link already (an earlier delivery of
      // the same message, acked after the failover): nothing to send for it.
      const known = this._audit.knows(x);
      if (!known) {
        if (live && x.generation === gen) current.push(x);
        else old.push(x);
      }
      this._audit.addMessage(x);
    }
    const calls: Promise<unknown>[] = [];
    const base = { type: FrameType.Ack, channel: this.session.channel, consumerId: this.id } as const;
    this._noteAcked([...current, ...old]);
    if (current.length > 0) {
      calls.push(
        mode === 'client'
          ? this.sendAck([current[current.length - 1]!.messageId], true)
          : this.individualAck(current, gen),
      );
    }
    // Messages from a previous link: if the new master redelivered one to us already, the ACK
    // consumes it; if it still holds it as a recovered message, the ack-replay removes it.
    if (old.length > 0 && live) {
      calls.push(conn._call({ ...base, messageIds: old.map((x) => x.messageId) }, 'resolve'));
      calls.push(conn._call(this._ackReplayFrame(old), 'resolve'));
    }
    await Promise.all(calls);
  }

  /** An ACK on the current link: confirmed by the broker, or one-way with `sendAcksAsync`. */
  private sendAck(messageIds: string[], cumulative?: true): Promise<unknown> {
    const conn = this.session.connection;
    const frame: AckFrame = {
      type: FrameType.Ack,
      channel: this.session.channel,
      consumerId: this.id,
      messageIds,
    };
    if (cumulative) frame.cumulative = true;
    if (!conn._sendAcksAsync) return conn._call(frame, 'resolve');
    conn._write(frame);
    return Promise.resolve();
  }

  /**
   * Individual acks made together (before the next microtask checkpoint) travel in one ACK frame
   * with one confirmation: an application that acks each message as it handles it would otherwise
   * cost an ACK and a RESPONSE per message.
   */
  private individualAck(messages: ReceivedMessage | ReceivedMessage[], gen: number): Promise<unknown> {
    let batch = this.ackBatchPending;
    if (batch === null || batch.gen !== gen) {
      const b = { gen, messages: [] as ReceivedMessage[], done: RESOLVED as Promise<unknown> };
      // A microtask, not the next loop turn: a lone ack (one message in flight) is not delayed.
      if (this.session.connection._sendAcksAsync) {
        // One-way acks confirm nothing: no promise to chain, the ack resolves at once.
        queueMicrotask(() => void this.flushIndividual(b).catch(noop));
      } else {
        b.done = Promise.resolve().then(() => this.flushIndividual(b));
      }
      this.ackBatchPending = batch = b;
    }
    if (Array.isArray(messages)) batch.messages.push(...messages);
    else batch.messages.push(messages);
    return batch.done;
  }

  private flushIndividual(b: { gen: number; messages: ReceivedMessage[] }): Promise<unknown> {
    if (this.ackBatchPending === b) this.ackBatchPending = null;
    const conn = this.session.connection;
    const ids = b.messages.map((x) => x.messageId);
    if (conn._linkUp && conn._generation === b.gen) return this.sendAck(ids);
    // The link changed in between: acknowledge on the new one and replay, as for old deliveries.
    if (!conn._linkUp) return Promise.resolve();
    return Promise.all([
      conn._call(
        { type: FrameType.Ack, channel: this.session.channel, consumerId: this.id, messageIds: ids },
        'resolve',
      ),
      conn._call(this._ackReplayFrame(b.messages), 'resolve'),
    ]);
  }

  /** @internal ReceivedMessage.nack() */
  async _nack(m: ReceivedMessage): Promise<void> {
    if (m.settled) return;
    m.settled = true;
    if (this.lastYielded === m) this.lastYielded = null;
    this.unacked.delete(m);
    const conn = this.session.connection;
    if (m.generation !== conn._generation || !conn._linkUp) return; // redelivered anyway
    await conn._call(
      { type: FrameType.Nack, channel: this.session.channel, consumerId: this.id, messageIds: [m.messageId] },
      'resolve',
    );
  }

  /** @internal The link dropped: what was not handed over yet will be redelivered by the new master. */
  _onInterrupted(): void {
    for (const m of this.buffer) this.unacked.delete(m);
    this.buffer = [];
    this.pendingAcks = [];
  }

  /** @internal The connection is gone (err) or closed (null); iterators end. */
  _onClosed(err: Error | null): void {
    if (this.closed && this.waiters.length === 0) return;
    this.closed = true;
    this.endError = err;
    this.buffer = [];
    for (const w of this.waiters.splice(0)) {
      if (err) w.reject(err);
      else w.resolve({ value: undefined, done: true });
    }
  }

  /** Stop receiving: pending acks are flushed, the broker redelivers what was not acknowledged. */
  async close(): Promise<void> {
    if (this.closed) return;
    this._ackLastYielded();
    this._flushAcks();
    this._onClosed(null);
    this.session._forgetConsumer(this);
    const conn = this.session.connection;
    if (conn._isConnected) {
      await conn._call(
        { type: FrameType.Unsubscribe, channel: this.session.channel, consumerId: this.id },
        'resolve',
      );
    }
  }
}
