import type { Pool } from 'pg';

export interface NodeRecord {
  name: string;
  role: string;
  clientUrls: string[];
  adminUrl: string | null;
  lastSeen: Date;
  startedAt: Date;
}

/**
 * Every node of a cluster, master or slave, announces itself in keel_nodes every few seconds. The
 * master tells clients the cluster's broker list from here (failover updateURIsSupported), and the
 * admin API shows every node.
 */
export class NodeRegistry {
  constructor(
    private readonly pool: Pool,
    private readonly cluster: string,
    private readonly name: string,
  ) {}

  async announce(role: string, clientUrls: string[], adminUrl: string | null): Promise<void> {
    await this.pool.query(
      `INSERT INTO keel_nodes (cluster, name, role, client_urls, admin_url, started_at, last_seen)
       VALUES ($1, $2, $3, $4, $5, now(), now())
       ON CONFLICT (cluster, name) DO UPDATE
         SET role = EXCLUDED.role, client_urls = EXCLUDED.client_urls, admin_url = EXCLUDED.admin_url, last_seen = now()`,
      [this.cluster, this.name, role, clientUrls, adminUrl],
    );
  }

  async list(maxAgeMs = 30_000): Promise<NodeRecord[]> {
    const r = await this.pool.query(
      `SELECT name, role, client_urls, admin_url, last_seen, started_at FROM keel_nodes
        WHERE cluster = $1 AND last_seen > now() - ($2::int * interval '1 millisecond') ORDER BY name`,
      [this.cluster, maxAgeMs],
    );
    return r.rows.map((row) => ({
      name: row.name,
      role: row.role,
      clientUrls: row.client_urls,
      adminUrl: row.admin_url,
      lastSeen: row.last_seen,
      startedAt: row.started_at,
    }));
  }

  async lockHolder(): Promise<string | null> {
    const r = await this.pool.query('SELECT master FROM keel_clusters WHERE cluster = $1', [this.cluster]);
    return r.rows[0]?.master ?? null;
  }

  /** Store health as Postgres sees it: dead rows and sizes of the message tables, oldest open transaction. */
  async storeHealth(): Promise<{
    deadRows: Record<string, number>;
    liveRows: Record<string, number>;
    tableBytes: Record<string, number>;
    oldestTransactionAgeSeconds: number | null;
  }> {
    const t = await this.pool.query(
      `SELECT relname, n_dead_tup::bigint AS dead, n_live_tup::bigint AS live, pg_total_relation_size(relid)::bigint AS bytes
         FROM pg_stat_user_tables WHERE relname IN ('keel_messages', 'keel_sub_entries', 'keel_producers', 'keel_forwarded')`,
    );
    const a = await this.pool.query(
      `SELECT extract(epoch FROM max(now() - xact_start))::float8 AS age FROM pg_stat_activity
        WHERE datname = current_database() AND xact_start IS NOT NULL AND pid <> pg_backend_pid()`,
    );
    const deadRows: Record<string, number> = {};
    const liveRows: Record<string, number> = {};
    const tableBytes: Record<string, number> = {};
    for (const row of t.rows) {
      deadRows[row.relname] = Number(row.dead);
      liveRows[row.relname] = Number(row.live);
      tableBytes[row.relname] = Number(row.bytes);
    }
    const age = a.rows[0]?.age;
    return {
      deadRows,
      liveRows,
      tableBytes,
      oldestTransactionAgeSeconds: age === null || age === undefined ? null : Number(age),
    };
  }
}
