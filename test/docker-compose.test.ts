import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { formatHost, parsePgUrl } from '@keel/store-pg';
import { parse } from 'yaml';

/** The failover drill's compose file: postgres plus three nodes of one cluster on one database. */
describe('docker-compose.yml', () => {
  const file = readFileSync(join(__dirname, '..', 'docker-compose.yml'), 'utf8');
  const doc = parse(file, { merge: true }) as {
    services: Record<
      string,
      {
        environment?: Record<string, string>;
        healthcheck?: { test: string[] };
        ports?: string[];
        depends_on?: Record<string, { condition: string }>;
        image?: string;
        build?: string;
        profiles?: string[];
      }
    >;
  };
  const brokers = Object.entries(doc.services).filter(([name]) => name.startsWith('broker'));
  const inProfile = (profile: string) =>
    Object.entries(doc.services).filter(([, s]) => s.profiles?.includes(profile));

  it('has postgres and three broker nodes (the services without a profile)', () => {
    const byDefault = Object.entries(doc.services).filter(([, s]) => !s.profiles);
    expect(byDefault.map(([name]) => name).sort()).toEqual(['broker1', 'broker2', 'broker3', 'postgres']);
    expect(doc.services.postgres.healthcheck?.test.join(' ')).toMatch(/pg_isready/);
  });

  it('points every node at the same database and cluster, with distinct names', () => {
    const dbs = new Set(brokers.map(([, s]) => s.environment?.KEEL_DB));
    const clusters = new Set(brokers.map(([, s]) => s.environment?.KEEL_CLUSTER));
    const names = new Set(brokers.map(([, s]) => s.environment?.KEEL_NAME));
    expect(dbs.size).toBe(1);
    expect([...dbs][0]).toMatch(/^postgres:\/\/[^@]+@postgres:5432\/keel$/);
    expect(clusters.size).toBe(1);
    expect(names.size).toBe(3);
    for (const [, s] of brokers) expect(s.depends_on?.postgres.condition).toBe('service_healthy');
  });

  it('gives every node a healthcheck on /readyz and published ports', () => {
    const published = new Set<string>();
    for (const [, s] of brokers) {
      expect(s.healthcheck?.test.join(' ')).toMatch(/\/readyz/);
      expect(s.ports?.length).toBe(3);
      for (const p of s.ports ?? []) {
        const host = p.split(':')[0];
        expect(published.has(host)).toBe(false);
        published.add(host);
      }
    }
  });

  it('profile patroni: etcd, three Patroni members and two Keel nodes on their multi-host URL', () => {
    const ha = inProfile('patroni');
    expect(ha.map(([name]) => name).sort()).toEqual([
      'etcd',
      'keel-ha1',
      'keel-ha2',
      'pg-ha-1',
      'pg-ha-2',
      'pg-ha-3',
    ]);
    const members = ha.filter(([name]) => name.startsWith('pg-ha-'));
    for (const [name, s] of members) {
      expect(s.build).toBe('docker/patroni');
      expect(s.environment?.PATRONI_NAME).toBe(name);
      expect(s.environment?.PATRONI_POSTGRESQL_CONNECT_ADDRESS).toBe(`${name}:5432`);
      expect(s.depends_on?.etcd.condition).toBe('service_healthy');
    }
    const keel = ha.filter(([name]) => name.startsWith('keel-ha'));
    const urls = new Set(keel.map(([, s]) => s.environment?.KEEL_DB));
    expect(urls.size).toBe(1);
    const url = parsePgUrl([...urls][0] as string);
    expect(url.hosts.map(formatHost)).toEqual(['pg-ha-1:5432', 'pg-ha-2:5432', 'pg-ha-3:5432']);
    expect(url.targetSessionAttrs).toBe('read-write');
    expect(new Set(keel.map(([, s]) => s.environment?.KEEL_NAME)).size).toBe(2);
    for (const [, s] of keel) expect(s.depends_on?.postgres).toBeUndefined();
  });
});
