/**
 * A message as it travels: headers that brokers and clients understand, user properties, and an
 * opaque binary body. Field names follow JMS/ActiveMQ (JMSPriority → priority, JMSExpiration →
 * expiration …).
 */
export type PropertyValue = string | number | boolean | null;
export type Properties = Record<string, PropertyValue>;

export const DEFAULT_PRIORITY = 4;
export const MIN_PRIORITY = 0;
export const MAX_PRIORITY = 9;

export interface MessageHeaders {
  /** Assigned by the broker when the message is accepted; stable across redelivery and failover. */
  messageId?: string;
  /** Canonical destination string, `queue://NAME` or `topic://NAME`. */
  destination: string;
  persistent: boolean;
  /** 0–9, 4 by default (JMS). */
  priority: number;
  /** Milliseconds since the epoch, set by the sender (or the broker when absent). */
  timestamp: number;
  /** Absolute expiry time in ms since the epoch; 0 = never expires. */
  expiration: number;
  correlationId?: string;
  replyTo?: string;
  type?: string;
  /** Producer identity and sequence for duplicate detection across resends. */
  producerId?: string;
  producerSeq?: number;
  /** Brokers this message passed through (networks of brokers), oldest first. */
  brokerPath?: string[];
  /** Set by the broker on a message moved to a dead-letter queue. */
  originalDestination?: string;
  dlqReason?: string;
  properties: Properties;
}

export interface Message extends MessageHeaders {
  body: Buffer;
}

/** What a consumer receives: the message plus delivery bookkeeping. */
export interface DeliveredMessage extends Message {
  messageId: string;
  /** How many times this message was delivered before this delivery (0 on the first). */
  deliveryCount: number;
  redelivered: boolean;
}
