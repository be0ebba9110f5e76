/**
 * Message bodies that carry their sequence number, for `keel produce`, `keel consume` and
 * `keel drill`: `000123 ` (the number, zero-padded to at least six digits, and one space), then
 * padding up to the requested size. A consumer reads the number back and counts duplicates and
 * gaps without any header or property support from the broker.
 */

/** Digits the sequence number is padded to (wider numbers simply take more room). */
export const SEQUENCE_DIGITS = 6;
/** What fills a body after the number. */
const PADDING_CHAR = 'x';

/**
 * The body of message `seq` (1, 2, …): `000123 ` then `x` up to `sizeBytes`. A size smaller than
 * the number itself gives just the number and its space.
 */
export function sequenceBody(seq: number, sizeBytes: number): Buffer {
  const head = `${String(seq).padStart(SEQUENCE_DIGITS, '0')} `;
  const size = Math.max(head.length, sizeBytes);
  const body = Buffer.alloc(size, PADDING_CHAR);
  body.write(head, 0, 'latin1');
  return body;
}

/** The sequence number at the start of a body, or null when it does not start with digits and a space (or end). */
export function parseSequence(body: Buffer | string): number | null {
  const head = typeof body === 'string' ? body.slice(0, 24) : body.subarray(0, 24).toString('latin1');
  const match = /^(\d+)(?: |$)/.exec(head);
  if (!match) return null;
  const seq = Number(match[1]);
  return Number.isSafeInteger(seq) ? seq : null;
}

export interface SequenceCounts {
  /** Bodies seen, numbered or not. */
  received: number;
  /** Bodies whose number had been seen before. */
  duplicates: number;
  /** Numbers missing between the lowest and the highest seen. */
  gaps: number;
  /** Bodies that did not start with a sequence number. */
  unnumbered: number;
  /** Lowest and highest number seen (null before the first). */
  firstSeq: number | null;
  lastSeq: number | null;
}

/**
 * Counts duplicates and gaps over the sequence numbers it is given, in any order. A gap is a
 * number between the lowest and the highest seen that never came; numbers below the lowest seen
 * are not counted (a consumer that joins a topic late starts mid-stream).
 */
export class SequenceTracker {
  private readonly seen = new Set<number>();
  private received = 0;
  private duplicates = 0;
  private unnumbered = 0;
  private min: number | null = null;
  private max: number | null = null;

  /** Records one body (or an already parsed number); returns 'new', 'duplicate' or 'unnumbered'. */
  add(bodyOrSeq: Buffer | string | number | null): 'new' | 'duplicate' | 'unnumbered' {
    this.received++;
    const seq = typeof bodyOrSeq === 'number' || bodyOrSeq === null ? bodyOrSeq : parseSequence(bodyOrSeq);
    if (seq === null) {
      this.unnumbered++;
      return 'unnumbered';
    }
    if (this.seen.has(seq)) {
      this.duplicates++;
      return 'duplicate';
    }
    this.seen.add(seq);
    if (this.min === null || seq < this.min) this.min = seq;
    if (this.max === null || seq > this.max) this.max = seq;
    return 'new';
  }

  has(seq: number): boolean {
    return this.seen.has(seq);
  }

  counts(): SequenceCounts {
    const span = this.min === null || this.max === null ? 0 : this.max - this.min + 1;
    return {
      received: this.received,
      duplicates: this.duplicates,
      gaps: span - this.seen.size,
      unnumbered: this.unnumbered,
      firstSeq: this.min,
      lastSeq: this.max,
    };
  }
}
