import { InvalidArgumentError } from '@keel/protocol';

/**
 * An invalid message selector: `INVALID_SELECTOR` (ActiveMQ answers InvalidSelectorException), with
 * the offset (0-based, in UTF-16 code units) where the parser gave up and why.
 */
export class SelectorError extends InvalidArgumentError {
  constructor(
    readonly reason: string,
    readonly offset: number,
  ) {
    super(`invalid selector at offset ${offset}: ${reason}`, 'INVALID_SELECTOR');
  }
}
