/**
 * The Store on PostgreSQL (schema: migrations/001_initial.sql). The write path is `commit(batch)`:
 * one transaction per group-commit round, fenced by the cluster epoch (DESIGN.md, "Fencing token"),
 * with every kind of change written as one set-based statement (unnest of arrays, `= ANY`), and
 * large insert batches sent with binary COPY.
 *
 * Every session of the pool sets `idle_in_transaction_session_timeout` and TCP keepalives, so a
 * broker frozen in the middle of a transaction cannot hold the epoch row's lock for ever
 * (DESIGN.md, "Mind the frozen write"); takeOver waits for such a lock a bounded time only.
 */
import type {
  DestinationRecord,
  DurableSubscriptionRecord,
  PageCursor,
  ScheduleCursor,
  ScheduleRecord,
  Store,
  StoreBatch,
  StoredDestinationType,
  StoredMessage,
  TakeoverRecord,
} from '@keel/core';
import { fenceRefusal } from '@keel/core';
import { InvalidArgumentError, type KeelError, type MessageHeaders, StoreError } from '@keel/protocol';
import {
  escapeLiteral,
  Pool,
  type PoolClient,
  types as pgTypes,
  type QueryConfig,
  type QueryResult,
} from 'pg';
import { from as copyFrom, to as copyTo } from 'pg-copy-streams';
import { COPY_MESSAGES_SQL, decodeMessagesCopy, encodeMessagesCopy } from './copy-binary';
import { forwardRanges } from './forward-ranges';
import { type HostSelectionStatus, HostSelector } from './host-selection';
import { corked } from './pg-corked';
import { sqlState, toStoreError } from './pg-errors';
import { pgIntArray } from './pg-int-array';
import { pageArgs, SCHEDULE_SQL, type ScheduleRow, scheduleStatements, toSchedule } from './pg-schedules';

export interface PgStoreLogger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

export interface PgStoreOptions {
  connectionString: string;
  /** Cluster whose rows this store reads and writes. */
  cluster: string;
  /** Connections in the pool. */
  poolSize?: number;
  logger?: PgStoreLogger;
  /** Postgres ends a session left idle inside a transaction this long (frozen broker). */
  idleInTransactionTimeoutMs?: number;
  /** Client-side timeout of every statement (pg query_timeout), ms. */
  queryTimeoutMs?: number;
  /** Bound on opening a connection, ms. */
  connectTimeoutMs?: number;
  /**
   * statement_timeout of every session; 0 = none. Default: 500 ms under queryTimeoutMs, so Postgres
   * cancels a statement the client is about to give up on. Otherwise the abandoned transaction
   * runs on, holding its row locks, and the retried round waits behind it (measured: a commit
   * slowed by a checkpoint under another broker's load turned into a chain of 10 s timeouts ended
   * by deadlocks between retries).
   */
  statementTimeoutMs?: number;
  /** First TCP keepalive probe after this much idle time. */
  keepAliveInitialDelayMs?: number;
  /** How long takeOver waits for the epoch row (an old master's frozen write); default idle timeout + 2 s. */
  takeOverLockTimeoutMs?: number;
  /**
   * Send each commit's statements in one go on a pipelined connection (one round trip per commit).
   * When false, statements go one by one, and insert batches of copyThresholdRows or more use
   * binary COPY (which a pipelined connection cannot run).
   */
  pipeline?: boolean;
  /** Without pipelining: insert batches with at least this many messages use binary COPY. */
  copyThresholdRows?: number;
  /** application_name of the sessions (visible in pg_stat_activity). */
  applicationName?: string;
}

export const PG_STORE_DEFAULTS = {
  poolSize: 10,
  /** Connections for page reads (binary COPY; see pageCopy), apart from the write pool. */
  readPoolSize: 2,
  idleInTransactionTimeoutMs: 10_000,
  keepAliveInitialDelayMs: 10_000,
  pipeline: true,
  copyThresholdRows: 50,
  applicationName: 'keel',
  /** Client-side bound on any statement: a cut-off database fails a commit instead of hanging it. */
  queryTimeoutMs: 10_000,
  connectTimeoutMs: 5_000,
} as const;

/** Extra time takeOver waits beyond the idle-in-transaction timeout, so the frozen session is gone. */
const TAKEOVER_LOCK_MARGIN_MS = 2_000;

const INT8_OID = 20;
/** bigint (ids, epochs, expirations, counts) as JS numbers: every value we store is < 2^53. */
const parseInt8 = (value: string): number => Number(value);
const poolTypes = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
    oid === INT8_OID && format !== 'binary'
      ? parseInt8
      : pgTypes.getTypeParser(oid, format)) as typeof pgTypes.getTypeParser,
};

/**
 * pg emits 'error' on a client whose connection dies (server restart, terminated backend, network)
 * even when a query is active, and pg-pool listens only while the client is idle: without a listener
 * of its own, a checked-out client's 'error' kills the process. The failing queries reject anyway;
 * done() removes the listener and returns the error (if any), so the pool discards that client.
 */
function guardCheckedOut(client: PoolClient): { done(): Error | undefined } {
  let error: Error | undefined;
  const onError = (err: Error): void => {
    error = err;
  };
  client.on('error', onError);
  return {
    done() {
      client.removeListener('error', onError);
      return error;
    },
  };
}

/** A pooled client's 'error' (see the pools' 'connect' listener): its queries report it. */
function ignoreClientError(): void {}

const SILENT: PgStoreLogger = { debug() {}, info() {}, warn() {}, error() {} };

const MESSAGE_COLUMNS = 'id, dest_id, priority, expiration, delivery_count, headers, body';
/** Where a page read's selector condition goes (pageCopy puts it in after inlineIntegers). */
const WHERE = '/*selector*/';

/**
 * A commit round's writes all find their rows by key (deletes and updates by message id, upserts on
 * primary keys), so a sequential scan is never the right plan for them. The planner can think it
 * is when a queue table's statistics are stale — the trap that made page reads scan whole backlogs
 * (see pageCopy) — so commit rounds rule it out too. The same stale statistics (an autovacuum that
 * analyzed a drained, empty queue table) once made a full scan of the delivery-order index look as
 * cheap as the primary key for `id = ANY($1)`: delete rounds of seconds, two past the statement
 * timeout in a benchmark run (captured with auto_explain); that index now keys the id as an
 * expression no id predicate matches (migrations/004_delivery_order_indexes.sql).
 */
const COMMIT_PLANNER_SETTING = 'SET LOCAL enable_seqscan = off';

