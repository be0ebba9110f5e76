import { ProtocolError } from '../errors';
import { deliveredHeaders, messageHeaders } from '../message';
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
}

const MAX_U32 = 0xffffffff;
const PAYLOAD_OFFSET = FRAME_HEADER_SIZE + 4;
const EMPTY = Buffer.alloc(0);

export function encodeFrame(frame: Frame, options?: EncodeOptions): Buffer {
  const type = frame.type;
  if (typeof type !== 'number' || FrameType[type] === undefined) {
    throw new ProtocolError(`cannot encode a frame of unknown type ${String(type)}`);
  }
  const channel = frame.channel;
  if (!Number.isInteger(channel) || channel < 0 || channel > 0xffff) {
    throw new ProtocolError(`cannot encode ${FrameType[type]} frame: channel ${channel} is not in 0..65535`);
  }

  let json: string;
  let body: Buffer = EMPTY;
  if (frame.type === FrameType.Send || frame.type === FrameType.Message) {
    const message = frame.message;
    const b = message.body;
    if (!Buffer.isBuffer(b)) {
      throw new ProtocolError(`cannot encode ${FrameType[type]} frame: message.body is not a Buffer`);
    }
    body = b;
    // Fixed-shape objects, not rest copies (see messageHeaders); undefined fields are left out.
    json =
      frame.type === FrameType.Send
        ? JSON.stringify({
            receiptId: frame.receiptId,
            txId: frame.txId,
            resent: frame.resent,
            message: messageHeaders(message),
          })
        : JSON.stringify({ consumerId: frame.consumerId, message: deliveredHeaders(frame.message) });
  } else {
    const { type: _t, channel: _c, ...rest } = frame;
    json = JSON.stringify(rest);
  }

  const headerLength = Buffer.byteLength(json, 'utf8');
  const payloadLength = 4 + headerLength + body.length;
  const size = FRAME_HEADER_SIZE + payloadLength + 1;
  if (payloadLength > MAX_U32 || (options?.maxFrameSize !== undefined && size > options.maxFrameSize)) {
    throw new ProtocolError(
      `${FrameType[type]} frame of ${size} bytes exceeds the maximum frame size of ${options?.maxFrameSize ?? MAX_U32} bytes`,
      'FRAME_TOO_LARGE',
    );
  }

  const buf = Buffer.allocUnsafe(size);
  buf[0] = type;
  buf.writeUInt16BE(channel, 1);
  buf.writeUInt32BE(payloadLength, 3);
  buf.writeUInt32BE(headerLength, FRAME_HEADER_SIZE);
  buf.write(json, PAYLOAD_OFFSET, headerLength, 'utf8');
  if (body.length > 0) body.copy(buf, PAYLOAD_OFFSET + headerLength);
  buf[size - 1] = FRAME_END;
  return buf;
}

/** A HEARTBEAT frame is always the same 16 bytes; send this instead of encoding one each time. */
export const HEARTBEAT_FRAME_BYTES: Buffer = encodeFrame({ type: FrameType.Heartbeat, channel: 0 });
