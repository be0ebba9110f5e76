import { InvalidArgumentError, KeelError, ProtocolError } from '../errors';
import {
  DEFAULT_STOMP_MAX_BODY_SIZE,
  DEFAULT_STOMP_MAX_FRAME_SIZE,
  DEFAULT_STOMP_MAX_HEADER_LINE_LENGTH,
  DEFAULT_STOMP_MAX_HEADERS,
  getStompHeader,
  isStompCommand,
  STOMP_VERSIONS,
  type StompCommand,
  type StompEvent,
  type StompFrame,
  type StompHeaders,
  type StompVersion,
  stompCommandEscapesHeaders,
  stompCommandHasBody,
} from './stomp-frame';

export interface StompDecoderOptions {
  /**
   * The negotiated version; decides header unescaping (STOMP 1.2 "Value Encoding"). Default 1.2.
   * A listener sets `decoder.version` once CONNECT has been answered.
   */
  version?: StompVersion;
  /** Largest frame, from the first byte of the command to the NUL, in bytes. */
  maxFrameSize?: number;
  /** Largest body in bytes. */
  maxBodySize?: number;
  /** Most header lines in one frame. */
  maxHeaders?: number;
  /** Longest command or header line in bytes (without its EOL). */
  maxHeaderLineLength?: number;
}

const LF = 0x0a;
const CR = 0x0d;
const NUL = 0x00;
const COLON = 0x3a;

enum Phase {
  Idle = 0,
  Head = 1,
  Body = 2,
}

const EMPTY_BODY = Buffer.alloc(0);
const HEARTBEAT: StompEvent = Object.freeze({ type: 'heartbeat' }) as StompEvent;

function fail(message: string, code = 'PROTOCOL_ERROR'): never {
  throw new ProtocolError(`STOMP: ${message}`, code);
}

/**
 * STOMP 1.2 "Value Encoding": `\r` `\n` `\c` `\\`; any other escape is a fatal error. STOMP 1.1
 * defines only `\n` `\c` `\\`.
 */
function unescapeHeader(s: string, version: StompVersion): string {
  if (s.indexOf('\\') === -1) return s;
  let out = '';
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (c !== '\\') {
      out += c;
      continue;
    }
    const n = s[++i];
    if (n === 'n') out += '\n';
    else if (n === 'c') out += ':';
    else if (n === '\\') out += '\\';
    else if (n === 'r' && version === '1.2') out += '\r';
    else
      fail(
        `undefined escape sequence ${JSON.stringify(n === undefined ? '\\' : `\\${n}`)} in header ${JSON.stringify(s)}`,
      );
  }
  return out;
}

function positiveInt(name: string, value: number | undefined, fallback: number): number {
  const v = value ?? fallback;
  if (!Number.isSafeInteger(v) || v < 1)
    throw new InvalidArgumentError(`${name} must be a positive integer, got ${v}`);
  return v;
}

/**
 * Streaming STOMP decoder. Feed it the socket's chunks in order; frames may be split at any byte
 * offset and a chunk may hold many frames. Yields frames and heart-beats: every EOL (LF or CRLF)
 * received between frames is reported as one heart-beat (STOMP 1.2 "Heart-beating").
 *
 * - EOL is LF or CRLF (STOMP 1.2 "Augmented BNF"); the trailing CR is also accepted for 1.0/1.1.
 * - `content-length` is honoured, so bodies may contain NUL; without it the body ends at the
 *   first NUL (STOMP 1.2 "Header content-length").
 * - Header names and values are not trimmed; repeated headers are all kept in order.
 * - Header lines without a `:` separate name and value at the first raw colon; a raw colon in a
 *   value is accepted (lenient, as most brokers are).
 *
 * Any violation or exceeded limit throws a ProtocolError (PROTOCOL_ERROR, or FRAME_TOO_LARGE for
 * the size limits) with a message fit for an ERROR frame; the decoder then stays failed.
 */
export class StompDecoder {
  /** Writable: a server keeps it small until CONNECTED (issue #23.3), then raises it. */
  maxFrameSize: number;
  maxBodySize: number;
  readonly maxHeaders: number;
  readonly maxHeaderLineLength: number;
  private _version: StompVersion;

  /** Unparsed bytes, starting at the current frame (or at a pending CR between frames). */
  private buf: Buffer = Buffer.alloc(0);
  private len = 0;
  private failure: ProtocolError | null = null;

  // Parse state of the current frame; offsets are relative to the frame's first byte.
  private phase = Phase.Idle;
  private scan = 0;
  private lineStart = 0;
  private command: StompCommand | null = null;
  private headers: StompHeaders = [];
  private escapes = true;
  private bodyStart = 0;
  private contentLength = -1;

