/**
 * Broker nodes for the end-to-end tests: real `keel broker` processes (testkit's BrokerProcess)
 * with short lock timings, plus probes of their admin API and client ports.
 */
import { execFile } from 'node:child_process';
import * as net from 'node:net';
import * as path from 'node:path';
import { promisify } from 'node:util';
import {
  type BrokerProcess,
  findPostgresBindir,
  type LogEntry,
  type PostgresServer,
  startBroker,
} from '@keel/testkit';
import { Client } from 'pg';

/**
 * Short lock timings so a drill takes seconds (KEEL_LOCK_* are read by packages/server config.ts),
 * and quick heartbeats so clients notice a frozen broker in ~1.5 s.
 */
export const FAST_NODE_ENV: Record<string, string> = {
  KEEL_LOCK_LEASE_MS: '1500',
  KEEL_LOCK_KEEP_ALIVE_MS: '300',
  KEEL_LOCK_WAITING_POLL_MS: '300',
  KEEL_HEARTBEAT_MS: '500',
  KEEL_LOG_LEVEL: 'info',
};

export interface StartNodeOptions {
  db: string;
  cluster: string;
  name: string;
  port?: number;
  stompPort?: number;
  adminPort?: number;
  args?: string[];
  env?: Record<string, string>;
}

export function startNode(o: StartNodeOptions): Promise<BrokerProcess> {
  return startBroker({
    db: o.db,
    name: o.name,
    cluster: o.cluster,
    port: o.port,
    stompPort: o.stompPort,
    adminPort: o.adminPort,
    args: o.args,
    env: { ...FAST_NODE_ENV, ...o.env },
    // E2E_LOG_DIR=/some/dir keeps every node's output there, for a post-mortem.
    logFile: process.env.E2E_LOG_DIR ? path.join(process.env.E2E_LOG_DIR, `${o.name}.log`) : undefined,
  });
}

/** Starts `count` nodes one after the other; the first one started becomes master. */
export async function startCluster(
  db: string,
  cluster: string,
  count: number,
  extra: Partial<StartNodeOptions> = {},
): Promise<BrokerProcess[]> {
  const nodes: BrokerProcess[] = [];
  for (let i = 1; i <= count; i++) {
    const node = await startNode({ db, cluster, name: `${cluster}-n${i}`, ...extra });
    nodes.push(node);
    // The first one takes the lock; the others are slaves once they log it (deterministic layout).
    await node.waitForRole(i === 1 ? 'master' : 'slave', 30_000);
  }
  return nodes;
}

export interface BrokerInfo {
  name: string;
  role: string;
  epoch: number;
  lockHolder?: string | null;
  readOnly?: boolean;
}

/** GET /api/broker of a node, or null when it does not answer within timeoutMs (frozen, dead). */
export async function brokerInfo(node: BrokerProcess, timeoutMs = 1_000): Promise<BrokerInfo | null> {
  try {
    const res = await fetch(`http://127.0.0.1:${node.adminPort}/api/broker`, {
      signal: AbortSignal.timeout(timeoutMs),
    });
    if (!res.ok) return null;
    return (await res.json()) as BrokerInfo;
  } catch {
    return null;
  }
}

/** True when a TCP connect to 127.0.0.1:port is refused (nothing listens). */
export function portRefuses(port: number, timeoutMs = 1_000): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    const done = (refused: boolean) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(refused);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    socket.once('connect', () => done(false));
    socket.once('error', (err: NodeJS.ErrnoException) => done(err.code === 'ECONNREFUSED'));
  });
}

/** The node whose current role is master among the live ones, waiting up to timeoutMs. */
export async function waitForNewMaster(
  nodes: BrokerProcess[],
  exclude: BrokerProcess | null,
  timeoutMs = 30_000,
): Promise<{ node: BrokerProcess; entry: LogEntry }> {
  const candidates = nodes.filter((n) => n !== exclude && !n.exitStatus);
  const marks = candidates.map((n) => n.mark());
  return new Promise((resolve, reject) => {
    let settled = false;
    const timer = setTimeout(() => {
      if (settled) return;
      settled = true;
      reject(
        new Error(`no new master within ${timeoutMs} ms\n${candidates.map((n) => n.tail(8)).join('\n')}`),
      );
    }, timeoutMs);
    candidates.forEach((n, i) => {
      n.waitForLog((e) => e.msg === 'role changed' && e.role === 'master', timeoutMs, marks[i])
        .then((entry) => {
          if (settled) return;
          settled = true;
          clearTimeout(timer);
          resolve({ node: n, entry });
        })
        .catch(() => {});
    });
  });
}

