import type { CompareOp, SelectorNode } from './ast';
import { likeRegExp } from './like-pattern';
import { SelectorError } from './selector-error';
import { type Token, tokenize } from './tokenizer';

/**
 * Parse a JMS message selector (Jakarta Messaging 2.0 §3.8.1.1) into a tree. Precedence, lowest
 * first: OR, AND, NOT, comparison (= <> < > <= >=, [NOT] BETWEEN, [NOT] IN, [NOT] LIKE … ESCAPE,
 * IS [NOT] NULL), + -, * /, unary + -. Static type errors ActiveMQ's SelectorParser also refuses are
 * refused here: a string or boolean literal with < > <= >= or arithmetic, a literal where a
 * condition belongs (`'a' AND x`), a LIKE pattern or IN list item that is not a string literal.
 */
export function parseSelector(text: string): SelectorNode {
  const p = new Parser(tokenize(text));
  const node = p.orExpr();
  p.expectEnd();
  checkCondition(node, 0);
  return node;
}

type Kind = 'value' | 'condition';

/** What a node yields: a condition (three-valued) or a value; identifiers may be either. */
function kindOf(node: SelectorNode): Kind | 'either' {
  switch (node.kind) {
    case 'ident':
      return 'either';
    case 'literal':
      return typeof node.value === 'boolean' || node.value === null ? 'either' : 'value';
    case 'neg':
    case 'arith':
      return 'value';
    default:
      return 'condition';
  }
}

function checkCondition(node: SelectorNode, offset: number): void {
  if (kindOf(node) === 'value') throw new SelectorError('expected a condition, found a value', offset);
}

class Parser {
  private i = 0;
  /** Offsets of nodes, for type errors that point at an operand. */
  private readonly offsets = new WeakMap<SelectorNode, number>();

  constructor(private readonly tokens: Token[]) {}

  private peek(): Token {
    return this.tokens[this.i];
  }

  private next(): Token {
    const t = this.tokens[this.i];
    if (t.type !== 'end') this.i += 1;
    return t;
  }

  private isKeyword(word: string, t: Token = this.peek()): boolean {
    return t.type === 'keyword' && t.value === word;
  }

  private isOp(op: string, t: Token = this.peek()): boolean {
    return t.type === 'op' && t.value === op;
  }

  private fail(expected: string, t: Token = this.peek()): never {
    throw new SelectorError(`expected ${expected}, found ${describe(t)}`, t.offset);
  }

  private at<T extends SelectorNode>(node: T, offset: number): T {
    this.offsets.set(node, offset);
    return node;
  }

  private offsetOf(node: SelectorNode): number {
    return this.offsets.get(node) ?? 0;
  }

  expectEnd(): void {
    if (this.peek().type !== 'end') this.fail('an operator or the end of the selector');
  }

  orExpr(): SelectorNode {
    let left = this.andExpr();
    while (this.isKeyword('OR')) {
      const t = this.next();
      const right = this.andExpr();
      this.condition(left);
      this.condition(right);
      left = this.at({ kind: 'or', left, right }, t.offset);
    }
    return left;
  }

  private andExpr(): SelectorNode {
    let left = this.notExpr();
    while (this.isKeyword('AND')) {
      const t = this.next();
      const right = this.notExpr();
      this.condition(left);
      this.condition(right);
      left = this.at({ kind: 'and', left, right }, t.offset);
    }
    return left;
  }

  private notExpr(): SelectorNode {
    if (this.isKeyword('NOT')) {
      const t = this.next();
      const operand = this.notExpr();
      this.condition(operand);
      return this.at({ kind: 'not', operand }, t.offset);
    }
    return this.comparison();
  }

  private condition(node: SelectorNode): void {
    checkCondition(node, this.offsetOf(node));
  }

  /** A value operand: a condition (a comparison) cannot be compared or computed with. */
  private value(node: SelectorNode): void {
    if (kindOf(node) === 'condition') {
      throw new SelectorError('expected a value, found a condition (parenthesize it?)', this.offsetOf(node));
    }
  }

  /** Operands of < > <= >=, BETWEEN and arithmetic: numbers only (§3.8.1.2). */
  private numeric(node: SelectorNode, what: string): void {
    this.value(node);
    if (node.kind === 'literal' && node.value !== null && typeof node.value !== 'number') {
      throw new SelectorError(
        `${typeof node.value} ${JSON.stringify(node.value)} cannot be used with ${what} (numbers only)`,
        this.offsetOf(node),
      );
    }
  }

