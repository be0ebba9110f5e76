import type { Broker, Logger } from '@keel/core';
import type { Pool } from 'pg';

export interface StoreUsageSamplerOptions {
  broker: Broker;
  /** A pool on the message database (the node's admin pool). */
  pool: Pool;
  cluster: string;
  intervalMs: number;
  logger: Logger;
}

/** The tables' size on disk: an upper bound of what this cluster stores, read from the catalog at no cost. */
const UPPER_BOUND_SQL = `SELECT pg_total_relation_size('keel_messages') + pg_total_relation_size('keel_sub_entries') AS bytes`;

/** The bytes of this cluster's stored messages (bodies and headers as stored, TOAST-compressed). */
const EXACT_SQL = `SELECT coalesce(sum(pg_column_size(m.body) + pg_column_size(m.headers)), 0)::bigint AS bytes
  FROM keel_messages m JOIN keel_destinations d ON d.id = m.dest_id WHERE d.cluster = $1`;

/**
 * Measures `storeUsage` (issue #23.3) for the broker's producer flow control every `intervalMs`
 * while the broker runs. The tables' size on disk is read first; only when it reaches the limit are
 * the live rows summed (a scan), since the on-disk size keeps dead rows until VACUUM and would
 * never fall after consumers catch up. Stops by itself once the broker stops.
 */
export function startStoreUsageSampler(options: StoreUsageSamplerOptions): { stop(): void } {
  const { broker, pool, cluster, intervalMs, logger } = options;
  const limit = broker.usage.storeLimitBytes;
  let running = false;
  let timer: NodeJS.Timeout | null = null;
  const stop = (): void => {
    if (timer) clearInterval(timer);
    timer = null;
  };
  const sample = async (): Promise<void> => {
    if (!broker.isRunning) return stop();
    if (running) return;
    running = true;
    try {
      const upper = Number((await pool.query<{ bytes: string }>(UPPER_BOUND_SQL)).rows[0]?.bytes ?? 0);
      let bytes = upper;
      if (upper >= limit) {
        bytes = Number((await pool.query<{ bytes: string }>(EXACT_SQL, [cluster])).rows[0]?.bytes ?? 0);
      }
      const was = broker.usage.storeUsageBytes;
      broker.usage.reportStoreBytes(bytes);
      if (was >= limit !== bytes >= limit) {
        logger.warn(
          { storeUsage: bytes, limit },
          bytes >= limit ? 'storeUsage limit reached' : 'storeUsage below its limit again',
        );
      }
    } catch (err) {
      logger.debug({ err: (err as Error).message }, 'storeUsage could not be measured');
    } finally {
      running = false;
    }
  };
  if (limit > 0) {
    void sample();
    timer = setInterval(() => void sample(), intervalMs);
    timer.unref();
  }
  return { stop };
}
