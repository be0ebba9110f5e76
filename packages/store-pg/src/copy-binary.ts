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
  // Safe integers only (ids are < 2^53); split into two 32-bit words without BigInt.
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
