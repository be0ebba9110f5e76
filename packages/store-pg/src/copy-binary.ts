/**
 * Encodes keel_messages rows in PostgreSQL's binary COPY format (PostgreSQL manual, COPY, "Binary
 * Format"): an 11-byte signature, flags and header-extension length, then per tuple a 16-bit field
 * count and each field as a 32-bit length plus its binary send representation, then a -1 trailer.
 *
 * Binary values used here: int8/int4/int2 big-endian; jsonb = version byte 1 + the JSON text;
 * bytea = the raw bytes. No escaping, no hex: the body goes over the wire as it is.
 */
import type { StoredMessage } from '@keel/core';

const SIGNATURE = Buffer.from('PGCOPY\n\xff\r\n\0', 'latin1');
const HEADER_LENGTH = SIGNATURE.length + 8;
const FIELD_COUNT = 7;
/** Fixed bytes per tuple: field count (2) + 7 length words (28) + int8 + int4 + int2 + int8 + int4 + jsonb version. */
const FIXED_TUPLE_BYTES = 2 + FIELD_COUNT * 4 + 8 + 4 + 2 + 8 + 4 + 1;
const TWO_32 = 2 ** 32;

/** The COPY statement matching encodeMessagesCopy's column order. */
export const COPY_MESSAGES_SQL =
  'COPY keel_messages (id, dest_id, priority, expiration, delivery_count, headers, body) FROM STDIN (FORMAT binary)';

function writeInt64(buf: Buffer, value: number, offset: number): number {
  // Safe integers only (ids are < 2^53); split into two 32-bit words without BigInt. A fraction
  // would be truncated silently by the word writes: refuse it as the bigint insert would (22P02),
  // a data error of its row (pg-errors isDataError).
  if (!Number.isSafeInteger(value)) throw new RangeError(`not an integer for a bigint column: ${value}`);
  const high = Math.floor(value / TWO_32);
  const low = value - high * TWO_32;
  buf.writeInt32BE(high, offset);
  buf.writeUInt32BE(low, offset + 4);
  return offset + 8;
}

/** One buffer holding the whole COPY payload for these messages. */
export function encodeMessagesCopy(messages: readonly StoredMessage[]): Buffer {
  const headers = messages.map((m) => JSON.stringify(m.headers));
  let size = HEADER_LENGTH + 2;
  for (let i = 0; i < messages.length; i++) {
    size += FIXED_TUPLE_BYTES + Buffer.byteLength(headers[i]!, 'utf8') + messages[i]!.body.length;
  }
  const buf = Buffer.allocUnsafe(size);
  let o = SIGNATURE.copy(buf, 0);
  o = buf.writeInt32BE(0, o); // flags: no OIDs
  o = buf.writeInt32BE(0, o); // header extension length
  for (let i = 0; i < messages.length; i++) {
    const m = messages[i]!;
    o = buf.writeInt16BE(FIELD_COUNT, o);
    o = buf.writeInt32BE(8, o);
    o = writeInt64(buf, m.id, o);
    o = buf.writeInt32BE(4, o);
    o = buf.writeInt32BE(m.destId, o);
    o = buf.writeInt32BE(2, o);
    o = buf.writeInt16BE(m.priority, o);
    o = buf.writeInt32BE(8, o);
    o = writeInt64(buf, m.expiration, o);
    o = buf.writeInt32BE(4, o);
    o = buf.writeInt32BE(m.deliveryCount, o);
    const lengthAt = o;
    o += 4;
    o = buf.writeUInt8(1, o); // jsonb binary format version
    const written = buf.write(headers[i]!, o, 'utf8');
    o += written;
    buf.writeInt32BE(written + 1, lengthAt);
    o = buf.writeInt32BE(m.body.length, o);
    o += m.body.copy(buf, o);
  }
  o = buf.writeInt16BE(-1, o);
  return o === size ? buf : buf.subarray(0, o);
}

/**
 * Rows in `MESSAGE_COLUMNS` order (id int8, dest_id int4, priority int2, expiration int8,
 * delivery_count int4, headers jsonb, body bytea) from a binary `COPY (SELECT …) TO STDOUT`: what a
 * page read gets instead of pg's text rows, whose bodies arrive as hex text (twice their size, a
 * string per row to parse and collect). Each body is copied out of the payload, so no message keeps
 * the whole page's buffer alive.
 */
export function decodeMessagesCopy(buf: Buffer): StoredMessage[] {
  try {
    return decodeRows(buf);
  } catch (err) {
    if ((err as { code?: string }).code === 'ERR_OUT_OF_RANGE')
      throw new Error('binary COPY: truncated payload');
    throw err;
  }
}

function decodeRows(buf: Buffer): StoredMessage[] {
  if (buf.length < HEADER_LENGTH + 2 || !buf.subarray(0, SIGNATURE.length).equals(SIGNATURE)) {
    throw new Error('binary COPY: bad signature');
  }
  // Flags (4 bytes), then a header extension of the given length.
  let o = SIGNATURE.length + 4;
  o += 4 + buf.readInt32BE(o);
  const out: StoredMessage[] = [];
  for (;;) {
    const fields = buf.readInt16BE(o);
    o += 2;
    if (fields === -1) return out;
    if (fields !== FIELD_COUNT)
      throw new Error(`binary COPY: ${fields} fields in a row, expected ${FIELD_COUNT}`);
    o = expectLength(buf, o, 8);
    const id = readInt64(buf, o);
    o = expectLength(buf, o + 8, 4);
    const destId = buf.readInt32BE(o);
    o = expectLength(buf, o + 4, 2);
    const priority = buf.readInt16BE(o);
    o = expectLength(buf, o + 2, 8);
    const expiration = readInt64(buf, o);
    o = expectLength(buf, o + 8, 4);
    const deliveryCount = buf.readInt32BE(o);
    o += 4;
    const headersLength = fieldLength(buf, o);
    o += 4;
    if (buf[o] !== 1) throw new Error(`binary COPY: jsonb version ${buf[o]}`);
    const headers = JSON.parse(buf.toString('utf8', o + 1, o + headersLength));
    o += headersLength;
    const bodyLength = fieldLength(buf, o);
    o += 4;
    const body = Buffer.allocUnsafe(bodyLength);
    buf.copy(body, 0, o, o + bodyLength);
    o += bodyLength;
    out.push({ id, destId, priority, expiration, deliveryCount, headers, body });
  }
}

function readInt64(buf: Buffer, offset: number): number {
  return buf.readInt32BE(offset) * TWO_32 + buf.readUInt32BE(offset + 4);
}

/** A variable field's length word; a NULL (-1) cannot occur in these NOT NULL columns. */
function fieldLength(buf: Buffer, offset: number): number {
  const length = buf.readInt32BE(offset);
  if (length < 0) throw new Error('binary COPY: unexpected NULL');
  if (offset + 4 + length > buf.length) throw new Error('binary COPY: truncated payload');
  return length;
}

function expectLength(buf: Buffer, offset: number, length: number): number {
  const actual = buf.readInt32BE(offset);
  if (actual !== length) throw new Error(`binary COPY: a field of ${actual} bytes, expected ${length}`);
  return offset + 4;
}
