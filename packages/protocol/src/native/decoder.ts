import { InvalidArgumentError, KeelError, ProtocolError } from '../errors';
import { COMPACT_HEADER_FLAG, readCompactFrame } from './compact';
import { isKnownFrameType, validateFrame } from './frame-validation';
import {
  DEFAULT_MAX_FRAME_SIZE,
  FRAME_END,
  FRAME_HEADER_SIZE,
  type Frame,
  FrameType,
  PROTOCOL_HEADER,
} from './frames';

/** The smallest valid frame: binary header, a 4-byte JSON length, `{}` and the end marker. */
const MIN_FRAME_SIZE = FRAME_HEADER_SIZE + 4 + 2 + 1;
const PROTOCOL_HEADER_SIZE = PROTOCOL_HEADER.length;

export interface ProtocolHeaderVersion {
  major: number;
  minor: number;
  revision: number;
}

/**
 * Check the 8 bytes a client sends before its first frame: `"KEEL" 0x00 major minor revision`
 * (like AMQP's protocol header). Returns the version the header announces; throws a
 * ProtocolError (PROTOCOL_ERROR) when the bytes are not a Keel header — for instance an HTTP
 * request or a STOMP CONNECT sent to the native port. `buf` must hold at least 8 bytes.
 */
export function checkProtocolHeader(buf: Buffer): ProtocolHeaderVersion {
  if (buf.length < PROTOCOL_HEADER_SIZE) {
    throw new ProtocolError(`protocol header needs ${PROTOCOL_HEADER_SIZE} bytes, got ${buf.length}`);
  }
  if (buf.compare(PROTOCOL_HEADER, 0, 5, 0, 5) !== 0) {
    const shown = JSON.stringify(buf.toString('latin1', 0, PROTOCOL_HEADER_SIZE));
    throw new ProtocolError(`not a Keel protocol header: ${shown} (expected "KEEL\\u0000" and a version)`);
  }
  return { major: buf[5]!, minor: buf[6]!, revision: buf[7]! };
}

export interface FrameDecoderOptions {
  /**
   * Largest accepted frame in bytes, counted from the type byte to the end marker inclusive.
   * A frame announcing more fails with FRAME_TOO_LARGE before anything is allocated for it.
   */
  maxFrameSize?: number;
  /** The stream starts with the client's 8-byte protocol header (the broker side sets this). */
  expectProtocolHeader?: boolean;
}

/**
 * Streaming decoder for native frames. Feed it the socket's chunks in order; frames may be split
 * at any byte offset and a chunk may hold many frames. Frames that lie whole in a chunk are
 * decoded from it directly; a frame that spans chunks is collected into one buffer of its exact
 * size (known from its length field), so no byte is copied more than once and nothing is
 * concatenated per chunk. Decoded bodies own their memory (they never alias the input chunks).
 *
 * Any violation (bad protocol header, oversized length, wrong end marker, unknown type, invalid
 * JSON, a field of the wrong type) throws a ProtocolError; the decoder then stays failed and
 * throws the same error on every later push, since the stream cannot be resynchronised.
 */
export class FrameDecoder {
  /** Writable: a server keeps it small until the handshake is done (issue #23.3), then raises it. */
  maxFrameSize: number;
  /** The version announced by the protocol header, once received (with `expectProtocolHeader`). */
  protocolHeader: ProtocolHeaderVersion | null = null;

  private headerPending: boolean;
  /** Bytes of a frame (or protocol header) that spans chunks. */
  private partial: Buffer | null = null;
  private partialFilled = 0;
  /** Size of the partial frame once its length is known; 0 while the binary header is incomplete. */
  private partialSize = 0;
  private readonly stage = Buffer.allocUnsafe(Math.max(FRAME_HEADER_SIZE, PROTOCOL_HEADER_SIZE));
  private failure: ProtocolError | null = null;

  constructor(options: FrameDecoderOptions = {}) {
    const max = options.maxFrameSize ?? DEFAULT_MAX_FRAME_SIZE;
    if (!Number.isSafeInteger(max) || max < MIN_FRAME_SIZE) {
      throw new InvalidArgumentError(`maxFrameSize must be an integer >= ${MIN_FRAME_SIZE}, got ${max}`);
    }
    this.maxFrameSize = max;
    this.headerPending = options.expectProtocolHeader === true;
  }

  /** Bytes received but not yet part of a complete frame. */
  get bufferedBytes(): number {
    return this.partialFilled;
  }

  /** Decode what `chunk` completes; returns the frames in order (possibly none). */
  push(chunk: Buffer): Frame[] {
    const frames: Frame[] = [];
    try {
      this.pushEach(chunk, (f) => frames.push(f));
    } catch (err) {
      // Only ProtocolErrors leave push(); anything else would be a bug in this decoder.
      throw KeelError.isInstance(err) ? err : this.failure;
    }
    return frames;
  }

  /**
   * Like `push`, but hands each frame to `onFrame` as soon as it is decoded, so frames before a
   * malformed one in the same chunk are delivered before the ProtocolError is thrown. If
   * `onFrame` throws, its error propagates and the decoder is left failed (the rest of the chunk
   * is lost).
   */
  pushEach(chunk: Buffer, onFrame: (frame: Frame) => void): void {
    if (this.failure !== null) throw this.failure;
    try {
      this.run(chunk, onFrame);
    } catch (err) {
      this.failure =
        err instanceof ProtocolError
          ? err
          : new ProtocolError(`frame decoding stopped: ${(err as Error)?.message}`, 'PROTOCOL_ERROR', {
              cause: err,
            });
      throw err;
    }
  }

