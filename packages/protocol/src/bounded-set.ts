/**
 * Insertion-ordered set that evicts its oldest keys beyond `depth`: a client's duplicate audit (ids,
 * a producer's sequences), a broker's memory of the network forwards it accepted lately.
 */
export class BoundedSet<K> {
  private readonly keys = new Set<K>();

  constructor(private readonly depth: number) {}

  has(key: K): boolean {
    return this.keys.has(key);
  }

  add(key: K): void {
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
