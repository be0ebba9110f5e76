import {
  ConnectionError,
  type DeliveredMessage,
  FrameType,
  InvalidArgumentError,
  type SubscribeFrame,
} from '@keel/protocol';
import { Deferred } from './deferred';
import type { Session } from './session';

/** ActiveMQ's queue browser prefetch (ActiveMQPrefetchPolicy.DEFAULT_QUEUE_BROWSER_PREFETCH). */
export const DEFAULT_BROWSE_PREFETCH = 500;

export interface BrowseOptions {
  /** Messages the broker may send ahead of the application (credit). Default 500. */
  prefetch?: number;
}

/**
 * Looks at a queue without consuming it (JMS QueueBrowser): `for await (const m of browser)` yields
 * the messages the queue held when the browse started, in delivery order, and ends after the
 * broker's end marker (docs/protocol.md section 5.1). Nothing is acknowledged: every message stays
 * on the queue. The broker sends up to `prefetch` messages ahead; the browser gives credit back as
 * the application takes them. A failover during the browse ends it with a ConnectionError (browse
 * again: the new master holds the queue). Iterate once.
 */
export class QueueBrowser implements AsyncIterable<DeliveredMessage> {
  readonly destination: string;
  readonly prefetch: number;
  closed = false;
  private buffer: DeliveredMessage[] = [];
  private ended = false;
  private endError: Error | null = null;
  private waiter: Deferred<IteratorResult<DeliveredMessage>> | null = null;
  /** Messages the application took since the last CREDIT. */
  private taken = 0;

  /** @internal Use session.browse(). */
  constructor(
    readonly session: Session,
    readonly id: string,
    destination: string,
    options: BrowseOptions,
  ) {
    this.destination = destination;
    this.prefetch = options.prefetch ?? DEFAULT_BROWSE_PREFETCH;
    if (!Number.isSafeInteger(this.prefetch) || this.prefetch < 1) {
      throw new InvalidArgumentError(
        `invalid value ${JSON.stringify(options.prefetch)} for option "prefetch": expected an integer >= 1`,
      );
    }
  }

  /** @internal */
  _subscribeFrame(): SubscribeFrame {
    return {
      type: FrameType.Subscribe,
      channel: this.session.channel,
      consumerId: this.id,
      destination: this.destination,
      prefetch: this.prefetch,
      browse: true,
    };
  }

  /** @internal A MESSAGE for this browser; `end`: the broker's end marker. */
  _deliver(message: DeliveredMessage, end: boolean): void {
    if (this.closed || this.ended) return;
    if (end) {
      this.ended = true;
      // The broker keeps a finished browse subscribed (ActiveMQ): let it go.
      this.unsubscribe().catch(() => {}); // a connection gone meanwhile took the subscription along
    } else this.buffer.push(message);
    this.pump();
  }

  /** @internal The link dropped: the browse cannot go on where it was. */
  _onInterrupted(): void {
    this._onClosed(new ConnectionError('the connection failed over during a browse; browse again'));
  }

  /** @internal The connection is gone (err) or closed (null). */
  _onClosed(err: Error | null): void {
    if (this.closed) return;
    this.closed = true;
    this.session._forgetBrowser(this);
    if (!this.ended) this.endError = err;
    this.ended = true;
    this.pump();
  }

  /** Stop browsing (also what leaving a `for await` early does). */
  async close(): Promise<void> {
    if (this.closed) return;
    const wasEnded = this.ended;
    this.ended = true;
    this.buffer = [];
    this.pump();
    if (!wasEnded) await this.unsubscribe();
  }

  [Symbol.asyncIterator](): AsyncIterator<DeliveredMessage> {
    return {
      next: () => this.next(),
      return: async () => {
        await this.close();
        return { done: true, value: undefined };
      },
    };
  }

  private next(): Promise<IteratorResult<DeliveredMessage>> {
    const m = this.buffer.shift();
    if (m !== undefined) {
      this.credit();
      return Promise.resolve({ value: m, done: false });
    }
    if (this.ended) {
      return this.endError
        ? Promise.reject(this.endError)
        : Promise.resolve({ value: undefined, done: true });
    }
    this.waiter = new Deferred();
    return this.waiter.promise;
  }

  private pump(): void {
    const w = this.waiter;
    if (w === null) return;
    const m = this.buffer.shift();
    if (m !== undefined) {
      this.waiter = null;
      this.credit();
      w.resolve({ value: m, done: false });
    } else if (this.ended) {
      this.waiter = null;
      if (this.endError) w.reject(this.endError);
      else w.resolve({ value: undefined, done: true });
    }
  }

  /** Give the broker credit for what the application took, half a prefetch at a time. */
  private credit(): void {
    this.taken += 1;
    if (this.ended || this.taken < Math.max(1, Math.floor(this.prefetch / 2))) return;
    const credit = this.taken;
    this.taken = 0;
    this.session.connection._write({
      type: FrameType.Credit,
      channel: this.session.channel,
      consumerId: this.id,
      credit,
    });
  }

  private async unsubscribe(): Promise<void> {
    this.closed = true;
    this.session._forgetBrowser(this);
    const conn = this.session.connection;
    if (!conn._isConnected) return;
    await conn._call(
      { type: FrameType.Unsubscribe, channel: this.session.channel, consumerId: this.id },
      'resolve',
    );
  }
}
