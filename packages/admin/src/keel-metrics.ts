import type { Broker, ConnectionProtocol, DestinationCount, Logger } from '@keel/core';
import { emptyCount, silentLogger } from '@keel/core';
import { InvalidArgumentError } from '@keel/protocol';
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import { type AdminContext, NODE_ROLES, type QueueView, type StoreHealth } from './admin-context';
import { UsageMetrics } from './usage-metrics';

export const DEFAULT_STORE_HEALTH_CACHE_MS = 10_000;
/** Operations per group-commit round. */
export const COMMIT_BATCH_BUCKETS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000];
/** Seconds per group-commit round. */
export const COMMIT_DURATION_BUCKETS = [
  0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5,
];

/** Connection protocols whose gauge is exported even at 0 (a series that vanishes at 0 breaks alerts). */
export const CONNECTION_PROTOCOLS: readonly ConnectionProtocol[] = ['native', 'stomp', 'network'];

export interface KeelMetricsOptions {
  /** How long a storeHealth() answer is reused between scrapes (its SQL is not free). Default 10 s. */
  storeHealthCacheMs?: number;
  /** Also export prom-client's process and Node.js metrics (process_*, nodejs_*). Default true. */
  processMetrics?: boolean;
  /** Labels added to every metric (e.g. `{ node: 'b1' }`). */
  defaultLabels?: Record<string, string>;
  logger?: Logger;
}

export interface CommitStats {
  operations: number;
  inserts: number;
  durationMs: number;
}

/**
 * Keel's Prometheus metrics on a Registry of their own (never prom-client's global one), so
 * several nodes can live in one process (tests, drills).
 *
 * The server feeds the event metrics: `attachBroker(broker)` on every broker it starts (messages in
 * and out per destination), `observeCommit` from the broker's `onCommit` option, `observeTakeover`
 * when this node takes over. Everything else is read from the AdminContext at scrape time:
 * `scrape()` refreshes those gauges and returns the exposition text.
 */
/** keel_scheduled_firing_lag_seconds buckets (s): 1, 2, 5, 10, 15, 20, 25, 30, 40, 50, 75, 100 ms, then coarse. */
export const SCHEDULED_LAG_BUCKETS = [
  0.001, 0.002, 0.005, 0.01, 0.015, 0.02, 0.025, 0.03, 0.04, 0.05, 0.075, 0.1, 0.25, 0.5, 1, 5, 30,
];

export class KeelMetrics {
  readonly registry = new Registry();
  private readonly logger: Logger;
  private readonly storeHealthCacheMs: number;
  private context: AdminContext | null = null;
  /** Brokers whose message counts the counters show, and the final counts of detached ones. */
  private readonly attached = new Set<Broker>();
  private readonly retiredCounts = new Map<string, DestinationCount>();
  private healthCache: { at: number; value: Promise<StoreHealth> } | null = null;

  readonly messagesIn: Counter<'destination'>;
  readonly messagesOut: Counter<'destination'>;
  readonly messagesRedelivered: Counter<'destination'>;
  readonly messagesDeadLettered: Counter<'destination'>;
  readonly messagesExpired: Counter<'destination'>;
  /** Each per-destination counter with the DestinationCount field it shows. */
  private readonly destinationCounters: Array<[Counter<'destination'>, keyof DestinationCount]>;
  readonly commitBatchSize: Histogram;
  readonly commitInserts: Counter;
  readonly commitDuration: Histogram;
  readonly takeovers: Counter;
  private readonly role: Gauge<'role'>;
  private readonly epoch: Gauge;
  private readonly connections: Gauge<'protocol'>;
  private readonly queueDepth: Gauge<'queue'>;
  private readonly queueConsumers: Gauge<'queue'>;
  private readonly queueInflight: Gauge<'queue'>;
  private readonly queueOldestAge: Gauge<'queue'>;
  private readonly storeDeadRows: Gauge<'table'>;
  private readonly storeTableBytes: Gauge<'table'>;
  private readonly storeOldestTx: Gauge;
  private readonly storeHealthUp: Gauge;
  /** Scheduled delivery (AMQ_SCHEDULED_*): jobs pending, firings, firing lag (due → committed). */
  private readonly scheduledPending: Gauge;
  /** memoryUsage, storeUsage, flow control and slow consumers (usage-metrics.ts, issue #23.3). */
  private readonly usageMetrics: UsageMetrics;
  readonly scheduledFired: Counter;
  readonly scheduledLag: Histogram;

