/**
 * A JS array of integers as a Postgres array literal (`{1,2,3}`), for an `int[]`/`bigint[]`
 * parameter. pg serializes an array parameter element by element (`prepareValue`, then
 * `escapeElement`: two regular-expression replaces and quotes per number); the commit statements
 * pass nine such arrays per batch of inserts, which showed as about 1 % of the broker's CPU in a
 * window-64 profile (issue #25.3). Integers need no quoting or escaping in an array literal
 * (Postgres "Array Value Input"), so the text is built in one pass. An array holding anything but
 * safe integers (NaN, null, a fraction) is returned as it is, for pg's own serialization.
 */
export function pgIntArray(values: readonly number[]): string | readonly number[] {
  let text = '{';
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    if (!Number.isSafeInteger(v)) return values;
    text += i === 0 ? String(v) : `,${v}`;
  }
  return `${text}}`;
}
