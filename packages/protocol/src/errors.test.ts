/**
 * docs/errors.md against the code: each documented code is one the code knows and comes back from
 * an ERROR frame (`errorFromCode`) as the documented class, and
 * `KeelError.isInstance` knows an error made by another copy of the package.
 */
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { ERROR_CODES, errorFromCode, KeelError } from './errors';

interface DocumentedCode {
  code: string;
  className: string;
  retryable: boolean;
}

function documentedCodes(): DocumentedCode[] {
  const text = readFileSync(path.join(__dirname, '../../../docs/errors.md'), 'utf8');
  const rows: DocumentedCode[] = [];
  for (const line of text.split('\n')) {
    const m = /^\| `([A-Z_]+)` \| (\w+) \| (yes|no) \|/.exec(line);
    if (m) rows.push({ code: m[1]!, className: m[2]!, retryable: m[3] === 'yes' });
  }
  return rows;
}

describe('docs/errors.md', () => {
  const rows = documentedCodes();

  it('lists codes the code knows', () => {
    expect(rows.length).toBeGreaterThan(20);
    for (const r of rows) expect(Object.keys(ERROR_CODES)).toContain(r.code);
  });

  it.each(rows.map((r) => [r.code, r] as const))(
    '%s comes back from an ERROR frame as the documented class',
    (_code, r) => {
      // An ERROR frame carries the flag the raiser set (for the store codes: pg-errors.test.ts).
      const err = errorFromCode(r.code, 'from the wire', r.retryable);
      expect(err.code).toBe(r.code);
      expect(err.message).toBe('from the wire');
      expect(err.retryable).toBe(r.retryable);
      // ConfigError (packages/server) is an InvalidArgumentError; the wire rebuilds the base class.
      const expected = r.className === 'ConfigError' ? 'InvalidArgumentError' : r.className;
      expect(err.constructor.name).toBe(expected);
      expect(err).toBeInstanceOf(KeelError);
    },
  );

  it('keeps the retryable flag an ERROR frame carried', () => {
    expect(errorFromCode('STORE_ERROR', 'x', true).retryable).toBe(true);
    expect(errorFromCode('NOT_MASTER', 'x', false).retryable).toBe(false);
  });

  it('KeelError.isInstance knows an error of another copy of the package (Symbol.for marker)', () => {
    const foreign = Object.assign(new Error('other copy'), {
      [Symbol.for('keel.error')]: true,
      code: 'TIMEOUT',
    });
    expect(foreign).not.toBeInstanceOf(KeelError);
    expect(KeelError.isInstance(foreign)).toBe(true);
    expect(KeelError.isInstance(new Error('plain'))).toBe(false);
    expect(KeelError.isInstance(null)).toBe(false);
  });
});