  constructor(options: KeelMetricsOptions = {}) {
    const cacheMs = options.storeHealthCacheMs ?? DEFAULT_STORE_HEALTH_CACHE_MS;
    if (!Number.isFinite(cacheMs) || cacheMs < 0) {
      throw new InvalidArgumentError(`storeHealthCacheMs must be a number >= 0 (got ${cacheMs})`);
    }
    this.storeHealthCacheMs = cacheMs;
    this.logger = options.logger ?? silentLogger;
    if (options.defaultLabels) this.registry.setDefaultLabels(options.defaultLabels);
    if (options.processMetrics ?? true) collectDefaultMetrics({ register: this.registry });
    const registers = [this.registry];
    this.usageMetrics = new UsageMetrics(registers);

    const perDestination = (name: string, help: string): Counter<'destination'> =>
      new Counter({ name, help, labelNames: ['destination'], registers });
    this.messagesIn = perDestination(
      'keel_messages_in_total',
      'Messages accepted, per destination (temporary destinations counted as temp-queue://* and temp-topic://*).',
    );
    this.messagesOut = perDestination(
      'keel_messages_out_total',
      'Messages delivered to consumers, per destination.',
    );
    this.messagesRedelivered = perDestination(
      'keel_messages_redelivered_total',
      'Messages put back for redelivery (negative acknowledgement, consumer or connection closed with the message unacknowledged, transaction rolled back), per destination.',
    );
    this.messagesDeadLettered = perDestination(
      'keel_messages_dead_lettered_total',
      'Messages past maximumRedeliveries, moved to the dead-letter queue (or discarded: non-persistent, or already on a dead-letter queue), per original destination.',
    );
    this.messagesExpired = perDestination(
      'keel_messages_expired_total',
      'Messages that expired, moved to the dead-letter queue (processExpired) or discarded, per destination.',
    );
    this.destinationCounters = [
      [this.messagesIn, 'in'],
      [this.messagesOut, 'out'],
      [this.messagesRedelivered, 'redelivered'],
      [this.messagesDeadLettered, 'deadLettered'],
      [this.messagesExpired, 'expired'],
    ];
    this.commitBatchSize = new Histogram({
      name: 'keel_store_commit_batch_operations',
      help: 'Store operations written per group-commit round.',
      buckets: COMMIT_BATCH_BUCKETS,
      registers,
    });
    this.commitInserts = new Counter({
      name: 'keel_store_commit_inserts_total',
      help: 'Messages inserted by group-commit rounds.',
      registers,
    });
    this.commitDuration = new Histogram({
      name: 'keel_store_commit_duration_seconds',
      help: 'Duration of a group-commit round (one store transaction).',
      buckets: COMMIT_DURATION_BUCKETS,
      registers,
    });
    this.scheduledPending = new Gauge({
      name: 'keel_scheduled_jobs_pending',
      help: 'Scheduled-delivery jobs (AMQ_SCHEDULED_*) waiting in the store (the master counts them).',
      registers,
    });
    this.scheduledFired = new Counter({
      name: 'keel_scheduled_fired_total',
      help: 'Scheduled-delivery firings (each one a message sent to its destination).',
      registers,
    });
    this.scheduledLag = new Histogram({
      name: 'keel_scheduled_firing_lag_seconds',
      help: 'Time from a firing being due to its message and the job advance being committed.',
      // Fine below 100 ms so the p99 ≤ 50 ms target of issue #22.4 reads off the buckets.
      buckets: SCHEDULED_LAG_BUCKETS,
      registers,
    });
    this.takeovers = new Counter({
      name: 'keel_takeovers_total',
      help: 'Times this node took over as master.',
      registers,
    });
    this.role = new Gauge({
      name: 'keel_role',
      help: 'The node role: 1 for the current role, 0 for the others.',
      labelNames: ['role'],
      registers,
    });
    this.epoch = new Gauge({
      name: 'keel_epoch',
      help: 'Cluster epoch this node last saw (its own while master).',
      registers,
    });
    this.connections = new Gauge({
      name: 'keel_connections',
      help: 'Open client connections, per protocol.',
      labelNames: ['protocol'],
      registers,
    });
    this.queueDepth = new Gauge({
      name: 'keel_queue_depth',
      help: 'Messages pending on a queue.',
      labelNames: ['queue'],
      registers,
    });
    this.queueConsumers = new Gauge({
      name: 'keel_queue_consumers',
      help: 'Consumers of a queue (master only).',
      labelNames: ['queue'],
      registers,
    });
    this.queueInflight = new Gauge({
      name: 'keel_queue_inflight',
      help: 'Messages delivered and not yet acknowledged (master only).',
      labelNames: ['queue'],
      registers,
    });
    this.queueOldestAge = new Gauge({
      name: 'keel_queue_oldest_message_age_seconds',
      help: 'Age of the oldest pending message of a queue (master only).',
      labelNames: ['queue'],
      registers,
    });
    this.storeDeadRows = new Gauge({
      name: 'keel_store_dead_rows',
      help: 'Dead rows (n_dead_tup) of a message table, as Postgres sees it.',
      labelNames: ['table'],
      registers,
    });
    this.storeTableBytes = new Gauge({
      name: 'keel_store_table_bytes',
      help: 'Size of a message table with its indexes and TOAST (pg_total_relation_size).',
      labelNames: ['table'],
      registers,
    });
    this.storeOldestTx = new Gauge({
      name: 'keel_store_oldest_transaction_age_seconds',
      help: 'Age of the oldest open transaction in the store database (it holds VACUUM back).',
      registers,
    });
    this.storeHealthUp = new Gauge({
      name: 'keel_store_health_up',
      help: '1 when the last store health query succeeded, else 0.',
      registers,
    });
  }