const SQL = {
  // Bodies and headers travel as two binary parameters (all bodies concatenated, all headers'
  // UTF-8 concatenated) cut apart by 1-based offsets: no hex text encoding, no array escaping.
  insertMessages: `INSERT INTO keel_messages (${MESSAGE_COLUMNS})
    SELECT u.id, u.dest_id, u.priority, u.expiration, u.delivery_count,
      convert_from(substring($6::bytea FROM u.h_off FOR u.h_len), 'UTF8')::jsonb,
      substring($7::bytea FROM u.b_off FOR u.b_len)
    FROM unnest($1::bigint[], $2::int[], $3::smallint[], $4::bigint[], $5::int[], $8::int[], $9::int[], $10::int[], $11::int[])
      AS u(id, dest_id, priority, expiration, delivery_count, h_off, h_len, b_off, b_len)`,
  // Raises division_by_zero (22012) when the cluster's epoch is not ours, aborting the transaction
  // before any write (there is no RAISE outside PL/pgSQL). FOR SHARE: a concurrent takeover's
  // UPDATE waits for us; if it committed first, this re-reads the new epoch and fails.
  fenceCheck: `SELECT 1 / (COALESCE((SELECT epoch FROM keel_clusters WHERE cluster = $1 FOR SHARE), 0) = $2)::int
    AS epoch_ok`,
  insertSubEntries: `INSERT INTO keel_sub_entries (sub_id, msg_id, priority)
    SELECT * FROM unnest($1::int[], $2::bigint[], $3::smallint[])`,
  moveMessages: `UPDATE keel_messages m
    SET dest_id = u.dest_id, priority = u.priority, headers = u.headers, delivery_count = u.delivery_count,
        expiration = COALESCE(u.expiration, m.expiration)
    FROM unnest($1::bigint[], $2::int[], $3::smallint[], $4::jsonb[], $5::int[], $6::bigint[])
      AS u(id, dest_id, priority, headers, delivery_count, expiration)
    WHERE m.id = u.id`,
  deliveryCounts: `UPDATE keel_messages m SET delivery_count = u.delivery_count
    FROM unnest($1::bigint[], $2::int[]) AS u(id, delivery_count) WHERE m.id = u.id`,
  subDeliveryCounts: `UPDATE keel_sub_entries e SET delivery_count = u.delivery_count
    FROM unnest($1::int[], $2::bigint[], $3::int[]) AS u(sub_id, msg_id, delivery_count)
    WHERE e.sub_id = u.sub_id AND e.msg_id = u.msg_id`,
  deleteMessages: 'DELETE FROM keel_messages WHERE id = ANY($1::bigint[])',
  deleteSubEntries: `DELETE FROM keel_sub_entries e USING unnest($1::int[], $2::bigint[]) AS u(sub_id, msg_id)
    WHERE e.sub_id = u.sub_id AND e.msg_id = u.msg_id`,
  upsertProducers: `INSERT INTO keel_producers (cluster, producer_id, last_seq)
    SELECT $1, u.producer_id, u.last_seq FROM unnest($2::text[], $3::bigint[]) AS u(producer_id, last_seq)
    ON CONFLICT (cluster, producer_id)
    DO UPDATE SET last_seq = GREATEST(keel_producers.last_seq, EXCLUDED.last_seq), updated_at = now()`,
  // One row per forwarding broker per round: its message ids as one multirange, from the closed
  // ranges the round's ids make (forward-ranges.ts; range_agg joins them).
  insertForwards: `INSERT INTO keel_forwarded (cluster, origin, ids)
    SELECT $1, u.origin, range_agg(int8range(u.lo, u.hi, '[]'))
    FROM unnest($2::text[], $3::bigint[], $4::bigint[]) AS u(origin, lo, hi) GROUP BY u.origin`,
  forwardedSeen: `SELECT EXISTS (SELECT 1 FROM keel_forwarded WHERE ids @> $3::bigint AND cluster = $1 AND origin = $2)
    AS seen`,
  insertTxOutcomes: `INSERT INTO keel_tx_outcomes (cluster, tx_id) SELECT $1, unnest($2::text[])
    ON CONFLICT DO NOTHING`,
  // Delivery order with a keyset cursor (priority DESC, id ASC), written as two index range scans on
  // keel_messages_delivery so a page deep in a backlog does not filter its way past the earlier
  // rows. That index keys the id as (id + 0) (migrations/004): the pages order and seek by that
  // expression, so it serves them, while a delete or update by id can only use the primary key.
  pageFirst: `SELECT ${MESSAGE_COLUMNS} FROM keel_messages WHERE dest_id = $1
    ORDER BY priority DESC, id + 0 LIMIT $2`,
  pageAfter: `SELECT ${MESSAGE_COLUMNS} FROM (
      (SELECT ${MESSAGE_COLUMNS} FROM keel_messages WHERE dest_id = $1 AND priority = $2 AND id + 0 > $3
        ORDER BY id + 0 LIMIT $4)
      UNION ALL
      (SELECT ${MESSAGE_COLUMNS} FROM keel_messages WHERE dest_id = $1 AND priority < $2
        ORDER BY priority DESC, id + 0 LIMIT $4)
    ) p ORDER BY priority DESC, id LIMIT $4`,
  // The same with a selector's condition (MessageSelector.sql), put in after the integers (pageCopy).
  pageFirstWhere: `SELECT ${MESSAGE_COLUMNS} FROM keel_messages WHERE dest_id = $1 AND (${WHERE})
    ORDER BY priority DESC, id + 0 LIMIT $2`,
  pageAfterWhere: `SELECT ${MESSAGE_COLUMNS} FROM (
      (SELECT ${MESSAGE_COLUMNS} FROM keel_messages WHERE dest_id = $1 AND priority = $2 AND id + 0 > $3
        AND (${WHERE}) ORDER BY id + 0 LIMIT $4)
      UNION ALL
      (SELECT ${MESSAGE_COLUMNS} FROM keel_messages WHERE dest_id = $1 AND priority < $2 AND (${WHERE})
        ORDER BY priority DESC, id + 0 LIMIT $4)
    ) p ORDER BY priority DESC, id LIMIT $4`,
  subFirst: `SELECT m.id, m.dest_id, e.priority, m.expiration, e.delivery_count, m.headers, m.body
    FROM keel_sub_entries e JOIN keel_messages m ON m.id = e.msg_id
    WHERE e.sub_id = $1 ORDER BY e.priority DESC, e.msg_id + 0 LIMIT $2`,
  subAfter: `SELECT p.id, p.dest_id, p.priority, m.expiration, p.delivery_count, m.headers, m.body FROM (
      (SELECT e.msg_id AS id, m.dest_id, e.priority, e.delivery_count
        FROM keel_sub_entries e JOIN keel_messages m ON m.id = e.msg_id
        WHERE e.sub_id = $1 AND e.priority = $2 AND e.msg_id + 0 > $3 ORDER BY e.msg_id + 0 LIMIT $4)
      UNION ALL
      (SELECT e.msg_id AS id, m.dest_id, e.priority, e.delivery_count
        FROM keel_sub_entries e JOIN keel_messages m ON m.id = e.msg_id
        WHERE e.sub_id = $1 AND e.priority < $2 ORDER BY e.priority DESC, e.msg_id + 0 LIMIT $4)
    ) p JOIN keel_messages m ON m.id = p.id ORDER BY p.priority DESC, p.id LIMIT $4`,
} as const;

