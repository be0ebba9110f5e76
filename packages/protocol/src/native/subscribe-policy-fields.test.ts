/**
 * SUBSCRIBE's `exclusive` and `priority` (ActiveMQ exclusive consumer and consumer priority,
 * docs/protocol.md section 5.2): checked by the native codec's frame validation.
 */

import { validateFrame } from './frame-validation';
import { FrameType } from './frames';

const base = { consumerId: 'c1', destination: 'queue://q', prefetch: 10 };

describe('SUBSCRIBE exclusive and priority', () => {
  it('accepts a boolean exclusive and a priority -128..127', () => {
    for (const priority of [-128, -5, 0, 127]) {
      const f = validateFrame(FrameType.Subscribe, 1, { ...base, exclusive: true, priority }, null);
      expect(f).toMatchObject({ exclusive: true, priority });
    }
  });

  it('refuses a priority that is no Java byte, and an exclusive that is no boolean', () => {
    for (const priority of [128, -129, 1.5, '5'])
      expect(() => validateFrame(FrameType.Subscribe, 1, { ...base, priority }, null)).toThrow(
        /"priority" must be an integer -128..127/,
      );
    expect(() => validateFrame(FrameType.Subscribe, 1, { ...base, exclusive: 'true' }, null)).toThrow(
      /"exclusive" must be a boolean/,
    );
  });
});
