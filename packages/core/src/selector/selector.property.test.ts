import fc from 'fast-check';
import { condition, keywordCase, message, print, subjectOf, truth } from './__tests__/selector-arbitrary';
import { MessageSelector } from './message-selector';
import { parseSelector } from './parser';

describe('message selectors against a reference evaluator (fast-check)', () => {
  test('printing then parsing gives the same tree, whatever the keywords’ case', () => {
    fc.assert(
      fc.property(condition(4), keywordCase, (tree, kw) => {
        expect(parseSelector(print(tree, kw))).toEqual(tree);
      }),
      { numRuns: 500 },
    );
  });

  test('the compiled predicate is true exactly when the reference says TRUE', () => {
    fc.assert(
      fc.property(condition(4), fc.array(message, { minLength: 1, maxLength: 8 }), (tree, messages) => {
        const selector = MessageSelector.parse(print(tree));
        for (const m of messages) {
          const s = subjectOf(m);
          expect(selector.matches(s)).toBe(truth(tree, s) === true);
        }
      }),
      { numRuns: 1000 },
    );
  });

  test('NOT inverts TRUE and FALSE and keeps UNKNOWN (no message matches both S and NOT (S))', () => {
    fc.assert(
      fc.property(condition(3), message, (tree, m) => {
        const s = subjectOf(m);
        const yes = MessageSelector.parse(print(tree)).matches(s);
        const no = MessageSelector.parse(`NOT ${print(tree)}`).matches(s);
        expect(yes && no).toBe(false);
        expect(!yes && !no).toBe(truth(tree, s) === null);
      }),
      { numRuns: 500 },
    );
  });
});