interface MessageRow {
  id: number;
  dest_id: number;
  priority: number;
  expiration: number;
  delivery_count: number;
  headers: MessageHeaders;
  body: Buffer;
}

/**
 * `text` with its $1, $2 … replaced by these integers (for statements that take no parameters, such
 * as COPY). Anything but a safe integer is refused, so nothing else can reach the SQL text.
 */
export function inlineIntegers(text: string, values: readonly number[]): string {
  for (const v of values) {
    if (!Number.isSafeInteger(v)) throw new InvalidArgumentError(`not an integer: ${v}`);
  }
  return text.replace(/\$(\d+)\b/g, (_, n: string) => {
    const v = values[Number(n) - 1];
    if (v === undefined) throw new InvalidArgumentError(`no value for $${n}`);
    return String(v);
  });
}

function firstRejection(settled: PromiseSettledResult<unknown>[]): PromiseRejectedResult | undefined {
  return settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
}

function toMessage(r: MessageRow): StoredMessage {
  return {
    id: r.id,
    destId: r.dest_id,
    priority: r.priority,
    expiration: r.expiration,
    deliveryCount: r.delivery_count,
    headers: r.headers,
    body: r.body,
  };
}

interface SubRow {
  id: number;
  client_id: string;
  name: string;
  dest_id: number;
  selector: string | null;
  no_local: boolean;
}

function toSub(r: SubRow): DurableSubscriptionRecord {
  return {
    id: r.id,
    clientId: r.client_id,
    name: r.name,
    destId: r.dest_id,
    selector: r.selector,
    noLocal: r.no_local,
  };
}

/** Keeps the last entry per key (later changes in a batch win, as MemoryStore applies them in order). */
function lastByKey<T>(items: readonly T[], key: (item: T) => string | number): T[] {
  if (items.length < 2) return items as T[];
  const map = new Map<string | number, T>();
  for (const item of items) {
    const k = key(item);
    map.delete(k);
    map.set(k, item);
  }
  return map.size === items.length ? (items as T[]) : [...map.values()];
}

function requirePositiveInt(name: string, value: number, allowZero = false): void {
  if (!Number.isInteger(value) || value < 0 || (!allowZero && value === 0)) {
    throw new InvalidArgumentError(
      `PgStore: option ${name} must be a ${allowZero ? 'non-negative' : 'positive'} integer, got ${value}`,
    );
  }
}

/** The insert statement's parameters, built in one pass over the batch. */
function insertStatement(messages: readonly StoredMessage[]): QueryConfig {
  const n = messages.length;
  const ids = new Array<number>(n);
  const dests = new Array<number>(n);
  const prios = new Array<number>(n);
  const exps = new Array<number>(n);
  const dcs = new Array<number>(n);
  const hOff = new Array<number>(n);
  const hLen = new Array<number>(n);
  const bOff = new Array<number>(n);
  const bLen = new Array<number>(n);
  const headerBufs = new Array<Buffer>(n);
  const bodies = new Array<Buffer>(n);
  let h = 1;
  let b = 1;
  for (let i = 0; i < n; i++) {
    const m = messages[i]!;
    ids[i] = m.id;
    dests[i] = m.destId;
    prios[i] = m.priority;
    exps[i] = m.expiration;
    dcs[i] = m.deliveryCount;
    const hb = Buffer.from(JSON.stringify(m.headers), 'utf8');
    headerBufs[i] = hb;
    hOff[i] = h;
    hLen[i] = hb.length;
    h += hb.length;
    bodies[i] = m.body;
    bOff[i] = b;
    bLen[i] = m.body.length;
    b += m.body.length;
  }
  return {
    name: 'keel_insert_messages',
    text: SQL.insertMessages,
    values: [
      pgIntArray(ids),
      pgIntArray(dests),
      pgIntArray(prios),
      pgIntArray(exps),
      pgIntArray(dcs),
      Buffer.concat(headerBufs, h - 1),
      Buffer.concat(bodies, b - 1),
      pgIntArray(hOff),
      pgIntArray(hLen),
      pgIntArray(bOff),
      pgIntArray(bLen),
    ],
  };
}

export class PgStore implements Store {
  readonly kind = 'postgres' as const;
  readonly cluster: string;
  private readonly pool: Pool;
  /** Page reads only: not pipelined (COPY), index scans only (see pageCopy). */
  private readonly readPool: Pool;
  /** Which host of the URL the pools use (host-selection.ts). */
  private readonly hosts: HostSelector;
  private readonly queryTimeoutMs: number;
  private readonly logger: PgStoreLogger;
  private readonly takeOverLockTimeoutMs: number;
  private readonly copyThresholdRows: number;
  private readonly pipeline: boolean;
  /** `BEGIN; SELECT epoch ... FOR SHARE` as one simple-protocol round trip. */
  private readonly beginFencedSql: string;
  private currentEpoch = 0;
  /** The message id block of the last takeover (migrations/006_id_blocks.sql). */
  private currentIdBlock = 0;
  /** The node named in this store's last takeover (the cluster row's master while it holds). */
  private node: string | null = null;
  /** takeOver calls running: a refused write may arrive before the takeover's own answer. */
  private takeOversRunning = 0;
  /** The last takeOver failed: it may have committed its epoch without this store learning it. */
  private takeOverInDoubt = false;
  private closing: Promise<void> | null = null;
  private opened = false;

