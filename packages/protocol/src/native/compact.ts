import { ProtocolError } from '../errors';
import { type DeliveredMessage, MAX_PRIORITY, type Message, type Properties } from '../message';
import { checkProperties } from './frame-validation';
import {
  type AckFrame,
  type Frame,
  FrameType,
  type MessageFrame,
  type ReceiptEntry,
  type ReceiptFrame,
  type SendFrame,
} from './frames';

/**
 * Compact headers (protocol version 2, docs/protocol.md section 1.1): the frames every message
 * crosses — SEND, MESSAGE, ACK and RECEIPT — may carry their header as fixed binary fields instead
 * of JSON. A compact header is flagged by the top bit of `headerLength`; JSON headers never set it
 * (no frame is 2 GiB). A sender uses it only after both sides agreed on version 2 and may always
 * fall back to JSON (a string longer than 65,535 bytes has no compact form). All integers are
 * big-endian; a string is `u16 byteLength | UTF-8`; numbers that JSON carries as numbers
 * (timestamp, expiration, producerSeq) are IEEE-754 doubles and must be finite.
 *
 * Measured on this code's hot path (docs/benchmarks.md): JSON.stringify/parse plus validation of
 * the header was about a quarter of @keel/client's CPU per message.
 */
export const COMPACT_HEADER_FLAG = 0x80000000;

/** Message header flags (u16). */
const M_PERSISTENT = 1 << 0;
const M_MESSAGE_ID = 1 << 1;
const M_CORRELATION_ID = 1 << 2;
const M_REPLY_TO = 1 << 3;
const M_TYPE = 1 << 4;
const M_PRODUCER_ID = 1 << 5;
const M_PRODUCER_SEQ = 1 << 6;
const M_BROKER_PATH = 1 << 7;
const M_ORIGINAL_DESTINATION = 1 << 8;
const M_DLQ_REASON = 1 << 9;
const M_PROPERTIES = 1 << 10;
const M_KNOWN = (1 << 11) - 1;

/** Frame flags (u8). */
const SEND_RECEIPT = 1 << 0;
const SEND_TX = 1 << 1;
const SEND_RESENT = 1 << 2;
const MESSAGE_REDELIVERED = 1 << 0;
const RECEIPT_MESSAGE_ID = 1 << 0;
const RECEIPT_MORE = 1 << 1;
const ACK_CUMULATIVE = 1 << 0;
const ACK_TX = 1 << 1;
const ACK_RECEIPT = 1 << 2;

const MAX_STRING = 0xffff;
const EMPTY = Buffer.alloc(0);

/** Frames that have a compact form. */
export function hasCompactForm(type: FrameType): boolean {
  return (
    type === FrameType.Send ||
    type === FrameType.Message ||
    type === FrameType.Ack ||
    type === FrameType.Receipt
  );
}

// ----- encoding --------------------------------------------------------------------------------

/** Writes into a buffer sized by an upper bound; `ok` turns false when a string is too long. */
class Writer {
  buf: Buffer = EMPTY;
  pos = 0;
  ok = true;

  reset(buf: Buffer, pos: number): void {
    this.buf = buf;
    this.pos = pos;
    this.ok = true;
  }

  u8(v: number): void {
    this.buf[this.pos++] = v;
  }

  u16(v: number): void {
    this.buf.writeUInt16BE(v, this.pos);
    this.pos += 2;
  }

  u32(v: number): void {
    this.buf.writeUInt32BE(v, this.pos);
    this.pos += 4;
  }

  f64(v: number): void {
    this.buf.writeDoubleBE(v, this.pos);
    this.pos += 8;
  }

  str(s: string): void {
    const n = this.buf.write(s, this.pos + 2, 'utf8');
    if (n > MAX_STRING) {
      this.ok = false;
      return;
    }
    this.buf.writeUInt16BE(n, this.pos);
    this.pos += 2 + n;
  }

