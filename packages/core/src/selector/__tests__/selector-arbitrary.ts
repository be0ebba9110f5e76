import type { Message, Properties } from '@keel/protocol';
import fc from 'fast-check';
import type { CompareOp, SelectorNode, SelectorValue } from '../ast';
import type { SelectorSubject } from '../identifiers';

/**
 * fast-check generators of selector trees (within the static type rules the parser enforces), a
 * printer to selector text, messages to evaluate them over, and a reference evaluator: a plain
 * tree walk of the JMS rules (Jakarta Messaging 2.0 §3.8.1.1/§3.8.1.2, ActiveMQ's `<>` = NOT `=`),
 * written apart from the compiled predicate on purpose.
 */

export const PROPERTY_NAMES = ['a', 'b', 'c', 'str'] as const;
const HEADER_NAMES = ['JMSPriority', 'JMSType', 'JMSDeliveryMode', 'JMSCorrelationID', 'JMSTimestamp'];
const STRINGS = ['x', 'y', "it's", 'a_b', 'a%b', 'PERSISTENT', 'red', '', 'é'];

const num = fc.oneof(fc.integer({ min: -3, max: 9 }), fc.constantFrom(0.5, 2.5, -1.5, 1e3));
const str = fc.constantFrom(...STRINGS);
const ident = fc.constantFrom<string>(...PROPERTY_NAMES, ...HEADER_NAMES);

const identNode = ident.map((name): SelectorNode => ({ kind: 'ident', name }));
const lit = (a: fc.Arbitrary<SelectorValue>) => a.map((value): SelectorNode => ({ kind: 'literal', value }));

/** Numeric-ish operands: identifiers, numbers, arithmetic. */
const numeric: fc.Memo<SelectorNode> = fc.memo((n) =>
  n <= 1
    ? fc.oneof(identNode, lit(num))
    : fc.oneof(
        identNode,
        lit(num),
        fc
          .record({ op: fc.constantFrom('+', '-', '*', '/'), left: numeric(n - 1), right: numeric(n - 1) })
          .map(
            (r): SelectorNode => ({
              kind: 'arith',
              ...(r as { op: '+'; left: SelectorNode; right: SelectorNode }),
            }),
          ),
        // The parser folds the minus of a literal into the literal (printed as `(-5)`).
        numeric(n - 1)
          .filter((operand) => operand.kind !== 'literal')
          .map((operand): SelectorNode => ({ kind: 'neg', operand })),
      ),
);

const anyValue = fc.oneof(numeric(2), lit(str), lit(fc.boolean()), identNode);

const pattern = fc
  .array(fc.constantFrom('x', 'a', '_', '%', '!%', '!_', '!!', "'", 'é'), { maxLength: 4 })
  .map((parts) => parts.join(''));

export const condition: fc.Memo<SelectorNode> = fc.memo((n) => {
  const leaves = fc.oneof(
    fc
      .record({ op: fc.constantFrom<CompareOp>('=', '<>'), left: anyValue, right: anyValue })
      .map((r): SelectorNode => ({ kind: 'compare', ...r })),
    fc
      .record({ op: fc.constantFrom<CompareOp>('<', '>', '<=', '>='), left: numeric(2), right: numeric(2) })
      .map((r): SelectorNode => ({ kind: 'compare', ...r })),
    fc
      .record({ not: fc.boolean(), value: numeric(2), low: numeric(1), high: numeric(1) })
      .map((r): SelectorNode => ({ kind: 'between', ...r })),
    fc
      .record({ not: fc.boolean(), value: identNode, list: fc.array(str, { minLength: 1, maxLength: 3 }) })
      .map((r): SelectorNode => ({ kind: 'in', ...r })),
    fc
      .record({
        not: fc.boolean(),
        value: identNode,
        pattern,
        escape: fc.constantFrom<string | null>('!', null),
      })
      .filter((r) => r.escape === null || !/(^|[^!])(!!)*!$/.test(r.pattern))
      .map((r): SelectorNode => ({ kind: 'like', ...r })),
    fc.record({ not: fc.boolean(), value: identNode }).map((r): SelectorNode => ({ kind: 'isNull', ...r })),
    identNode,
    lit(fc.boolean()),
  );
  if (n <= 1) return leaves;
  return fc.oneof(
    { arbitrary: leaves, weight: 3 },
    fc
      .record({ left: condition(n - 1), right: condition(n - 1) })
      .map((r): SelectorNode => ({ kind: 'and', ...r })),
    fc
      .record({ left: condition(n - 1), right: condition(n - 1) })
      .map((r): SelectorNode => ({ kind: 'or', ...r })),
    condition(n - 1).map((operand): SelectorNode => ({ kind: 'not', operand })),
  );
});