  constructor(options: PgStoreOptions) {
    if (typeof options.connectionString !== 'string' || options.connectionString === '') {
      throw new InvalidArgumentError('PgStore: option connectionString is required');
    }
    if (typeof options.cluster !== 'string' || options.cluster === '') {
      throw new InvalidArgumentError('PgStore: option cluster is required');
    }
    const poolSize = options.poolSize ?? PG_STORE_DEFAULTS.poolSize;
    const idleMs = options.idleInTransactionTimeoutMs ?? PG_STORE_DEFAULTS.idleInTransactionTimeoutMs;
    const queryMs = options.queryTimeoutMs ?? PG_STORE_DEFAULTS.queryTimeoutMs;
    const statementMs = options.statementTimeoutMs ?? (queryMs > 1000 ? queryMs - 500 : 0);
    const keepAliveMs = options.keepAliveInitialDelayMs ?? PG_STORE_DEFAULTS.keepAliveInitialDelayMs;
    this.takeOverLockTimeoutMs = options.takeOverLockTimeoutMs ?? idleMs + TAKEOVER_LOCK_MARGIN_MS;
    this.copyThresholdRows = options.copyThresholdRows ?? PG_STORE_DEFAULTS.copyThresholdRows;
    this.pipeline = options.pipeline ?? PG_STORE_DEFAULTS.pipeline;
    requirePositiveInt('poolSize', poolSize);
    requirePositiveInt('idleInTransactionTimeoutMs', idleMs);
    requirePositiveInt('statementTimeoutMs', statementMs, true);
    requirePositiveInt('keepAliveInitialDelayMs', keepAliveMs, true);
    requirePositiveInt('takeOverLockTimeoutMs', this.takeOverLockTimeoutMs);
    requirePositiveInt('copyThresholdRows', this.copyThresholdRows);

    this.cluster = options.cluster;
    this.logger = options.logger ?? SILENT;
    this.beginFencedSql = `BEGIN; SELECT epoch FROM keel_clusters WHERE cluster = ${escapeLiteral(this.cluster)} FOR SHARE`;
    this.queryTimeoutMs = queryMs;
    // One host list for both pools (host-selection.ts): a multi-host URL lands them on its primary.
    this.hosts = new HostSelector(options.connectionString, {
      name: 'store',
      defaultTarget: 'read-write',
      logger: this.logger,
    });
    const session = {
      // Session settings travel in the startup packet: no extra round trip per connection.
      idle_in_transaction_session_timeout: idleMs,
      ...(statementMs > 0 ? { statement_timeout: statementMs } : {}),
      keepAlive: true,
      keepAliveInitialDelayMillis: keepAliveMs,
      application_name: options.applicationName ?? PG_STORE_DEFAULTS.applicationName,
      query_timeout: queryMs,
      connectionTimeoutMillis: options.connectTimeoutMs ?? PG_STORE_DEFAULTS.connectTimeoutMs,
      types: poolTypes,
    };
    this.pool = new Pool(this.hosts.poolOptions({ ...session, max: poolSize, pipeline: this.pipeline }));
    this.readPool = new Pool(
      this.hosts.poolOptions({
        ...session,
        max: PG_STORE_DEFAULTS.readPoolSize,
        // pg arms query_timeout for a COPY stream too and never disarms it (the stream does not call
        // back): pageCopy keeps its own timer instead.
        query_timeout: undefined,
        // Only index scans for pages (see pageCopy), and nothing written on these sessions.
        options: '-c enable_seqscan=off -c enable_bitmapscan=off -c default_transaction_read_only=on',
      }),
    );
    for (const pool of [this.pool, this.readPool]) {
      // An idle client's connection died (server restart, idle timeout, network): pg removes it
      // from the pool; without a listener the 'error' event would kill the process.
      pool.on('error', (err) => {
        // The message and code only: pg hangs the whole client (its config, sockets) on the error.
        this.logger.warn(
          { err: err.message, code: (err as { code?: string }).code, cluster: this.cluster },
          'idle Postgres connection failed',
        );
      });
      // And a listener for the whole life of each client: a session terminated (pg_terminate_backend)
      // can emit 'error' while the pool listens no more and no guard does yet or any longer — after
      // pool.query's once-listener fired, or on a client being handed out — which killed the process
      // (seen under repeated terminations, issue #17.3). The failing queries reject anyway.
      pool.on('connect', (client) => {
        client.on('error', ignoreClientError);
      });
    }
    this.logger.debug(
      {
        cluster: this.cluster,
        poolSize,
        idleInTransactionTimeoutMs: idleMs,
        statementTimeoutMs: statementMs,
      },
      'PgStore created',
    );
  }

  get epoch(): number {
    return this.currentEpoch;
  }

  get idBlock(): number {
    return this.currentIdBlock;
  }

  /** The host list and the host the store's pools use now (admin API, `keel status`). */
  hostSelection(): HostSelectionStatus {
    return this.hosts.status();
  }

  async open(): Promise<void> {
    if (this.opened) return;
    try {
      await this.pool.query('SELECT 1 FROM keel_clusters LIMIT 0');
    } catch (err) {
      if (sqlState(err) === '42P01') {
        throw new StoreError('the Keel schema is missing: run the migrations first', 'STORE_ERROR', {
          cause: err,
        });
      }
      throw toStoreError(err, 'open');
    }
    this.opened = true;
  }

  close(): Promise<void> {
    if (this.closing === null)
      this.closing = Promise.all([this.pool.end(), this.readPool.end()]).then(() => {});
    return this.closing;
  }

  // ---- epoch --------------------------------------------------------------------------------------

  async readEpoch(): Promise<number> {
    const r = await this.query<{ epoch: number }>(
      'readEpoch',
      'SELECT epoch FROM keel_clusters WHERE cluster = $1',
      [this.cluster],
    );
    return r[0]?.epoch ?? 0;
  }

  async takeOver(node: string, reason: string): Promise<number> {
    this.node = node;
    this.takeOversRunning += 1;
    try {
      const epoch = await this.bumpEpoch(node, reason);
      this.takeOverInDoubt = false;
      return epoch;
    } catch (err) {
      this.takeOverInDoubt = true;
      throw err;
    } finally {
      this.takeOversRunning -= 1;
    }
  }