  /** A JSON text with a u32 length (message properties). */
  json(s: string): void {
    const n = this.buf.write(s, this.pos + 4, 'utf8');
    this.buf.writeUInt32BE(n, this.pos);
    this.pos += 4 + n;
  }
}

const writer = new Writer();

/** Upper bound of a string's encoded size (UTF-8 takes at most 3 bytes per UTF-16 unit). */
function strBound(s: string | undefined): number {
  return s === undefined ? 0 : 2 + 3 * s.length;
}

function hasProperties(p: Properties | undefined): p is Properties {
  if (p === undefined || p === null) return false;
  for (const _ in p) return true;
  return false;
}

function messageBound(m: Message, propertiesJson: string | null): number {
  let n = 2 + 1 + 8 + 8 + 8;
  n += strBound(m.destination) + strBound(m.messageId) + strBound(m.correlationId) + strBound(m.replyTo);
  n += strBound(m.type) + strBound(m.producerId) + strBound(m.originalDestination) + strBound(m.dlqReason);
  if (m.brokerPath !== undefined) {
    n += 2;
    for (const b of m.brokerPath) n += strBound(b);
  }
  if (propertiesJson !== null) n += 4 + 3 * propertiesJson.length;
  return n;
}

function writeMessage(w: Writer, m: Message, propertiesJson: string | null): void {
  let flags = m.persistent ? M_PERSISTENT : 0;
  if (m.messageId !== undefined) flags |= M_MESSAGE_ID;
  if (m.correlationId !== undefined) flags |= M_CORRELATION_ID;
  if (m.replyTo !== undefined) flags |= M_REPLY_TO;
  if (m.type !== undefined) flags |= M_TYPE;
  if (m.producerId !== undefined) flags |= M_PRODUCER_ID;
  if (m.producerSeq !== undefined) flags |= M_PRODUCER_SEQ;
  if (m.brokerPath !== undefined) flags |= M_BROKER_PATH;
  if (m.originalDestination !== undefined) flags |= M_ORIGINAL_DESTINATION;
  if (m.dlqReason !== undefined) flags |= M_DLQ_REASON;
  if (propertiesJson !== null) flags |= M_PROPERTIES;
  w.u16(flags);
  w.u8(m.priority);
  w.f64(m.timestamp);
  w.f64(m.expiration);
  if (m.producerSeq !== undefined) w.f64(m.producerSeq);
  w.str(m.destination);
  if (m.messageId !== undefined) w.str(m.messageId);
  if (m.correlationId !== undefined) w.str(m.correlationId);
  if (m.replyTo !== undefined) w.str(m.replyTo);
  if (m.type !== undefined) w.str(m.type);
  if (m.producerId !== undefined) w.str(m.producerId);
  if (m.originalDestination !== undefined) w.str(m.originalDestination);
  if (m.dlqReason !== undefined) w.str(m.dlqReason);
  if (m.brokerPath !== undefined) {
    if (m.brokerPath.length > MAX_STRING) w.ok = false;
    else {
      w.u16(m.brokerPath.length);
      for (const b of m.brokerPath) w.str(b);
    }
  }
  if (propertiesJson !== null) w.json(propertiesJson);
}

/** A number the compact form can carry as JSON does (finite; priority an integer 0..9). */
function encodableMessage(m: Message): boolean {
  return (
    Number.isInteger(m.priority) &&
    m.priority >= 0 &&
    m.priority <= MAX_PRIORITY &&
    Number.isFinite(m.timestamp) &&
    Number.isFinite(m.expiration) &&
    (m.producerSeq === undefined || Number.isFinite(m.producerSeq))
  );
}

/**
 * The compact header of `frame` written at `offset` of a new buffer with room for `extra` more
 * bytes after it (the body and the end marker); null when the frame has no compact form (other
 * types, a string too long, a number JSON would not carry). Returns the buffer and the header's
 * end.
 */
