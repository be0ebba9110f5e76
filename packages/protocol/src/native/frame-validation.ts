import { ProtocolError } from '../errors';
import { MAX_PRIORITY, MIN_PRIORITY } from '../message';
import { type Frame, FrameType } from './frames';

/**
 * Checks the JSON header of a decoded native frame, field by field, one small function per frame
 * type. Fields this version does not know are left in place (a newer peer may add optional
 * fields); required fields must be present with the right type. The check works in place on the
 * object JSON.parse produced and returns it as the typed frame.
 */
type Obj = Record<string, unknown>;

function fail(frame: string, message: string): never {
  throw new ProtocolError(`invalid ${frame} frame: ${message}`);
}

function isObject(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function str(o: Obj, k: string, f: string): void {
  if (typeof o[k] !== 'string') fail(f, `"${k}" must be a string`);
}

function optStr(o: Obj, k: string, f: string): void {
  const v = o[k];
  if (v !== undefined && typeof v !== 'string') fail(f, `"${k}" must be a string`);
}

function bool(o: Obj, k: string, f: string): void {
  if (typeof o[k] !== 'boolean') fail(f, `"${k}" must be a boolean`);
}

function optBool(o: Obj, k: string, f: string): void {
  const v = o[k];
  if (v !== undefined && typeof v !== 'boolean') fail(f, `"${k}" must be a boolean`);
}

/**
 * A finite number (this also rejects null). JSON has no Infinity, but JSON.parse reads a literal
 * too large for a double, such as 1e999, as one: refused as the compact form refuses it (found by
 * the fuzzing campaign, docs/security.md "Fuzzing").
 */
function num(o: Obj, k: string, f: string): void {
  if (!Number.isFinite(o[k])) fail(f, `"${k}" must be a finite number`);
}

function optNum(o: Obj, k: string, f: string): void {
  if (o[k] !== undefined) num(o, k, f);
}

/** A non-negative safe integer. */
function count(o: Obj, k: string, f: string): void {
  const v = o[k];
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) {
    fail(f, `"${k}" must be a non-negative integer`);
  }
}

function optCount(o: Obj, k: string, f: string): void {
  if (o[k] !== undefined) count(o, k, f);
}

function strArray(o: Obj, k: string, f: string): void {
  const v = o[k];
  if (!Array.isArray(v)) fail(f, `"${k}" must be an array of strings`);
  for (const s of v) if (typeof s !== 'string') fail(f, `"${k}" must be an array of strings`);
}

function optStrArray(o: Obj, k: string, f: string): void {
  if (o[k] !== undefined) strArray(o, k, f);
}

function isPropertyValue(v: unknown): boolean {
  return v === null || typeof v === 'string' || Number.isFinite(v) || typeof v === 'boolean';
}

function properties(o: Obj, k: string, f: string): void {
  checkProperties(o[k], f, k);
}

/** Message properties: an object of strings, numbers, booleans and nulls (also compact.ts's). */
export function checkProperties(v: unknown, f: string, k = 'properties'): void {
  if (!isObject(v)) fail(f, `"${k}" must be an object`);
  for (const name in v) {
    if (!isPropertyValue(v[name])) {
      fail(f, `property "${name}" must be a string, a finite number, a boolean or null`);
    }
  }
}

function broker(o: Obj, k: string, f: string): void {
  const b = o[k];
  if (!isObject(b)) fail(f, `"${k}" must be an object`);
  str(b, 'name', f);
  str(b, 'cluster', f);
  const role = b.role;
  if (
    role !== 'master' &&
    role !== 'slave' &&
    role !== 'recovering' &&
    role !== 'fenced' &&
    role !== 'waiting'
  ) {
    fail(f, `"${k}.role" must be one of master, slave, recovering, fenced, waiting`);
  }
  count(b, 'epoch', f);
  str(b, 'version', f);
}

