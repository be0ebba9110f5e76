/**
 * The syntax tree of a JMS message selector (Jakarta Messaging 2.0 §3.8.1.1, "Message selector
 * syntax"). Value nodes yield a number, string, boolean or null (unknown); condition nodes yield
 * true, false or null (SQL's three-valued logic, §3.8.1.1 "the result … is UNKNOWN").
 */
export type SelectorNode =
  | { kind: 'literal'; value: string | number | boolean | null }
  | { kind: 'ident'; name: string }
  | { kind: 'neg'; operand: SelectorNode }
  | { kind: 'arith'; op: '+' | '-' | '*' | '/'; left: SelectorNode; right: SelectorNode }
  | { kind: 'compare'; op: CompareOp; left: SelectorNode; right: SelectorNode }
  | { kind: 'between'; not: boolean; value: SelectorNode; low: SelectorNode; high: SelectorNode }
  | { kind: 'in'; not: boolean; value: SelectorNode; list: string[] }
  | { kind: 'like'; not: boolean; value: SelectorNode; pattern: string; escape: string | null }
  | { kind: 'isNull'; not: boolean; value: SelectorNode }
  | { kind: 'and'; left: SelectorNode; right: SelectorNode }
  | { kind: 'or'; left: SelectorNode; right: SelectorNode }
  | { kind: 'not'; operand: SelectorNode };

export type CompareOp = '=' | '<>' | '<' | '>' | '<=' | '>=';

/** A value a selector sees: null is "no such property" (or a null one). */
export type SelectorValue = string | number | boolean | null;