export function writeCompactHeader(
  frame: Frame,
  offset: number,
  extra: number,
): { buf: Buffer; end: number } | null {
  const w = writer;
  switch (frame.type) {
    case FrameType.Send: {
      const m = frame.message;
      if (!encodableMessage(m)) return null;
      const props = hasProperties(m.properties) ? JSON.stringify(m.properties) : null;
      const bound = 1 + strBound(frame.receiptId) + strBound(frame.txId) + messageBound(m, props);
      w.reset(Buffer.allocUnsafe(offset + bound + extra), offset);
      let f = 0;
      if (frame.receiptId !== undefined) f |= SEND_RECEIPT;
      if (frame.txId !== undefined) f |= SEND_TX;
      if (frame.resent === true) f |= SEND_RESENT;
      w.u8(f);
      if (frame.receiptId !== undefined) w.str(frame.receiptId);
      if (frame.txId !== undefined) w.str(frame.txId);
      writeMessage(w, m, props);
      break;
    }
    case FrameType.Message: {
      const m = frame.message;
      // A browse's end marker is rare: it travels as JSON, the compact form has no flag for it.
      if (frame.browseEnd === true) return null;
      if (!encodableMessage(m) || !(m.deliveryCount >= 0 && m.deliveryCount <= 0xffffffff)) return null;
      const props = hasProperties(m.properties) ? JSON.stringify(m.properties) : null;
      const bound = 1 + strBound(frame.consumerId) + 4 + messageBound(m, props);
      w.reset(Buffer.allocUnsafe(offset + bound + extra), offset);
      w.u8(m.redelivered ? MESSAGE_REDELIVERED : 0);
      w.str(frame.consumerId);
      w.u32(m.deliveryCount);
      writeMessage(w, m, props);
      break;
    }
    case FrameType.Receipt: {
      const more = frame.more;
      let bound = 1 + strBound(frame.receiptId) + strBound(frame.messageId);
      if (more !== undefined) {
        bound += 4;
        for (let i = 0; i < more.length; i++) {
          bound += 1 + strBound(more[i]!.receiptId) + strBound(more[i]!.messageId);
        }
      }
      w.reset(Buffer.allocUnsafe(offset + bound + extra), offset);
      let f = frame.messageId !== undefined ? RECEIPT_MESSAGE_ID : 0;
      if (more !== undefined) f |= RECEIPT_MORE;
      w.u8(f);
      w.str(frame.receiptId);
      if (frame.messageId !== undefined) w.str(frame.messageId);
      if (more !== undefined) {
        w.u32(more.length);
        for (let i = 0; i < more.length; i++) {
          const e = more[i]!;
          w.u8(e.messageId !== undefined ? RECEIPT_MESSAGE_ID : 0);
          w.str(e.receiptId);
          if (e.messageId !== undefined) w.str(e.messageId);
        }
      }
      break;
    }
    case FrameType.Ack: {
      const ids = frame.messageIds;
      let bound = 1 + strBound(frame.consumerId) + 4 + strBound(frame.txId) + strBound(frame.receiptId);
      for (let i = 0; i < ids.length; i++) bound += strBound(ids[i]);
      w.reset(Buffer.allocUnsafe(offset + bound + extra), offset);
      let f = frame.cumulative === true ? ACK_CUMULATIVE : 0;
      if (frame.txId !== undefined) f |= ACK_TX;
      if (frame.receiptId !== undefined) f |= ACK_RECEIPT;
      w.u8(f);
      w.str(frame.consumerId);
      w.u32(ids.length);
      for (let i = 0; i < ids.length; i++) w.str(ids[i]!);
      if (frame.txId !== undefined) w.str(frame.txId);
      if (frame.receiptId !== undefined) w.str(frame.receiptId);
      break;
    }
    default:
      return null;
  }
  if (!w.ok) return null;
  const result = { buf: w.buf, end: w.pos };
  w.buf = EMPTY;
  return result;
}

// ----- decoding --------------------------------------------------------------------------------

