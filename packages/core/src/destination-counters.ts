/** Message counts of one destination since the broker started. */
export interface DestinationCount {
  /** Accepted (sent to it). */
  in: number;
  /** Delivered to consumers. */
  out: number;
  /** Put back for another delivery (nack, consumer or connection closed, transaction rolled back). */
  redelivered: number;
  /**
   * Past the redelivery policy's maximumRedeliveries: moved to the dead-letter queue (or discarded:
   * non-persistent, or already on a dead-letter queue — ActiveMQ's DLQ rules).
   */
  deadLettered: number;
  /** Expired: moved to the dead-letter queue (processExpired) or discarded. */
  expired: number;
}

/**
 * Per-destination message counts, kept as plain numbers on the hot path (one Map lookup per
 * message) and read by the metrics at scrape time. Temporary destinations are folded into
 * `temp-queue://*` and `temp-topic://*`, so a client that makes one per request cannot grow the map.
 * A destination has its entry, at zero, from its creation (`touch`), so every count of it is
 * there from then on, not only after its first event.
 */
export class DestinationCounters {
  private readonly byName = new Map<string, DestinationCount>();

  /** The destination exists: its counts start at 0. */
  touch(destination: string): void {
    this.of(destination);
  }

  countIn(destination: string): void {
    this.of(destination).in += 1;
  }

  countOut(destination: string): void {
    this.of(destination).out += 1;
  }

  countRedelivered(destination: string): void {
    this.of(destination).redelivered += 1;
  }

  countDeadLettered(destination: string): void {
    this.of(destination).deadLettered += 1;
  }

  countExpired(destination: string): void {
    this.of(destination).expired += 1;
  }

  entries(): IterableIterator<[string, DestinationCount]> {
    return this.byName.entries();
  }

  private of(destination: string): DestinationCount {
    let c = this.byName.get(destination);
    if (c === undefined) {
      const label = counterLabel(destination);
      c = this.byName.get(label);
      if (c === undefined) {
        c = emptyCount();
        this.byName.set(label, c);
      }
    }
    return c;
  }
}

export function emptyCount(): DestinationCount {
  return { in: 0, out: 0, redelivered: 0, deadLettered: 0, expired: 0 };
}

function counterLabel(destination: string): string {
  if (destination.startsWith('temp-queue://')) return 'temp-queue://*';
  if (destination.startsWith('temp-topic://')) return 'temp-topic://*';
  return destination;
}