/** A log line's time in ms since the epoch (pino writes a number, or an ISO string with isoTime). */
export function logTime(e: LogEntry): number {
  return typeof e.time === 'number' ? e.time : new Date(String(e.time)).getTime();
}

/** Nodes that exited on their own (not by the test's signal), with the end of their stderr. */
export function crashedNodes(nodes: BrokerProcess[]): string[] {
  return nodes
    .filter((n) => n.exitStatus && n.exitStatus.signal === null && n.exitStatus.code !== 0)
    .map((n) => `${n.name} exited with code ${n.exitStatus?.code}:\n${n.stderr.slice(-4000)}`);
}

/** Every `role changed` line of a node, with its log time (pino `time`, ms since the epoch). */
export function roleChanges(node: BrokerProcess): { time: number; role: string; from?: string }[] {
  return node.logs
    .filter((e) => e.msg === 'role changed' && typeof e.role === 'string')
    .map((e) => ({ time: logTime(e), role: e.role as string, from: e.from as string | undefined }));
}

/**
 * From the nodes' role logs: the intervals during which each node claimed to be master, and the
 * overlaps between two nodes' intervals (there must be none for "never two masters at once").
 */
export function masterOverlaps(
  nodes: BrokerProcess[],
  now = Date.now(),
): { a: string; b: string; ms: number }[] {
  const intervals = nodes.map((n) => {
    const out: [number, number][] = [];
    let start: number | null = null;
    for (const c of roleChanges(n)) {
      if (c.role === 'master' && start === null) start = c.time;
      else if (c.role !== 'master' && start !== null) {
        out.push([start, c.time]);
        start = null;
      }
    }
    // A node killed while master claimed it until it died; the caller passes `now` for live ones.
    if (start !== null) out.push([start, n.exitStatus ? start : now]);
    return { name: n.name, out };
  });
  const overlaps: { a: string; b: string; ms: number }[] = [];
  for (let i = 0; i < intervals.length; i++) {
    for (let j = i + 1; j < intervals.length; j++) {
      for (const [s1, e1] of intervals[i]?.out ?? []) {
        for (const [s2, e2] of intervals[j]?.out ?? []) {
          const ms = Math.min(e1, e2) - Math.max(s1, s2);
          if (ms > 0) overlaps.push({ a: intervals[i]?.name ?? '', b: intervals[j]?.name ?? '', ms });
        }
      }
    }
  }
  return overlaps;
}

/** Runs one query on a short-lived client. */
export async function sql<T = Record<string, unknown>>(
  url: string,
  text: string,
  values: unknown[] = [],
): Promise<T[]> {
  const c = new Client({ connectionString: url, application_name: 'keel-e2e' });
  c.on('error', () => {});
  await c.connect();
  try {
    const r = await c.query(text, values);
    return r.rows as T[];
  } finally {
    await c.end().catch(() => {});
  }
}

/** Rows still stored for queue `name` of `cluster`. */
export async function queueDepth(url: string, cluster: string, name: string): Promise<number> {
  const rows = await sql<{ n: number }>(
    url,
    `SELECT count(*)::int AS n FROM keel_messages m JOIN keel_destinations d ON d.id = m.dest_id
      WHERE d.cluster = $1 AND d.type = 'queue' AND d.name = $2`,
    [cluster, name],
  );
  return rows[0]?.n ?? 0;
}

