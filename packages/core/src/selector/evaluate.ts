import type { SelectorNode, SelectorValue } from './ast';
import { headerOf, propertyValue, type SelectorSubject } from './identifiers';
import { likeRegExp } from './like-pattern';

type Value = (s: SelectorSubject) => SelectorValue;
/** true, false or null (unknown). */
type Condition = (s: SelectorSubject) => boolean | null;

/**
 * Compile a selector tree to a predicate: true only when the selector is TRUE (Jakarta Messaging
 * 2.0 §3.8.1.1: a message whose selector is FALSE or UNKNOWN is not selected). Type rules as
 * ActiveMQ's ComparisonExpression: values of different types (a number and a string …) are not
 * equal (`=` false, `<>` true), an unknown operand makes a comparison unknown; < > <= >= and
 * BETWEEN compare numbers only (anything else is false); arithmetic on a non-number or a division
 * by zero is unknown. Numbers are doubles.
 */
export function compileSelector(node: SelectorNode): (s: SelectorSubject) => boolean {
  const c = condition(node);
  return (s) => c(s) === true;
}

function value(node: SelectorNode): Value {
  switch (node.kind) {
    case 'literal': {
      const v = node.value;
      return () => v;
    }
    case 'ident': {
      const header = headerOf(node.name);
      if (header) return header.get;
      const name = node.name;
      return (s) => propertyValue(s, name);
    }
    case 'neg': {
      const o = value(node.operand);
      return (s) => {
        const v = o(s);
        return typeof v === 'number' ? -v : null;
      };
    }
    case 'arith': {
      const l = value(node.left);
      const r = value(node.right);
      const op = arithmetic(node.op);
      return (s) => {
        const a = l(s);
        const b = r(s);
        return typeof a === 'number' && typeof b === 'number' ? op(a, b) : null;
      };
    }
    default: {
      // A condition used as a value (`(a = 1) = TRUE` is refused by the parser; kept total).
      const c = condition(node);
      return c;
    }
  }
}

function arithmetic(op: '+' | '-' | '*' | '/'): (a: number, b: number) => number | null {
  switch (op) {
    case '+':
      return (a, b) => finite(a + b);
    case '-':
      return (a, b) => finite(a - b);
    case '*':
      return (a, b) => finite(a * b);
    case '/':
      return (a, b) => (b === 0 ? null : finite(a / b));
  }
}

/** An overflow is unknown, not Infinity. */
function finite(n: number): number | null {
  return Number.isFinite(n) ? n : null;
}

function equal(a: SelectorValue, b: SelectorValue): boolean | null {
  if (a === null || b === null) return null;
  return typeof a === typeof b && a === b;
}

function condition(node: SelectorNode): Condition {
  switch (node.kind) {
    case 'literal':
    case 'ident':
    case 'neg':
    case 'arith': {
      const v = value(node);
      return (s) => {
        const x = v(s);
        return typeof x === 'boolean' ? x : null;
      };
    }
    case 'compare': {
      const l = value(node.left);
      const r = value(node.right);
      switch (node.op) {
        case '=':
          return (s) => equal(l(s), r(s));
        case '<>':
          return (s) => {
            const e = equal(l(s), r(s));
            return e === null ? null : !e;
          };
        default: {
          const cmp = ordering(node.op);
          return (s) => {
            const a = l(s);
            const b = r(s);
            if (a === null || b === null) return null;
            return typeof a === 'number' && typeof b === 'number' ? cmp(a, b) : false;
          };
        }
      }
    }
    case 'between': {
      const v = value(node.value);
      const lo = value(node.low);
      const hi = value(node.high);
      const not = node.not;
      return (s) => {
        const x = v(s);
        const ge = numericOrder(x, lo(s), (a, b) => a >= b);
        const le = numericOrder(x, hi(s), (a, b) => a <= b);
        const r = and(ge, le);
        return not ? negate(r) : r;
      };
    }
    case 'in': {
      const v = value(node.value);
      const set = new Set(node.list);
      const not = node.not;
      return (s) => {
        const x = v(s);
        if (x === null) return null;
        const r = typeof x === 'string' && set.has(x);
        return not ? !r : r;
      };
    }
    case 'like': {
      const v = value(node.value);
      const re = likeRegExp(node.pattern, node.escape);
      const not = node.not;
      return (s) => {
        const x = v(s);
        if (x === null) return null;
        const r = typeof x === 'string' && re.test(x);
        return not ? !r : r;
      };
    }
    case 'isNull': {
      const v = value(node.value);
      const not = node.not;
      return (s) => (v(s) === null) !== not;
    }
    case 'and': {
      const l = condition(node.left);
      const r = condition(node.right);
      return (s) => {
        const a = l(s);
        if (a === false) return false;
        return and(a, r(s));
      };
    }
    case 'or': {
      const l = condition(node.left);
      const r = condition(node.right);
      return (s) => {
        const a = l(s);
        if (a === true) return true;
        const b = r(s);
        if (b === true) return true;
        return a === null || b === null ? null : false;
      };
    }
    case 'not': {
      const o = condition(node.operand);
      return (s) => negate(o(s));
    }
  }
}

function ordering(op: '<' | '>' | '<=' | '>='): (a: number, b: number) => boolean {
  switch (op) {
    case '<':
      return (a, b) => a < b;
    case '>':
      return (a, b) => a > b;
    case '<=':
      return (a, b) => a <= b;
    case '>=':
      return (a, b) => a >= b;
  }
}

function numericOrder(
  a: SelectorValue,
  b: SelectorValue,
  cmp: (a: number, b: number) => boolean,
): boolean | null {
  if (a === null || b === null) return null;
  return typeof a === 'number' && typeof b === 'number' ? cmp(a, b) : false;
}

function and(a: boolean | null, b: boolean | null): boolean | null {
  if (a === false || b === false) return false;
  return a === null || b === null ? null : true;
}

function negate(a: boolean | null): boolean | null {
  return a === null ? null : !a;
}