  private comparison(): SelectorNode {
    const left = this.additive();
    const t = this.peek();
    if (t.type === 'op' && ['=', '<>', '<', '>', '<=', '>='].includes(t.value)) {
      this.next();
      const right = this.additive();
      const op = t.value as CompareOp;
      if (op === '=' || op === '<>') {
        this.value(left);
        this.value(right);
      } else {
        this.numeric(left, op);
        this.numeric(right, op);
      }
      return this.at({ kind: 'compare', op, left, right }, t.offset);
    }
    let not = false;
    if (this.isKeyword('NOT')) {
      const after = this.tokens[this.i + 1];
      if (
        !this.isKeyword('BETWEEN', after) &&
        !this.isKeyword('IN', after) &&
        !this.isKeyword('LIKE', after)
      ) {
        return left;
      }
      this.next();
      not = true;
    }
    const k = this.peek();
    if (this.isKeyword('BETWEEN')) {
      this.next();
      const low = this.additive();
      if (!this.isKeyword('AND')) this.fail('AND (BETWEEN … AND …)');
      this.next();
      const high = this.additive();
      this.numeric(left, 'BETWEEN');
      this.numeric(low, 'BETWEEN');
      this.numeric(high, 'BETWEEN');
      return this.at({ kind: 'between', not, value: left, low, high }, k.offset);
    }
    if (this.isKeyword('IN')) {
      this.next();
      this.value(left);
      if (!this.isOp('(')) this.fail("'(' (IN (…))");
      this.next();
      const list: string[] = [];
      for (;;) {
        const s = this.next();
        if (s.type !== 'string') this.fail('a string literal (IN lists hold strings)', s);
        list.push(s.value);
        if (this.isOp(',')) {
          this.next();
          continue;
        }
        if (this.isOp(')')) {
          this.next();
          break;
        }
        this.fail("',' or ')'");
      }
      return this.at({ kind: 'in', not, value: left, list }, k.offset);
    }
    if (this.isKeyword('LIKE')) {
      this.next();
      this.value(left);
      const pattern = this.next();
      if (pattern.type !== 'string') this.fail('a string literal (the LIKE pattern)', pattern);
      let escapeChar: string | null = null;
      if (this.isKeyword('ESCAPE')) {
        this.next();
        const e = this.next();
        if (e.type !== 'string') this.fail('a string literal (the ESCAPE character)', e);
        if ([...e.value].length !== 1)
          throw new SelectorError('ESCAPE takes exactly one character', e.offset);
        escapeChar = e.value;
      }
      likeRegExp(pattern.value, escapeChar, pattern.offset);
      return this.at(
        { kind: 'like', not, value: left, pattern: pattern.value, escape: escapeChar },
        k.offset,
      );
    }
    if (not) this.fail('BETWEEN, IN or LIKE after NOT');
    if (this.isKeyword('IS')) {
      this.next();
      let isNot = false;
      if (this.isKeyword('NOT')) {
        this.next();
        isNot = true;
      }
      if (!this.isKeyword('NULL')) this.fail('NULL (IS [NOT] NULL)');
      this.next();
      this.value(left);
      return this.at({ kind: 'isNull', not: isNot, value: left }, k.offset);
    }
    return left;
  }

  private additive(): SelectorNode {
    let left = this.multiplicative();
    for (;;) {
      const t = this.peek();
      if (!this.isOp('+') && !this.isOp('-')) return left;
      this.next();
      const right = this.multiplicative();
      this.numeric(left, t.type === 'op' ? t.value : '');
      this.numeric(right, t.type === 'op' ? t.value : '');
      left = this.at({ kind: 'arith', op: (t as { value: '+' | '-' }).value, left, right }, t.offset);
    }
  }

  private multiplicative(): SelectorNode {
    let left = this.unary();
    for (;;) {
      const t = this.peek();
      if (!this.isOp('*') && !this.isOp('/')) return left;
      this.next();
      const right = this.unary();
      this.numeric(left, t.type === 'op' ? t.value : '');
      this.numeric(right, t.type === 'op' ? t.value : '');
      left = this.at({ kind: 'arith', op: (t as { value: '*' | '/' }).value, left, right }, t.offset);
    }
  }

  private unary(): SelectorNode {
    const t = this.peek();
    if (this.isOp('-') || this.isOp('+')) {
      this.next();
      const operand = this.unary();
      this.numeric(operand, `unary ${(t as { value: string }).value}`);
      if (t.type === 'op' && t.value === '+') return operand;
      // A negative literal stays a literal (so -9223372036854775808-style bounds print back as they came).
      if (operand.kind === 'literal' && typeof operand.value === 'number') {
        return this.at({ kind: 'literal', value: -operand.value }, t.offset);
      }
      return this.at({ kind: 'neg', operand }, t.offset);
    }
    return this.primary();
  }

  private primary(): SelectorNode {
    const t = this.next();
    switch (t.type) {
      case 'string':
        return this.at({ kind: 'literal', value: t.value }, t.offset);
      case 'number':
        return this.at({ kind: 'literal', value: t.value }, t.offset);
      case 'ident':
        return this.at({ kind: 'ident', name: t.value }, t.offset);
      case 'keyword':
        if (t.value === 'TRUE') return this.at({ kind: 'literal', value: true }, t.offset);
        if (t.value === 'FALSE') return this.at({ kind: 'literal', value: false }, t.offset);
        if (t.value === 'NULL') return this.at({ kind: 'literal', value: null }, t.offset);
        break;
      case 'op':
        if (t.value === '(') {
          const inner = this.orExpr();
          if (!this.isOp(')')) this.fail("')'");
          this.next();
          // Keep the inner node's offset; a parenthesized node is the same node.
          if (!this.offsets.has(inner)) this.offsets.set(inner, t.offset);
          return inner;
        }
        break;
      default:
        break;
    }
    this.fail('an identifier, a literal or (', t);
  }
}

function describe(t: Token): string {
  switch (t.type) {
    case 'end':
      return 'the end of the selector';
    case 'string':
      return `string '${t.value.replace(/'/g, "''")}'`;
    case 'number':
      return `number ${t.text}`;
    case 'ident':
      return `identifier ${t.value}`;
    case 'keyword':
      return t.value;
    case 'op':
      return `'${t.value}'`;
  }
}