  constructor(options: StompDecoderOptions = {}) {
    this.maxFrameSize = positiveInt('maxFrameSize', options.maxFrameSize, DEFAULT_STOMP_MAX_FRAME_SIZE);
    this.maxBodySize = positiveInt('maxBodySize', options.maxBodySize, DEFAULT_STOMP_MAX_BODY_SIZE);
    this.maxHeaders = positiveInt('maxHeaders', options.maxHeaders, DEFAULT_STOMP_MAX_HEADERS);
    this.maxHeaderLineLength = positiveInt(
      'maxHeaderLineLength',
      options.maxHeaderLineLength,
      DEFAULT_STOMP_MAX_HEADER_LINE_LENGTH,
    );
    this._version = '1.2';
    if (options.version !== undefined) this.version = options.version;
  }

  get version(): StompVersion {
    return this._version;
  }

  /** Switch versions once negotiated; applies from the next frame that starts. */
  set version(v: StompVersion) {
    if (!STOMP_VERSIONS.includes(v))
      throw new InvalidArgumentError(`unknown STOMP version ${JSON.stringify(v)}`);
    this._version = v;
  }

  /** Bytes received but not yet part of a complete frame. */
  get bufferedBytes(): number {
    return this.len;
  }

  push(chunk: Buffer): StompEvent[] {
    const events: StompEvent[] = [];
    try {
      this.pushEach(chunk, (e) => events.push(e));
    } catch (err) {
      throw KeelError.isInstance(err) ? err : this.failure;
    }
    return events;
  }

  /**
   * Like `push`, but hands each event to `onEvent` as soon as it is decoded, so frames before a
   * malformed one in the same chunk are delivered before the error is thrown. If `onEvent` throws,
   * its error propagates and the decoder is left failed.
   */
  pushEach(chunk: Buffer, onEvent: (event: StompEvent) => void): void {
    if (this.failure !== null) throw this.failure;
    try {
      this.run(chunk, onEvent);
    } catch (err) {
      this.failure =
        err instanceof ProtocolError
          ? err
          : new ProtocolError(`STOMP decoding stopped: ${(err as Error)?.message}`, 'PROTOCOL_ERROR', {
              cause: err,
            });
      throw err;
    }
  }

  private run(chunk: Buffer, emit: (event: StompEvent) => void): void {
    let data: Buffer;
    const buffered = this.len > 0;
    if (buffered) {
      this.append(chunk);
      data = this.buf.subarray(0, this.len);
    } else {
      data = chunk;
    }
    const end = data.length;
    let base = 0;

    for (;;) {
      if (this.phase === Phase.Idle) {
        while (base < end) {
          const b = data[base];
          if (b === LF) {
            base++;
            emit(HEARTBEAT);
          } else if (b === CR) {
            if (base + 1 >= end) break;
            if (data[base + 1] !== LF) fail('CR not followed by LF between frames');
            base += 2;
            emit(HEARTBEAT);
          } else {
            this.startFrame();
            break;
          }
        }
        if (this.phase === Phase.Idle) break;
      }

      if (this.phase === Phase.Head && !this.parseHead(data, base, end)) break;

      if (this.phase === Phase.Body) {
        const frame = this.parseBody(data, base, end);
        if (frame === null) break;
        base += frame.size;
        this.phase = Phase.Idle;
        emit({ type: 'frame', frame: frame.frame });
      }
    }

    this.keep(data, buffered, base, end);
  }

  private startFrame(): void {
    this.phase = Phase.Head;
    this.scan = 0;
    this.lineStart = 0;
    this.command = null;
    this.headers = [];
    this.contentLength = -1;
  }

  /** Parse the command and header lines; false when more bytes are needed. */
  private parseHead(data: Buffer, base: number, end: number): boolean {
    for (;;) {
      const nl = data.indexOf(LF, base + this.scan);
      const lineStart = base + this.lineStart;
      if (nl === -1) {
        if (end - lineStart > this.maxHeaderLineLength + 1) this.lineTooLong();
        if (end - base > this.maxFrameSize) this.frameTooLarge();
        this.scan = end - base;
        return false;
      }
      let lineEnd = nl;
      if (lineEnd > lineStart && data[lineEnd - 1] === CR) lineEnd--;
      if (lineEnd - lineStart > this.maxHeaderLineLength) this.lineTooLong();
      if (nl + 1 - base > this.maxFrameSize) this.frameTooLarge();
      this.lineStart = this.scan = nl + 1 - base;

      if (this.command === null) {
        const command = data.toString('utf8', lineStart, lineEnd);
        if (!isStompCommand(command)) {
          fail(
            `unknown command ${JSON.stringify(command.length > 40 ? `${command.slice(0, 40)}…` : command)}`,
          );
        }
        this.command = command;
        this.escapes = stompCommandEscapesHeaders(command, this._version);
      } else if (lineEnd === lineStart) {
        this.endHead();
        return true;
      } else {
        if (this.headers.length >= this.maxHeaders) {
          fail(`${this.command} frame has more than ${this.maxHeaders} headers`, 'FRAME_TOO_LARGE');
        }
        const colon = data.indexOf(COLON, lineStart);
        if (colon === -1 || colon >= lineEnd) {
          fail(
            `header line without ':' in ${this.command} frame: ${JSON.stringify(data.toString('utf8', lineStart, Math.min(lineEnd, lineStart + 40)))}`,
          );
        }
        let name = data.toString('utf8', lineStart, colon);
        let value = data.toString('utf8', colon + 1, lineEnd);
        if (this.escapes) {
          name = unescapeHeader(name, this._version);
          value = unescapeHeader(value, this._version);
        }
        if (name.length === 0) fail(`empty header name in ${this.command} frame`);
        this.headers.push([name, value]);
      }
    }
  }