const quote = (s: string): string => `'${s.replace(/'/g, "''")}'`;

/** Selector text for a tree, every compound parenthesized, keywords in a random-looking case. */
export function print(node: SelectorNode, kw: (k: string) => string = (k) => k): string {
  const p = (x: SelectorNode) => print(x, kw);
  switch (node.kind) {
    case 'literal':
      if (node.value === null) return kw('NULL');
      if (typeof node.value === 'boolean') return kw(node.value ? 'TRUE' : 'FALSE');
      if (typeof node.value === 'number') return node.value < 0 ? `(-${-node.value})` : String(node.value);
      return quote(node.value);
    case 'ident':
      return node.name;
    case 'neg':
      return `(-${p(node.operand)})`;
    case 'arith':
      return `(${p(node.left)} ${node.op} ${p(node.right)})`;
    case 'compare':
      return `(${p(node.left)} ${node.op} ${p(node.right)})`;
    case 'between':
      return `(${p(node.value)} ${node.not ? `${kw('NOT')} ` : ''}${kw('BETWEEN')} ${p(node.low)} ${kw('AND')} ${p(node.high)})`;
    case 'in':
      return `(${p(node.value)} ${node.not ? `${kw('NOT')} ` : ''}${kw('IN')} (${node.list.map(quote).join(', ')}))`;
    case 'like':
      return `(${p(node.value)} ${node.not ? `${kw('NOT')} ` : ''}${kw('LIKE')} ${quote(node.pattern)}${node.escape === null ? '' : ` ${kw('ESCAPE')} ${quote(node.escape)}`})`;
    case 'isNull':
      return `(${p(node.value)} ${kw('IS')} ${node.not ? `${kw('NOT')} ` : ''}${kw('NULL')})`;
    case 'and':
      return `(${p(node.left)} ${kw('AND')} ${p(node.right)})`;
    case 'or':
      return `(${p(node.left)} ${kw('OR')} ${p(node.right)})`;
    case 'not':
      return `(${kw('NOT')} ${p(node.operand)})`;
  }
}

export const keywordCase = fc.constantFrom(
  (k: string) => k,
  (k: string) => k.toLowerCase(),
  (k: string) => k[0] + k.slice(1).toLowerCase(),
);

const propertyValue = fc.oneof(
  num,
  str,
  fc.boolean(),
  fc.constant(null),
  fc.constant(undefined), // absent
);

export const message: fc.Arbitrary<Message> = fc
  .record({
    props: fc.tuple(...PROPERTY_NAMES.map(() => propertyValue)),
    priority: fc.integer({ min: 0, max: 9 }),
    type: fc.option(str, { nil: undefined }),
    correlationId: fc.option(str, { nil: undefined }),
    persistent: fc.boolean(),
    timestamp: fc.constantFrom(0, 1000, 5),
  })
  .map((r) => {
    const properties: Properties = {};
    PROPERTY_NAMES.forEach((name, i) => {
      const v = r.props[i];
      if (v !== undefined) properties[name] = v;
    });
    return {
      destination: 'queue://selectors',
      persistent: r.persistent,
      priority: r.priority,
      timestamp: r.timestamp,
      expiration: 0,
      type: r.type,
      correlationId: r.correlationId,
      properties,
      body: Buffer.from('x'),
    };
  });

export function subjectOf(m: Message, id = 7): SelectorSubject {
  return { id, message: m, priority: m.priority, deliveryCount: 0, redelivered: false };
}

// ---- reference evaluator ---------------------------------------------------------------------

type V = SelectorValue;
type T = boolean | null;