/** Reads a compact header between `pos` and `end`; any overrun is a ProtocolError. */
class Reader {
  buf: Buffer = EMPTY;
  pos = 0;
  end = 0;
  name = '';

  reset(buf: Buffer, pos: number, end: number, name: string): void {
    this.buf = buf;
    this.pos = pos;
    this.end = end;
    this.name = name;
  }

  fail(what: string): never {
    throw new ProtocolError(`invalid ${this.name} frame: compact header ${what}`);
  }

  need(n: number): void {
    if (this.end - this.pos < n) this.fail('is truncated');
  }

  u8(): number {
    this.need(1);
    return this.buf[this.pos++]!;
  }

  u16(): number {
    this.need(2);
    const v = this.buf.readUInt16BE(this.pos);
    this.pos += 2;
    return v;
  }

  u32(): number {
    this.need(4);
    const v = this.buf.readUInt32BE(this.pos);
    this.pos += 4;
    return v;
  }

  f64(field: string): number {
    this.need(8);
    const v = this.buf.readDoubleBE(this.pos);
    this.pos += 8;
    if (!Number.isFinite(v)) this.fail(`"${field}" is not a finite number`);
    return v;
  }

  str(): string {
    const n = this.u16();
    this.need(n);
    const s = this.buf.toString('utf8', this.pos, this.pos + n);
    this.pos += n;
    return s;
  }

  json(): unknown {
    const n = this.u32();
    this.need(n);
    const text = this.buf.toString('utf8', this.pos, this.pos + n);
    this.pos += n;
    try {
      return JSON.parse(text);
    } catch (err) {
      return this.fail(`properties are not valid JSON: ${(err as Error).message}`);
    }
  }

  flags(v: number, known: number): number {
    if ((v & ~known) !== 0) this.fail(`has unknown flags 0x${v.toString(16)}`);
    return v;
  }
}

const reader = new Reader();

function readMessage(
  r: Reader,
  body: Buffer,
  delivered: boolean,
  deliveryCount: number | undefined,
  redelivered: boolean | undefined,
): Message | DeliveredMessage {
  const flags = r.flags(r.u16(), M_KNOWN);
  const priority = r.u8();
  if (priority > MAX_PRIORITY) r.fail(`"priority" must be an integer 0..${MAX_PRIORITY}`);
  const timestamp = r.f64('timestamp');
  const expiration = r.f64('expiration');
  const producerSeq = flags & M_PRODUCER_SEQ ? r.f64('producerSeq') : undefined;
  const destination = r.str();
  if (delivered && (flags & M_MESSAGE_ID) === 0) r.fail('lacks "messageId"');
  const messageId = flags & M_MESSAGE_ID ? r.str() : undefined;
  const correlationId = flags & M_CORRELATION_ID ? r.str() : undefined;
  const replyTo = flags & M_REPLY_TO ? r.str() : undefined;
  const type = flags & M_TYPE ? r.str() : undefined;
  const producerId = flags & M_PRODUCER_ID ? r.str() : undefined;
  const originalDestination = flags & M_ORIGINAL_DESTINATION ? r.str() : undefined;
  const dlqReason = flags & M_DLQ_REASON ? r.str() : undefined;
  let brokerPath: string[] | undefined;
  if (flags & M_BROKER_PATH) {
    const n = r.u16();
    brokerPath = new Array<string>(n);
    for (let i = 0; i < n; i++) brokerPath[i] = r.str();
  }
  let properties: Properties = {};
  if (flags & M_PROPERTIES) {
    const p = r.json();
    checkProperties(p, r.name);
    properties = p as Properties;
  }
  // The field order of message.ts's fixedShape: one hidden class for every message.
  return {
    messageId,
    destination,
    persistent: (flags & M_PERSISTENT) !== 0,
    priority,
    timestamp,
    expiration,
    correlationId,
    replyTo,
    type,
    producerId,
    producerSeq,
    brokerPath,
    originalDestination,
    dlqReason,
    properties,
    body,
    deliveryCount,
    redelivered,
  } as Message | DeliveredMessage;
}

