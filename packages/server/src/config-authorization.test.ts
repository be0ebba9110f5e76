import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from './config';

const DB = 'postgres://u@localhost/keel';

function fromFile(yaml: string, env: NodeJS.ProcessEnv = {}) {
  const file = join(mkdtempSync(join(tmpdir(), 'keel-cfg-')), 'keel.yaml');
  writeFileSync(file, yaml);
  return loadConfig({ file, env: { KEEL_DB: DB, ...env } });
}

describe('configuration: users in groups and authorization (#23.2)', () => {
  test('users with groups (a list or a comma-separated string); without groups their roles', () => {
    const cfg = fromFile(`
users:
  - {name: a, password: pw, groups: [x, y]}
  - {name: b, password: pw, groups: "x, z"}
  - {name: c, password: pw}
  - {name: d, password: pw, roles: [admin-read]}
`);
    expect(cfg.users.map((u) => [u.name, u.groups])).toEqual([
      ['a', ['x', 'y']],
      ['b', ['x', 'z']],
      ['c', ['producer', 'consumer']],
      ['d', ['admin-read']],
    ]);
    expect(cfg.authorization).toBeNull();
  });

  test('--user NAME:PASSWORD still works (groups: producer, consumer)', () => {
    const cfg = loadConfig({ argv: { user: ['app:s3cret:x'] }, env: { KEEL_DB: DB } });
    expect(cfg.users[0]).toMatchObject({ name: 'app', groups: ['producer', 'consumer'] });
  });

  test('authorization entries and the temp destination entry, from the file or KEEL_AUTHORIZATION', () => {
    const cfg = fromFile(`
users: [{name: a, password: pw, groups: [x]}]
authorization:
  - {queue: "orders.>", read: consumers, write: producers, admin: "producers,consumers"}
  - {topic: "ActiveMQ.Advisory.>", read: [x], write: [x], admin: [x]}
tempDestinationAuthorization: {read: x, write: x, admin: x}
`);
    expect(cfg.authorization).toEqual([
      { queue: 'orders.>', read: 'consumers', write: 'producers', admin: 'producers,consumers' },
      { topic: 'ActiveMQ.Advisory.>', read: ['x'], write: ['x'], admin: ['x'] },
    ]);
    expect(cfg.tempDestinationAuthorization).toEqual({ read: 'x', write: 'x', admin: 'x' });
    const env = loadConfig({
      argv: { user: ['a:pw'] },
      env: { KEEL_DB: DB, KEEL_AUTHORIZATION: '[{"queue":">","read":"a"}]' },
    });
    expect(env.authorization).toEqual([{ queue: '>', read: 'a' }]);
  });

  test('bad entries, authorization without users, and a temp entry alone are refused naming the setting', () => {
    expect(() => fromFile('users: [{name: a, password: pw}]\nauthorization: [{read: x}]')).toThrow(
      /authorization: must name exactly one of queue and topic/,
    );
    expect(() => fromFile('users: [{name: a, password: pw}]\nauthorization: [{queue: x, reed: y}]')).toThrow(
      /authorization: must be a list of \{queue \| topic/,
    );
    expect(() => fromFile('authorization: [{queue: ">", read: x}]')).toThrow(/authorization: needs users/);
    expect(() =>
      fromFile('users: [{name: a, password: pw}]\ntempDestinationAuthorization: {read: x}'),
    ).toThrow(/tempDestinationAuthorization: is only used with authorization/);
  });
});
