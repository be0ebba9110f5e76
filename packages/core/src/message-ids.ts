import { InvalidArgumentError } from '@keel/protocol';

/**
 * Message ids are numbers `block * 2^32 + counter`, where the block is the store's id block of the
 * master's takeover (Store.idBlock): unique across takeovers and across the clusters sharing a
 * database, increasing, and safe as JS numbers up to block 2^21. The wire form is the decimal string.
 */
export const COUNTER_BITS = 32;
const COUNTER_SPAN = 2 ** COUNTER_BITS;
export const MAX_ID_BLOCK = 2 ** (53 - COUNTER_BITS) - 1;

export class MessageIdAllocator {
  private counter = 0;

  constructor(readonly block: number) {
    if (!Number.isInteger(block) || block < 0 || block > MAX_ID_BLOCK) {
      throw new InvalidArgumentError(`id block ${block} out of range for message ids`);
    }
  }

  /** The last id handed out (below every id `next()` will give); `block * 2^32` before the first. */
  get last(): number {
    return this.block * COUNTER_SPAN + this.counter;
  }

  next(): number {
    if (this.counter >= COUNTER_SPAN - 1) {
      throw new InvalidArgumentError(`message id block ${this.block} exhausted; take over again`);
    }
    this.counter += 1;
    return this.block * COUNTER_SPAN + this.counter;
  }
}

export function formatMessageId(id: number): string {
  return String(id);
}

/** Parse a wire message id; returns NaN for anything that is not one of ours. */
export function parseMessageId(value: string): number {
  if (typeof value !== 'string' || !/^\d{1,16}$/.test(value)) return Number.NaN;
  return Number(value);
}
