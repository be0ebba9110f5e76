import { randomUUID } from 'node:crypto';
import {
  type AckMode,
  type DeliveredMessage,
  type Destination,
  FrameType,
  formatDestination,
  InvalidArgumentError,
  type Message,
  parseDestination,
  TransactionRolledBackError,
  type TxCommitFrame,
  type TxOutcomeFrame,
} from '@keel/protocol';
import { type Connection, isLinkError, type SendResult } from './connection';
import { Consumer, type ConsumerOptions } from './consumer';
import { Producer, type ProducerOptions } from './producer';
import { type BrowseOptions, QueueBrowser } from './queue-browser';
import type { Wire } from './wire';

export interface SessionOptions {
  /** All sends and acks of the session belong to one transaction at a time (commit/rollback). */
  transacted?: boolean;
  /** Ignored in transacted sessions. Default 'auto'. */
  ackMode?: AckMode;
}

/** `queue://x`, `topic://x` … or `{ type, name }`, checked and made canonical. */
export function normalizeDestination(destination: string | Destination): string {
  if (typeof destination === 'string') return formatDestination(parseDestination(destination));
  if (destination && typeof destination === 'object') {
    return formatDestination(parseDestination(`${destination.type}://${destination.name}`));
  }
  throw new InvalidArgumentError('destination must be a string like queue://NAME or { type, name }');
}

/**
 * A session: one channel of the connection, with its acknowledgement mode or its transaction.
 * In a transacted session a transaction is always open: each commit or rollback begins the next
 * one (txId `${connectionId}-${uuid}`).
 */
export class Session {
  closed = false;
  /** @internal */
  readonly _consumers = new Map<string, Consumer>();
  /** @internal Browses in progress (see browse()). */
  readonly _browsers = new Map<string, QueueBrowser>();
  /** @internal */
  _currentTxId: string | null = null;
  /** @internal Acks of the open transaction: they enter the duplicate audit at commit. */
  _txAcked: { consumer: Consumer; id: string }[] = [];
  private txReady: Promise<unknown> = Promise.resolve();
  private txDirty = false;
  /** The open transaction was lost in a failover: the next commit fails. */
  private txFailed = false;

  /** @internal Use connection.createSession(). */
  constructor(
    readonly connection: Connection,
    readonly channel: number,
    readonly transacted: boolean,
    readonly ackMode: AckMode,
  ) {}

  private checkOpen(): void {
    if (this.closed) throw new InvalidArgumentError('the session is closed');
  }

  createProducer(destination: string | Destination, options: ProducerOptions = {}): Producer {
    this.checkOpen();
    return new Producer(this, normalizeDestination(destination), options);
  }

  async createConsumer(destination: string | Destination, options: ConsumerOptions = {}): Promise<Consumer> {
    this.checkOpen();
    const dest = normalizeDestination(destination);
    const prefetch = options.prefetch ?? 1000;
    if (!Number.isSafeInteger(prefetch) || prefetch < 0) {
      throw new InvalidArgumentError(
        `invalid value ${JSON.stringify(prefetch)} for option "prefetch": expected an integer >= 0`,
      );
    }
    if (
      options.durableName !== undefined &&
      (typeof options.durableName !== 'string' || options.durableName === '')
    ) {
      throw new InvalidArgumentError('option "durableName" must be a non-empty string');
    }
    const conn = this.connection;
    await conn._whenConnected('createConsumer');
    this.checkOpen();
    const consumer = new Consumer(this, conn._nextConsumerId(), dest, { ...options, prefetch });
    this._consumers.set(consumer.id, consumer);
    try {
      await conn._call(consumer._subscribeFrame(), 'restore', `consumer:${this.channel}:${consumer.id}`);
    } catch (err) {
      this._consumers.delete(consumer.id);
      consumer._onClosed(null);
      throw err;
    }
    return consumer;
  }

