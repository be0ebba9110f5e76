import { readFileSync } from 'node:fs';
import { join } from 'node:path';
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
      }
    >;
  };
  const brokers = Object.entries(doc.services).filter(([name]) => name.startsWith('broker'));

  it('has postgres and three broker nodes', () => {
    expect(Object.keys(doc.services).sort()).toEqual(['broker1', 'broker2', 'broker3', 'postgres']);
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
});
