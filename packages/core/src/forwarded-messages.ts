import { BoundedSet } from '@keel/protocol';
import type { Store } from './store/store';

/** How many accepted network forwards a broker remembers in memory (besides the store). */
export const RECENT_FORWARDS = 100_000;

/**
 * Duplicate detection of network forwards: messages a bridge forwards carry the producer id
 * `net:<origin>:<id>` with sequence 1 (parseNetworkProducerId), so every one is a producer of its
 * own. Kept as producers, each would cost a memory entry and a store row until pruned (measured:
 * ~340 bytes of broker memory per forwarded message, and a keel_producers row each). Instead:
 *
 * - a send the bridge declares a first attempt is accepted without a look (it cannot be here);
 * - a possible resend (a link dropped with it unconfirmed, or the other broker restarted) is a
 *   duplicate when an attempt of it is in progress here and succeeds, when one was accepted lately
 *   (the last RECENT_FORWARDS, in memory), or when a committed round recorded it (the store keeps
 *   each round's forwards per origin, StoreBatch.forwards), or when an older Keel recorded it as a
 *   producer (keel_producers, until pruned);
 * - memory holds only the attempts in progress and the bounded recent set.
 */
export class ForwardedMessages {
  /** Accepted attempts whose send has not settled (stored, consumed or failed). */
  private readonly inProgress = new Map<string, Promise<unknown>>();
  private readonly recent = new BoundedSet<string>(RECENT_FORWARDS);

  constructor(private readonly store: Store) {}

  /** Whether the forward `producerId` (of `origin`, id `id` there) was accepted here already. */
  async isDuplicate(producerId: string, origin: string, id: number): Promise<boolean> {
    let stored = false;
    for (;;) {
      const pending = this.inProgress.get(producerId);
      if (pending !== undefined) {
        // Its outcome decides: a failed attempt stored nothing, so look again.
        if (await pending.then(succeeded, failed)) return true;
        continue;
      }
      if (this.recent.has(producerId)) return true;
      if (stored) return false;
      const [seen, legacySeq] = await Promise.all([
        this.store.forwardedSeen(origin, id),
        this.store.producerSequence(producerId),
      ]);
      if (seen || legacySeq >= 1) return true;
      // Once more around: an attempt accepted while the store answered counts too.
      stored = true;
    }
  }

  /** An attempt was accepted; `done` settles with its send (the message stored or consumed). */
  accepted(producerId: string, done: Promise<unknown>): void {
    this.inProgress.set(producerId, done);
    const settle = (ok: boolean): void => {
      if (this.inProgress.get(producerId) === done) this.inProgress.delete(producerId);
      if (ok) this.recent.add(producerId);
    };
    done.then(
      () => settle(true),
      () => settle(false),
    );
  }
}

function succeeded(): boolean {
  return true;
}

function failed(): boolean {
  return false;
}
