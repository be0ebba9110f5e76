import type { ServerResponse } from 'node:http';
import type { Broker, ConnectionSummary, ConsumerSummary } from '@keel/core';
import type {
  AdminContext,
  BridgeView,
  DurableView,
  NodeInfo,
  QueueView,
  StoreHealth,
  TopicView,
} from './admin-context';
import { clientConnections } from './admin-server';

/** One tick of the console's live stream a second: the issue asks for at most a second behind. */
export const DEFAULT_CONSOLE_STREAM_INTERVAL_MS = 1000;
/** Store health is SQL on pg_stat_* views: refreshed every this many ticks, not every tick. */
export const DEFAULT_STORE_HEALTH_EVERY_TICKS = 5;
/** Takeover records the stream carries (newest first). */
export const CONSOLE_TAKEOVER_LIMIT = 50;

/** A queue as the stream sends it: the oldest message's time, not its age (stable between ticks). */
export type StreamQueue = Omit<QueueView, 'oldestMessageAgeMs'> & { oldestMessageAt: number | null };

export interface StreamClusterNode {
  name: string;
  role: string;
  lastSeen: string | null;
  adminUrl: string | null;
  startedAt: string | null;
}

export interface ConsoleSnapshot {
  /** ms since the epoch when it was taken. */
  at: number;
  node: Record<string, unknown>;
  cluster: {
    cluster: string;
    master: string | null;
    epoch: number;
    nodes: StreamClusterNode[];
    takeovers: { node: string; epoch: number; reason: string; at: string }[];
  };
  queues: StreamQueue[];
  topics: TopicView[];
  subscriptions: DurableView[];
  connections: ConnectionSummary[];
  consumers: ConsumerSummary[];
  bridges: BridgeView[];
  store: (StoreHealth & { liveRows?: Record<string, number> }) | null;
  /** Sections that could not be read this tick (their previous value is kept), by section. */
  errors: Record<string, string>;
}

type KeyedSection = 'queues' | 'topics';
type WholeSection = Exclude<keyof ConsoleSnapshot, KeyedSection | 'at'>;
const KEYED: readonly KeyedSection[] = ['queues', 'topics'];
const WHOLE: readonly WholeSection[] = [
  'node',
  'cluster',
  'subscriptions',
  'connections',
  'consumers',
  'bridges',
  'store',
  'errors',
];

/** What changed between two snapshots: keyed lists by name, other sections whole. */
export interface ConsoleDelta {
  at: number;
  set: Partial<Omit<ConsoleSnapshot, KeyedSection | 'at'>>;
  lists: Partial<Record<KeyedSection, { upsert: unknown[]; remove: string[] }>>;
}

/** The delta that turns `prev` into `next` (names are unique within queues and within topics). */
export function diffSnapshots(prev: ConsoleSnapshot, next: ConsoleSnapshot): ConsoleDelta {
  const delta: ConsoleDelta = { at: next.at, set: {}, lists: {} };
  for (const key of WHOLE) {
    if (JSON.stringify(prev[key]) !== JSON.stringify(next[key]))
      (delta.set as Record<string, unknown>)[key] = next[key];
  }
  for (const key of KEYED) {
    const before = new Map<string, string>();
    for (const item of prev[key]) before.set(item.name, JSON.stringify(item));
    const upsert: unknown[] = [];
    for (const item of next[key]) {
      if (before.get(item.name) !== JSON.stringify(item)) upsert.push(item);
      before.delete(item.name);
    }
    const remove = [...before.keys()];
    if (upsert.length > 0 || remove.length > 0) delta.lists[key] = { upsert, remove };
  }
  return delta;
}

/** A delta that carries nothing but its time. */
export function isEmptyDelta(d: ConsoleDelta): boolean {
  return Object.keys(d.set).length === 0 && Object.keys(d.lists).length === 0;
}