  private endHead(): void {
    const command = this.command!;
    this.bodyStart = this.scan;
    this.phase = Phase.Body;
    const cl = getStompHeader({ headers: this.headers }, 'content-length');
    if (cl !== undefined) {
      if (!/^[0-9]{1,15}$/.test(cl)) fail(`invalid content-length ${JSON.stringify(cl)} in ${command} frame`);
      const n = Number(cl);
      if (n > this.maxBodySize) this.bodyTooLarge(n);
      if (n > 0 && !stompCommandHasBody(command)) this.bodyNotAllowed();
      if (this.bodyStart + n + 1 > this.maxFrameSize) this.frameTooLarge(this.bodyStart + n + 1);
      this.contentLength = n;
    }
  }

  private parseBody(data: Buffer, base: number, end: number): { frame: StompFrame; size: number } | null {
    const bodyStart = base + this.bodyStart;
    let bodyEnd: number;
    if (this.contentLength >= 0) {
      bodyEnd = bodyStart + this.contentLength;
      if (end <= bodyEnd) return null;
      if (data[bodyEnd] !== NUL) {
        fail(
          `${this.command} frame body is not followed by NUL after its content-length of ${this.contentLength} bytes`,
        );
      }
    } else {
      const nul = data.indexOf(NUL, base + this.scan);
      if (nul === -1) {
        if (end - bodyStart > this.maxBodySize) this.bodyTooLarge(end - bodyStart);
        if (end - base > this.maxFrameSize) this.frameTooLarge();
        this.scan = end - base;
        return null;
      }
      bodyEnd = nul;
      if (bodyEnd - bodyStart > this.maxBodySize) this.bodyTooLarge(bodyEnd - bodyStart);
      if (bodyEnd + 1 - base > this.maxFrameSize) this.frameTooLarge(bodyEnd + 1 - base);
      if (bodyEnd > bodyStart && !stompCommandHasBody(this.command!)) this.bodyNotAllowed();
    }
    // Copy, so the body never aliases the caller's chunk or this decoder's buffer (a zero-length
    // body is one shared empty Buffer).
    let body = EMPTY_BODY;
    if (bodyEnd > bodyStart) {
      body = Buffer.allocUnsafe(bodyEnd - bodyStart);
      data.copy(body, 0, bodyStart, bodyEnd);
    }
    const frame: StompFrame = { command: this.command!, headers: this.headers, body };
    this.headers = [];
    return { frame, size: bodyEnd + 1 - base };
  }

  /** Keep data[base..end) for the next push, in this decoder's own buffer. */
  private keep(data: Buffer, buffered: boolean, base: number, end: number): void {
    const n = end - base;
    if (n === 0) {
      this.len = 0;
      if (this.buf.length > 64 * 1024) this.buf = Buffer.alloc(0);
      return;
    }
    if (buffered) {
      if (base > 0) this.buf.copyWithin(0, base, end);
    } else {
      this.reserve(n, 0);
      data.copy(this.buf, 0, base, end);
    }
    this.len = n;
  }

  private append(chunk: Buffer): void {
    this.reserve(this.len + chunk.length, this.len);
    chunk.copy(this.buf, this.len);
    this.len += chunk.length;
  }

  /** Make room for `size` bytes, keeping the first `keep` bytes. */
  private reserve(size: number, keep: number): void {
    if (this.buf.length >= size) return;
    let cap = Math.max(this.buf.length * 2, 1024);
    while (cap < size) cap *= 2;
    if (this.phase === Phase.Body && this.contentLength >= 0) {
      // The frame's size is known: never grow past it plus what is arriving.
      cap = Math.max(size, Math.min(cap, this.bodyStart + this.contentLength + 1));
    }
    const next = Buffer.allocUnsafe(cap);
    if (keep > 0) this.buf.copy(next, 0, 0, keep);
    this.buf = next;
  }

  private lineTooLong(): never {
    fail(`header line longer than ${this.maxHeaderLineLength} bytes`, 'FRAME_TOO_LARGE');
  }

  private frameTooLarge(size?: number): never {
    fail(
      `${this.command ?? 'frame'} frame ${size === undefined ? 'is larger' : `of ${size} bytes is larger`} than the maximum frame size of ${this.maxFrameSize} bytes`,
      'FRAME_TOO_LARGE',
    );
  }

  private bodyTooLarge(size: number): never {
    fail(
      `${this.command} frame body of ${size} bytes or more is larger than the maximum body size of ${this.maxBodySize} bytes`,
      'FRAME_TOO_LARGE',
    );
  }

  private bodyNotAllowed(): never {
    fail(`${this.command} frame must not have a body: only SEND, MESSAGE and ERROR have one`);
  }
}
