import { InvalidArgumentError, KeelError, NotMasterError } from '@keel/protocol';

/**
 * ActiveMQ's `<systemUsage>` with producer flow control (issue #23.3): a broker-wide bound on the
 * bytes of messages held in memory (`memoryUsage`) and on the bytes of messages in the store
 * (`storeUsage`). A send that finds a limit reached waits until usage falls (its producer gets no
 * receipt, and its connection stops being read once its pending frames are full: backpressure),
 * or, with `sendFailIfNoSpace`, is refused at once with RESOURCE_LIMIT; with
 * `sendFailIfNoSpaceAfterTimeout` it is refused after waiting that long.
 */
export interface SystemUsageOptions {
  /** `memoryUsage` limit in bytes: messages in queue windows, in flight and being sent. 0 = none. */
  memoryLimitBytes?: number;
  /** `storeUsage` limit in bytes of stored messages (see reportStoreBytes). 0 = none. */
  storeLimitBytes?: number;
  /** ActiveMQ `sendFailIfNoSpace`: refuse a send at once instead of blocking its producer. */
  sendFailIfNoSpace?: boolean;
  /** ActiveMQ `sendFailIfNoSpaceAfterTimeout` (ms): refuse a send blocked this long; 0 = wait forever. */
  sendFailIfNoSpaceAfterTimeoutMs?: number;
  /** How often blocked sends re-check the usage (ms). */
  checkIntervalMs?: number;
  /**
   * State changes, for the log: producers start waiting (`blocked`), all waiting ones got through
   * (`released`), sends start being refused (`refusing`; again only after one was admitted).
   */
  onChange?: (event: 'blocked' | 'released' | 'refusing', detail: string) => void;
}

export const SYSTEM_USAGE_DEFAULTS = Object.freeze({
  /** 512 MiB: ActiveMQ's activemq.xml ships 64 MB, sized for a JVM heap; Node keeps more per message. */
  memoryLimitBytes: 512 * 1024 * 1024,
  /** ActiveMQ's default storeUsage: 100 GB. */
  storeLimitBytes: 100 * 1024 * 1024 * 1024,
  sendFailIfNoSpace: false,
  sendFailIfNoSpaceAfterTimeoutMs: 0,
  checkIntervalMs: 50,
});

/** Bytes a message costs while the broker holds it (QueueEntry.size uses the same rule). */
export function messageBytes(body: Buffer): number {
  return body.length + 256;
}

interface Waiter {
  bytes: number;
  persistent: boolean;
  resolve: () => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout | null;
}

/** How long the sum of the queues' bytes is reused before it is taken again (ms). */
const MEMORY_SAMPLE_MS = 10;

export class SystemUsage {
  readonly memoryLimitBytes: number;
  readonly storeLimitBytes: number;
  readonly sendFailIfNoSpace: boolean;
  readonly sendFailIfNoSpaceAfterTimeoutMs: number;
  private readonly checkIntervalMs: number;
  /** Bytes of sends admitted and not settled yet. */
  private sendingBytes = 0;
  private heldBytes = 0;
  private heldAt = Number.NEGATIVE_INFINITY;
  private storeBytes = 0;
  private readonly waiters: Waiter[] = [];
  private timer: NodeJS.Timeout | null = null;
  /** Sends refused or blocked so far (metrics, logs). */
  blockedSends = 0;
  refusedSends = 0;
  private refusing = false;
  private readonly onChange: NonNullable<SystemUsageOptions['onChange']>;

  constructor(
    options: SystemUsageOptions,
    /** Bytes of the messages the destinations hold in memory (MessageQueue.memoryBytes summed). */
    private readonly heldInMemory: () => number,
  ) {
    const d = SYSTEM_USAGE_DEFAULTS;
    this.memoryLimitBytes = nonNegative('memoryLimitBytes', options.memoryLimitBytes ?? d.memoryLimitBytes);
    this.storeLimitBytes = nonNegative('storeLimitBytes', options.storeLimitBytes ?? d.storeLimitBytes);
    this.sendFailIfNoSpace = options.sendFailIfNoSpace ?? d.sendFailIfNoSpace;
    this.sendFailIfNoSpaceAfterTimeoutMs = nonNegative(
      'sendFailIfNoSpaceAfterTimeoutMs',
      options.sendFailIfNoSpaceAfterTimeoutMs ?? d.sendFailIfNoSpaceAfterTimeoutMs,
    );
    this.checkIntervalMs = Math.max(1, options.checkIntervalMs ?? d.checkIntervalMs);
    this.onChange = options.onChange ?? (() => {});
  }

  /** memoryUsage now: held by destinations plus sends in progress (bytes). */
  memoryBytes(): number {
    const now = performance.now();
    if (now - this.heldAt >= MEMORY_SAMPLE_MS) {
      this.heldBytes = this.heldInMemory();
      this.heldAt = now;
    }
    return this.heldBytes + this.sendingBytes;
  }