  private async bumpEpoch(node: string, reason: string): Promise<number> {
    // Wait for an old master's in-flight (or frozen) commit, which holds the epoch row FOR SHARE,
    // at most until its session is ended by idle_in_transaction_session_timeout, plus a margin.
    // The statements go out pipelined: one round trip, part of every takeover's pause.
    const waitMs = String(this.takeOverLockTimeoutMs);
    const settled = await this.pipelinedTransaction('takeOver', [
      'BEGIN',
      {
        text: "SELECT set_config('lock_timeout', $1, true), set_config('statement_timeout', $2, true)",
        values: [waitMs, String(this.takeOverLockTimeoutMs + TAKEOVER_LOCK_MARGIN_MS)],
      },
      {
        text: 'INSERT INTO keel_clusters (cluster) VALUES ($1) ON CONFLICT DO NOTHING',
        values: [this.cluster],
      },
      {
        text: `WITH bumped AS (
           UPDATE keel_clusters SET epoch = epoch + 1, master = $2, updated_at = now() WHERE cluster = $1
           RETURNING epoch)
         INSERT INTO keel_takeovers (cluster, node, epoch, reason, id_block)
           SELECT $1, $2, epoch, $3, nextval('keel_id_blocks') FROM bumped
         RETURNING epoch, id_block`,
        values: [this.cluster, node, reason],
      },
      'COMMIT',
    ]);
    const failed = firstRejection(settled);
    if (failed !== undefined) throw toStoreError(failed.reason, 'takeOver');
    const row = (settled[3] as PromiseFulfilledResult<QueryResult<{ epoch: number; id_block: number }>>).value
      .rows[0]!;
    const epoch = row.epoch;
    this.currentEpoch = epoch;
    this.currentIdBlock = row.id_block;
    this.logger.info(
      { cluster: this.cluster, node, epoch, idBlock: this.currentIdBlock, reason },
      'took over the cluster epoch',
    );
    return epoch;
  }

  async takeovers(limit: number): Promise<TakeoverRecord[]> {
    return this.query<TakeoverRecord>(
      'takeovers',
      'SELECT node, epoch, reason, at FROM keel_takeovers WHERE cluster = $1 ORDER BY id DESC LIMIT $2',
      [this.cluster, limit],
    );
  }

  // ---- destinations and subscriptions -------------------------------------------------------------

  async ensureDestination(type: StoredDestinationType, name: string): Promise<number> {
    const params = [this.cluster, type, name];
    const find = 'SELECT id FROM keel_destinations WHERE cluster = $1 AND type = $2 AND name = $3';
    const found = await this.query<{ id: number }>('ensureDestination', find, params);
    if (found[0]) return found[0].id;
    // Race-safe: a concurrent insert makes ours do nothing, and the select after it (a new
    // statement, so a new snapshot) sees the winner's row.
    const inserted = await this.query<{ id: number }>(
      'ensureDestination',
      'INSERT INTO keel_destinations (cluster, type, name) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING RETURNING id',
      params,
    );
    if (inserted[0]) return inserted[0].id;
    const again = await this.query<{ id: number }>('ensureDestination', find, params);
    if (!again[0])
      throw new StoreError(`destination ${type}://${name} vanished while being created`, 'STORE_ERROR');
    return again[0].id;
  }

  async deleteDestination(id: number): Promise<void> {
    await this.fencedTransaction('deleteDestination', async (client) => {
      const owned = await client.query(
        'SELECT 1 FROM keel_destinations WHERE id = $1 AND cluster = $2 FOR UPDATE',
        [id, this.cluster],
      );
      if (owned.rowCount === 0) return;
      await client.query(
        `DELETE FROM keel_sub_entries WHERE sub_id IN (SELECT id FROM keel_durable_subs WHERE dest_id = $1)
           OR msg_id IN (SELECT id FROM keel_messages WHERE dest_id = $1)`,
        [id],
      );
      await client.query('DELETE FROM keel_durable_subs WHERE dest_id = $1', [id]);
      await client.query('DELETE FROM keel_messages WHERE dest_id = $1', [id]);
      await client.query('DELETE FROM keel_destinations WHERE id = $1', [id]);
    });
  }

  async loadDestinations(): Promise<DestinationRecord[]> {
    return this.query<DestinationRecord>(
      'loadDestinations',
      'SELECT id, type, name FROM keel_destinations WHERE cluster = $1 ORDER BY id',
      [this.cluster],
    );
  }

  async ensureDurableSubscription(
    sub: Omit<DurableSubscriptionRecord, 'id'>,
  ): Promise<DurableSubscriptionRecord> {
    const find = `SELECT id, client_id, name, dest_id, selector, no_local FROM keel_durable_subs
      WHERE cluster = $1 AND client_id = $2 AND name = $3`;
    const key = [this.cluster, sub.clientId, sub.name];
    const found = await this.query<SubRow>('ensureDurableSubscription', find, key);
    if (found[0]) return toSub(found[0]);
    const inserted = await this.query<SubRow>(
      'ensureDurableSubscription',
      `INSERT INTO keel_durable_subs (cluster, client_id, name, dest_id, selector, no_local)
       VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING
       RETURNING id, client_id, name, dest_id, selector, no_local`,
      [...key, sub.destId, sub.selector, sub.noLocal],
    );
    if (inserted[0]) return toSub(inserted[0]);
    const again = await this.query<SubRow>('ensureDurableSubscription', find, key);
    if (!again[0])
      throw new StoreError(`durable subscription ${sub.clientId}/${sub.name} vanished`, 'STORE_ERROR');
    return toSub(again[0]);
  }

  async deleteDurableSubscription(id: number): Promise<void> {
    await this.fencedTransaction('deleteDurableSubscription', async (client) => {
      const r = await client.query('DELETE FROM keel_durable_subs WHERE id = $1 AND cluster = $2', [
        id,
        this.cluster,
      ]);
      if (r.rowCount !== 0) await client.query('DELETE FROM keel_sub_entries WHERE sub_id = $1', [id]);
    });
  }

  async loadDurableSubscriptions(): Promise<DurableSubscriptionRecord[]> {
    const rows = await this.query<SubRow>(
      'loadDurableSubscriptions',
      'SELECT id, client_id, name, dest_id, selector, no_local FROM keel_durable_subs WHERE cluster = $1 ORDER BY id',
      [this.cluster],
    );
    return rows.map(toSub);
  }

  // ---- reads --------------------------------------------------------------------------------------

  async pageMessages(destId: number, cursor: PageCursor | null, limit: number): Promise<StoredMessage[]> {
    return cursor === null
      ? this.pageCopy('pageMessages', SQL.pageFirst, [destId, limit])
      : this.pageCopy('pageMessages', SQL.pageAfter, [destId, cursor.priority, cursor.id, limit]);
  }