/** The message headers of SEND/MESSAGE (message.ts), checked in place; the body is attached after. */
function message(o: Obj, delivered: boolean, f: string): void {
  const m = o.message;
  if (!isObject(m)) fail(f, '"message" must be an object');
  if (delivered) str(m, 'messageId', f);
  else optStr(m, 'messageId', f);
  str(m, 'destination', f);
  bool(m, 'persistent', f);
  const p = m.priority;
  if (typeof p !== 'number' || !Number.isInteger(p) || p < MIN_PRIORITY || p > MAX_PRIORITY) {
    fail(f, `"priority" must be an integer ${MIN_PRIORITY}..${MAX_PRIORITY}`);
  }
  num(m, 'timestamp', f);
  num(m, 'expiration', f);
  optStr(m, 'correlationId', f);
  optStr(m, 'replyTo', f);
  optStr(m, 'type', f);
  optStr(m, 'producerId', f);
  optNum(m, 'producerSeq', f);
  optStrArray(m, 'brokerPath', f);
  optStr(m, 'originalDestination', f);
  optStr(m, 'dlqReason', f);
  properties(m, 'properties', f);
  if (delivered) {
    count(m, 'deliveryCount', f);
    bool(m, 'redelivered', f);
  }
}

const ACK_MODES = new Set(['auto', 'client', 'individual']);

type Check = (o: Obj, f: string) => void;

const CHECKS: Record<number, Check> = {
  [FrameType.Hello]: (o, f) => {
    count(o, 'protocolVersion', f);
    optCount(o, 'minProtocolVersion', f);
    optStr(o, 'clientId', f);
    optStr(o, 'username', f);
    optStr(o, 'password', f);
    count(o, 'heartbeatMs', f);
    optCount(o, 'maxFrameSize', f);
  },
  [FrameType.Welcome]: (o, f) => {
    count(o, 'protocolVersion', f);
    str(o, 'connectionId', f);
    str(o, 'clientId', f);
    broker(o, 'broker', f);
    strArray(o, 'brokers', f);
    count(o, 'heartbeatMs', f);
    count(o, 'maxFrameSize', f);
  },
  [FrameType.Heartbeat]: () => {},
  [FrameType.Error]: (o, f) => {
    str(o, 'code', f);
    str(o, 'message', f);
    bool(o, 'retryable', f);
    bool(o, 'fatal', f);
    optStr(o, 'receiptId', f);
  },
  [FrameType.Receipt]: (o, f) => {
    str(o, 'receiptId', f);
    optStr(o, 'messageId', f);
    const more = o.more;
    if (more === undefined) return;
    if (!Array.isArray(more)) fail(f, '"more" must be an array');
    for (const e of more) {
      if (!isObject(e)) fail(f, '"more" must hold objects');
      str(e, 'receiptId', f);
      optStr(e, 'messageId', f);
    }
  },
  [FrameType.SessionOpen]: (o, f) => {
    bool(o, 'transacted', f);
    if (!ACK_MODES.has(o.ackMode as string)) fail(f, '"ackMode" must be one of auto, client, individual');
    optStr(o, 'receiptId', f);
  },
  [FrameType.SessionClose]: (o, f) => optStr(o, 'receiptId', f),
  [FrameType.Subscribe]: (o, f) => {
    str(o, 'consumerId', f);
    str(o, 'destination', f);
    count(o, 'prefetch', f);
    optStr(o, 'selector', f);
    optStr(o, 'durableName', f);
    optBool(o, 'noLocal', f);
    optBool(o, 'browse', f);
    optBool(o, 'exclusive', f);
    const p = o.priority;
    if (p !== undefined && !(Number.isInteger(p) && (p as number) >= -128 && (p as number) <= 127))
      fail(f, '"priority" must be an integer -128..127');
    optStr(o, 'receiptId', f);
  },
  [FrameType.Unsubscribe]: (o, f) => {
    str(o, 'consumerId', f);
    optStr(o, 'receiptId', f);
  },
  [FrameType.RemoveDurable]: (o, f) => {
    str(o, 'durableName', f);
    optStr(o, 'receiptId', f);
  },
  [FrameType.Send]: (o, f) => {
    optStr(o, 'receiptId', f);
    optStr(o, 'txId', f);
    optBool(o, 'resent', f);
    message(o, false, f);
  },
  [FrameType.Message]: (o, f) => {
    str(o, 'consumerId', f);
    message(o, true, f);
    optBool(o, 'browseEnd', f);
  },
  [FrameType.Ack]: (o, f) => {
    str(o, 'consumerId', f);
    strArray(o, 'messageIds', f);
    optBool(o, 'cumulative', f);
    optStr(o, 'txId', f);
    optStr(o, 'receiptId', f);
  },
  [FrameType.Nack]: (o, f) => {
    str(o, 'consumerId', f);
    strArray(o, 'messageIds', f);
    optStr(o, 'receiptId', f);
  },
  [FrameType.Credit]: (o, f) => {
    str(o, 'consumerId', f);
    count(o, 'credit', f);
  },
  [FrameType.TxBegin]: (o, f) => {
    str(o, 'txId', f);
    optStr(o, 'receiptId', f);
  },
  [FrameType.TxCommit]: (o, f) => {
    str(o, 'txId', f);
    optStr(o, 'receiptId', f);
  },
  [FrameType.TxRollback]: (o, f) => {
    str(o, 'txId', f);
    optStr(o, 'receiptId', f);
  },
  [FrameType.TxOutcome]: (o, f) => {
    str(o, 'txId', f);
    const v = o.outcome;
    if (v !== undefined && v !== 'committed' && v !== 'unknown')
      fail(f, '"outcome" must be committed or unknown');
    optStr(o, 'receiptId', f);
  },
  [FrameType.Close]: (o, f) => optStr(o, 'receiptId', f),
  [FrameType.BrokerInfo]: (o, f) => {
    broker(o, 'broker', f);
    strArray(o, 'brokers', f);
  },
  [FrameType.Request]: (o, f) => {
    str(o, 'receiptId', f);
    str(o, 'op', f);
    const args = o.args;
    if (!isObject(args)) fail(f, '"args" must be an object');
    for (const k in args) {
      const v = args[k];
      if (Array.isArray(v) ? !v.every(isPropertyValue) : !isPropertyValue(v)) {
        fail(f, `argument "${k}" must be a string, number, boolean, null or an array of those`);
      }
    }
  },
  [FrameType.Response]: (o, f) => {
    str(o, 'receiptId', f);
    if (!('result' in o)) fail(f, '"result" is missing');
  },
};

