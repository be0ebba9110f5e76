import { matchesWildcard } from '@keel/protocol';

/**
 * Whether an authorization pattern covers a destination name, with ActiveMQ's wildcards (`.`
 * separates segments, `*` is one segment, `>` one or more trailing segments).
 *
 * A plain name is covered when the pattern matches it (DestinationMap in ActiveMQ). A name that is
 * itself a wildcard (a consumer on `orders.>`) is covered only when the pattern covers every name
 * the wildcard can match: `orders.>` covers `orders.*.eu`, but `orders.*` does not cover
 * `orders.>` (it would let a subscriber read `orders.a.b`, which the pattern does not grant).
 */
export function patternCovers(pattern: string, name: string): boolean {
  if (!name.includes('*') && !name.includes('>')) return matchesWildcard(pattern, name);
  const p = pattern.split('.');
  const n = name.split('.');
  for (let i = 0; i < p.length; i++) {
    const seg = p[i];
    if (seg === '>') return n.length > i;
    if (i >= n.length) return false;
    const want = n[i];
    // `*` in the pattern covers one segment: a literal or `*`, never `>` (one or more segments).
    if (seg === '*') {
      if (want === '>') return false;
      continue;
    }
    if (want === '*' || want === '>' || seg !== want) return false;
  }
  return p.length === n.length;
}
