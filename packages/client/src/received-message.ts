import type { DeliveredMessage, Properties } from '@keel/protocol';
import type { Consumer } from './consumer';

/**
 * A message handed to the application: the delivered message's headers, properties and body,
 * plus `ack()` and `nack()`. What `ack()` means depends on the session: in 'individual' mode it
 * acknowledges this message, in 'client' mode this one and every earlier message of the consumer
 * (JMS CLIENT_ACKNOWLEDGE), in 'auto' mode and in transacted sessions the client acknowledges by
 * itself and `ack()` only does it earlier.
 */
export class ReceivedMessage implements DeliveredMessage {
  readonly messageId: string;
  readonly destination: string;
  readonly persistent: boolean;
  readonly priority: number;
  readonly timestamp: number;
  readonly expiration: number;
  readonly correlationId?: string;
  readonly replyTo?: string;
  readonly type?: string;
  readonly producerId?: string;
  readonly producerSeq?: number;
  readonly brokerPath?: string[];
  readonly originalDestination?: string;
  readonly dlqReason?: string;
  readonly properties: Properties;
  readonly deliveryCount: number;
  readonly redelivered: boolean;
  readonly body: Buffer;
  /** @internal Set once acked or nacked. */
  settled = false;

  /** @internal */
  constructor(
    private readonly consumer: Consumer,
    message: DeliveredMessage,
    /** @internal The connection generation (one per broker connection) it was delivered on. */
    readonly generation: number,
  ) {
    this.messageId = message.messageId;
    this.destination = message.destination;
    this.persistent = message.persistent;
    this.priority = message.priority;
    this.timestamp = message.timestamp;
    this.expiration = message.expiration;
    this.correlationId = message.correlationId;
    this.replyTo = message.replyTo;
    this.type = message.type;
    this.producerId = message.producerId;
    this.producerSeq = message.producerSeq;
    this.brokerPath = message.brokerPath;
    this.originalDestination = message.originalDestination;
    this.dlqReason = message.dlqReason;
    this.properties = message.properties ?? {};
    this.deliveryCount = message.deliveryCount;
    this.redelivered = message.redelivered;
    this.body = message.body;
  }

  /** The body decoded as UTF-8. */
  text(): string {
    return this.body.toString('utf8');
  }

  /** Acknowledge (see the class comment). Resolves when the broker confirmed, where it does. */
  ack(): Promise<void> {
    return this.consumer._ack(this);
  }

  /** Negative acknowledgement: the broker redelivers the message (or dead-letters it). */
  nack(): Promise<void> {
    return this.consumer._nack(this);
  }
}