/** Frames that belong to the connection and must travel on channel 0. */
const CONNECTION_FRAMES = new Set<number>([
  FrameType.Hello,
  FrameType.Welcome,
  FrameType.Heartbeat,
  FrameType.Close,
  FrameType.BrokerInfo,
]);

export function isKnownFrameType(type: number): type is FrameType {
  return CHECKS[type] !== undefined;
}

/**
 * Validate a parsed JSON header and turn it into a typed frame (in place). `body` is attached to
 * `message.body` for SEND and MESSAGE; for every other type it must be empty.
 */
export function validateFrame(type: FrameType, channel: number, header: unknown, body: Buffer | null): Frame {
  const name = FrameType[type] ?? String(type);
  const check = CHECKS[type];
  if (check === undefined) throw new ProtocolError(`unknown frame type ${type}`);
  if (!isObject(header)) fail(name, 'the JSON header is not an object');
  if (channel !== 0 && CONNECTION_FRAMES.has(type)) fail(name, `it must travel on channel 0, not ${channel}`);
  check(header, name);
  if (type === FrameType.Send || type === FrameType.Message) {
    (header.message as Obj).body = body ?? Buffer.alloc(0);
  } else if (body !== null && body.length > 0) {
    fail(name, `only SEND and MESSAGE frames carry a body (got ${body.length} bytes)`);
  }
  header.type = type;
  header.channel = channel;
  return header as unknown as Frame;
}
