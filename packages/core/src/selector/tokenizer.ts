import { SelectorError } from './selector-error';

/**
 * Tokens of a JMS message selector (Jakarta Messaging 2.0 §3.8.1.1): string literals in single
 * quotes ('' is a quote), exact numeric literals (decimal, or 0x hexadecimal as ActiveMQ accepts,
 * an optional L suffix), approximate numeric literals (a decimal point or an exponent), identifiers
 * (Java identifier letters), keywords (case-insensitive) and operators.
 */
export type Token =
  | { type: 'string'; value: string; offset: number }
  | { type: 'number'; value: number; offset: number; text: string }
  | { type: 'ident'; value: string; offset: number }
  | { type: 'keyword'; value: Keyword; offset: number }
  | { type: 'op'; value: string; offset: number }
  | { type: 'end'; offset: number };

export const KEYWORDS = [
  'NOT',
  'AND',
  'OR',
  'BETWEEN',
  'LIKE',
  'ESCAPE',
  'IN',
  'IS',
  'NULL',
  'TRUE',
  'FALSE',
] as const;
export type Keyword = (typeof KEYWORDS)[number];
const KEYWORD_SET: ReadonlySet<string> = new Set(KEYWORDS);

const IDENT_START = /[\p{L}_$]/u;
const IDENT_PART = /[\p{L}\p{N}_$]/u;
const DIGIT = /[0-9]/;

export function tokenize(text: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  const n = text.length;
  while (i < n) {
    const c = text[i];
    if (c === ' ' || c === '\t' || c === '\n' || c === '\r' || c === '\f') {
      i += 1;
      continue;
    }
    const start = i;
    if (c === "'") {
      let value = '';
      i += 1;
      for (;;) {
        if (i >= n) throw new SelectorError('unterminated string literal', start);
        if (text[i] === "'") {
          if (text[i + 1] === "'") {
            value += "'";
            i += 2;
            continue;
          }
          i += 1;
          break;
        }
        value += text[i];
        i += 1;
      }
      tokens.push({ type: 'string', value, offset: start });
      continue;
    }
    if (DIGIT.test(c) || (c === '.' && DIGIT.test(text[i + 1] ?? ''))) {
      tokens.push(readNumber(text, start));
      i = start + (tokens[tokens.length - 1] as { text: string }).text.length;
      continue;
    }
    const cp = text.codePointAt(i)!;
    const ch = String.fromCodePoint(cp);
    if (IDENT_START.test(ch)) {
      i += ch.length;
      while (i < n) {
        const next = String.fromCodePoint(text.codePointAt(i)!);
        if (!IDENT_PART.test(next)) break;
        i += next.length;
      }
      const word = text.slice(start, i);
      const upper = word.toUpperCase();
      if (KEYWORD_SET.has(upper)) tokens.push({ type: 'keyword', value: upper as Keyword, offset: start });
      else tokens.push({ type: 'ident', value: word, offset: start });
      continue;
    }
    const two = text.slice(i, i + 2);
    if (two === '<>' || two === '<=' || two === '>=') {
      tokens.push({ type: 'op', value: two, offset: start });
      i += 2;
      continue;
    }
    if ('=<>+-*/(),'.includes(c)) {
      tokens.push({ type: 'op', value: c, offset: start });
      i += 1;
      continue;
    }
    throw new SelectorError(`unexpected character ${JSON.stringify(ch)}`, start);
  }
  tokens.push({ type: 'end', offset: n });
  return tokens;
}

const HEX = /^0[xX][0-9a-fA-F]+[lL]?/;
const DECIMAL = /^(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?[lLdDfF]?/;

function readNumber(text: string, start: number): Token {
  const rest = text.slice(start);
  const hex = HEX.exec(rest);
  if (hex) {
    const digits = hex[0].replace(/[lL]$/, '').slice(2);
    return checkedNumber(Number.parseInt(digits, 16), hex[0], start);
  }
  const m = DECIMAL.exec(rest)!;
  let literal = m[0];
  const suffix = /[lLdDfF]$/.test(literal) ? literal[literal.length - 1].toUpperCase() : '';
  const body = suffix ? literal.slice(0, -1) : literal;
  const approximate = /[.eE]/.test(body);
  if (suffix === 'L' && approximate) throw new SelectorError(`malformed number ${literal}`, start);
  // A letter or digit run on (12abc): one malformed token, not a number and an identifier.
  const after = text[start + literal.length];
  if (after !== undefined && /[\p{L}_$]/u.test(after)) {
    const bad = /^[\p{L}\p{N}_$.]*/u.exec(text.slice(start + literal.length))![0];
    literal += bad;
    throw new SelectorError(`malformed number ${literal}`, start);
  }
  return checkedNumber(Number(body), literal, start);
}

function checkedNumber(value: number, text: string, offset: number): Token {
  if (!Number.isFinite(value)) throw new SelectorError(`number out of range: ${text}`, offset);
  return { type: 'number', value, offset, text };
}
