import { InvalidArgumentError, type Message } from '@keel/protocol';

/**
 * A sent message's fields checked against the columns and JSON they are stored in
 * (migrations/001_initial.sql), before the message joins a group-commit round: a value Postgres
 * would refuse must fail its own send with INVALID_ARGUMENT naming the field, not the round it
 * shares with other producers' sends (GroupCommitWriter).
 *
 * - `expiration` (keel_messages.expiration bigint) and `timestamp`: integers of ms since the epoch,
 *   0 <= x <= Number.MAX_SAFE_INTEGER (a JavaScript number is exact only up to there; 1.5 or 1e308
 *   failed the bigint insert with 22P02 / 22003).
 * - `priority` (smallint): checked by the broker (0-9) before this.
 * - `producerSeq` (keel_producers.last_seq bigint): an integer 0 <= x <= Number.MAX_SAFE_INTEGER;
 *   `producerId` (a text primary key: a B-tree entry is limited to about 2,700 bytes, 54000 beyond)
 *   at most MAX_PRODUCER_ID_BYTES of UTF-8.
 * - Every string stored in the headers (keel_messages.headers jsonb: property names and values,
 *   correlationId, replyTo, type, producerId, brokerPath, originalDestination, dlqReason, the
 *   destination): no U+0000 (jsonb refuses it, 22P05) and no lone UTF-16 surrogate (its JSON escape
 *   is refused by jsonb, 22P02; as UTF-8 it would silently become U+FFFD). Property numbers finite
 *   (JSON has no NaN or Infinity; they would be stored as null).
 * - The body (bytea) is bytes, bounded by the broker's maxMessageSize; the destination name's
 *   length and characters by checkDestinationName.
 */
export const MAX_PRODUCER_ID_BYTES = 1024;

const STRING_HEADERS = ['correlationId', 'replyTo', 'type', 'originalDestination', 'dlqReason'] as const;

type WellFormed = string & { isWellFormed(): boolean };

/** Why `s` cannot be stored in a jsonb string, or null when it can. */
function badString(s: string): string | null {
  if (s.includes('\u0000')) return 'contains a NUL character';
  if (!(s as WellFormed).isWellFormed()) return 'contains an unpaired UTF-16 surrogate';
  return null;
}

function checkString(value: unknown, field: string): void {
  if (typeof value !== 'string') throw new InvalidArgumentError(`${field} must be a string`);
  const bad = badString(value);
  if (bad !== null) throw new InvalidArgumentError(`${field} ${bad}`);
}

/** An integer of the bigint columns that JavaScript carries exactly. */
function checkStoredInteger(value: unknown, field: string): void {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    throw new InvalidArgumentError(
      `${field} must be an integer 0-${Number.MAX_SAFE_INTEGER} (got ${JSON.stringify(value) ?? String(value)})`,
    );
  }
}

/** Throws InvalidArgumentError naming the first field of `m` the store would refuse. */
export function validateMessageFields(m: Message): void {
  checkStoredInteger(m.expiration, 'expiration');
  checkStoredInteger(m.timestamp, 'timestamp');
  checkString(m.destination, 'destination');
  for (const k of STRING_HEADERS) {
    const v = m[k];
    if (v !== undefined && v !== null) checkString(v, k);
  }
  if (m.producerId !== undefined) {
    checkString(m.producerId, 'producerId');
    if (Buffer.byteLength(m.producerId) > MAX_PRODUCER_ID_BYTES) {
      throw new InvalidArgumentError(`producerId longer than ${MAX_PRODUCER_ID_BYTES} bytes`);
    }
  }
  if (m.producerSeq !== undefined) checkStoredInteger(m.producerSeq, 'producerSeq');
  if (m.brokerPath !== undefined) {
    if (!Array.isArray(m.brokerPath))
      throw new InvalidArgumentError('brokerPath must be an array of strings');
    for (const b of m.brokerPath) checkString(b, 'brokerPath entry');
  }
  const props = m.properties;
  if (typeof props !== 'object' || props === null || Array.isArray(props)) {
    throw new InvalidArgumentError('properties must be an object');
  }
  for (const name in props) {
    const bad = badString(name);
    if (bad !== null) throw new InvalidArgumentError(`property name ${JSON.stringify(name)} ${bad}`);
    const v = props[name];
    if (typeof v === 'string') {
      const badValue = badString(v);
      if (badValue !== null) throw new InvalidArgumentError(`property ${JSON.stringify(name)} ${badValue}`);
    } else if (typeof v === 'number') {
      if (!Number.isFinite(v))
        throw new InvalidArgumentError(`property ${JSON.stringify(name)} must be finite`);
    } else if (v !== null && typeof v !== 'boolean') {
      throw new InvalidArgumentError(
        `property ${JSON.stringify(name)} must be a string, number, boolean or null`,
      );
    }
  }
}
