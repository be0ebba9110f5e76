import { InDoubtError, KeelError, type Message } from '@keel/protocol';
import type { Clock } from './ports';
import type { QueueEntry } from './queue-entry';

/** In-doubt sends remembered for their producer's resend, at most this many (oldest go first). */
export const MAX_IN_DOUBT_SENDS = 10_000;
/** ... and for at most this long. */
export const IN_DOUBT_TTL_MS = 10 * 60_000;

interface InDoubt {
  /** The consumer acknowledged the message handed to it before its insert failed. */
  consumed: boolean;
  at: number;
}

/**
 * Sends answered IN_DOUBT (issue #17.3). With concurrent store and dispatch a message is handed to
 * a consumer while its insert waits for a commit round; when that insert then fails (Postgres away,
 * fenced), the message may already be with the consumer, so its send must not be answered "failed"
 * (docs/errors.md: a failed request stored nothing, and a client would send it again as a new
 * message): it is answered InDoubtError. The message stays with its consumer, not stored.
 *
 * The producer resolves the doubt by resending with the same producer id and sequence and the
 * `resent` flag (@keel/client does). Remembered here by that key: if the consumer acknowledged the
 * message meanwhile, the resend is answered at once and not stored (consumed: the send's work is
 * done); if not, it is stored as a new message, bypassing the producer's duplicate detection (a
 * later sequence of the same producer may have committed since, and that must not make the resend
 * look like a duplicate of something never stored). A failover consumer's audit then drops the
 * second copy if its application had the first.
 *
 * Sends that failed STORE_UNAVAILABLE before any consumer had their message are remembered the same
 * way (notStored), so that a failover producer's resend of one is stored too.
 */
export class InDoubtSends {
  private readonly sends = new Map<string, InDoubt>();

  constructor(private readonly host: { readonly clock: Clock }) {}

  /** The insert of `entry`, already handed to a consumer, failed with `cause`: the send's answer. */
  add(entry: QueueEntry, cause: unknown): InDoubtError {
    const reason = (cause as KeelError | undefined)?.message ?? String(cause);
    const err = new InDoubtError(
      `message ${entry.id} was handed to a consumer before its store write failed (${reason}): it may have been delivered but is not stored; resend it with the same producer id and sequence`,
      { cause },
    );
    const key = keyOf(entry.message);
    if (key === null) return err;
    const doubt: InDoubt = { consumed: false, at: this.host.clock.now() };
    this.remember(key, doubt);
    entry.onConsumed = () => {
      doubt.consumed = true;
    };
    return err;
  }

  /** Records `doubt` under `key` as the newest, dropping the oldest beyond the count and age bounds. */
  private remember(key: string, doubt: InDoubt): void {
    this.sends.delete(key);
    this.sends.set(key, doubt);
    for (const [k, d] of this.sends) {
      if (this.sends.size <= MAX_IN_DOUBT_SENDS && d.at > doubt.at - IN_DOUBT_TTL_MS) break;
      this.sends.delete(k);
    }
  }

  /**
   * The store write of `m` (never handed to a consumer) failed for a passing reason
   * (STORE_UNAVAILABLE): nothing of it is stored, and its send is answered with that error. A
   * failover producer resends it (same producer id and sequence, `resent`; @keel/client does), and
   * by then a later send of the same producer may have committed, so the producer's highest stored
   * sequence would take the resend for a duplicate and drop it. Remembered here, the resend is stored
   * whatever duplicate detection says (`resent` answers 'store'). Other failures are not recorded.
   */
  notStored(m: Message, err: unknown): void {
    if (!KeelError.isInstance(err) || err.code !== 'STORE_UNAVAILABLE') return;
    const key = keyOf(m);
    if (key === null || this.sends.has(key)) return;
    this.remember(key, { consumed: false, at: this.host.clock.now() });
  }

  /**
   * A resend of `m`: 'consumed' when it is an in-doubt send whose message its consumer acknowledged,
   * 'store' when it is one that was not (store it whatever duplicate detection says), null otherwise.
   * After 'store' the doubt stands until `resolved` or `failedAgain`.
   */
  resent(m: Message): 'consumed' | 'store' | null {
    const key = keyOf(m);
    if (key === null) return null;
    const doubt = this.sends.get(key);
    if (doubt === undefined) return null;
    if (doubt.at <= this.host.clock.now() - IN_DOUBT_TTL_MS || doubt.consumed) {
      this.sends.delete(key);
      return doubt.consumed ? 'consumed' : null;
    }
    return 'store';
  }

  /** The resend of an in-doubt send was stored: no doubt left. */
  resolved(m: Message): void {
    const key = keyOf(m);
    if (key !== null) this.sends.delete(key);
  }

  /**
   * The resend of an in-doubt send failed too: still in doubt (the first copy may be with its
   * consumer), whatever the failure, and still known by its key for the next resend.
   */
  failedAgain(m: Message, cause: unknown): InDoubtError {
    const reason = (cause as KeelError | undefined)?.message ?? String(cause);
    const key = keyOf(m);
    const doubt = key === null ? undefined : this.sends.get(key);
    if (doubt !== undefined) doubt.at = this.host.clock.now();
    return new InDoubtError(
      `the resend of an in-doubt message failed (${reason}): it may have been delivered but is not stored; resend it again`,
      { cause },
    );
  }
}

function keyOf(m: Message): string | null {
  return m.producerId === undefined || m.producerSeq === undefined
    ? null
    : `${m.producerId}:${m.producerSeq}`;
}