/** A server-sent event (HTML Living Standard §9.2.6): `event:` line, `data:` line, blank line. */
export function sseEvent(event: string, data: unknown): string {
  // JSON.stringify leaves no raw newline in its output, so one data line carries it all.
  return `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
}

interface Subscriber {
  res: ServerResponse;
  /** Send a full snapshot next (new, or fell behind: a write was refused). */
  needsFull: boolean;
}

export interface ConsoleStreamOptions {
  intervalMs?: number;
  storeHealthEveryTicks?: number;
}

/**
 * The console's live state: while anyone listens, one snapshot of the node a tick (broker or store
 * reads, the same sources as the REST routes), sent to each listener as a full `snapshot` first and
 * as `delta` events after. One stream, so the console polls no route.
 */
export class ConsoleStream {
  private readonly subscribers = new Set<Subscriber>();
  private readonly intervalMs: number;
  private readonly storeEvery: number;
  private timer: NodeJS.Timeout | null = null;
  private last: ConsoleSnapshot | null = null;
  private ticks = 0;
  private running: Promise<void> | null = null;
  private closed = false;

  constructor(
    private readonly ctx: AdminContext,
    options: ConsoleStreamOptions = {},
  ) {
    this.intervalMs = options.intervalMs ?? DEFAULT_CONSOLE_STREAM_INTERVAL_MS;
    this.storeEvery = options.storeHealthEveryTicks ?? DEFAULT_STORE_HEALTH_EVERY_TICKS;
    if (!Number.isInteger(this.intervalMs) || this.intervalMs < 50)
      throw new RangeError(`intervalMs must be an integer >= 50 (got ${this.intervalMs})`);
    if (!Number.isInteger(this.storeEvery) || this.storeEvery < 1)
      throw new RangeError(`storeHealthEveryTicks must be an integer >= 1 (got ${this.storeEvery})`);
  }

  get listeners(): number {
    return this.subscribers.size;
  }

  /** Start sending to `res` (headers already written); stops when it closes. */
  subscribe(res: ServerResponse): void {
    if (this.closed) {
      res.end();
      return;
    }
    const sub: Subscriber = { res, needsFull: true };
    this.subscribers.add(sub);
    res.once('close', () => {
      this.subscribers.delete(sub);
      if (this.subscribers.size === 0) this.stopTimer();
    });
    if (this.last) this.write(sub, this.last, null);
    if (!this.timer) {
      this.timer = setInterval(() => void this.tick(), this.intervalMs);
      this.timer.unref();
      void this.tick();
    }
  }

  /** End every stream (the server closes). */
  close(): void {
    this.closed = true;
    this.stopTimer();
    for (const s of this.subscribers) s.res.end();
    this.subscribers.clear();
  }

  private stopTimer(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.last = null; // a later listener gets a fresh snapshot, not a stale one
  }

  /** One tick; a tick still running (slow Postgres) makes the next one skip. */
  private tick(): Promise<void> {
    if (this.running) return this.running;
    this.running = (async () => {
      try {
        const next = await this.snapshot(this.last);
        if (this.subscribers.size === 0 || this.closed) return;
        const prev = this.last;
        this.last = next;
        const delta = prev ? diffSnapshots(prev, next) : null;
        for (const s of this.subscribers) this.write(s, next, delta);
      } finally {
        this.running = null;
      }
    })();
    return this.running;
  }

  private write(sub: Subscriber, full: ConsoleSnapshot, delta: ConsoleDelta | null): void {
    const text = sub.needsFull || !delta ? sseEvent('snapshot', full) : sseEvent('delta', delta);
    sub.needsFull = false;
    // A listener that cannot keep up gets a full snapshot once it drains, not a broken delta chain.
    if (!sub.res.write(text)) {
      sub.needsFull = true;
      this.subscribers.delete(sub);
      sub.res.once('drain', () => {
        if (!sub.res.destroyed && !this.closed) this.subscribers.add(sub);
      });
    }
  }

  /** Read every section; one that fails keeps its previous value and names its error. */
  async snapshot(prev: ConsoleSnapshot | null = null): Promise<ConsoleSnapshot> {
    const ctx = this.ctx;
    const at = Date.now();
    const errors: Record<string, string> = {};
    const b: Broker | null = ctx.broker()?.isRunning ? (ctx.broker() as Broker) : null;
    const guard = async <T>(section: string, read: () => Promise<T> | T, fallback: T): Promise<T> => {
      try {
        return await read();
      } catch (err) {
        errors[section] = err instanceof Error ? err.message : String(err);
        return fallback;
      }
    };
    const n = ctx.node();
    const epoch = await guard('epoch', () => ctx.clusterEpoch?.() ?? n.epoch, n.epoch);
    const refreshStore = this.ticks++ % this.storeEvery === 0 || !prev;
    const [nodes, takeovers, queues, topics, subscriptions, store] = await Promise.all([
      guard('cluster', () => ctx.clusterNodes(), []),
      guard('takeovers', () => ctx.takeovers(CONSOLE_TAKEOVER_LIMIT), []),
      guard<QueueView[]>('queues', () => (b ? b.listQueues() : ctx.readOnly().listQueues()), []),
      guard<TopicView[]>('topics', () => (b ? b.listTopics() : ctx.readOnly().listTopics()), []),
      guard<DurableView[]>('subscriptions', () => (b ? b.listDurables() : ctx.readOnly().listDurables()), []),
      refreshStore ? guard('store', () => ctx.storeHealth(), null) : Promise.resolve(prev?.store ?? null),
    ]);
    return {
      at,
      node: nodeView(n, epoch, b === null),
      cluster: {
        cluster: n.cluster,
        master: n.lockHolder,
        epoch,
        nodes: nodes.map((x) => ({
          name: x.name,
          // A node still announced as master that does not hold the lock (killed, not yet stale).
          role: x.role === 'master' && n.lockHolder !== null && x.name !== n.lockHolder ? 'unknown' : x.role,
          lastSeen: x.lastSeen ? x.lastSeen.toISOString() : null,
          adminUrl: x.adminUrl ?? (x.name === n.name ? n.listeners.admin : null),
          startedAt: x.startedAt ? x.startedAt.toISOString() : null,
        })),
        takeovers: takeovers.map((t) => ({
          node: t.node,
          epoch: t.epoch,
          reason: t.reason,
          at: t.at.toISOString(),
        })),
      },
      queues: queues.map((q) => streamQueue(q, at)),
      topics: topics.map((t) => ({
        name: t.name,
        temporary: t.temporary,
        enqueued: t.enqueued,
        subscribers: t.subscribers,
        durableSubscriptions: t.durableSubscriptions,
      })),
      subscriptions,
      connections: b ? clientConnections(b) : [],
      consumers: b ? b.listConsumers() : [],
      bridges: await guard('bridges', () => (ctx.bridges ? ctx.bridges() : []), []),
      store,
      errors,
    };
  }
}

function nodeView(n: NodeInfo, epoch: number, readOnly: boolean): Record<string, unknown> {
  return {
    name: n.name,
    cluster: n.cluster,
    role: n.role,
    epoch,
    nodeEpoch: n.nodeEpoch ?? null,
    startedAt: n.startedAt.toISOString(),
    version: n.version,
    lockHolder: n.lockHolder,
    locker: n.locker ?? null,
    readOnly,
    listeners: n.listeners,
    // No uptimeSeconds: it would change every tick; the console counts from startedAt and `at`.
    postgres: n.postgres ?? [],
  };
}

/** Counters as QueueView has them (QueueInfo has one more, inMemory, that the console does not show). */
function streamQueue(q: QueueView, at: number): StreamQueue {
  const age = q.oldestMessageAgeMs;
  return {
    name: q.name,
    temporary: q.temporary,
    depth: q.depth,
    enqueued: q.enqueued,
    dequeued: q.dequeued,
    expired: q.expired,
    deadLettered: q.deadLettered,
    consumers: q.consumers,
    inflight: q.inflight,
    // Rounded to the second, so that a queue that did not change sends nothing.
    oldestMessageAt: age === null ? null : Math.round((at - age) / 1000) * 1000,
  };
}
