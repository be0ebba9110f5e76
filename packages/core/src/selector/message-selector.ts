import type { SelectorNode } from './ast';
import { compileSelector } from './evaluate';
import type { SelectorSubject } from './identifiers';
import { parseSelector } from './parser';
import { compileSelectorSql } from './sql';

/** Parsed selectors by text, shared by consumers that use the same one. */
const cache = new Map<string, MessageSelector>();
const CACHE_LIMIT = 1000;

/**
 * A JMS message selector (Jakarta Messaging 2.0 §3.8.1.1; ActiveMQ's STOMP `selector` SUBSCRIBE
 * header), parsed once: `matches` for messages in memory, `sql` (or null) for a queue's store pages.
 */
export class MessageSelector {
  readonly matches: (subject: SelectorSubject) => boolean;
  readonly sql: string | null;

  private constructor(
    readonly text: string,
    readonly tree: SelectorNode,
  ) {
    this.matches = compileSelector(tree);
    this.sql = compileSelectorSql(tree);
  }

  /** Parse `text`; throws SelectorError (INVALID_SELECTOR) with the offset and the reason. */
  static parse(text: string): MessageSelector {
    const hit = cache.get(text);
    if (hit) return hit;
    const selector = new MessageSelector(text, parseSelector(text));
    if (cache.size >= CACHE_LIMIT) cache.delete(cache.keys().next().value as string);
    cache.set(text, selector);
    return selector;
  }

  /**
   * The selector of a subscription: none for an absent or blank header (ActiveMQ treats an empty
   * selector as no selector), else parsed.
   */
  static of(text: string | null | undefined): MessageSelector | null {
    if (text === undefined || text === null || text.trim() === '') return null;
    return MessageSelector.parse(text);
  }
}
