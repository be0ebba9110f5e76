import { checkActiveMqSend } from '@keel/core';
import {
  DEFAULT_PRIORITY,
  type DeliveredMessage,
  escapeStompHeader,
  escapeStompValue,
  InvalidArgumentError,
  MAX_PRIORITY,
  type Message,
  type Properties,
  type StompFrame,
} from '@keel/protocol';
import { keelToStompDestination, stompToKeelDestination } from './stomp-destinations';

/**
 * Headers with a meaning in STOMP or in ActiveMQ's STOMP mapping; every other header of a SEND
 * frame travels as a string user property and comes back on MESSAGE frames (ActiveMQ "Stomp",
 * "Message transformations": non-standard headers become JMS properties).
 */
const RESERVED = new Set([
  'destination',
  'transaction',
  'receipt',
  'content-length',
  'message-id',
  'subscription',
  'ack',
  'redelivered',
  'timestamp',
  'persistent',
  'priority',
  'expires',
  'correlation-id',
  'reply-to',
  'type',
  'producer-id',
  'producer-seq',
]);

/** Build the broker message of a SEND frame for the connection `connectionId`. */
export function messageFromSend(frame: StompFrame, connectionId: string): Message {
  const h: Record<string, string> = Object.create(null);
  const properties: Properties = {};
  // STOMP 1.2 "Repeated Header Entries": only the first occurrence counts.
  for (const [name, value] of frame.headers) {
    if (name in h) continue;
    h[name] = value;
    if (!RESERVED.has(name)) properties[name] = value;
  }
  const destination = h.destination;
  if (destination === undefined) throw new InvalidArgumentError('SEND frame has no destination header');
  const message: Message = {
    destination: stompToKeelDestination(destination, connectionId),
    // ActiveMQ's STOMP: non-persistent unless the frame says persistent:true.
    persistent: h.persistent === 'true',
    priority: DEFAULT_PRIORITY,
    timestamp: 0,
    expiration: 0,
    properties,
    body: frame.body,
  };
  if (h.priority !== undefined) {
    const p = Number(h.priority);
    if (!/^\d+$/.test(h.priority) || p > MAX_PRIORITY) {
      throw new InvalidArgumentError(
        `priority header must be an integer 0-${MAX_PRIORITY}, got ${JSON.stringify(h.priority)}`,
      );
    }
    message.priority = p;
  }
  if (h.expires !== undefined) {
    // ActiveMQ: `expires` is the absolute expiry time in ms since the epoch; 0 = never.
    // At most Number.MAX_SAFE_INTEGER: the keel_messages.expiration bigint gets the exact value.
    if (!/^\d{1,16}$/.test(h.expires) || !Number.isSafeInteger(Number(h.expires))) {
      throw new InvalidArgumentError(
        `expires header must be a time in ms since the epoch, got ${JSON.stringify(h.expires)}`,
      );
    }
    message.expiration = Number(h.expires);
  }
  if (h['correlation-id'] !== undefined) message.correlationId = h['correlation-id'];
  if (h['reply-to'] !== undefined) message.replyTo = stompToKeelDestination(h['reply-to'], connectionId);
  if (h.type !== undefined) message.type = h.type;
  // Duplicate detection (DESIGN.md "Duplicate detection"): only when the client supplies a stable
  // producer id and sequence number.
  const pid = h['producer-id'];
  const seq = h['producer-seq'];
  if (pid !== undefined && seq !== undefined) {
    if (pid.length === 0 || !/^\d{1,15}$/.test(seq)) {
      throw new InvalidArgumentError('producer-id must be non-empty and producer-seq a non-negative integer');
    }
    message.producerId = pid;
    message.producerSeq = Number(seq);
  }
  // ActiveMQ gives meaning to some destinations and headers Keel lacks: refused, not misread.
  checkActiveMqSend(message, { stomp: true });
  return message;
}

export interface MessageFrameContext {
  subscription: string;
  /** The `ack` header value, in client and client-individual modes. */
  ackId?: string;
  connectionId: string;
}

/**
 * Each header of the MESSAGE frame that delivers `message` (STOMP 1.2 "MESSAGE"), in order;
 * `plain` marks values that never need escaping (numbers, booleans).
 */
function eachMessageHeader(
  message: DeliveredMessage,
  ctx: MessageFrameContext,
  add: (name: string, value: string, plain: boolean) => void,
): void {
  add('message-id', message.messageId, false);
  add('destination', keelToStompDestination(message.destination, ctx.connectionId), false);
  add('subscription', ctx.subscription, false);
  if (ctx.ackId !== undefined) add('ack', ctx.ackId, false);
  add('redelivered', message.redelivered ? 'true' : 'false', true);
  add('priority', String(message.priority), true);
  add('expires', String(message.expiration), true);
  add('timestamp', String(message.timestamp), true);
  add('persistent', message.persistent ? 'true' : 'false', true);
  if (message.correlationId !== undefined) add('correlation-id', message.correlationId, false);
  if (message.replyTo !== undefined)
    add('reply-to', keelToStompDestination(message.replyTo, ctx.connectionId), false);
  if (message.type !== undefined) add('type', message.type, false);
  if (message.originalDestination !== undefined) {
    add('original-destination', keelToStompDestination(message.originalDestination, ctx.connectionId), false);
  }
  add('content-length', String(message.body.length), true);
  const properties = message.properties;
  if (properties) {
    for (const name in properties) {
      if (RESERVED.has(name) || name === 'original-destination' || name.length === 0) continue;
      const value = properties[name];
      add(name, value === null || value === undefined ? '' : String(value), false);
    }
  }
}

/** The headers of the MESSAGE frame that delivers `message` (STOMP 1.2 "MESSAGE"). */
export function messageFrameHeaders(
  message: DeliveredMessage,
  ctx: MessageFrameContext,
): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  eachMessageHeader(message, ctx, (name, value) => out.push([name, value]));
  return out;
}

/**
 * The head (command and headers, `LF LF` included) of the MESSAGE frame that delivers `message`,
 * escaped for STOMP 1.1 or 1.2, built without a header list: the broker's hottest write. The
 * frame is this head, the body and a NUL.
 */
export function messageFrameHead(
  message: DeliveredMessage,
  ctx: MessageFrameContext,
  version: '1.1' | '1.2',
): string {
  let head = 'MESSAGE\n';
  eachMessageHeader(message, ctx, (name, value, plain) => {
    head += plain
      ? `${name}:${value}\n`
      : `${escapeStompHeader(name, version)}:${escapeStompValue(value, version)}\n`;
  });
  return `${head}\n`;
}
