/**
 * STOMP frames (https://stomp.github.io/stomp-specification-1.2.html). Headers are kept as an
 * ordered list of `[name, value]` pairs so repeated headers survive decoding and re-encoding;
 * STOMP 1.2 "Repeated Header Entries": only the FIRST occurrence counts, which is what
 * `getStompHeader` returns.
 */
export type StompVersion = '1.0' | '1.1' | '1.2';

export const STOMP_VERSIONS: readonly StompVersion[] = ['1.0', '1.1', '1.2'];

/** STOMP 1.2 "Client Frames". */
export const STOMP_CLIENT_COMMANDS = [
  'CONNECT',
  'STOMP',
  'SEND',
  'SUBSCRIBE',
  'UNSUBSCRIBE',
  'ACK',
  'NACK',
  'BEGIN',
  'COMMIT',
  'ABORT',
  'DISCONNECT',
] as const;

/** STOMP 1.2 "Server Frames". */
export const STOMP_SERVER_COMMANDS = ['CONNECTED', 'MESSAGE', 'RECEIPT', 'ERROR'] as const;

export type StompClientCommand = (typeof STOMP_CLIENT_COMMANDS)[number];
export type StompServerCommand = (typeof STOMP_SERVER_COMMANDS)[number];
export type StompCommand = StompClientCommand | StompServerCommand;

export type StompHeaders = Array<[name: string, value: string]>;

export interface StompFrame {
  command: StompCommand;
  headers: StompHeaders;
  body: Buffer;
}

/** What the streaming decoder yields: a frame, or an EOL received between frames (a heart-beat). */
export type StompEvent = { type: 'frame'; frame: StompFrame } | { type: 'heartbeat' };

const COMMANDS = new Set<string>([...STOMP_CLIENT_COMMANDS, ...STOMP_SERVER_COMMANDS]);

export function isStompCommand(value: string): value is StompCommand {
  return COMMANDS.has(value);
}

/** STOMP 1.2 "Body": only SEND, MESSAGE and ERROR frames may have a body. */
export function stompCommandHasBody(command: StompCommand): boolean {
  return command === 'SEND' || command === 'MESSAGE' || command === 'ERROR';
}

/**
 * STOMP 1.2 "Value Encoding": CONNECT and CONNECTED frames do not escape header values (for
 * backward compatibility with STOMP 1.0). STOMP is an alias of CONNECT, treated the same way.
 */
export function stompCommandEscapesHeaders(command: StompCommand, version: StompVersion): boolean {
  return version !== '1.0' && command !== 'CONNECT' && command !== 'CONNECTED' && command !== 'STOMP';
}

/** The value of the first header called `name` (STOMP 1.2 "Repeated Header Entries"). */
export function getStompHeader(frame: Pick<StompFrame, 'headers'>, name: string): string | undefined {
  for (const [n, v] of frame.headers) if (n === name) return v;
  return undefined;
}

/** The headers as a record in which the first occurrence of each name wins. */
export function stompHeaderRecord(frame: Pick<StompFrame, 'headers'>): Record<string, string> {
  const out: Record<string, string> = Object.create(null);
  for (const [n, v] of frame.headers) if (!(n in out)) out[n] = v;
  return out;
}

/** Build a frame from a record of headers (in insertion order) and an optional body. */
export function stompFrame(
  command: StompCommand,
  headers: Record<string, string | number | boolean> = {},
  body?: Buffer | string,
): StompFrame {
  return {
    command,
    headers: Object.entries(headers).map(([n, v]) => [n, String(v)]),
    body: body === undefined ? Buffer.alloc(0) : typeof body === 'string' ? Buffer.from(body, 'utf8') : body,
  };
}

/** Limits in bytes; the defaults bound a connection's memory (ActiveMQ's StompWireFormat has the same four). */
export const DEFAULT_STOMP_MAX_FRAME_SIZE = 4 * 1024 * 1024;
export const DEFAULT_STOMP_MAX_BODY_SIZE = 4 * 1024 * 1024;
export const DEFAULT_STOMP_MAX_HEADERS = 1000;
export const DEFAULT_STOMP_MAX_HEADER_LINE_LENGTH = 10 * 1024;
