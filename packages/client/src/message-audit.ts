/** Default depth of the per-consumer duplicate audit (message ids the application acknowledged). */
export const DEFAULT_AUDIT_DEPTH = 10000;

/** What the audit knows a message by: its id, and its producer's id and sequence when it has them. */
export interface AuditedMessage {
  readonly messageId: string;
  readonly producerId?: string;
  readonly producerSeq?: number;
}

/** Insertion-ordered set that evicts its oldest keys beyond `depth`. */
class BoundedSet {
  private readonly keys = new Set<string>();

  constructor(private readonly depth: number) {}

  has(key: string): boolean {
    return this.keys.has(key);
  }

  add(key: string): void {
    if (this.depth <= 0) return;
    if (this.keys.has(key)) this.keys.delete(key);
    this.keys.add(key);
    if (this.keys.size <= this.depth) return;
    // Evict a tenth at once: one iterator per many adds instead of one per add.
    let excess = this.keys.size - this.depth + Math.floor(this.depth / 10);
    for (const k of this.keys) {
      if (excess-- <= 0) break;
      this.keys.delete(k);
    }
  }

  get size(): number {
    return this.keys.size;
  }
}

/**
 * The last N messages a consumer's application acknowledged, oldest evicted first (like ActiveMQ's
 * ActiveMQMessageAudit, which keys messages by producer id and sequence). After a failover the new
 * master redelivers what the old one had not yet removed (same message id), and a producer resends
 * what the old master never confirmed (a new message id, the same producer id and sequence — the old
 * master may have handed it to this consumer before storing it). A message known here by either key
 * was already handled, so the client drops it and acknowledges it again instead of handing it to the
 * application twice.
 */
export class MessageAudit {
  private readonly ids: BoundedSet;
  private readonly producerSeqs: BoundedSet;

  constructor(readonly depth: number = DEFAULT_AUDIT_DEPTH) {
    this.ids = new BoundedSet(depth);
    this.producerSeqs = new BoundedSet(depth);
  }

  has(id: string): boolean {
    return this.ids.has(id);
  }

  add(id: string): void {
    this.ids.add(id);
  }

  /** Known by its id, or (a resend) by its producer id and sequence. */
  knows(m: AuditedMessage): boolean {
    if (this.ids.has(m.messageId)) return true;
    const key = producerKey(m);
    return key !== null && this.producerSeqs.has(key);
  }

  /** Remember an acknowledged message by both keys. */
  addMessage(m: AuditedMessage): void {
    this.ids.add(m.messageId);
    const key = producerKey(m);
    if (key !== null) this.producerSeqs.add(key);
  }

  get size(): number {
    return this.ids.size;
  }
}

function producerKey(m: AuditedMessage): string | null {
  return m.producerId === undefined || m.producerSeq === undefined
    ? null
    : `${m.producerId}:${m.producerSeq}`;
}