  private run(chunk: Buffer, onFrame: (frame: Frame) => void): void {
    let pos = 0;
    const end = chunk.length;

    if (this.headerPending) {
      const need = PROTOCOL_HEADER_SIZE - this.partialFilled;
      const n = Math.min(need, end);
      chunk.copy(this.stage, this.partialFilled, 0, n);
      this.partialFilled += n;
      pos = n;
      if (this.partialFilled < PROTOCOL_HEADER_SIZE) return;
      this.protocolHeader = checkProtocolHeader(this.stage);
      this.headerPending = false;
      this.partialFilled = 0;
    }

    // Finish a frame that started in an earlier chunk.
    if (this.partialFilled > 0) {
      if (this.partialSize === 0) {
        const n = Math.min(FRAME_HEADER_SIZE - this.partialFilled, end - pos);
        chunk.copy(this.stage, this.partialFilled, pos, pos + n);
        this.partialFilled += n;
        pos += n;
        if (this.partialFilled < FRAME_HEADER_SIZE) return;
        const size = this.frameSize(this.stage, 0);
        this.partial = Buffer.allocUnsafe(size);
        this.stage.copy(this.partial, 0, 0, FRAME_HEADER_SIZE);
        this.partialSize = size;
      }
      const partial = this.partial!;
      const n = Math.min(this.partialSize - this.partialFilled, end - pos);
      chunk.copy(partial, this.partialFilled, pos, pos + n);
      this.partialFilled += n;
      pos += n;
      if (this.partialFilled < this.partialSize) return;
      this.partial = null;
      this.partialFilled = 0;
      this.partialSize = 0;
      onFrame(this.decodeAt(partial, 0, partial.length, true));
    }

    // Whole frames straight from the chunk.
    while (end - pos >= FRAME_HEADER_SIZE) {
      const size = this.frameSize(chunk, pos);
      if (end - pos < size) {
        this.partial = Buffer.allocUnsafe(size);
        chunk.copy(this.partial, 0, pos, end);
        this.partialFilled = end - pos;
        this.partialSize = size;
        return;
      }
      const frame = this.decodeAt(chunk, pos, size, false);
      pos += size;
      onFrame(frame);
    }
    if (pos < end) {
      chunk.copy(this.stage, 0, pos, end);
      this.partialFilled = end - pos;
    }
  }

  /** Read the binary header at `at` and return the whole frame size, checked against the limit. */
  private frameSize(buf: Buffer, at: number): number {
    const type = buf[at]!;
    if (!isKnownFrameType(type)) throw new ProtocolError(`unknown frame type ${type}`);
    const length = buf.readUInt32BE(at + 3);
    const size = FRAME_HEADER_SIZE + length + 1;
    if (size > this.maxFrameSize) {
      throw new ProtocolError(
        `${FrameType[type]} frame of ${size} bytes exceeds the maximum frame size of ${this.maxFrameSize} bytes`,
        'FRAME_TOO_LARGE',
      );
    }
    if (length < 4 + 2) {
      throw new ProtocolError(`${FrameType[type]} frame payload of ${length} bytes is too short`);
    }
    return size;
  }

  /** `owned`: `buf` is this decoder's own buffer for this one frame, so the body may alias it. */
  private decodeAt(buf: Buffer, at: number, size: number, owned: boolean): Frame {
    const type = buf[at]! as FrameType;
    const name = FrameType[type];
    if (buf[at + size - 1] !== FRAME_END) {
      throw new ProtocolError(
        `${name} frame does not end with 0xCE (got 0x${buf[at + size - 1]!.toString(16).padStart(2, '0')})`,
      );
    }
    const channel = buf.readUInt16BE(at + 1);
    const payloadLength = size - FRAME_HEADER_SIZE - 1;
    const rawHeaderLength = buf.readUInt32BE(at + FRAME_HEADER_SIZE);
    const compact = rawHeaderLength >= COMPACT_HEADER_FLAG;
    const headerLength = compact ? rawHeaderLength - COMPACT_HEADER_FLAG : rawHeaderLength;
    if (headerLength > payloadLength - 4) {
      throw new ProtocolError(
        `${name} frame header length ${headerLength} exceeds its payload of ${payloadLength - 4} bytes`,
      );
    }
    const jsonStart = at + FRAME_HEADER_SIZE + 4;
    const jsonEnd = jsonStart + headerLength;
    if (compact) {
      return readCompactFrame(
        type,
        channel,
        buf,
        jsonStart,
        jsonEnd,
        this.bodyOf(buf, jsonEnd, at + size - 1, owned),
      );
    }
    let header: unknown;
    try {
      header = JSON.parse(buf.toString('utf8', jsonStart, jsonEnd));
    } catch (err) {
      throw new ProtocolError(
        `${name} frame header is not valid JSON: ${(err as Error).message}`,
        'PROTOCOL_ERROR',
        {
          cause: err,
        },
      );
    }
    return validateFrame(type, channel, header, this.bodyOf(buf, jsonEnd, at + size - 1, owned));
  }

  /** The body bytes, copied so they never alias the caller's chunk (which may be large or reused). */
  private bodyOf(buf: Buffer, start: number, end: number, owned: boolean): Buffer | null {
    if (end <= start) return null;
    if (owned) return buf.subarray(start, end);
    const body = Buffer.allocUnsafe(end - start);
    buf.copy(body, 0, start, end);
    return body;
  }
}