  async pageMessagesWhere(
    destId: number,
    cursor: PageCursor | null,
    limit: number,
    where: string,
  ): Promise<StoredMessage[]> {
    return cursor === null
      ? this.pageCopy('pageMessagesWhere', SQL.pageFirstWhere, [destId, limit], where)
      : this.pageCopy(
          'pageMessagesWhere',
          SQL.pageAfterWhere,
          [destId, cursor.priority, cursor.id, limit],
          where,
        );
  }

  async pageSubscription(subId: number, cursor: PageCursor | null, limit: number): Promise<StoredMessage[]> {
    return cursor === null
      ? this.pageCopy('pageSubscription', SQL.subFirst, [subId, limit])
      : this.pageCopy('pageSubscription', SQL.subAfter, [subId, cursor.priority, cursor.id, limit]);
  }

  async countMessages(destId: number): Promise<number> {
    const r = await this.query<{ n: number }>(
      'countMessages',
      'SELECT count(*) AS n FROM keel_messages WHERE dest_id = $1',
      [destId],
    );
    return r[0]!.n;
  }

  async countSubscription(subId: number): Promise<number> {
    const r = await this.query<{ n: number }>(
      'countSubscription',
      'SELECT count(*) AS n FROM keel_sub_entries WHERE sub_id = $1',
      [subId],
    );
    return r[0]!.n;
  }

  async getMessage(id: number): Promise<StoredMessage | null> {
    const r = await this.query<MessageRow>(
      'getMessage',
      `SELECT ${MESSAGE_COLUMNS} FROM keel_messages WHERE id = $1`,
      [id],
    );
    return r[0] ? toMessage(r[0]) : null;
  }

  async producerSequence(producerId: string): Promise<number> {
    const r = await this.query<{ last_seq: number }>(
      'producerSequence',
      'SELECT last_seq FROM keel_producers WHERE cluster = $1 AND producer_id = $2',
      [this.cluster, producerId],
    );
    return r[0]?.last_seq ?? -1;
  }

  async forwardedSeen(origin: string, id: number): Promise<boolean> {
    const r = await this.query<{ seen: boolean }>(
      'forwardedSeen',
      SQL.forwardedSeen,
      [this.cluster, origin, id],
      'keel_forwarded_seen',
    );
    return r[0]?.seen === true;
  }

  async txCommitted(txId: string): Promise<boolean> {
    const r = await this.query(
      'txCommitted',
      'SELECT 1 FROM keel_tx_outcomes WHERE cluster = $1 AND tx_id = $2',
      [this.cluster, txId],
    );
    return r.length > 0;
  }

  async expiredMessages(now: number, limit: number): Promise<StoredMessage[]> {
    const rows = await this.query<MessageRow>(
      'expiredMessages',
      `SELECT m.id, m.dest_id, m.priority, m.expiration, m.delivery_count, m.headers, m.body
       FROM keel_messages m JOIN keel_destinations d ON d.id = m.dest_id
       WHERE m.expiration > 0 AND m.expiration <= $2 AND d.cluster = $1
       ORDER BY m.expiration, m.id LIMIT $3`,
      [this.cluster, now, limit],
    );
    return rows.map(toMessage);
  }

  async pruneProducers(olderThanMs: number): Promise<number> {
    try {
      const [r] = await Promise.all([
        this.pool.query(
          `DELETE FROM keel_producers
           WHERE cluster = $1 AND updated_at < now() - make_interval(secs => $2::double precision / 1000)`,
          [this.cluster, olderThanMs],
        ),
        this.pool.query(
          `DELETE FROM keel_forwarded
           WHERE cluster = $1 AND at < now() - make_interval(secs => $2::double precision / 1000)`,
          [this.cluster, olderThanMs],
        ),
      ]);
      return r.rowCount ?? 0;
    } catch (err) {
      throw toStoreError(err, 'pruneProducers');
    }
  }

  async cleanupTopicMessages(): Promise<number> {
    try {
      // The cluster's topics first, then their messages by destination. As one join, the planner
      // drove it from keel_messages whenever stale statistics called that table empty, and the job
      // read every queue message (measured: 3.8 s, and once past the 9.5 s statement timeout, with
      // no topic at all).
      const topics = await this.pool.query<{ id: number }>(
        "SELECT id FROM keel_destinations WHERE cluster = $1 AND type = 'topic'",
        [this.cluster],
      );
      if (topics.rows.length === 0) return 0;
      // By the delivery-order index (dest_id leads it), never a read of the whole table.
      const settled = await this.pipelinedTransaction('cleanupTopicMessages', [
        'BEGIN',
        COMMIT_PLANNER_SETTING,
        {
          text: `DELETE FROM keel_messages m WHERE m.dest_id = ANY($1::int[])
             AND NOT EXISTS (SELECT 1 FROM keel_sub_entries e WHERE e.msg_id = m.id)`,
          values: [topics.rows.map((t) => t.id)],
        },
        'COMMIT',
      ]);
      const failed = firstRejection(settled);
      if (failed !== undefined) throw failed.reason;
      return (settled[2] as PromiseFulfilledResult<QueryResult>).value.rowCount ?? 0;
    } catch (err) {
      throw toStoreError(err, 'cleanupTopicMessages');
    }
  }

  // ---- scheduled delivery (pg-schedules.ts) -------------------------------------------------------

  async dueSchedules(now: number, limit: number): Promise<ScheduleRecord[]> {
    const rows = await this.query<ScheduleRow>('dueSchedules', SCHEDULE_SQL.due, [this.cluster, now, limit]);
    return rows.map(toSchedule);
  }

  async nextScheduleDue(): Promise<number | null> {
    const rows = await this.query<{ next_due: string | number }>('nextScheduleDue', SCHEDULE_SQL.nextDue, [
      this.cluster,
    ]);
    return rows.length === 0 ? null : Number(rows[0]!.next_due);
  }

  async pageSchedules(
    cursor: ScheduleCursor | null,
    limit: number,
    range?: { from: number; to: number },
  ): Promise<ScheduleRecord[]> {
    const args = [this.cluster, ...pageArgs(cursor, limit, range)];
    return (await this.query<ScheduleRow>('pageSchedules', SCHEDULE_SQL.page, args)).map(toSchedule);
  }

  async getSchedule(jobId: string): Promise<ScheduleRecord | null> {
    const rows = await this.query<ScheduleRow>('getSchedule', SCHEDULE_SQL.get, [this.cluster, jobId]);
    return rows.length === 0 ? null : toSchedule(rows[0]!);
  }

