export type { SelectorNode, SelectorValue } from './ast';
export type { SelectorSubject } from './identifiers';
export { MessageSelector } from './message-selector';
export { parseSelector } from './parser';
export { SelectorError } from './selector-error';