  /**
   * Browse a queue without consuming it (JMS QueueBrowser): resolves once the broker took the
   * browse; iterate the result for the queue's messages as they were at that moment, in delivery
   * order. See QueueBrowser.
   */
  async browse(destination: string | Destination, options: BrowseOptions = {}): Promise<QueueBrowser> {
    this.checkOpen();
    const dest = normalizeDestination(destination);
    const conn = this.connection;
    await conn._whenConnected('browse');
    this.checkOpen();
    const browser = new QueueBrowser(this, conn._nextConsumerId(), dest, options);
    this._browsers.set(browser.id, browser);
    try {
      await conn._call(browser._subscribeFrame(), 'reject');
    } catch (err) {
      browser._onClosed(null);
      throw err;
    }
    return browser;
  }

  /** @internal */
  _forgetBrowser(b: QueueBrowser): void {
    if (this._browsers.get(b.id) === b) this._browsers.delete(b.id);
  }

  /**
   * @internal `resent`: the message may have reached a broker before (a network bridge forwarding
   * a redelivered message); the broker then checks its duplicate detection in the store.
   */
  _send(message: Message, options: { resent?: boolean } = {}): Promise<SendResult> {
    if (this.transacted) this.txDirty = true;
    return this.connection._sendMessage(this, message, this.transacted, options.resent === true);
  }

  /** @internal */
  _noteTxWork(): void {
    this.txDirty = true;
  }

  /** @internal */
  _txLostError(): TransactionRolledBackError {
    return new TransactionRolledBackError(
      'the transaction was lost when the connection failed over; it will not commit, retry it',
    );
  }

  private newTxId(): string {
    return `${this.connection.connectionId}-${randomUUID()}`;
  }

  /** @internal Begin the next transaction. */
  async _beginNext(): Promise<void> {
    const txId = this.newTxId();
    this._currentTxId = txId;
    this.txDirty = false;
    const p = this.connection._call(
      { type: FrameType.TxBegin, channel: this.channel, txId },
      'restore',
      `txbegin:${this.channel}`,
    );
    this.txReady = p;
    await p;
  }

  /**
   * Commit the open transaction and begin the next. Rejects with TransactionRolledBackError
   * (TX_ROLLED_BACK, retryable) when a failover lost the transaction; a commit that was sent but
   * not answered before a drop is resolved by asking the new master (TX_OUTCOME).
   */
  async commit(): Promise<void> {
    this.checkOpen();
    if (!this.transacted) throw new InvalidArgumentError('commit() needs a transacted session');
    for (const c of this._consumers.values()) c._settleDelivered();
    const conn = this.connection;
    await conn._whenConnected('commit');
    await this.txReady.catch(() => {});
    const txId = this._currentTxId!;
    const acked = this._txAcked;
    this._txAcked = [];
    if (this.txFailed) {
      this.txFailed = false;
      try {
        await conn._call({ type: FrameType.TxRollback, channel: this.channel, txId }, 'resolve');
      } catch {
        // the broker's transaction is gone either way
      }
      if (this._currentTxId === txId && !this.closed) await this._beginNext();
      throw this._txLostError();
    }
    try {
      await conn._call(
        { type: FrameType.TxCommit, channel: this.channel, txId },
        'restore',
        `commit:${this.channel}`,
      );
      for (const a of acked) a.consumer._audit.add(a.id);
    } finally {
      if (this._currentTxId === txId && !this.closed) await this._beginNext();
    }
  }

  /** Roll back the open transaction (its acked messages come again) and begin the next. */
  async rollback(): Promise<void> {
    this.checkOpen();
    if (!this.transacted) throw new InvalidArgumentError('rollback() needs a transacted session');
    for (const c of this._consumers.values()) c._settleDelivered();
    const conn = this.connection;
    await conn._whenConnected('rollback');
    await this.txReady.catch(() => {});
    const txId = this._currentTxId!;
    this.txFailed = false;
    this._txAcked = [];
    try {
      await conn._call({ type: FrameType.TxRollback, channel: this.channel, txId }, 'resolve');
    } finally {
      if (this._currentTxId === txId && !this.closed) await this._beginNext();
    }
  }

