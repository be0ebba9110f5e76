import { type DeliveredMessage, deliveredMessage } from '@keel/protocol';
import { GROUP_FIRST_FOR_CONSUMER } from './dispatch/message-groups';
import { formatMessageId } from './message-ids';
import type { MessageQueue, QueueConsumer } from './message-queue';
import type { QueueEntry } from './queue-entry';
import type { MessageSelector } from './selector';

export interface Delivery {
  consumerId: string;
  message: DeliveredMessage;
  /** The end of a browse (queue-browser.ts): `message` is an empty placeholder, not a message. */
  browseEnd?: boolean;
}

/** Where a consumer's deliveries go (the listener writes a frame). */
export type DeliverySink = (delivery: Delivery) => void;

export interface InflightRef {
  entry: QueueEntry;
  queue: MessageQueue;
}

export interface ConsumerFlow {
  /** False while the connection's transport is congested (socket.write returned false). */
  readonly writable: boolean;
}

/**
 * A consumer: credit-based flow control (prefetch), the messages it holds in flight in delivery
 * order, and the queues it takes from (one, or several for a wildcard or a durable subscription).
 */
export class BrokerConsumer implements QueueConsumer {
  credit: number;
  readonly inflight = new Map<number, InflightRef>();
  readonly queues: MessageQueue[] = [];
  delivered = 0;
  closed = false;
  /** ActiveMQ exclusive consumer (SubscribeOptions.exclusive); set before it attaches. */
  exclusive = false;
  /** Its message selector on a queue (SubscribeOptions.selector); set before it attaches. */
  selector: MessageSelector | null = null;

  constructor(
    readonly id: string,
    readonly priority: number,
    prefetch: number,
    /** Broker-side auto acknowledge: the message is done once written (STOMP ack:auto). */
    readonly ackOnDelivery: boolean,
    private readonly flow: ConsumerFlow,
    private readonly sink: DeliverySink,
    /** Skip messages sent by this connection (noLocal); undefined = deliver all. */
    readonly noLocalConnection?: string,
  ) {
    this.credit = prefetch;
  }

  canTake(): boolean {
    return !this.closed && this.credit > 0 && this.flow.writable;
  }

  take(queue: MessageQueue, entry: QueueEntry, groupFirst = false): void {
    // Prefetch is a window of unacknowledged messages (ActiveMQ): an ack or nack gives the credit
    // back; a consumer the broker acknowledges for on delivery keeps its credit.
    if (!this.ackOnDelivery) this.credit -= 1;
    this.delivered += 1;
    const message = deliveredMessage(
      entry.message,
      formatMessageId(entry.id),
      entry.deliveryCount,
      entry.redelivered || entry.deliveryCount > 0,
    );
    // ActiveMQ "Message Groups": the first message of a group this consumer owns says so.
    if (groupFirst) message.properties = { ...message.properties, [GROUP_FIRST_FOR_CONSUMER]: true };
    if (this.ackOnDelivery) void queue.acknowledge(entry);
    else this.inflight.set(entry.id, { entry, queue });
    this.sink({ consumerId: this.id, message });
  }

  addCredit(n: number): void {
    if (!(n > 0)) return;
    this.credit = Math.min(this.credit + n, Number.MAX_SAFE_INTEGER);
    this.wake();
  }

  /** Ask every queue this consumer takes from to dispatch (credit or writability changed). */
  wake(): void {
    for (const q of this.queues) q.scheduleDispatch();
  }

  attach(queue: MessageQueue): void {
    this.queues.push(queue);
    queue.addConsumer(this);
  }

  /** In-flight refs up to and including `id` in delivery order (cumulative ack), or just `id`. */
  select(id: number, cumulative: boolean): InflightRef[] {
    if (!cumulative) {
      const ref = this.inflight.get(id);
      return ref ? [ref] : [];
    }
    if (!this.inflight.has(id)) return [];
    const out: InflightRef[] = [];
    for (const [k, ref] of this.inflight) {
      out.push(ref);
      if (k === id) break;
    }
    return out;
  }

  /** Detach from queues and hand back everything still in flight. */
  detach(): InflightRef[] {
    this.closed = true;
    for (const q of this.queues) q.removeConsumer(this);
    const refs = [...this.inflight.values()];
    this.inflight.clear();
    return refs;
  }
}