/** Polls check() every intervalMs until it returns true; throws after timeoutMs. */
export async function poll(
  check: () => Promise<boolean> | boolean,
  timeoutMs: number,
  what: string,
  intervalMs = 100,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/**
 * The rows still stored for a queue, each with what the ledger knows of it (for a failure message:
 * a row left behind after the drain is a message the broker stored but does not deliver).
 */
export async function leftovers(
  url: string,
  cluster: string,
  queue: string,
  describe: (body: Buffer) => string,
): Promise<string[]> {
  const rows = await sql<{ id: string; delivery_count: number; body: Buffer }>(
    url,
    `SELECT m.id::text AS id, m.delivery_count, m.body FROM keel_messages m JOIN keel_destinations d ON d.id = m.dest_id
      WHERE d.cluster = $1 AND d.type = 'queue' AND d.name = $2 ORDER BY m.id LIMIT 20`,
    [cluster, queue],
  );
  return rows.map(
    (r) => `id=${r.id} (epoch ${BigInt(r.id) >> 32n}) deliveryCount=${r.delivery_count} ${describe(r.body)}`,
  );
}

/** `pg_ctl restart -m fast` of a private test server (never the shared one: other files use it). */
export async function restartPostgres(server: PostgresServer): Promise<void> {
  const bindir = findPostgresBindir();
  if (!bindir || !server.dir) throw new Error('no pg_ctl for the private cluster');
  const pgCtlPath = path.join(bindir, 'pg_ctl');
  const dataDir = path.join(server.dir, 'data');
  const args = ['restart', '-m', 'fast', '-w', '-t', '60', '-l', path.join(server.dir, 'postgres.log')];
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  const [cmd, cmdArgs] = isRoot
    ? ['runuser', ['-u', 'postgres', '--', pgCtlPath, ...args, '-D', dataDir]]
    : [pgCtlPath, [...args, '-D', dataDir]];
  await promisify(execFile)(cmd, cmdArgs, { timeout: 60_000 });
}

/**
 * Record every message insert with the node that held the cluster's epoch when it committed (a
 * trigger; the store's fence check locks the epoch row FOR SHARE in the same transaction, so that is
 * the epoch the write was fenced against). Idempotent; call once the schema exists.
 */
export async function auditMessageWrites(url: string): Promise<void> {
  await sql(
    url,
    `CREATE TABLE IF NOT EXISTS keel_e2e_writes (id bigint, cluster text, epoch bigint, master text);
     CREATE OR REPLACE FUNCTION keel_e2e_audit() RETURNS trigger LANGUAGE plpgsql AS $$
     BEGIN
       INSERT INTO keel_e2e_writes
         SELECT NEW.id, c.cluster, c.epoch, c.master
           FROM keel_destinations d JOIN keel_clusters c ON c.cluster = d.cluster WHERE d.id = NEW.dest_id;
       RETURN NULL;
     END $$;
     DROP TRIGGER IF EXISTS keel_e2e_audit ON keel_messages;
     CREATE TRIGGER keel_e2e_audit AFTER INSERT ON keel_messages FOR EACH ROW EXECUTE FUNCTION keel_e2e_audit();`,
  );
}

/**
 * Message rows written by a node that did not hold the cluster's epoch at commit (see
 * auditMessageWrites): a message id embeds the epoch of the takeover that started its writer
 * (epochOfId), whose node keel_takeovers names; a row whose writer is not the node that held the
 * epoch when it committed is a write of an old master after a takeover. (A master that re-takes its
 * own lock bumps the epoch and keeps its ids: that is the same node, not a stale write.)
 */
export async function staleEpochWrites(url: string, cluster: string): Promise<string[]> {
  const rows = await sql<{ id: string; writer: string; master: string; epoch: string }>(
    url,
    `SELECT w.id::text AS id, t.node AS writer, w.master, w.epoch::text AS epoch
       FROM keel_e2e_writes w JOIN keel_takeovers t ON t.cluster = w.cluster AND t.epoch = (w.id >> 32)
      WHERE w.cluster = $1 AND t.node IS DISTINCT FROM w.master ORDER BY w.id LIMIT 20`,
    [cluster],
  );
  return rows.map((r) => `id=${r.id} written by ${r.writer} while ${r.master} held epoch ${r.epoch}`);
}