  /** Close the consumers and the channel. */
  async close(): Promise<void> {
    if (this.closed) return;
    for (const c of [...this._consumers.values()]) await c.close();
    for (const b of [...this._browsers.values()]) await b.close();
    this.closed = true;
    this.connection._forgetSession(this);
    if (this.connection._isConnected) {
      try {
        await this.connection._call({ type: FrameType.SessionClose, channel: this.channel }, 'resolve');
      } catch (err) {
        if (!isLinkError(err)) throw err;
      }
    }
  }

  // ----- internals driven by the connection ---------------------------------------------------

  /** @internal */
  _forgetConsumer(c: Consumer): void {
    if (this._consumers.get(c.id) === c) this._consumers.delete(c.id);
  }

  /** @internal */
  _deliver(consumerId: string, message: DeliveredMessage, generation: number, browseEnd = false): void {
    // Closing: the application must not see a message it could no longer acknowledge.
    if (this.connection._closing) return;
    const consumer = this._consumers.get(consumerId);
    if (consumer) consumer._deliver(message, generation);
    else this._browsers.get(consumerId)?._deliver(message, browseEnd);
  }

  /** @internal */
  _flushAcks(): void {
    for (const c of this._consumers.values()) c._flushAcks();
  }

  /** @internal The link dropped. */
  _onInterrupted(): void {
    if (this.transacted && !this.connection._hasOrphan(`commit:${this.channel}`) && this.txDirty) {
      this.txFailed = true;
      this._txAcked = [];
    }
    for (const c of this._consumers.values()) c._onInterrupted();
    for (const b of [...this._browsers.values()]) b._onInterrupted();
  }

  /** @internal Re-create this session on a new link: channel, transaction, consumers. */
  async _restore(wire: Wire): Promise<void> {
    const conn = this.connection;
    await conn._restoreCall(wire, {
      type: FrameType.SessionOpen,
      channel: this.channel,
      transacted: this.transacted,
      ackMode: this.ackMode,
    });
    conn._takeOrphan(`session:${this.channel}`)?.resolve(null);
    if (this.transacted) {
      const commit = conn._takeOrphan(`commit:${this.channel}`);
      let committed = false;
      if (commit) {
        // The commit went out but its answer was lost with the link: ask the new master.
        const txId = (commit.frame as TxCommitFrame).txId;
        const answer = (await conn._restoreCall(wire, {
          type: FrameType.TxOutcome,
          channel: this.channel,
          txId,
        })) as TxOutcomeFrame | null;
        committed = answer?.outcome === 'committed';
        this.txFailed = false;
      }
      const txId = this.newTxId();
      this._currentTxId = txId;
      this.txDirty = false;
      await conn._restoreCall(wire, { type: FrameType.TxBegin, channel: this.channel, txId });
      this.txReady = Promise.resolve();
      conn._takeOrphan(`txbegin:${this.channel}`)?.resolve(null);
      if (commit) {
        if (committed) commit.resolve(null);
        else {
          this._txAcked = [];
          commit.reject(
            new TransactionRolledBackError(
              'the connection failed over during commit and the new master has no record of it: rolled back, retry it',
            ),
          );
        }
      }
    }
    for (const c of [...this._consumers.values()]) {
      const key = `consumer:${this.channel}:${c.id}`;
      try {
        // Acks the old master may have lost go first, while the new master holds recovered messages.
        if (c._acked.length > 0) await conn._restoreCall(wire, c._ackReplayFrame());
        await conn._restoreCall(wire, c._subscribeFrame());
        conn._takeOrphan(key)?.resolve(null);
      } catch (err) {
        if (isLinkError(err)) throw err;
        this._consumers.delete(c.id);
        c._onClosed(err as Error);
        conn._takeOrphan(key)?.reject(err as Error);
        conn._asyncError(err as Error);
      }
    }
  }

  /** @internal The connection is gone (err) or closed (null). */
  _onClosed(err: Error | null): void {
    this.closed = true;
    for (const c of this._consumers.values()) c._onClosed(err);
    this._consumers.clear();
    for (const b of [...this._browsers.values()]) b._onClosed(err);
  }
}
