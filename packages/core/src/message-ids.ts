import { InvalidArgumentError } from '@keel/protocol';

/**
 * Message ids are numbers `epoch * 2^32 + counter`: unique across takeovers (each master has its own
 * epoch), increasing, and safe as JS numbers up to epoch 2^21. The wire form is the decimal string.
 */
export const COUNTER_BITS = 32;
const COUNTER_SPAN = 2 ** COUNTER_BITS;
export const MAX_EPOCH = 2 ** (53 - COUNTER_BITS) - 1;

export class MessageIdAllocator {
  private counter = 0;

  constructor(readonly epoch: number) {
    if (!Number.isInteger(epoch) || epoch < 0 || epoch > MAX_EPOCH) {
      throw new InvalidArgumentError(`epoch ${epoch} out of range for message ids`);
    }
  }

  /** The last id handed out (below every id `next()` will give); `epoch * 2^32` before the first. */
  get last(): number {
    return this.epoch * COUNTER_SPAN + this.counter;
  }

  next(): number {
    if (this.counter >= COUNTER_SPAN - 1) {
      throw new InvalidArgumentError(`message id space of epoch ${this.epoch} exhausted; take over again`);
    }
    this.counter += 1;
    return this.epoch * COUNTER_SPAN + this.counter;
  }
}

export function epochOfId(id: number): number {
  return Math.floor(id / COUNTER_SPAN);
}

export function formatMessageId(id: number): string {
  return String(id);
}

/** Parse a wire message id; returns NaN for anything that is not one of ours. */
export function parseMessageId(value: string): number {
  if (typeof value !== 'string' || !/^\d{1,16}$/.test(value)) return Number.NaN;
  return Number(value);
}