  /** The context read at scrape time (buildAdminServer binds its own). */
  bindContext(ctx: AdminContext): void {
    this.context = ctx;
  }

  get boundContext(): AdminContext | null {
    return this.context;
  }

  /**
   * Show a broker's messages in and out per destination (its `counters`, read at scrape time).
   * Detaching keeps its final counts, so the totals never go back when a new broker takes over.
   * Idempotent.
   */
  attachBroker(broker: Broker): () => void {
    if (this.attached.has(broker)) return () => {};
    this.attached.add(broker);
    return () => {
      if (!this.attached.delete(broker)) return;
      addCounts(this.retiredCounts, broker.counters.entries());
    };
  }

  /** Set the message counters to the retired counts plus the attached brokers'. */
  private syncMessageCounts(): void {
    const totals = new Map<string, DestinationCount>();
    addCounts(totals, this.retiredCounts.entries());
    for (const broker of this.attached) addCounts(totals, broker.counters.entries());
    for (const [counter, key] of this.destinationCounters) {
      counter.reset();
      // Every known destination gets each series, at 0 until its first event.
      for (const [destination, c] of totals) counter.inc({ destination }, c[key]);
    }
  }

  /** One group-commit round (pass as the broker's `onCommit`). */
  observeCommit(stats: CommitStats): void {
    this.commitBatchSize.observe(stats.operations);
    this.commitInserts.inc(stats.inserts);
    this.commitDuration.observe(stats.durationMs / 1000);
  }

