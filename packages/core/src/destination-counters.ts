/** Messages in and out of one destination since the broker started. */
export interface DestinationCount {
  in: number;
  out: number;
}

/**
 * Per-destination message counts, kept as plain numbers on the hot path (one Map lookup per
 * message) and read by the metrics at scrape time. Temporary destinations are folded into
 * `temp-queue://*` and `temp-topic://*`, so a client that makes one per request cannot grow the map.
 */
export class DestinationCounters {
  private readonly byName = new Map<string, DestinationCount>();

  countIn(destination: string): void {
    this.of(destination).in += 1;
  }

  countOut(destination: string): void {
    this.of(destination).out += 1;
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
        c = { in: 0, out: 0 };
        this.byName.set(label, c);
      }
    }
    return c;
  }
}

function counterLabel(destination: string): string {
  if (destination.startsWith('temp-queue://')) return 'temp-queue://*';
  if (destination.startsWith('temp-topic://')) return 'temp-topic://*';
  return destination;
}
