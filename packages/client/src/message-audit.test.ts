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
});
