import { SelectorError } from './selector-error';

/**
 * A LIKE pattern as a regular expression over the whole string (Jakarta Messaging 2.0 §3.8.1.1:
 * `_` one character, `%` any sequence, the ESCAPE character makes the next one literal, as in
 * ActiveMQ's LikeExpression and Postgres' LIKE). An escape character at the end is refused (Postgres
 * refuses it too, and the store runs the same pattern).
 */
export function likeRegExp(pattern: string, escapeChar: string | null, offset = 0): RegExp {
  let re = '^';
  const chars = [...pattern];
  for (let i = 0; i < chars.length; i++) {
    const c = chars[i];
    if (escapeChar !== null && c === escapeChar) {
      const next = chars[i + 1];
      if (next === undefined) throw new SelectorError('LIKE pattern ends with its ESCAPE character', offset);
      re += escapeRegExp(next);
      i += 1;
    } else if (c === '%') re += '.*';
    else if (c === '_') re += '.';
    else re += escapeRegExp(c);
  }
  return new RegExp(`${re}$`, 'su');
}

function escapeRegExp(c: string): string {
  return /[\\^$.*+?()[\]{}|/-]/.test(c) ? `\\${c}` : c;
}
