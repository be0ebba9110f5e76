import type { Properties } from '@keel/protocol';
import type { QueueConsumer } from '../message-queue';
import { MessageQueue } from '../message-queue';
import type { QueueEntry } from '../queue-entry';
import { groupIdOf, MessageGroups } from './message-groups';

function entry(id: number, properties: Properties): QueueEntry {
  return MessageQueue.memoryEntry(id, {
    destination: 'queue://q',
    persistent: false,
    priority: 4,
    timestamp: 0,
    expiration: 0,
    properties,
    body: Buffer.alloc(0),
  });
}

function consumer(id: string, priority = 0, credit = true): QueueConsumer {
  return { id, priority, canTake: () => credit, take: () => {} };
}

describe('MessageGroups', () => {
  it('reads JMSXGroupID as a string; an empty or missing id is no group', () => {
    expect(groupIdOf(entry(1, { JMSXGroupID: 'g' }))).toBe('g');
    expect(groupIdOf(entry(2, { JMSXGroupID: 7 }))).toBe('7');
    expect(groupIdOf(entry(3, { JMSXGroupID: '' }))).toBeUndefined();
    expect(groupIdOf(entry(4, {}))).toBeUndefined();
  });

  it('assigns a new group to the highest-priority consumer with credit that owns the fewest', () => {
    const groups = new MessageGroups();
    const hi = consumer('hi', 5);
    const full = consumer('full', 9, false);
    const lo = consumer('lo', 0);
    const all = [full, hi, lo];
    expect(groups.consumerFor('g1', null, all)).toBe(hi);
    expect(groups.dispatched(entry(1, { JMSXGroupID: 'g1' }), 'g1', hi)).toBe(true);
    expect(groups.consumerFor('g2', null, all)).toBe(hi); // lower priority is not considered
    const a = consumer('a');
    const b = consumer('b');
    groups.dispatched(entry(2, { JMSXGroupID: 'g2' }), 'g2', a);
    expect(groups.consumerFor('g3', null, [a, b])).toBe(b);
  });

  it('forgets the least recently used group with nothing in flight past its capacity', () => {
    const groups = new MessageGroups(2);
    const a = consumer('a');
    const e1 = entry(1, { JMSXGroupID: 'g1' });
    groups.dispatched(e1, 'g1', a);
    const e2 = entry(2, { JMSXGroupID: 'g2' });
    groups.dispatched(e2, 'g2', a);
    groups.settled(e2);
    groups.dispatched(entry(3, { JMSXGroupID: 'g3' }), 'g3', a);
    // g1 is the oldest but in flight: g2 goes.
    expect(groups.size).toBe(2);
    expect(groups.ownerOf('g1')).toBe(a);
    expect(groups.ownerOf('g2')).toBeUndefined();
    expect(groups.groupsOf(a)).toBe(2);
  });

  it('lets a group without an owner move only once nothing of it is in flight', () => {
    const groups = new MessageGroups();
    const a = consumer('a');
    const b = consumer('b');
    const e1 = entry(1, { JMSXGroupID: 'g' });
    groups.dispatched(e1, 'g', a);
    expect(groups.consumerLeft(a)).toBe(true);
    expect(groups.consumerFor('g', null, [b])).toBeNull();
    expect(groups.settled(e1)).toBe(true);
    expect(groups.consumerFor('g', null, [b])).toBe(b);
  });
});