function ref(node: SelectorNode, s: SelectorSubject): V {
  const m = s.message;
  switch (node.kind) {
    case 'literal':
      return node.value;
    case 'ident': {
      switch (node.name) {
        case 'JMSPriority':
          return s.priority;
        case 'JMSType':
          return m.type ?? null;
        case 'JMSCorrelationID':
          return m.correlationId ?? null;
        case 'JMSDeliveryMode':
          return m.persistent ? 'PERSISTENT' : 'NON_PERSISTENT';
        case 'JMSTimestamp':
          return m.timestamp === 0 ? null : m.timestamp;
        default:
          return node.name in m.properties ? (m.properties[node.name] ?? null) : null;
      }
    }
    case 'neg': {
      const v = ref(node.operand, s);
      return typeof v === 'number' ? -v : null;
    }
    case 'arith': {
      const a = ref(node.left, s);
      const b = ref(node.right, s);
      if (typeof a !== 'number' || typeof b !== 'number') return null;
      let r: number;
      if (node.op === '+') r = a + b;
      else if (node.op === '-') r = a - b;
      else if (node.op === '*') r = a * b;
      else if (b === 0) return null;
      else r = a / b;
      return Number.isFinite(r) ? r : null;
    }
    default:
      return truth(node, s);
  }
}

/** Kleene's three-valued logic, spelled out. */
const AND: Record<string, T> = {
  'true,true': true,
  'true,false': false,
  'false,true': false,
  'false,false': false,
  'null,true': null,
  'true,null': null,
  'null,false': false,
  'false,null': false,
  'null,null': null,
};
const OR: Record<string, T> = {
  'true,true': true,
  'true,false': true,
  'false,true': true,
  'false,false': false,
  'null,true': true,
  'true,null': true,
  'null,false': null,
  'false,null': null,
  'null,null': null,
};
const NOT = (t: T): T => (t === null ? null : !t);

export function truth(node: SelectorNode, s: SelectorSubject): T {
  switch (node.kind) {
    case 'and':
      return AND[`${truth(node.left, s)},${truth(node.right, s)}`];
    case 'or':
      return OR[`${truth(node.left, s)},${truth(node.right, s)}`];
    case 'not':
      return NOT(truth(node.operand, s));
    case 'compare': {
      const a = ref(node.left, s);
      const b = ref(node.right, s);
      if (a === null || b === null) return null;
      const same = typeof a === typeof b;
      if (node.op === '=') return same && a === b;
      if (node.op === '<>') return !(same && a === b);
      if (typeof a !== 'number' || typeof b !== 'number') return false;
      return node.op === '<' ? a < b : node.op === '>' ? a > b : node.op === '<=' ? a <= b : a >= b;
    }
    case 'between': {
      const lo: SelectorNode = { kind: 'compare', op: '>=', left: node.value, right: node.low };
      const hi: SelectorNode = { kind: 'compare', op: '<=', left: node.value, right: node.high };
      const r = truth({ kind: 'and', left: lo, right: hi }, s);
      return node.not ? NOT(r) : r;
    }
    case 'in': {
      const v = ref(node.value, s);
      if (v === null) return null;
      const r = typeof v === 'string' && node.list.includes(v);
      return node.not ? !r : r;
    }
    case 'like': {
      const v = ref(node.value, s);
      if (v === null) return null;
      const r = typeof v === 'string' && likeByHand(v, node.pattern, node.escape);
      return node.not ? !r : r;
    }
    case 'isNull':
      return (ref(node.value, s) === null) !== node.not;
    default: {
      const v = ref(node, s);
      return typeof v === 'boolean' ? v : null;
    }
  }
}

/** LIKE by backtracking over code points (no regular expressions). */
function likeByHand(value: string, pattern: string, escapeChar: string | null): boolean {
  const v = [...value];
  type Tok = { any: boolean; one: boolean; ch: string };
  const toks: Tok[] = [];
  const p = [...pattern];
  for (let i = 0; i < p.length; i++) {
    if (escapeChar !== null && p[i] === escapeChar) toks.push({ any: false, one: false, ch: p[++i] });
    else toks.push({ any: p[i] === '%', one: p[i] === '_', ch: p[i] });
  }
  const go = (i: number, j: number): boolean => {
    if (j === toks.length) return i === v.length;
    const t = toks[j];
    if (t.any) {
      for (let k = i; k <= v.length; k++) if (go(k, j + 1)) return true;
      return false;
    }
    if (i >= v.length) return false;
    return (t.one || v[i] === t.ch) && go(i + 1, j + 1);
  };
  return go(0, 0);
}
