import { parseSequence, SequenceTracker, sequenceBody } from './sequence-body';

describe('sequence bodies', () => {
  it('start with the zero-padded number and a space, padded to the size', () => {
    const body = sequenceBody(123, 20);
    expect(body.toString()).toBe('000123 xxxxxxxxxxxxx');
    expect(body).toHaveLength(20);
    expect(sequenceBody(1, 1).toString()).toBe('000001 '); // never shorter than the number
    expect(sequenceBody(12_345_678, 10).toString()).toBe('12345678 x');
  });

  it('give their number back, and null for bodies that are not numbered', () => {
    for (const seq of [1, 99, 123_456, 1_234_567, 2 ** 40])
      expect(parseSequence(sequenceBody(seq, 64))).toBe(seq);
    expect(parseSequence('000042')).toBe(42);
    expect(parseSequence('000042 hello')).toBe(42);
    expect(parseSequence('hello 1')).toBeNull();
    expect(parseSequence('42x')).toBeNull();
    expect(parseSequence('')).toBeNull();
    expect(parseSequence('9'.repeat(20))).toBeNull(); // beyond a safe integer
  });
});

describe('SequenceTracker', () => {
  it('counts nothing missing and nothing twice for 1..N in any order', () => {
    const t = new SequenceTracker();
    for (const seq of [3, 1, 2, 5, 4]) expect(t.add(sequenceBody(seq, 10))).toBe('new');
    expect(t.counts()).toEqual({
      received: 5,
      duplicates: 0,
      gaps: 0,
      unnumbered: 0,
      firstSeq: 1,
      lastSeq: 5,
    });
  });

  it('counts each repeat as a duplicate and each missing number as a gap', () => {
    const t = new SequenceTracker();
    for (const seq of [1, 2, 2, 4, 7, 4, 4]) t.add(seq);
    // missing: 3, 5, 6; repeats: 2 once, 4 twice
    expect(t.counts()).toEqual({
      received: 7,
      duplicates: 3,
      gaps: 3,
      unnumbered: 0,
      firstSeq: 1,
      lastSeq: 7,
    });
    expect(t.has(4)).toBe(true);
    expect(t.has(5)).toBe(false);
  });

  it('counts gaps only from the lowest number seen, and keeps unnumbered bodies apart', () => {
    const t = new SequenceTracker();
    t.add('000010 a');
    t.add('000012 b');
    t.add('no number');
    expect(t.counts()).toEqual({
      received: 3,
      duplicates: 0,
      gaps: 1,
      unnumbered: 1,
      firstSeq: 10,
      lastSeq: 12,
    });
    expect(new SequenceTracker().counts()).toEqual({
      received: 0,
      duplicates: 0,
      gaps: 0,
      unnumbered: 0,
      firstSeq: null,
      lastSeq: null,
    });
  });
});
