import { KeelError, parseDestination } from '@keel/protocol';
import { AuthorizationMap } from './authorization-map';

const d = parseDestination;
const groups: Record<string, string[]> = {
  alice: ['producers'],
  bob: ['consumers'],
  carol: ['producers', 'consumers'],
  root: ['admins'],
};

const map = new AuthorizationMap({
  entries: [
    { queue: '>', read: 'admins', write: 'admins', admin: 'admins' },
    { queue: 'orders.>', read: 'consumers', write: 'producers', admin: 'producers,consumers' },
    { queue: 'orders.eu', read: ['auditors'] },
    { topic: 'prices.*', read: 'consumers', write: 'producers' },
    {
      topic: 'ActiveMQ.Advisory.>',
      read: 'producers,consumers',
      write: 'producers,consumers',
      admin: 'producers,consumers',
    },
  ],
  tempDestinations: { read: 'consumers', write: 'producers,consumers', admin: 'consumers' },
  groupsOf: (u) => groups[u] ?? [],
});

describe('AuthorizationMap (ActiveMQ DefaultAuthorizationMap)', () => {
  test('the rights of every matching entry are combined (union)', () => {
    expect([...map.allowedGroups('read', d('queue://orders.eu'))].sort()).toEqual([
      'admins',
      'auditors',
      'consumers',
    ]);
    expect([...map.allowedGroups('write', d('queue://orders.eu'))].sort()).toEqual(['admins', 'producers']);
  });

  test('queue entries do not apply to topics of the same name and the other way round', () => {
    expect(map.allows(['producers'], 'write', d('topic://orders.eu'))).toBe(false);
    expect(map.allows(['producers'], 'write', d('queue://prices.eur'))).toBe(false);
    expect(map.allows(['producers'], 'write', d('topic://prices.eur'))).toBe(true);
  });

  test('a destination no entry covers allows nothing', () => {
    expect(map.allowedGroups('read', d('topic://unlisted')).size).toBe(0);
    expect(() => map.check('carol', 'read', d('topic://unlisted'))).toThrow(/read right is missing/);
  });

  test('check throws NOT_AUTHORIZED naming the user, the destination and the right', () => {
    expect(() => map.check('alice', 'write', d('queue://orders.eu'))).not.toThrow();
    let err: unknown;
    try {
      map.check('bob', 'write', d('queue://orders.eu'));
    } catch (e) {
      err = e;
    }
    expect(KeelError.isInstance(err)).toBe(true);
    expect((err as KeelError).code).toBe('NOT_AUTHORIZED');
    expect((err as Error).message).toBe(
      'user bob is not authorized to write to queue://orders.eu: the write right is missing',
    );
    expect(() => map.check(undefined, 'read', d('queue://orders.eu'))).toThrow(/anonymous/);
    expect(() => map.check('nobody', 'read', d('queue://orders.eu'))).toThrow(/user nobody/);
  });

  test('a wildcard consumer needs an entry that covers every name it can match', () => {
    expect(map.allows(['consumers'], 'read', d('queue://orders.>'))).toBe(true);
    expect(map.allows(['consumers'], 'read', d('queue://orders.*.eu'))).toBe(true);
    expect(map.allows(['consumers'], 'read', d('topic://prices.*'))).toBe(true);
    // prices.* grants one segment; prices.> would also deliver prices.a.b.
    expect(map.allows(['consumers'], 'read', d('topic://prices.>'))).toBe(false);
    expect(() => map.check('bob', 'read', d('topic://prices.>'))).toThrow(/covering every name/);
  });

  test('temporary destinations take their rights from the temp entry only', () => {
    const tq = d('temp-queue://ID:c1:1');
    expect(map.allows(['consumers'], 'admin', tq)).toBe(true);
    expect(map.allows(['producers'], 'admin', tq)).toBe(false);
    expect(map.allows(['producers'], 'write', d('temp-topic://ID:c1:2'))).toBe(true);
    expect(map.allows(['admins'], 'read', tq)).toBe(false);
    const noTemp = new AuthorizationMap({ entries: [{ queue: '>', read: 'a', write: 'a', admin: 'a' }] });
    expect(noTemp.allows(['a'], 'admin', tq)).toBe(false);
  });

  test('advisory topics are ordinary topics under ActiveMQ.Advisory.>', () => {
    expect(map.allows(['consumers'], 'read', d('topic://ActiveMQ.Advisory.Consumer.Queue.orders.eu'))).toBe(
      true,
    );
    expect(map.allows(['consumers'], 'read', d('topic://ActiveMQ.Advisory.Consumer.>'))).toBe(true);
    expect(map.allows(['admins'], 'read', d('topic://ActiveMQ.Advisory.Consumer.>'))).toBe(false);
  });

  test('malformed entries are refused naming the entry', () => {
    expect(() => new AuthorizationMap({ entries: [{ read: 'a' }] })).toThrow(
      /authorization\[0\].*exactly one/,
    );
    expect(() => new AuthorizationMap({ entries: [{ queue: 'a', topic: 'b' }] })).toThrow(/exactly one/);
    expect(() => new AuthorizationMap({ entries: [{ queue: 'a.>.b' }] })).toThrow(
      /authorization\[0\]: invalid/,
    );
    expect(() => new AuthorizationMap({ entries: [{ queue: 'a', read: 3 as unknown as string }] })).toThrow(
      /authorization\[0\]\.read/,
    );
  });
});
