import type { BrowsedMessage } from '@keel/core';
import type { Properties } from '@keel/protocol';

/** A browsed message as the admin API shows it: headers, properties and a preview of the body. */
export interface MessageView {
  id: string;
  destination: string;
  persistent: boolean;
  priority: number;
  timestamp: number;
  expiration: number;
  correlationId?: string;
  replyTo?: string;
  type?: string;
  producerId?: string;
  originalDestination?: string;
  dlqReason?: string;
  properties: Properties;
  deliveryCount: number;
  redelivered: boolean;
  bodySize: number;
  bodyEncoding: 'utf8' | 'base64';
  bodyPreview: string;
  bodyTruncated: boolean;
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

export function messageView(b: BrowsedMessage, previewBytes: number): MessageView {
  const m = b.message;
  const body = m.body ?? Buffer.alloc(0);
  const preview = bodyPreview(body, previewBytes);
  const view: MessageView = {
    id: b.id,
    destination: m.destination,
    persistent: m.persistent,
    priority: m.priority,
    timestamp: m.timestamp,
    expiration: m.expiration,
    properties: m.properties ?? {},
    deliveryCount: b.deliveryCount,
    redelivered: b.redelivered,
    bodySize: body.length,
    bodyEncoding: preview.encoding,
    bodyPreview: preview.text,
    bodyTruncated: body.length > previewBytes,
  };
  for (const k of [
    'correlationId',
    'replyTo',
    'type',
    'producerId',
    'originalDestination',
    'dlqReason',
  ] as const) {
    const v = m[k];
    if (typeof v === 'string') view[k] = v;
  }
  return view;
}

/**
 * The first `maxBytes` bytes: as text when they are UTF-8 (a character cut at the end is dropped),
 * else base64.
 */
export function bodyPreview(body: Buffer, maxBytes: number): { encoding: 'utf8' | 'base64'; text: string } {
  const head = body.subarray(0, maxBytes);
  const truncated = body.length > maxBytes;
  // A multi-byte character cut by the limit: try dropping up to 3 trailing bytes.
  for (let cut = 0; cut <= (truncated ? 3 : 0) && cut <= head.length; cut++) {
    try {
      return { encoding: 'utf8', text: strictUtf8.decode(head.subarray(0, head.length - cut)) };
    } catch {
      // not (yet) valid UTF-8
    }
  }
  return { encoding: 'base64', text: head.toString('base64') };
}
