import { ProtocolError } from '../errors';
import { deliveredHeaders, messageHeaders } from '../message';
import { COMPACT_HEADER_FLAG, hasCompactForm, writeCompactHeader } from './compact';
import { FRAME_END, FRAME_HEADER_SIZE, type Frame, FrameType } from './frames';

/**
 * Encodes one native frame (layout in frames.ts and docs/protocol.md):
 *
 *   type:u8 | channel:u16 | length:u32 | headerLength:u32 | header JSON | body | 0xCE
 *
 * `type` and `channel` travel in the binary header only, so the JSON header holds every other
 * field of the frame. SEND and MESSAGE put the message headers (everything of `message` except
 * `body`) under `message` in the JSON header and the body as raw bytes after it; every other
 * frame has an empty body. One `Buffer.allocUnsafe` per frame.
 *
 * Numbers that JSON cannot represent (NaN, ±Infinity) become `null`, as JSON.stringify does; the
 * decoder then rejects them where a number is required.
 */
export interface EncodeOptions {
  /** Refuse to encode a frame larger than this many bytes (whole frame, header to end marker). */
  maxFrameSize?: number;
  /**
   * Write SEND, MESSAGE, ACK and RECEIPT with a compact binary header (protocol version 2,
   * compact.ts) — only once the peer agreed on version 2. Other frames stay JSON.
   */
  compact?: boolean;
}

const MAX_U32 = 0xffffffff;
const PAYLOAD_OFFSET = FRAME_HEADER_SIZE + 4;
const EMPTY = Buffer.alloc(0);

export function encodeFrame(frame: Frame, options?: EncodeOptions): Buffer {
  return encode(frame, options, true);
}

/**
 * The frame without its body and end marker — binary header and header only — for a writer that
 * gathers the body separately (TickCork.writeFrame(head, body, FRAME_END)): the body is then copied
 * once, into the socket write, instead of once more into a frame buffer. Same checks as encodeFrame.
 */
export function encodeFrameHead(frame: Frame, options?: EncodeOptions): Buffer {
  return encode(frame, options, false);
}

/** The body bytes a frame carries (SEND and MESSAGE), or none. */
export function frameBody(frame: Frame): Buffer {
  if (frame.type !== FrameType.Send && frame.type !== FrameType.Message) return EMPTY;
  const b = frame.message.body;
  if (!Buffer.isBuffer(b)) {
    throw new ProtocolError(`cannot encode ${FrameType[frame.type]} frame: message.body is not a Buffer`);
  }
  return b;
}

/** `whole`: the frame with body and end marker; otherwise only the head. */
function encode(frame: Frame, options: EncodeOptions | undefined, whole: boolean): Buffer {
  const type = frame.type;
  if (typeof type !== 'number' || FrameType[type] === undefined) {
    throw new ProtocolError(`cannot encode a frame of unknown type ${String(type)}`);
  }
  const channel = frame.channel;
  if (!Number.isInteger(channel) || channel < 0 || channel > 0xffff) {
    throw new ProtocolError(`cannot encode ${FrameType[type]} frame: channel ${channel} is not in 0..65535`);
  }
  const body = frameBody(frame);
  const tail = whole ? body.length + 1 : 0;

  let buf: Buffer;
  let headerEnd: number;
  let headerField: number;
  const compact =
    options?.compact === true && hasCompactForm(type)
      ? writeCompactHeader(frame, PAYLOAD_OFFSET, tail)
      : null;
  if (compact !== null) {
    buf = compact.buf;
    headerEnd = compact.end;
    headerField = (COMPACT_HEADER_FLAG | (headerEnd - PAYLOAD_OFFSET)) >>> 0;
  } else {
    const json = jsonHeader(frame);
    const headerLength = Buffer.byteLength(json, 'utf8');
    headerEnd = PAYLOAD_OFFSET + headerLength;
    buf = Buffer.allocUnsafe(headerEnd + tail);
    buf.write(json, PAYLOAD_OFFSET, headerLength, 'utf8');
    headerField = headerLength;
  }
  const payloadLength = headerEnd - FRAME_HEADER_SIZE + body.length;
  const size = FRAME_HEADER_SIZE + payloadLength + 1;
  if (payloadLength > MAX_U32 || (options?.maxFrameSize !== undefined && size > options.maxFrameSize)) {
    throw new ProtocolError(
      `${FrameType[type]} frame of ${size} bytes exceeds the maximum frame size of ${options?.maxFrameSize ?? MAX_U32} bytes`,
      'FRAME_TOO_LARGE',
    );
  }
  buf[0] = type;
  buf.writeUInt16BE(channel, 1);
  buf.writeUInt32BE(payloadLength, 3);
  buf.writeUInt32BE(headerField, FRAME_HEADER_SIZE);
  if (!whole) return buf.length === headerEnd ? buf : buf.subarray(0, headerEnd);
  if (body.length > 0) body.copy(buf, headerEnd);
  buf[size - 1] = FRAME_END;
  return buf.length === size ? buf : buf.subarray(0, size);
}

/** The JSON header: every field but type, channel and the body. */
function jsonHeader(frame: Frame): string {
  // Fixed-shape objects, not rest copies (see messageHeaders); undefined fields are left out.
  if (frame.type === FrameType.Send) {
    return JSON.stringify({
      receiptId: frame.receiptId,
      txId: frame.txId,
      resent: frame.resent,
      message: messageHeaders(frame.message),
    });
  }
  if (frame.type === FrameType.Message) {
    return JSON.stringify({
      consumerId: frame.consumerId,
      message: deliveredHeaders(frame.message),
      browseEnd: frame.browseEnd,
    });
  }
  const { type: _t, channel: _c, ...rest } = frame;
  return JSON.stringify(rest);
}

/** A HEARTBEAT frame is always the same 16 bytes; send this instead of encoding one each time. */
export const HEARTBEAT_FRAME_BYTES: Buffer = encodeFrame({ type: FrameType.Heartbeat, channel: 0 });