  /** storeUsage as last measured (the server samples the message tables). */
  get storeUsageBytes(): number {
    return this.storeBytes;
  }

  reportStoreBytes(bytes: number): void {
    this.storeBytes = bytes;
    if (this.waiters.length > 0) this.releaseWaiters();
  }

  /**
   * Admit a send of `bytes` (messageBytes): null when admitted now, else a promise that resolves
   * once it is (usage fell) or rejects with RESOURCE_LIMIT. Throws RESOURCE_LIMIT at once with
   * sendFailIfNoSpace. An admitted send's bytes count until `release(bytes)`.
   */
  acquire(bytes: number, persistent: boolean): Promise<void> | null {
    if (this.waiters.length === 0 && this.fits(bytes, persistent)) {
      this.sendingBytes += bytes;
      this.refusing = false;
      return null;
    }
    if (this.sendFailIfNoSpace) {
      this.refusedSends += 1;
      const err = this.noSpace(persistent, 'sendFailIfNoSpace');
      if (!this.refusing) this.onChange('refusing', err.message);
      this.refusing = true;
      throw err;
    }
    this.blockedSends += 1;
    if (this.waiters.length === 0)
      this.onChange('blocked', this.noSpace(persistent, 'producers wait').message);
    return new Promise<void>((resolve, reject) => {
      const waiter: Waiter = { bytes, persistent, resolve, reject, timer: null };
      const timeoutMs = this.sendFailIfNoSpaceAfterTimeoutMs;
      if (timeoutMs > 0) {
        waiter.timer = setTimeout(() => {
          const i = this.waiters.indexOf(waiter);
          if (i < 0) return;
          this.waiters.splice(i, 1);
          this.refusedSends += 1;
          reject(this.noSpace(persistent, `sendFailIfNoSpaceAfterTimeout (${timeoutMs} ms)`));
        }, timeoutMs);
        waiter.timer.unref?.();
      }
      this.waiters.push(waiter);
      this.arm();
    });
  }

  /** A send settled: its bytes now count as held (a queue has it) until the next sample says otherwise. */
  release(bytes: number): void {
    this.sendingBytes = Math.max(0, this.sendingBytes - bytes);
    this.heldBytes += bytes;
    if (this.waiters.length > 0) this.releaseWaiters();
  }

  /** The broker stops: blocked sends fail (their clients fail over). */
  close(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    for (const w of this.waiters.splice(0)) {
      if (w.timer) clearTimeout(w.timer);
      w.reject(new NotMasterError('the broker stopped while the send waited for memory or store space'));
    }
  }

  get waiting(): number {
    return this.waiters.length;
  }

  private fits(bytes: number, persistent: boolean): boolean {
    const mem = this.memoryLimitBytes;
    if (mem > 0) {
      // One message is always let through an empty broker, whatever its size (ActiveMQ does too).
      const used = this.memoryBytes();
      if (used > 0 && used + bytes > mem) return false;
    }
    const store = this.storeLimitBytes;
    return !(persistent && store > 0 && this.storeBytes >= store);
  }

  /** Let waiting sends through in order while they fit. */
  private releaseWaiters(): void {
    this.heldAt = Number.NEGATIVE_INFINITY;
    while (this.waiters.length > 0) {
      const w = this.waiters[0]!;
      if (!this.fits(w.bytes, w.persistent)) break;
      this.waiters.shift();
      if (w.timer) clearTimeout(w.timer);
      this.sendingBytes += w.bytes;
      w.resolve();
    }
    if (this.waiters.length === 0 && this.timer) {
      clearInterval(this.timer);
      this.timer = null;
      this.onChange(
        'released',
        `memoryUsage ${this.memoryBytes()} bytes, storeUsage ${this.storeBytes} bytes`,
      );
    }
  }

  /** Usage falls through acks, expiry and paging, which do not call in here: re-check on a timer. */
  private arm(): void {
    if (this.timer) return;
    this.timer = setInterval(() => this.releaseWaiters(), this.checkIntervalMs);
    this.timer.unref?.();
  }

  private noSpace(persistent: boolean, why: string): KeelError {
    const store = persistent && this.storeLimitBytes > 0 && this.storeBytes >= this.storeLimitBytes;
    const what = store
      ? `storeUsage limit of ${this.storeLimitBytes} bytes reached (${this.storeBytes} stored)`
      : `memoryUsage limit of ${this.memoryLimitBytes} bytes reached (${this.memoryBytes()} held)`;
    return new KeelError('RESOURCE_LIMIT', `send refused: ${what}; ${why}`);
  }
}

function nonNegative(name: string, value: number): number {
  if (!Number.isSafeInteger(value) || value < 0)
    throw new InvalidArgumentError(`systemUsage ${name} must be an integer >= 0, got ${value}`);
  return value;
}
