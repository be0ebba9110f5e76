import { AUDIT_MAX_PRODUCERS, MessageAudit } from './message-audit';

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

  it('knows a redelivery and a resend by producer id and sequence although the message id is new', () => {
    const a = new MessageAudit(10);
    a.addMessage({ messageId: '7', producerId: 'p1', producerSeq: 3 });
    expect(a.knows({ messageId: '7', producerId: 'p1', producerSeq: 3 })).toBe(true);
    expect(a.knows({ messageId: '99', producerId: 'p1', producerSeq: 3 })).toBe(true);
    expect(a.knows({ messageId: '100', producerId: 'p1', producerSeq: 4 })).toBe(false);
    expect(a.knows({ messageId: '101', producerId: 'p2', producerSeq: 3 })).toBe(false);
    expect(a.knows({ messageId: '102' })).toBe(false);
  });

  it('knows messages without producer sequence by id, and ids given to add() for any message', () => {
    const a = new MessageAudit(10);
    a.addMessage({ messageId: 'stomp-1' });
    a.add('tx-acked');
    expect(a.knows({ messageId: 'stomp-1' })).toBe(true);
    expect(a.knows({ messageId: 'tx-acked', producerId: 'p9', producerSeq: 1 })).toBe(true);
    expect(a.knows({ messageId: 'stomp-2' })).toBe(false);
  });

  it('keeps the last N sequences of each producer', () => {
    const a = new MessageAudit(100);
    for (let seq = 1; seq <= 250; seq++)
      a.addMessage({ messageId: `m${seq}`, producerId: 'p1', producerSeq: seq });
    a.addMessage({ messageId: 'x', producerId: 'p2', producerSeq: 1 });
    expect(a.knows({ messageId: 'n', producerId: 'p1', producerSeq: 250 })).toBe(true);
    expect(a.knows({ messageId: 'n', producerId: 'p1', producerSeq: 160 })).toBe(true);
    expect(a.knows({ messageId: 'n', producerId: 'p1', producerSeq: 100 })).toBe(false);
    expect(a.knows({ messageId: 'n', producerId: 'p2', producerSeq: 1 })).toBe(true);
  });

  it(`tracks at most ${AUDIT_MAX_PRODUCERS} producers, dropping the one tracked longest`, () => {
    const a = new MessageAudit(10);
    for (let p = 0; p <= AUDIT_MAX_PRODUCERS; p++)
      a.addMessage({ messageId: `m${p}`, producerId: `p${p}`, producerSeq: 1 });
    expect(a.knows({ messageId: 'n', producerId: 'p0', producerSeq: 1 })).toBe(false);
    expect(a.knows({ messageId: 'n', producerId: `p${AUDIT_MAX_PRODUCERS}`, producerSeq: 1 })).toBe(true);
  });
});