  /** One scheduled firing (pass as the broker's `scheduler.onFired`). */
  observeScheduledFiring(lagMs: number): void {
    this.scheduledFired.inc();
    this.scheduledLag.observe(lagMs / 1000);
  }

  observeTakeover(): void {
    this.takeovers.inc();
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /** Refresh the gauges read from the context, then render the registry (Prometheus text format). */
  async scrape(): Promise<string> {
    this.syncMessageCounts();
    await this.refresh();
    return this.registry.metrics();
  }

  private async refresh(): Promise<void> {
    const ctx = this.context;
    if (!ctx) return;
    const node = ctx.node();
    for (const r of NODE_ROLES) this.role.set({ role: r }, r === node.role ? 1 : 0);
    this.epoch.set(node.epoch);

    const broker = ctx.broker();
    this.usageMetrics.refresh(broker);
    this.connections.reset();
    for (const protocol of CONNECTION_PROTOCOLS) this.connections.set({ protocol }, 0);
    if (broker) {
      const byProtocol = new Map<string, number>();
      const own = `${broker.nodeName}-internal`; // the broker's own connection for admin sends
      for (const c of broker.listConnections()) {
        if (c.protocol === 'internal' && c.clientId === own) continue;
        byProtocol.set(c.protocol, (byProtocol.get(c.protocol) ?? 0) + 1);
      }
      for (const [protocol, n] of byProtocol) this.connections.set({ protocol }, n);
      this.scheduledPending.set(broker.scheduler.stats().pending);
    }

    let queues: QueueView[] = [];
    try {
      queues = broker ? broker.listQueues() : await ctx.readOnly().listQueues();
    } catch (err) {
      this.logger.warn({ err: (err as Error).message }, 'metrics: listing queues failed');
    }
    for (const g of [this.queueDepth, this.queueConsumers, this.queueInflight, this.queueOldestAge])
      g.reset();
    for (const q of queues) {
      if (q.temporary) continue;
      const labels = { queue: q.name };
      this.queueDepth.set(labels, q.depth);
      if (q.consumers !== null) this.queueConsumers.set(labels, q.consumers);
      if (q.inflight !== null) this.queueInflight.set(labels, q.inflight);
      if (q.oldestMessageAgeMs !== null) this.queueOldestAge.set(labels, q.oldestMessageAgeMs / 1000);
    }

    await this.refreshStoreHealth(ctx);
  }

  private async refreshStoreHealth(ctx: AdminContext): Promise<void> {
    const now = Date.now();
    if (!this.healthCache || now - this.healthCache.at >= this.storeHealthCacheMs) {
      const value = Promise.resolve().then(() => ctx.storeHealth());
      value.catch(() => {});
      this.healthCache = { at: now, value };
    }
    this.storeDeadRows.reset();
    this.storeTableBytes.reset();
    this.storeOldestTx.reset();
    try {
      const h = await this.healthCache.value;
      for (const [table, n] of Object.entries(h.deadRows)) this.storeDeadRows.set({ table }, n);
      for (const [table, n] of Object.entries(h.tableBytes)) this.storeTableBytes.set({ table }, n);
      if (h.oldestTransactionAgeSeconds !== null) this.storeOldestTx.set(h.oldestTransactionAgeSeconds);
      this.storeHealthUp.set(1);
    } catch (err) {
      this.storeHealthUp.set(0);
      this.healthCache = null; // ask again on the next scrape
      this.logger.warn({ err: (err as Error).message }, 'metrics: store health query failed');
    }
  }
}

/** Temporary destinations have one-off names: count them together to bound the label set. */
function addCounts(into: Map<string, DestinationCount>, from: Iterable<[string, DestinationCount]>): void {
  for (const [destination, c] of from) {
    let t = into.get(destination);
    if (t === undefined) {
      t = emptyCount();
      into.set(destination, t);
    }
    t.in += c.in;
    t.out += c.out;
    t.redelivered += c.redelivered;
    t.deadLettered += c.deadLettered;
    t.expired += c.expired;
  }
}
