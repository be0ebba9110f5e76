/**
 * The network forwards of one commit round (StoreBatch.forwards: origin broker, its message id) as
 * closed id ranges per origin, for the `keel_forwarded` row of each origin (a multirange). A bridge
 * forwards a destination's messages in id order, so a round of hundreds of forwards is a handful of
 * ranges: the statement carries those instead of one array element per message (issue #25.5: the
 * per-forward origin and id arrays were a visible share of the receiving broker's commit work).
 */
export interface ForwardRanges {
  origins: string[];
  /** Inclusive bounds, by index with `origins`. */
  lo: number[];
  hi: number[];
}

export function forwardRanges(forwards: readonly { origin: string; id: number }[]): ForwardRanges {
  const byOrigin = new Map<string, number[]>();
  for (const f of forwards) {
    let ids = byOrigin.get(f.origin);
    if (ids === undefined) {
      ids = [];
      byOrigin.set(f.origin, ids);
    }
    ids.push(f.id);
  }
  const out: ForwardRanges = { origins: [], lo: [], hi: [] };
  for (const [origin, ids] of byOrigin) {
    ids.sort((a, b) => a - b);
    let lo = ids[0]!;
    let hi = lo;
    for (let i = 1; i < ids.length; i++) {
      const id = ids[i]!;
      if (id <= hi + 1) {
        if (id > hi) hi = id;
        continue;
      }
      out.origins.push(origin);
      out.lo.push(lo);
      out.hi.push(hi);
      lo = id;
      hi = id;
    }
    out.origins.push(origin);
    out.lo.push(lo);
    out.hi.push(hi);
  }
  return out;
}
