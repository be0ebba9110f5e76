import { ProtocolError } from '../errors';
import {
  getStompHeader,
  isStompCommand,
  type StompFrame,
  type StompVersion,
  stompCommandEscapesHeaders,
  stompCommandHasBody,
} from './stomp-frame';

export interface StompEncodeOptions {
  /** Header escaping follows the negotiated version (STOMP 1.2 "Value Encoding"). Default 1.2. */
  version?: StompVersion;
  /**
   * Add a `content-length` header to frames with a non-empty body that lack one (default true).
   * Without it, a body containing NUL cannot be encoded (STOMP 1.2 "Header content-length").
   */
  contentLength?: boolean;
}

/** A single EOL: what a peer sends as a heart-beat (STOMP 1.2 "Heart-beating"). */
export const STOMP_HEARTBEAT_BYTES: Buffer = Buffer.from('\n');

const NEEDS_ESCAPE_12 = /[\r\n:\\]/;
const NEEDS_ESCAPE_11 = /[\n:\\]/;
const ESCAPES: Record<string, string> = { '\r': '\\r', '\n': '\\n', ':': '\\c', '\\': '\\\\' };

function escape12(s: string): string {
  return NEEDS_ESCAPE_12.test(s) ? s.replace(/[\r\n:\\]/g, (c) => ESCAPES[c]!) : s;
}

/** STOMP 1.1 defines only \n, \c and \\ (its "Value Encoding"); a CR travels as it is. */
function escape11(s: string): string {
  return NEEDS_ESCAPE_11.test(s) ? s.replace(/[\n:\\]/g, (c) => ESCAPES[c]!) : s;
}

/** A header name or value escaped as `version` requires (STOMP 1.2 "Value Encoding"); 1.0 escapes nothing. */
export function escapeStompHeader(s: string, version: StompVersion): string {
  return version === '1.2' ? escape12(s) : version === '1.1' ? escape11(s) : s;
}

/**
 * A header value escaped as `version` requires, to be followed by LF. STOMP 1.1 has no escape for
 * CR and its EOL is `[CR] LF` ("Augmented BNF"), so a value that ends in CR would lose that CR to
 * the EOL: it gets one more CR, and the line ends in CR LF with the value's own CR kept (found by
 * the fuzzer's round trip, docs/security.md "Fuzzing").
 */
export function escapeStompValue(s: string, version: StompVersion): string {
  const escaped = escapeStompHeader(s, version);
  return version === '1.1' && escaped.endsWith('\r') ? `${escaped}\r` : escaped;
}

/** The NUL that ends every STOMP frame. */
export const STOMP_FRAME_END = 0;

/**
 * A frame from its head already encoded (`COMMAND LF (name:value LF)* LF`, escaped by the caller)
 * and its body.
 */
export function stompFrameBytes(head: string, body: Buffer): Buffer {
  const headLength = Buffer.byteLength(head, 'utf8');
  const buf = Buffer.allocUnsafe(headLength + body.length + 1);
  buf.write(head, 0, headLength, 'utf8');
  body.copy(buf, headLength);
  buf[buf.length - 1] = 0;
  return buf;
}

/**
 * Encode a frame: `COMMAND LF (name:value LF)* LF body NUL`. Header names and values are escaped
 * as the version requires; with no escaping (STOMP 1.0, CONNECT, CONNECTED) a name containing
 * `:` or a value containing CR or LF cannot be encoded and throws a ProtocolError.
 */
export function encodeStompFrame(frame: StompFrame, options: StompEncodeOptions = {}): Buffer {
  const { command, headers, body } = frame;
  if (!isStompCommand(command)) throw new ProtocolError(`cannot encode unknown STOMP command "${command}"`);
  if (!Buffer.isBuffer(body)) throw new ProtocolError(`cannot encode STOMP ${command}: body is not a Buffer`);
  if (body.length > 0 && !stompCommandHasBody(command)) {
    throw new ProtocolError(
      `cannot encode STOMP ${command} with a body: only SEND, MESSAGE and ERROR have one`,
    );
  }
  const version = options.version ?? '1.2';
  const escapes = stompCommandEscapesHeaders(command, version);
  const esc = version === '1.1' ? escape11 : escape12;

  let head = command + '\n';
  for (const [name, value] of headers) {
    if (escapes) {
      head += esc(name) + ':' + escapeStompValue(value, version) + '\n';
    } else {
      if (name.length === 0 || /[\r\n:]/.test(name) || /[\r\n]/.test(value)) {
        throw new ProtocolError(
          `cannot encode STOMP ${command} header ${JSON.stringify(name)}: ${version === '1.0' ? 'STOMP 1.0' : command} frames do not escape CR, LF or ':'`,
        );
      }
      head += name + ':' + value + '\n';
    }
  }
  const declared = getStompHeader(frame, 'content-length');
  if (declared !== undefined) {
    if (declared !== String(body.length)) {
      throw new ProtocolError(
        `cannot encode STOMP ${command}: content-length ${declared} does not match the body of ${body.length} bytes`,
      );
    }
  } else if (body.length > 0) {
    if (options.contentLength ?? true) head += `content-length:${body.length}\n`;
    else if (body.includes(0)) {
      throw new ProtocolError(
        `cannot encode STOMP ${command}: the body contains NUL and there is no content-length`,
      );
    }
  }
  return stompFrameBytes(head + '\n', body);
}
