import { MessageAudit } from './message-audit';

describe('MessageAudit', () => {
  it('remembers the last N ids and evicts the oldest', () => {
    const a = new MessageAudit(3);
    for (const id of ['1', '2', '3', '4']) a.add(id);
    expect(a.size).toBe(3);
    expect(a.has('1')).toBe(false);
    expect(['2', '3', '4'].every((id) => a.has(id))).toBe(true);
  });

  it('refreshes an id added again', () => {
    const a = new MessageAudit(2);
    a.add('1');
    a.add('2');
    a.add('1');
    a.add('3');
    expect(a.has('1')).toBe(true);
    expect(a.has('2')).toBe(false);
  });

  it('keeps nothing with depth 0', () => {
    const a = new MessageAudit(0);
    a.add('1');
    expect(a.has('1')).toBe(false);
  });

  it('knows a resend by its producer id and sequence although its message id is new', () => {
    const a = new MessageAudit(10);
    a.addMessage({ messageId: '7', producerId: 'p1', producerSeq: 3 });
    expect(a.knows({ messageId: '7' })).toBe(true);
    expect(a.knows({ messageId: '99', producerId: 'p1', producerSeq: 3 })).toBe(true);
    expect(a.knows({ messageId: '100', producerId: 'p1', producerSeq: 4 })).toBe(false);
    expect(a.knows({ messageId: '101', producerId: 'p2', producerSeq: 3 })).toBe(false);
    expect(a.knows({ messageId: '102' })).toBe(false);
  });
});
