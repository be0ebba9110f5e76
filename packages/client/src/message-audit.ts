import { BoundedSet } from '@keel/protocol';
/** Default depth of the per-consumer duplicate audit (message ids the application acknowledged). */
export const DEFAULT_AUDIT_DEPTH = 10000;

/** What the audit knows a message by: its id, and its producer's id and sequence when it has them. */
export interface AuditedMessage {
  readonly messageId: string;
  readonly producerId?: string;
  readonly producerSeq?: number;
}

/** How many producers the audit tracks by sequence; the one tracked longest is dropped beyond it. */
export const AUDIT_MAX_PRODUCERS = 1024;

/**
 * The last N messages a consumer's application acknowledged, oldest evicted first (like ActiveMQ's
 * ActiveMQMessageAudit, which keys messages by producer id and sequence). After a failover the new
 * master redelivers what the old one had not yet removed (same message id, same producer id and
 * sequence), and a producer resends what the old master never confirmed (a new message id, the same
 * producer id and sequence — the old master may have handed it to this consumer before storing it).
 * A message known here was already handled, so the client drops it and acknowledges it again
 * instead of handing it to the application twice.
 *
 * A message with a producer id and sequence is remembered by them alone — the last N sequences of
 * each of up to AUDIT_MAX_PRODUCERS producers, kept as numbers — so the common case costs no
 * string set; ids are kept only for messages without them (and for `add`).
 */
export class MessageAudit {
  private readonly ids: BoundedSet<string>;
  /** Per producer, its last `depth` sequences (numbers: no string key to build and hash). */
  private readonly producers = new Map<string, BoundedSet<number>>();

  constructor(readonly depth: number = DEFAULT_AUDIT_DEPTH) {
    this.ids = new BoundedSet<string>(depth);
  }

  /** Known by its id (messages without producer sequence, and ids given to `add`). */
  has(id: string): boolean {
    return this.ids.has(id);
  }

  add(id: string): void {
    this.ids.add(id);
  }

  /** Known by its id, or by its producer id and sequence (a redelivery or a resend). */
  knows(m: AuditedMessage): boolean {
    if (this.ids.size > 0 && this.ids.has(m.messageId)) return true;
    if (m.producerId === undefined || m.producerSeq === undefined) return false;
    const w = this.producers.get(m.producerId);
    return w?.has(m.producerSeq) === true;
  }

  /** Remember an acknowledged message: by producer id and sequence when it has them, else by id. */
  addMessage(m: AuditedMessage): void {
    if (this.depth <= 0) return;
    if (m.producerId === undefined || m.producerSeq === undefined) {
      this.ids.add(m.messageId);
      return;
    }
    let w = this.producers.get(m.producerId);
    if (w === undefined) {
      w = new BoundedSet<number>(this.depth);
      this.producers.set(m.producerId, w);
      if (this.producers.size > AUDIT_MAX_PRODUCERS) {
        this.producers.delete(this.producers.keys().next().value as string);
      }
    }
    w.add(m.producerSeq);
  }

  /** Ids remembered (messages without producer sequence). */
  get size(): number {
    return this.ids.size;
  }
}
