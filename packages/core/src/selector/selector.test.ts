import { InvalidArgumentError, type Message } from '@keel/protocol';
import type { SelectorSubject } from './identifiers';
import { MessageSelector } from './message-selector';
import { SelectorError } from './selector-error';

function subject(properties: Message['properties'], over: Partial<Message> = {}, id = 42): SelectorSubject {
  const message: Message = {
    destination: 'queue://q',
    persistent: true,
    priority: 4,
    timestamp: 1000,
    expiration: 0,
    properties,
    body: Buffer.alloc(0),
    ...over,
  };
  return { id, message, priority: message.priority, deliveryCount: 0, redelivered: false };
}

const sel = (text: string, s: SelectorSubject): boolean => MessageSelector.parse(text).matches(s);

function errorOf(text: string): SelectorError {
  try {
    MessageSelector.parse(text);
  } catch (err) {
    expect(err).toBeInstanceOf(SelectorError);
    expect(err).toBeInstanceOf(InvalidArgumentError);
    expect((err as SelectorError).code).toBe('INVALID_SELECTOR');
    return err as SelectorError;
  }
  throw new Error(`parsed: ${text}`);
}

describe('message selector grammar', () => {
  const s = subject({ color: 'red', n: 5, f: 2.5, ok: true, empty: null, name: 'a_b%c' });

  test.each([
    ["color = 'red'", true],
    ["color <> 'red'", false],
    ["COLOR = 'red'", false], // identifiers are case-sensitive
    ["color = 'red' and n = 5", true], // keywords are not
    ["color = 'blue' OR n > 4", true],
    ['NOT n > 4', false],
    ['n BETWEEN 5 AND 6', true],
    ['n NOT BETWEEN 5 AND 6', false],
    ['n + 1 = 6', true],
    ['n * 2 - 1 = 9', true],
    ['-n = -5', true],
    ['n / 2 = 2.5', true],
    ['n / 0 = 1', false],
    ['f = 2.5e0', true],
    ['f > 2', true],
    ['n = 5.0', true], // exact and approximate numerics compare
    ['n = 0x5', true],
    ['n = 5L', true],
    ["color IN ('red', 'green')", true],
    ["color NOT IN ('red', 'green')", false],
    ["color LIKE 'r%'", true],
    ["color LIKE 'r_d'", true],
    ["color LIKE 'r_'", false],
    ["name LIKE 'a\\_b\\%c' ESCAPE '\\'", true],
    ["name LIKE 'a!_b%' ESCAPE '!'", true],
    ["color NOT LIKE 'r%'", false],
    ['missing IS NULL', true],
    ['empty IS NULL', true],
    ['n IS NOT NULL', true],
    ['ok', true],
    ['ok = TRUE', true],
    ['NOT ok', false],
    ['TRUE', true],
    ['FALSE', false],
    ["n = '5'", false], // different types are not equal
    ["n <> '5'", true], // ActiveMQ: <> is NOT =
    ["color = 'red' AND (n = 1 OR n = 5)", true],
    ["JMSDeliveryMode = 'PERSISTENT'", true],
    ['JMSPriority = 4', true],
    ["JMSMessageID = '42'", true],
    ['JMSTimestamp = 1000', true],
    ['JMSCorrelationID IS NULL', true],
    ['JMSRedelivered = FALSE', true],
    ['JMSXDeliveryCount = 1', true],
    ["s = 'it''s'", false],
  ])('%s → %s', (text, expected) => {
    expect(sel(text, s)).toBe(expected);
  });

  test('three-valued logic: unknown is neither true nor false', () => {
    // missing > 1 is unknown; NOT unknown is unknown; unknown OR true is true; unknown AND false is false.
    expect(sel('missing > 1', s)).toBe(false);
    expect(sel('NOT (missing > 1)', s)).toBe(false);
    expect(sel('missing > 1 OR n = 5', s)).toBe(true);
    expect(sel('NOT (missing > 1 AND n = 6)', s)).toBe(true);
    expect(sel("NOT (missing = 'x')", s)).toBe(false);
    expect(sel("missing NOT IN ('a')", s)).toBe(false);
    expect(sel("missing NOT LIKE 'a'", s)).toBe(false);
    expect(sel('missing NOT BETWEEN 1 AND 2', s)).toBe(false);
  });

  test('a string is only ever equal or unequal: < on strings is false, not an error at run time', () => {
    expect(sel('color > 1', s)).toBe(false);
    expect(sel('NOT (color > 1)', s)).toBe(true);
  });

  test.each([
    ['', 0, 'expected an identifier, a literal or (, found the end of the selector'],
    ["color = 'red", 8, 'unterminated string literal'],
    ['color = ', 8, 'found the end of the selector'],
    ["color == 'red'", 7, "found '='"],
    ['a = 1 b', 6, 'expected an operator or the end of the selector, found identifier b'],
    ["'a' > 'b'", 0, 'cannot be used with > (numbers only)'],
    ["n + 'x' = 1", 4, 'cannot be used with + (numbers only)'],
    ['TRUE < 1', 0, 'cannot be used with <'],
    ["a IN (1, 'x')", 6, 'a string literal (IN lists hold strings)'],
    ['a LIKE b', 7, 'a string literal (the LIKE pattern)'],
    ["a LIKE 'x!' ESCAPE '!'", 7, 'LIKE pattern ends with its ESCAPE character'],
    ["a LIKE 'x' ESCAPE 'ab'", 18, 'ESCAPE takes exactly one character'],
    ['a BETWEEN 1 OR 2', 12, 'expected AND (BETWEEN … AND …)'],
    ['a IS 1', 5, 'NULL (IS [NOT] NULL)'],
    ['(a = 1', 6, "expected ')'"],
    ['5', 0, 'expected a condition, found a value'],
    ["a = 1 AND 'x'", 10, 'expected a condition, found a value'],
    ['a # 1', 2, 'unexpected character "#"'],
    ['a = 12abc', 4, 'malformed number 12abc'],
    ['a = 1e999', 4, 'number out of range'],
    ['(a = 1) = TRUE', 3, 'expected a value, found a condition'],
    ['NOT', 3, 'found the end of the selector'],
    ['AND = 1', 0, 'found AND'],
  ])('%j is refused at offset %d', (text, offset, reason) => {
    const err = errorOf(text);
    expect(err.offset).toBe(offset);
    expect(err.message).toContain(reason);
    expect(err.message).toContain(`at offset ${offset}`);
  });

  test('blank is no selector', () => {
    expect(MessageSelector.of('  ')).toBeNull();
    expect(MessageSelector.of(undefined)).toBeNull();
  });

  test('SQL: compiled where faithful, null where not', () => {
    expect(MessageSelector.parse("color = 'red'").sql).toContain('jsonb_typeof');
    expect(MessageSelector.parse('n + 1 = 2').sql).toBeNull();
    expect(MessageSelector.parse('JMSRedelivered').sql).toBeNull();
    expect(MessageSelector.parse("a = 'x\u0000'").sql).toBeNull();
    // A literal's quote is doubled, never closes the SQL string.
    expect(MessageSelector.parse("a = 'x'' OR 1=1 --'").sql).toContain("'x'' OR 1=1 --'");
  });
});
