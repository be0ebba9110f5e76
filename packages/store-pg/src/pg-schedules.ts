/**
 * Scheduled-delivery jobs on Postgres (migrations/005_schedules.sql): the statements a commit round
 * writes for StoreBatch.schedules, and the reads the scheduler and the admin API page with. Every
 * read is by the (cluster, next_due) index or the primary key; the write statements are set-based
 * (unnest of arrays, `= ANY`), like the message writes in pg-store.ts.
 */
import type { ScheduleAdvance, ScheduleCursor, ScheduleRecord, ScheduleWrite } from '@keel/core';
import type { MessageHeaders } from '@keel/protocol';
import type { QueryConfig } from 'pg';

export const SCHEDULE_COLUMNS =
  'job_id, destination, headers, body, next_due, delay_ms, period_ms, repeat, repeats_left, cron, cron_time, fired, created_at';

export interface ScheduleRow {
  job_id: string;
  destination: string;
  headers: MessageHeaders;
  body: Buffer;
  next_due: number | string;
  delay_ms: number | string;
  period_ms: number | string;
  repeat: number;
  repeats_left: number;
  cron: string | null;
  cron_time: number | string;
  fired: number | string;
  created_at: number | string;
}

export function toSchedule(r: ScheduleRow): ScheduleRecord {
  return {
    jobId: r.job_id,
    destination: r.destination,
    headers: r.headers,
    body: r.body,
    nextDue: Number(r.next_due),
    delayMs: Number(r.delay_ms),
    periodMs: Number(r.period_ms),
    repeat: r.repeat,
    repeatsLeft: r.repeats_left,
    cron: r.cron,
    cronTime: Number(r.cron_time),
    fired: Number(r.fired),
    createdAt: Number(r.created_at),
  };
}

export const SCHEDULE_SQL = {
  due: `SELECT ${SCHEDULE_COLUMNS} FROM keel_schedules
    WHERE cluster = $1 AND next_due <= $2 ORDER BY next_due, job_id LIMIT $3`,
  nextDue: 'SELECT next_due FROM keel_schedules WHERE cluster = $1 ORDER BY next_due LIMIT 1',
  page: `SELECT ${SCHEDULE_COLUMNS} FROM keel_schedules
    WHERE cluster = $1 AND (next_due, job_id) > ($2, $3) AND next_due BETWEEN $4 AND $5
    ORDER BY next_due, job_id LIMIT $6`,
  get: `SELECT ${SCHEDULE_COLUMNS} FROM keel_schedules WHERE cluster = $1 AND job_id = $2`,
  count: 'SELECT count(*)::bigint AS n FROM keel_schedules WHERE cluster = $1',
};

/** Page arguments after SCHEDULE_SQL.page's cluster: cursor, range, limit. */
export function pageArgs(
  cursor: ScheduleCursor | null,
  limit: number,
  range?: { from: number; to: number },
): unknown[] {
  return [
    cursor?.nextDue ?? Number.MIN_SAFE_INTEGER,
    cursor?.jobId ?? '',
    range?.from ?? Number.MIN_SAFE_INTEGER,
    range?.to ?? Number.MAX_SAFE_INTEGER,
    limit,
  ];
}

/** The statements for a batch's schedule writes, in StoreBatch order: inserts, advances, deletes, ranges. */
export function scheduleStatements(cluster: string, writes: readonly ScheduleWrite[]): QueryConfig[] {
  if (writes.length === 0) return [];
  const out: QueryConfig[] = [];
  const inserts: ScheduleRecord[] = [];
  const advances = new Map<string, ScheduleAdvance>();
  const deletes = new Set<string>();
  const ranges: { from: number; to: number }[] = [];
  for (const w of writes) {
    if (w.op === 'insert') inserts.push(w.schedule);
    else if (w.op === 'advance') advances.set(w.jobId, w);
    else if (w.op === 'delete') deletes.add(w.jobId);
    else ranges.push({ from: w.from, to: w.to });
  }
  if (inserts.length > 0) {
    out.push({
      name: 'keel_insert_schedules',
      text: `INSERT INTO keel_schedules (cluster, ${SCHEDULE_COLUMNS})
        SELECT $1, u.* FROM unnest($2::text[], $3::text[], $4::jsonb[], $5::bytea[], $6::bigint[], $7::bigint[],
          $8::bigint[], $9::int[], $10::int[], $11::text[], $12::bigint[], $13::bigint[], $14::bigint[]) AS u`,
      values: [
        cluster,
        inserts.map((j) => j.jobId),
        inserts.map((j) => j.destination),
        inserts.map((j) => JSON.stringify(j.headers)),
        inserts.map((j) => j.body),
        inserts.map((j) => j.nextDue),
        inserts.map((j) => j.delayMs),
        inserts.map((j) => j.periodMs),
        inserts.map((j) => j.repeat),
        inserts.map((j) => j.repeatsLeft),
        inserts.map((j) => j.cron),
        inserts.map((j) => j.cronTime),
        inserts.map((j) => j.fired),
        inserts.map((j) => j.createdAt),
      ],
    });
  }
  if (advances.size > 0) {
    const a = [...advances.values()];
    out.push({
      name: 'keel_advance_schedules',
      text: `UPDATE keel_schedules s SET next_due = u.next_due, repeats_left = u.repeats_left,
          cron_time = u.cron_time, fired = u.fired
        FROM unnest($2::text[], $3::bigint[], $4::int[], $5::bigint[], $6::bigint[])
          AS u(job_id, next_due, repeats_left, cron_time, fired)
        WHERE s.cluster = $1 AND s.job_id = u.job_id`,
      values: [
        cluster,
        a.map((j) => j.jobId),
        a.map((j) => j.nextDue),
        a.map((j) => j.repeatsLeft),
        a.map((j) => j.cronTime),
        a.map((j) => j.fired),
      ],
    });
  }
  if (deletes.size > 0) {
    out.push({
      name: 'keel_delete_schedules',
      text: 'DELETE FROM keel_schedules WHERE cluster = $1 AND job_id = ANY($2::text[])',
      values: [cluster, [...deletes]],
    });
  }
  for (const r of ranges) {
    out.push({
      text: 'DELETE FROM keel_schedules WHERE cluster = $1 AND next_due BETWEEN $2 AND $3',
      values: [cluster, r.from, r.to],
    });
  }
  return out;
}
