import { formatHost, formatPgUrl, parsePgUrl, singleHostUrl, withDatabase } from './pg-url';

describe('parsePgUrl (libpq connection URIs with several hosts, PostgreSQL 15 docs 34.1.1.3)', () => {
  it('reads a host list with per-host ports, defaults and the selection parameters', () => {
    const u = parsePgUrl(
      'postgres://keel:s%40cret@h1:5433,h2,[::1]:5434,[fe80::1%25eth0]/keel?target_session_attrs=read-write&connect_timeout=3&sslmode=disable',
    );
    expect(u.hosts).toEqual([
      { host: 'h1', port: 5433 },
      { host: 'h2', port: 5432 },
      { host: '::1', port: 5434 },
      { host: 'fe80::1%25eth0', port: 5432 },
    ]);
    expect(u.hosts.map(formatHost)).toEqual(['h1:5433', 'h2:5432', '[::1]:5434', '[fe80::1%25eth0]:5432']);
    expect(u.database).toBe('keel');
    expect(u.targetSessionAttrs).toBe('read-write');
    expect(u.connectTimeoutMs).toBe(3000);
    expect(u.params).toEqual([['sslmode', 'disable']]);
  });

  it('gives pg one host per URL, without the multi-host parameters, credentials kept', () => {
    const u = parsePgUrl(
      'postgresql://keel:pw@a:1,[::1]:2/db?target_session_attrs=primary&application_name=x',
    );
    expect(u.hosts.map((h) => singleHostUrl(u, h))).toEqual([
      'postgresql://keel:pw@a:1/db?application_name=x',
      'postgresql://keel:pw@[::1]:2/db?application_name=x',
    ]);
  });

  it('uses port= as the default port of hosts that name none, and libpq rounds connect_timeout up to 2 s', () => {
    const u = parsePgUrl('postgres://a,b:7/db?port=6000&connect_timeout=1');
    expect(u.hosts).toEqual([
      { host: 'a', port: 6000 },
      { host: 'b', port: 7 },
    ]);
    expect(u.connectTimeoutMs).toBe(2000);
    expect(singleHostUrl(u, u.hosts[0] as never)).toBe('postgres://a:6000/db');
  });

  it('defaults to localhost:5432, and keeps a URL it did not change as written', () => {
    expect(parsePgUrl('postgres:///db').hosts).toEqual([{ host: 'localhost', port: 5432 }]);
    expect(withDatabase('postgres://k:p@127.0.0.1/keel', 'keel_lock')).toBe(
      'postgres://k:p@127.0.0.1/keel_lock',
    );
    expect(withDatabase('postgres://h1:5432,h2:5432/keel?target_session_attrs=read-write', 'keel_lock')).toBe(
      'postgres://h1:5432,h2:5432/keel_lock?target_session_attrs=read-write',
    );
    const u = parsePgUrl('postgres://h1,h2/k?connect_timeout=5&target_session_attrs=any');
    expect(parsePgUrl(formatPgUrl(u))).toEqual(u);
  });

  it.each([
    ['http://h/db', /not a postgres/],
    ['postgres://h1,,h2/db', /empty host/],
    ['postgres://h1:5432,/db', /empty host/],
    ['postgres://h1:99999/db', /invalid port "99999"/],
    ['postgres://h1:x/db', /invalid port "x"/],
    ['postgres://::1:5432/db', /IPv6 address needs brackets/],
    ['postgres://[::1/db', /unclosed "\["/],
    ['postgres://[::1]x/db', /unexpected "x"/],
    ['postgres://[nothost]:5432/db', /invalid IPv6 address/],
    ['postgres://h/db?target_session_attrs=master', /target_session_attrs must be one of/],
    ['postgres://h/db?connect_timeout=soon', /connect_timeout must be whole seconds/],
    ['postgres://h/db?host=/var/run/postgresql', /host= parameter is not supported/],
  ])('refuses %s naming what is wrong', (url, message) => {
    expect(() => parsePgUrl(url)).toThrow(message);
  });
});