  async countSchedules(): Promise<number> {
    const rows = await this.query<{ n: string | number }>('countSchedules', SCHEDULE_SQL.count, [
      this.cluster,
    ]);
    return Number(rows[0]?.n ?? 0);
  }

  // ---- the write path -----------------------------------------------------------------------------

  async commit(batch: StoreBatch): Promise<void> {
    if (this.pipeline) {
      await this.commitPipelined(batch);
    } else {
      await this.fencedTransaction('commit', async (client) => {
        await client.query(COMMIT_PLANNER_SETTING);
        let statements = this.batchStatements(batch);
        if (batch.inserts.length >= this.copyThresholdRows) {
          await this.copyInserts(client, batch.inserts);
          statements = statements.slice(1);
        }
        for (const st of statements) await client.query(st);
      });
    }
  }

  /**
   * BEGIN, the epoch check, every write and COMMIT written at once on a pipelined connection: one
   * round trip (plus the WAL flush) per commit, however many kinds of change the batch holds. The
   * epoch check raises an error on a mismatch, so the transaction is aborted before any write runs
   * and its COMMIT turns into a rollback.
   */
  private async commitPipelined(batch: StoreBatch): Promise<void> {
    // The epoch this write is made for, fixed now: waiting for a connection (Postgres restarting,
    // sessions terminated) it may be overtaken by this node's own next takeover.
    const writeEpoch = this.currentEpoch;
    const settled = await this.pipelinedTransaction('commit', [
      'BEGIN',
      { name: 'keel_fence', text: SQL.fenceCheck, values: [this.cluster, writeEpoch] },
      COMMIT_PLANNER_SETTING,
      ...this.batchStatements(batch),
      'COMMIT',
    ]);
    const failed = firstRejection(settled);
    if (failed === undefined) return;
    if (settled[1]!.status === 'rejected' && sqlState(settled[1]!.reason) === '22012') {
      throw await this.fenceFailure(writeEpoch);
    }
    throw toStoreError(failed.reason, 'commit');
  }

  /**
   * Why a write made for `writeEpoch` failed the epoch check: another node's takeover
   * (FencedError) or this node's own newer one (a retryable refusal, see fenceRefusal). Reads the
   * cluster row to tell them apart and to name the epoch and the node that holds it.
   */
  private async fenceFailure(writeEpoch: number, client?: PoolClient): Promise<KeelError> {
    // Whether a takeover of this node's own runs, taken before and after the read: one that ends
    // while the row is read has bumped the epoch past what the read may show.
    const takingOverAtRefusal = this.takeOversRunning > 0 || this.takeOverInDoubt;
    const sql = 'SELECT epoch, master FROM keel_clusters WHERE cluster = $1';
    const clusterRow = await (client ?? this.pool)
      .query<{ epoch: number; master: string | null }>(sql, [this.cluster])
      .then(
        (r) => r.rows[0] ?? { epoch: 0, master: null },
        () => null,
      );
    return fenceRefusal({
      cluster: this.cluster,
      writeEpoch,
      currentEpoch: this.currentEpoch,
      node: this.node,
      takingOver: takingOverAtRefusal || this.takeOversRunning > 0 || this.takeOverInDoubt,
      clusterRow,
    });
  }

  /**
   * A transaction's statements (BEGIN … COMMIT) written at once on one pooled client: one round
   * trip with pipelining. Returns how each settled; after a failure the client is rolled back (the
   * COMMIT normally already ended the aborted transaction; this covers a failed BEGIN or COMMIT)
   * before it goes back to the pool.
   */
  private async pipelinedTransaction(
    context: string,
    statements: Array<string | QueryConfig>,
  ): Promise<PromiseSettledResult<QueryResult>[]> {
    const { client, guard } = await this.checkOut(this.pool, context);
    const settled = await Promise.allSettled(
      corked(client, () =>
        statements.map((st) => (typeof st === 'string' ? client.query(st) : client.query(st))),
      ),
    );
    if (firstRejection(settled) === undefined) {
      client.release(guard.done());
      return settled;
    }
    let broken: Error | undefined;
    try {
      await client.query('ROLLBACK');
    } catch (err) {
      broken = err instanceof Error ? err : new Error(String(err));
    }
    client.release(guard.done() ?? broken);
    return settled;
  }

  /** One set-based statement per kind of change, in StoreBatch order, skipping empty ones. */
  private batchStatements(b: StoreBatch): QueryConfig[] {
    const out: QueryConfig[] = [];
    if (b.inserts.length > 0) out.push(insertStatement(b.inserts));
    if (b.subEntries.length > 0) {
      out.push({
        name: 'keel_insert_sub_entries',
        text: SQL.insertSubEntries,
        values: [
          b.subEntries.map((e) => e.subId),
          b.subEntries.map((e) => e.msgId),
          b.subEntries.map((e) => e.priority),
        ],
      });
    }
    if (b.moves.length > 0) {
      const moves = lastByKey(b.moves, (m) => m.id);
      out.push({
        name: 'keel_move_messages',
        text: SQL.moveMessages,
        values: [
          moves.map((m) => m.id),
          moves.map((m) => m.destId),
          moves.map((m) => m.priority),
          moves.map((m) => JSON.stringify(m.headers)),
          moves.map((m) => m.deliveryCount),
          moves.map((m) => m.expiration ?? null),
        ],
      });
    }
    if (b.deliveryCounts.length > 0) {
      const dcs = lastByKey(b.deliveryCounts, (d) => d.id);
      out.push({
        name: 'keel_delivery_counts',
        text: SQL.deliveryCounts,
        values: [dcs.map((d) => d.id), dcs.map((d) => d.deliveryCount)],
      });
    }
    if (b.subDeliveryCounts.length > 0) {
      const dcs = lastByKey(b.subDeliveryCounts, (d) => `${d.subId}:${d.msgId}`);
      out.push({
        name: 'keel_sub_delivery_counts',
        text: SQL.subDeliveryCounts,
        values: [dcs.map((d) => d.subId), dcs.map((d) => d.msgId), dcs.map((d) => d.deliveryCount)],
      });
    }
    if (b.deletes.length > 0) {
      out.push({ name: 'keel_delete_messages', text: SQL.deleteMessages, values: [pgIntArray(b.deletes)] });
    }
    if (b.subEntryDeletes.length > 0) {
      out.push({
        name: 'keel_delete_sub_entries',
        text: SQL.deleteSubEntries,
        values: [b.subEntryDeletes.map((d) => d.subId), b.subEntryDeletes.map((d) => d.msgId)],
      });
    }
    if (b.producers.length > 0) {
      // One row per producer (an upsert may not touch a row twice): keep the highest sequence.
      const max = new Map<string, number>();
      for (const p of b.producers) max.set(p.producerId, Math.max(max.get(p.producerId) ?? -1, p.seq));
      out.push({
        name: 'keel_upsert_producers',
        text: SQL.upsertProducers,
        values: [this.cluster, [...max.keys()], [...max.values()]],
      });
    }
    if (b.forwards.length > 0) {
      const r = forwardRanges(b.forwards);
      out.push({
        name: 'keel_insert_forwards_ranges',
        text: SQL.insertForwards,
        values: [this.cluster, r.origins, pgIntArray(r.lo), pgIntArray(r.hi)],
      });
    }
    if (b.txOutcomes.length > 0) {
      out.push({
        name: 'keel_insert_tx_outcomes',
        text: SQL.insertTxOutcomes,
        values: [this.cluster, [...new Set(b.txOutcomes)]],
      });
    }
    out.push(...scheduleStatements(this.cluster, b.schedules));
    return out;
  }

