import type { StoredMessage } from '@keel/core';
import fc from 'fast-check';
import { decodeMessagesCopy, encodeMessagesCopy } from './copy-binary';

// The COPY FROM payload we send and the COPY TO payload Postgres returns share one format
// (PostgreSQL manual, COPY, "Binary Format"), in the same column order: each decodes the other.

const storedMessage: fc.Arbitrary<StoredMessage> = fc.record({
  id: fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }),
  destId: fc.integer({ min: 1, max: 2 ** 31 - 1 }),
  priority: fc.integer({ min: 0, max: 9 }),
  expiration: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER })),
  deliveryCount: fc.integer({ min: 0, max: 2 ** 31 - 1 }),
  headers: fc.record({
    messageId: fc.string(),
    destination: fc.string(),
    properties: fc.dictionary(fc.string(), fc.oneof(fc.string(), fc.integer(), fc.boolean())),
  }) as unknown as fc.Arbitrary<StoredMessage['headers']>,
  body: fc.uint8Array({ maxLength: 2048 }).map((a) => Buffer.from(a)),
});

/** One row with this body and fixed other fields. */
function row(body: Buffer): StoredMessage {
  return { id: 1, destId: 1, priority: 4, expiration: 0, deliveryCount: 0, headers: {} as never, body };
}

describe('binary COPY payloads', () => {
  it('decodes what it encodes, field for field (property)', () => {
    fc.assert(
      fc.property(fc.array(storedMessage, { maxLength: 20 }), (messages) => {
        expect(decodeMessagesCopy(encodeMessagesCopy(messages))).toEqual(messages);
      }),
    );
  });

  it('decodes an empty result (signature, header, trailer)', () => {
    expect(decodeMessagesCopy(encodeMessagesCopy([]))).toEqual([]);
  });

  it('copies each body out of the payload', () => {
    const payload = encodeMessagesCopy([row(Buffer.from('abc'))]);
    const [m] = decodeMessagesCopy(payload);
    payload.fill(0);
    expect(m!.body.toString()).toBe('abc');
  });

  it('refuses a payload that is not a binary COPY, or whose rows do not match', () => {
    expect(() => decodeMessagesCopy(Buffer.from('id,body\n1,abc\n'))).toThrow(/signature/);
    const good = encodeMessagesCopy([row(Buffer.alloc(4))]);
    const fewerFields = Buffer.from(good);
    fewerFields.writeInt16BE(6, 19);
    expect(() => decodeMessagesCopy(fewerFields)).toThrow(/6 fields/);
    const wrongWidth = Buffer.from(good);
    wrongWidth.writeInt32BE(4, 21); // id declared as 4 bytes
    expect(() => decodeMessagesCopy(wrongWidth)).toThrow(/expected 8/);
    for (const cut of [good.length - 1, good.length - 5, 30]) {
      expect(() => decodeMessagesCopy(good.subarray(0, cut))).toThrow(/truncated/);
    }
  });
});