/**
 * Decode the compact header of a SEND, MESSAGE, ACK or RECEIPT frame lying in `buf` between
 * `start` and `end`; `body` is the frame's body (only SEND and MESSAGE may have one).
 */
export function readCompactFrame(
  type: FrameType,
  channel: number,
  buf: Buffer,
  start: number,
  end: number,
  body: Buffer | null,
): Frame {
  const name = FrameType[type] ?? String(type);
  const r = reader;
  r.reset(buf, start, end, name);
  let frame: Frame;
  switch (type) {
    case FrameType.Send: {
      const f = r.flags(r.u8(), SEND_RECEIPT | SEND_TX | SEND_RESENT);
      const receiptId = f & SEND_RECEIPT ? r.str() : undefined;
      const txId = f & SEND_TX ? r.str() : undefined;
      const message = readMessage(r, body ?? EMPTY, false, undefined, undefined);
      const send: SendFrame = {
        type,
        channel,
        receiptId,
        txId,
        resent: f & SEND_RESENT ? true : undefined,
        message,
      };
      frame = send;
      break;
    }
    case FrameType.Message: {
      const f = r.flags(r.u8(), MESSAGE_REDELIVERED);
      const consumerId = r.str();
      const deliveryCount = r.u32();
      const message = readMessage(r, body ?? EMPTY, true, deliveryCount, (f & MESSAGE_REDELIVERED) !== 0);
      const m: MessageFrame = { type, channel, consumerId, message: message as DeliveredMessage };
      frame = m;
      break;
    }
    case FrameType.Receipt: {
      const f = r.flags(r.u8(), RECEIPT_MESSAGE_ID | RECEIPT_MORE);
      const receiptId = r.str();
      const messageId = f & RECEIPT_MESSAGE_ID ? r.str() : undefined;
      let more: ReceiptEntry[] | undefined;
      if (f & RECEIPT_MORE) {
        const n = r.u32();
        // Each entry takes at least 3 bytes: a count the header cannot hold is refused first.
        if (n * 3 > r.end - r.pos) r.fail('is truncated');
        more = new Array<ReceiptEntry>(n);
        for (let i = 0; i < n; i++) {
          const ef = r.flags(r.u8(), RECEIPT_MESSAGE_ID);
          const id = r.str();
          more[i] = { receiptId: id, messageId: ef & RECEIPT_MESSAGE_ID ? r.str() : undefined };
        }
      }
      const receipt: ReceiptFrame = { type, channel, receiptId, messageId, more };
      frame = receipt;
      break;
    }
    case FrameType.Ack: {
      const f = r.flags(r.u8(), ACK_CUMULATIVE | ACK_TX | ACK_RECEIPT);
      const consumerId = r.str();
      const n = r.u32();
      // Each id takes at least its 2-byte length: a count the header cannot hold is refused
      // before anything is allocated for it.
      if (n * 2 > r.end - r.pos) r.fail('is truncated');
      const messageIds = new Array<string>(n);
      for (let i = 0; i < n; i++) messageIds[i] = r.str();
      const txId = f & ACK_TX ? r.str() : undefined;
      const receiptId = f & ACK_RECEIPT ? r.str() : undefined;
      const ack: AckFrame = {
        type,
        channel,
        consumerId,
        messageIds,
        cumulative: f & ACK_CUMULATIVE ? true : undefined,
        txId,
        receiptId,
      };
      frame = ack;
      break;
    }
    default:
      throw new ProtocolError(`invalid ${name} frame: it has no compact header form`);
  }
  if (r.pos !== end) r.fail(`has ${end - r.pos} bytes after its last field`);
  if (type !== FrameType.Send && type !== FrameType.Message && body !== null && body.length > 0) {
    throw new ProtocolError(
      `invalid ${name} frame: only SEND and MESSAGE frames carry a body (got ${body.length} bytes)`,
    );
  }
  r.buf = EMPTY;
  return frame;
}