  private copyInserts(client: PoolClient, messages: readonly StoredMessage[]): Promise<void> {
    const payload = encodeMessagesCopy(messages);
    return new Promise<void>((resolve, reject) => {
      const stream = client.query(copyFrom(COPY_MESSAGES_SQL));
      stream.on('error', reject);
      stream.on('finish', resolve);
      stream.end(payload);
    });
  }

  // ---- plumbing -----------------------------------------------------------------------------------

  private async query<R>(context: string, text: string, values: unknown[], name?: string): Promise<R[]> {
    try {
      const r = await this.pool.query(name === undefined ? { text, values } : { name, text, values });
      return r.rows as R[];
    } catch (err) {
      throw toStoreError(err, context);
    }
  }

  /**
   * A page of a queue in delivery order, read with binary COPY: the bodies arrive as raw bytes
   * (pg's text rows carry them as hex, twice the bytes, decoded row by row: with the row parsing
   * and the strings to collect, about a fifth of a broker's CPU in a backlog's drain).
   *
   * Only an index scan in index order is right for a page (the next `limit` rows after a cursor),
   * but right after a backlog is written the table's statistics still say it is nearly empty
   * (autovacuum analyzes it a minute later), and the planner then reads every remaining row through
   * a bitmap scan and sorts them: measured here at 370–465 ms per 1,000-row page of a
   * 100,000-message backlog instead of a few ms, for the first seconds of a drain. So the read
   * pool's sessions run with bitmap and sequential scans off. COPY takes no parameters: the
   * values, integers only, are written into the statement.
   */
  private async pageCopy(
    context: string,
    text: string,
    values: number[],
    where = 'true',
  ): Promise<StoredMessage[]> {
    // The condition goes in after the integers, so a `$1` in one of its string literals stays text.
    const query = inlineIntegers(text, values).replaceAll(WHERE, () => where);
    const sql = `COPY (${query}) TO STDOUT (FORMAT binary)`;
    const { client, guard } = await this.checkOut(this.readPool, context);
    let broken: Error | undefined;
    let timer: NodeJS.Timeout | undefined;
    try {
      const stream = client.query(copyTo(sql));
      const payload = await new Promise<Buffer>((resolve, reject) => {
        const chunks: Buffer[] = [];
        stream.on('data', (chunk: Buffer) => chunks.push(chunk));
        stream.on('end', () => resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks)));
        stream.on('error', reject);
        // pg's query_timeout does not cover a COPY: a database that stopped answering fails the
        // read (and the connection is dropped) instead of stalling the queue for ever.
        timer = setTimeout(
          () => reject(new Error(`Query read timeout after ${this.queryTimeoutMs} ms`)),
          this.queryTimeoutMs,
        );
        timer.unref();
      });
      return decodeMessagesCopy(payload);
    } catch (err) {
      broken = err instanceof Error ? err : new Error(String(err));
      throw toStoreError(err, context);
    } finally {
      clearTimeout(timer);
      client.release(guard.done() ?? broken);
    }
  }

  /** A client of `pool`, watched while checked out (guardCheckedOut); a failed connect is a StoreError. */
  private async checkOut(
    pool: Pool,
    context: string,
  ): Promise<{ client: PoolClient; guard: ReturnType<typeof guardCheckedOut> }> {
    try {
      const client = await pool.connect();
      return { client, guard: guardCheckedOut(client) };
    } catch (err) {
      throw toStoreError(err, context);
    }
  }

  /** BEGIN … COMMIT on one pooled client; any error rolls back and is mapped to a KeelError. */
  private async transaction<T>(
    context: string,
    body: (client: PoolClient, begun: QueryResult | QueryResult[]) => Promise<T>,
    begin = 'BEGIN',
  ): Promise<T> {
    const { client, guard } = await this.checkOut(this.pool, context);
    let broken: Error | undefined;
    try {
      const begun = (await client.query(begin)) as QueryResult | QueryResult[];
      const result = await body(client, begun);
      await client.query('COMMIT');
      return result;
    } catch (err) {
      try {
        await client.query('ROLLBACK');
      } catch (rollbackErr) {
        // The connection is unusable (terminated, timed out): drop it instead of pooling it.
        broken = rollbackErr instanceof Error ? rollbackErr : new Error(String(rollbackErr));
      }
      throw toStoreError(err, context);
    } finally {
      client.release(guard.done() ?? broken);
    }
  }

  /**
   * A transaction that first checks the cluster epoch, in the same round trip as BEGIN. FOR SHARE:
   * a concurrent takeover's UPDATE waits for us to finish; if the takeover committed first, our
   * read waits for it and sees its epoch (READ COMMITTED re-reads the updated row), and we abort.
   * A cluster without a row is at epoch 0.
   */
  private fencedTransaction(context: string, body: (client: PoolClient) => Promise<void>): Promise<void> {
    return this.transaction(
      context,
      async (client, begun) => {
        const writeEpoch = this.currentEpoch;
        const results = Array.isArray(begun) ? begun : [begun];
        const row = results[results.length - 1]?.rows[0] as { epoch: number } | undefined;
        const current = row?.epoch ?? 0;
        if (current !== writeEpoch) throw await this.fenceFailure(writeEpoch, client);
        await body(client);
      },
      this.beginFencedSql,
    );
  }
}
