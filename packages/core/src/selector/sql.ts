import type { SelectorNode } from './ast';
import { headerOf, propertySql, type SqlValue, sqlString } from './identifiers';

const NULL_VALUE: SqlValue = { isNull: 'true', num: null, str: null, bool: null };

/** Thrown inside the compiler when a node has no SQL form; compileSelectorSql answers null. */
class NotCompilable extends Error {}

/**
 * The selector as a SQL condition over a keel_messages row (`id`, `priority`, jsonb `headers`), true
 * exactly when compileSelector's predicate is true for the message — so a queue's page read can skip
 * non-matching rows in Postgres (MessageQueue's selector pages). Null when part of it has no faithful
 * SQL form: delivery state (JMSRedelivered, JMSXDeliveryCount), arithmetic (float8 overflow is an
 * error in Postgres, unknown here), a string holding U+0000 (not storable in text). Values are
 * typed with jsonb_typeof so a number never equals a string, as in the predicate; numbers compare
 * as float8, the predicate's doubles.
 */
export function compileSelectorSql(node: SelectorNode): string | null {
  try {
    return condition(node);
  } catch (err) {
    if (err instanceof NotCompilable) return null;
    throw err;
  }
}

function literal(s: string): string {
  if (s.includes('\u0000')) throw new NotCompilable();
  return sqlString(s);
}

function value(node: SelectorNode): SqlValue {
  switch (node.kind) {
    case 'literal': {
      const v = node.value;
      if (v === null) return NULL_VALUE;
      if (typeof v === 'number')
        return { isNull: 'false', num: `'${String(v)}'::float8`, str: null, bool: null };
      if (typeof v === 'string') return { isNull: 'false', num: null, str: literal(v), bool: null };
      return { isNull: 'false', num: null, str: null, bool: v ? 'true' : 'false' };
    }
    case 'ident': {
      const header = headerOf(node.name);
      if (header) {
        if (!header.sql) throw new NotCompilable();
        return header.sql;
      }
      if (node.name.includes('\u0000')) throw new NotCompilable();
      return propertySql(node.name);
    }
    default:
      throw new NotCompilable();
  }
}

/** `CASE WHEN a or b is null THEN NULL ELSE <typed> END`. */
function unlessNull(nulls: string[], typed: string): string {
  const known = nulls.filter((n) => n !== 'false');
  if (known.length === 0) return `(${typed})`;
  return `(CASE WHEN ${known.join(' OR ')} THEN NULL ELSE ${typed} END)`;
}

function sameType(a: SqlValue, b: SqlValue): string {
  const pairs: string[] = [];
  if (a.num && b.num) pairs.push(`${a.num} = ${b.num}`);
  if (a.str && b.str) pairs.push(`${a.str} = ${b.str}`);
  if (a.bool && b.bool) pairs.push(`${a.bool} = ${b.bool}`);
  return pairs.length === 0 ? 'false' : `COALESCE(${pairs.join(', ')}, false)`;
}

function numeric(a: SqlValue, b: SqlValue, op: string): string {
  return unlessNull(
    [a.isNull, b.isNull],
    a.num && b.num ? `COALESCE(${a.num} ${op} ${b.num}, false)` : 'false',
  );
}

function condition(node: SelectorNode): string {
  switch (node.kind) {
    case 'literal':
    case 'ident': {
      const v = value(node);
      return v.bool ? `(${v.bool})` : 'NULL::boolean';
    }
    case 'compare': {
      const a = value(node.left);
      const b = value(node.right);
      if (node.op === '=') return unlessNull([a.isNull, b.isNull], sameType(a, b));
      if (node.op === '<>') return unlessNull([a.isNull, b.isNull], `NOT ${sameType(a, b)}`);
      return numeric(a, b, node.op);
    }
    case 'between': {
      const v = value(node.value);
      const r = `(${numeric(v, value(node.low), '>=')} AND ${numeric(v, value(node.high), '<=')})`;
      return node.not ? `(NOT ${r})` : r;
    }
    case 'in': {
      const v = value(node.value);
      const r = v.str ? `COALESCE(${v.str} IN (${node.list.map(literal).join(', ')}), false)` : 'false';
      return unlessNull([v.isNull], node.not ? `NOT ${r}` : r);
    }
    case 'like': {
      const v = value(node.value);
      const like = `${v.str} LIKE ${literal(node.pattern)} ESCAPE ${literal(node.escape ?? '')}`;
      const r = v.str ? `COALESCE(${like}, false)` : 'false';
      return unlessNull([v.isNull], node.not ? `NOT ${r}` : r);
    }
    case 'isNull': {
      const v = value(node.value);
      return node.not ? `(NOT ${v.isNull})` : `(${v.isNull})`;
    }
    case 'and':
      return `(${condition(node.left)} AND ${condition(node.right)})`;
    case 'or':
      return `(${condition(node.left)} OR ${condition(node.right)})`;
    case 'not':
      return `(NOT ${condition(node.operand)})`;
    default:
      throw new NotCompilable();
  }
}
