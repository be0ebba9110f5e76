/** Default depth of the per-consumer duplicate audit (message ids the application acknowledged). */
export const DEFAULT_AUDIT_DEPTH = 10000;

/**
 * The last N message ids a consumer's application acknowledged, oldest evicted first (like
 * ActiveMQ's ActiveMQMessageAudit). After a failover the new master redelivers what the old one
 * had not yet removed; an id found here was already handled, so the client drops the
 * redelivery and acknowledges it again instead of handing it to the application twice.
 */
export class MessageAudit {
  private readonly ids = new Set<string>();

  constructor(readonly depth: number = DEFAULT_AUDIT_DEPTH) {}

  has(id: string): boolean {
    return this.ids.has(id);
  }

  add(id: string): void {
    if (this.depth <= 0) return;
    if (this.ids.has(id)) this.ids.delete(id);
    this.ids.add(id);
    while (this.ids.size > this.depth) {
      const oldest = this.ids.values().next().value as string;
      this.ids.delete(oldest);
    }
  }

  get size(): number {
    return this.ids.size;
  }
}
