#!/usr/bin/env node
// The physical limit under Keel: how fast this Postgres durably inserts and deletes 1 KiB rows
// shaped like keel_messages, in batches (one transaction, one statement per batch, `unnest` of
// arrays), with 1 and 4 clients. NOT run by CI; compare.sh runs it after the broker rounds.
//
//   node packages/bench/scripts/pg-limit.js --db postgres://postgres@127.0.0.1:55432/postgres \
//     [--out pg-limit.json] [--batches 1,100] [--clients 1,4] [--size 1024] [--duration-ms 10000] [--max-rows 300000]
//
// Creates a scratch database (keel_pglimit_<time>) in the server of --db and drops it at the end.
// Every phase is bounded in rows (--max-rows) and time (--duration-ms). Commits are durable
// (synchronous_commit as the server has it, default on: each commit waits for its WAL flush).

const path = require('node:path');
const { writeFileSync } = require('node:fs');
const { Client } = require(require.resolve('pg', { paths: [path.resolve(__dirname, '../../..')] }));

function arg(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i === -1 ? fallback : process.argv[i + 1];
}

const db = arg('db', 'postgres://postgres@127.0.0.1:55432/postgres');
const out = arg('out');
const batches = arg('batches', '1,100').split(',').map(Number);
const clientCounts = arg('clients', '1,4').split(',').map(Number);
const sizeBytes = Number(arg('size', '1024'));
const durationMs = Number(arg('duration-ms', '10000'));
const maxRows = Number(arg('max-rows', '300000'));

// Same columns and ordering index as migrations/001_initial.sql keel_messages.
const DDL = `
CREATE TABLE msgs (
  id bigint PRIMARY KEY, dest_id integer NOT NULL, priority smallint NOT NULL,
  expiration bigint NOT NULL DEFAULT 0, delivery_count integer NOT NULL DEFAULT 0,
  headers jsonb NOT NULL, body bytea NOT NULL);
CREATE INDEX msgs_order ON msgs (dest_id, priority DESC, (id + 0));`;
const INSERT = `INSERT INTO msgs (id, dest_id, priority, headers, body)
  SELECT i, 1, 4, '{"persistent":"true"}'::jsonb, b FROM unnest($1::bigint[], $2::bytea[]) AS t(i, b)`;
const DELETE = 'DELETE FROM msgs WHERE id = ANY($1::bigint[])';

function urlWithDb(url, name) {
  const u = new URL(url);
  u.pathname = `/${name}`;
  return u.toString();
}

async function connect(url) {
  const c = new Client({ connectionString: url });
  await c.connect();
  return c;
}

/** One phase: `clients` connections each running batches until maxRows or the deadline. */
async function phase(url, kind, clients, batch, ids) {
  const conns = await Promise.all(Array.from({ length: clients }, () => connect(url)));
  const body = Buffer.alloc(sizeBytes, 0x2e);
  let next = 0; // index into ids (delete) or next id (insert)
  let rows = 0;
  let commits = 0;
  const lat = [];
  const limit = kind === 'insert' ? maxRows : ids.length;
  const started = performance.now();
  const deadline = started + durationMs;
  const loop = async (c) => {
    while (next < limit && performance.now() < deadline) {
      const from = next;
      const to = Math.min(limit, from + batch);
      next = to;
      const t0 = performance.now();
      if (kind === 'insert') {
        const idArr = [];
        for (let i = from; i < to; i++) idArr.push(String(i + 1));
        await c.query(INSERT, [idArr, idArr.map(() => body)]);
        for (const id of idArr) ids.push(id);
      } else {
        await c.query(DELETE, [ids.slice(from, to)]);
      }
      lat.push(performance.now() - t0);
      rows += to - from;
      commits++;
    }
  };
  await Promise.all(conns.map(loop));
  const elapsed = performance.now() - started;
  await Promise.all(conns.map((c) => c.end()));
  lat.sort((a, b) => a - b);
  const pct = (p) =>
    lat.length ? lat[Math.min(lat.length, Math.max(1, Math.ceil((p / 100) * lat.length))) - 1] : null;
  return {
    kind,
    clients,
    batch,
    rows,
    commits,
    durationMs: Math.round(elapsed),
    rowsPerSecond: (rows * 1000) / elapsed,
    commitsPerSecond: (commits * 1000) / elapsed,
    commitP50Ms: pct(50),
    commitP99Ms: pct(99),
  };
}

async function main() {
  const admin = await connect(db);
  const scratch = `keel_pglimit_${Date.now()}`;
  const server = (await admin.query('SHOW server_version')).rows[0].server_version;
  const settings = (
    await admin.query(
      "SELECT name, setting FROM pg_settings WHERE name IN ('synchronous_commit','fsync','wal_sync_method','shared_buffers','commit_delay','full_page_writes') ORDER BY name",
    )
  ).rows;
  await admin.query(`CREATE DATABASE ${scratch}`);
  const url = urlWithDb(db, scratch);
  const results = [];
  try {
    for (const batch of batches) {
      for (const clients of clientCounts) {
        const setup = await connect(url);
        await setup.query('DROP TABLE IF EXISTS msgs');
        await setup.query(DDL);
        await setup.end();
        const ids = [];
        const ins = await phase(url, 'insert', clients, batch, ids);
        const del = await phase(url, 'delete', clients, batch, ids);
        // A message's durable life is one insert plus one delete: both rates combined.
        const lifePerSecond = 1 / (1 / ins.rowsPerSecond + 1 / del.rowsPerSecond);
        results.push({ batch, clients, insert: ins, delete: del, insertPlusDeletePerSecond: lifePerSecond });
        process.stderr.write(
          `batch ${batch}, ${clients} client(s): insert ${ins.rowsPerSecond.toFixed(0)} rows/s ` +
            `(${ins.commitsPerSecond.toFixed(0)} commits/s, p99 ${ins.commitP99Ms.toFixed(2)} ms), ` +
            `delete ${del.rowsPerSecond.toFixed(0)} rows/s (${del.commitsPerSecond.toFixed(0)} commits/s), ` +
            `insert+delete ${lifePerSecond.toFixed(0)} msg/s\n`,
        );
      }
    }
  } finally {
    await admin.query(`DROP DATABASE IF EXISTS ${scratch} WITH (FORCE)`);
    await admin.end();
  }
  const report = {
    tool: 'keel-pg-limit',
    startedAt: new Date().toISOString(),
    postgres: server,
    settings: Object.fromEntries(settings.map((r) => [r.name, r.setting])),
    sizeBytes,
    durationMs,
    maxRows,
    results,
  };
  if (out) writeFileSync(out, `${JSON.stringify(report, null, 2)}\n`);
  else process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
}

main().catch((err) => {
  process.stderr.write(`${err.stack || err}\n`);
  process.exit(1);
});
