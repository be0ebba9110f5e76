import { type MessageHeaders, StoreError } from '@keel/protocol';
import { fenceRefusal } from './fence-refusal';
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
} from './store';

/**
 * The in-memory Store: the same semantics as PgStore (it passes the same conformance suite in
 * packages/testkit), kept in maps. For unit tests of the broker core and for non-persistent use.
 *
 * Several MemoryStore instances can share one MemoryDatabase, like several broker nodes sharing one
 * Postgres: a second instance that takes over the same cluster fences the first one's commits.
 */

interface ClusterRow {
  epoch: number;
  master: string | null;
}

interface TakeoverRow extends TakeoverRecord {
  cluster: string;
}

interface DestinationRow extends DestinationRecord {
  cluster: string;
}

interface SubscriptionRow extends DurableSubscriptionRecord {
  cluster: string;
}

interface SubEntryRow {
  priority: number;
  deliveryCount: number;
}

/** The shared "database" behind MemoryStore instances. Tables mirror migrations/001_initial.sql. */
export class MemoryDatabase {
  readonly clusters = new Map<string, ClusterRow>();
  readonly takeovers: TakeoverRow[] = [];
  readonly destinations = new Map<number, DestinationRow>();
  readonly messages = new Map<number, StoredMessage>();
  readonly subscriptions = new Map<number, SubscriptionRow>();
  /** subId → msgId → entry. */
  readonly subEntries = new Map<number, Map<number, SubEntryRow>>();
  /** `${cluster}\u0000${producerId}` → highest sequence. */
  readonly producers = new Map<string, number>();
  /** When each producer's sequence was last written (ms since the epoch), for pruneProducers. */
  readonly producersTouched = new Map<string, number>();
  /** `${cluster}\u0000${origin}` → forwarded message id → when its round committed (ms). */
  readonly forwards = new Map<string, Map<number, number>>();
  /** `${cluster}\u0000${txId}`. */
  readonly txOutcomes = new Set<string>();
  /** cluster → job id → scheduled-delivery job (migrations/005_schedules.sql). */
  readonly schedules = new Map<string, Map<string, ScheduleRecord>>();
  nextDestinationId = 1;
  nextSubscriptionId = 1;
  /** The last message id block a takeover took (PgStore: the keel_id_blocks sequence). */
  lastIdBlock = 0;
}

export interface MemoryStoreOptions {
  /** Defaults to 'default'. */
  cluster?: string;
  /** Share one database between instances to model several nodes on one Postgres. */
  database?: MemoryDatabase;
}

export const DEFAULT_MEMORY_CLUSTER = 'default';

function copySchedule(j: ScheduleRecord): ScheduleRecord {
  return { ...j, headers: structuredClone(j.headers) as MessageHeaders, body: Buffer.from(j.body) };
}

function copyMessage(m: StoredMessage): StoredMessage {
  return {
    id: m.id,
    destId: m.destId,
    priority: m.priority,
    expiration: m.expiration,
    deliveryCount: m.deliveryCount,
    headers: structuredClone(m.headers),
    body: Buffer.from(m.body),
  };
}

/** Delivery order: priority descending, then id ascending. */
function compareDelivery(a: { priority: number; id: number }, b: { priority: number; id: number }): number {
  return b.priority - a.priority || a.id - b.id;
}

function afterCursor(m: { priority: number; id: number }, cursor: PageCursor | null): boolean {
  return (
    cursor === null || m.priority < cursor.priority || (m.priority === cursor.priority && m.id > cursor.id)
  );
}

export class MemoryStore implements Store {
  readonly kind = 'memory' as const;
  readonly cluster: string;
  readonly database: MemoryDatabase;
  private currentEpoch = 0;
  private currentIdBlock = 0;
  private node: string | null = null;
  private closed = false;
  private pendingFailure: Error | null = null;

  constructor(options: MemoryStoreOptions = {}) {
    this.cluster = options.cluster ?? DEFAULT_MEMORY_CLUSTER;
    this.database = options.database ?? new MemoryDatabase();
  }

  get epoch(): number {
    return this.currentEpoch;
  }

  get idBlock(): number {
    return this.currentIdBlock;
  }

  async open(): Promise<void> {
    this.closed = false;
  }

  async close(): Promise<void> {
    this.closed = true;
  }

  // ---- test helpers -------------------------------------------------------------------------------

  /**
   * Commit an epoch bump as another node would, without changing this store's epoch: this store's
   * next fenced write rejects with FencedError. Returns the new epoch.
   */
  simulateTakeover(node = 'other-node', reason = 'simulated'): number {
    return this.bumpEpoch(node, reason);
  }

  /** Make the next commit reject with `error` (nothing is written). For group-commit tests. */
  failNextCommit(
    error: Error = new StoreError('injected commit failure', 'STORE_UNAVAILABLE', { retryable: true }),
  ): void {
    this.pendingFailure = error;
  }

  // ---- epoch --------------------------------------------------------------------------------------

  async readEpoch(): Promise<number> {
    this.assertOpen();
    return this.database.clusters.get(this.cluster)?.epoch ?? 0;
  }

  async takeOver(node: string, reason: string): Promise<number> {
    this.assertOpen();
    this.node = node;
    this.currentEpoch = this.bumpEpoch(node, reason);
    this.database.lastIdBlock += 1;
    this.currentIdBlock = this.database.lastIdBlock;
    return this.currentEpoch;
  }

  async takeovers(limit: number): Promise<TakeoverRecord[]> {
    this.assertOpen();
    const out: TakeoverRecord[] = [];
    for (let i = this.database.takeovers.length - 1; i >= 0 && out.length < limit; i--) {
      const t = this.database.takeovers[i]!;
      if (t.cluster === this.cluster)
        out.push({ node: t.node, epoch: t.epoch, reason: t.reason, at: new Date(t.at) });
    }
    return out;
  }

  private bumpEpoch(node: string, reason: string): number {
    const row = this.database.clusters.get(this.cluster) ?? { epoch: 0, master: null };
    row.epoch += 1;
    row.master = node;
    this.database.clusters.set(this.cluster, row);
    this.database.takeovers.push({ cluster: this.cluster, node, epoch: row.epoch, reason, at: new Date() });
    return row.epoch;
  }

  /** The fencing check every write runs first (a cluster never taken over has epoch 0). */
  private checkEpoch(): void {
    const row = this.database.clusters.get(this.cluster) ?? { epoch: 0, master: null };
    if (row.epoch !== this.currentEpoch) {
      throw fenceRefusal({
        cluster: this.cluster,
        writeEpoch: this.currentEpoch,
        currentEpoch: this.currentEpoch,
        node: this.node,
        takingOver: false,
        clusterRow: row,
      });
    }
  }

  // ---- destinations and subscriptions -------------------------------------------------------------

  async ensureDestination(type: StoredDestinationType, name: string): Promise<number> {
    this.assertOpen();
    for (const d of this.database.destinations.values()) {
      if (d.cluster === this.cluster && d.type === type && d.name === name) return d.id;
    }
    const id = this.database.nextDestinationId++;
    this.database.destinations.set(id, { id, cluster: this.cluster, type, name });
    return id;
  }

  async deleteDestination(id: number): Promise<void> {
    this.assertOpen();
    this.checkEpoch();
    const db = this.database;
    const dest = db.destinations.get(id);
    if (dest === undefined || dest.cluster !== this.cluster) return;
    for (const [subId, sub] of db.subscriptions) {
      if (sub.destId === id) {
        db.subscriptions.delete(subId);
        db.subEntries.delete(subId);
      }
    }
    for (const [msgId, m] of db.messages) {
      if (m.destId !== id) continue;
      db.messages.delete(msgId);
      for (const entries of db.subEntries.values()) entries.delete(msgId);
    }
    db.destinations.delete(id);
  }

  async loadDestinations(): Promise<DestinationRecord[]> {
    this.assertOpen();
    return [...this.database.destinations.values()]
      .filter((d) => d.cluster === this.cluster)
      .sort((a, b) => a.id - b.id)
      .map((d) => ({ id: d.id, type: d.type, name: d.name }));
  }

  async ensureDurableSubscription(
    sub: Omit<DurableSubscriptionRecord, 'id'>,
  ): Promise<DurableSubscriptionRecord> {
    this.assertOpen();
    for (const s of this.database.subscriptions.values()) {
      if (s.cluster === this.cluster && s.clientId === sub.clientId && s.name === sub.name)
        return publicSub(s);
    }
    const id = this.database.nextSubscriptionId++;
    const row: SubscriptionRow = {
      id,
      cluster: this.cluster,
      clientId: sub.clientId,
      name: sub.name,
      destId: sub.destId,
      selector: sub.selector,
      noLocal: sub.noLocal,
    };
    this.database.subscriptions.set(id, row);
    return publicSub(row);
  }

  async deleteDurableSubscription(id: number): Promise<void> {
    this.assertOpen();
    this.checkEpoch();
    const sub = this.database.subscriptions.get(id);
    if (sub === undefined || sub.cluster !== this.cluster) return;
    this.database.subscriptions.delete(id);
    this.database.subEntries.delete(id);
  }

  async loadDurableSubscriptions(): Promise<DurableSubscriptionRecord[]> {
    this.assertOpen();
    return [...this.database.subscriptions.values()]
      .filter((s) => s.cluster === this.cluster)
      .sort((a, b) => a.id - b.id)
      .map(publicSub);
  }

  // ---- reads --------------------------------------------------------------------------------------

  async pageMessages(destId: number, cursor: PageCursor | null, limit: number): Promise<StoredMessage[]> {
    this.assertOpen();
    const matches: StoredMessage[] = [];
    for (const m of this.database.messages.values()) {
      if (m.destId === destId && afterCursor(m, cursor)) matches.push(m);
    }
    return matches.sort(compareDelivery).slice(0, Math.max(0, limit)).map(copyMessage);
  }

  async pageSubscription(subId: number, cursor: PageCursor | null, limit: number): Promise<StoredMessage[]> {
    this.assertOpen();
    const entries = this.database.subEntries.get(subId);
    if (entries === undefined) return [];
    const matches: { priority: number; id: number; deliveryCount: number; message: StoredMessage }[] = [];
    for (const [msgId, e] of entries) {
      const message = this.database.messages.get(msgId);
      const key = { priority: e.priority, id: msgId };
      if (message !== undefined && afterCursor(key, cursor)) {
        matches.push({ ...key, deliveryCount: e.deliveryCount, message });
      }
    }
    return matches
      .sort(compareDelivery)
      .slice(0, Math.max(0, limit))
      .map((x) => ({ ...copyMessage(x.message), priority: x.priority, deliveryCount: x.deliveryCount }));
  }

  async countMessages(destId: number): Promise<number> {
    this.assertOpen();
    let n = 0;
    for (const m of this.database.messages.values()) if (m.destId === destId) n++;
    return n;
  }

  async countSubscription(subId: number): Promise<number> {
    this.assertOpen();
    return this.database.subEntries.get(subId)?.size ?? 0;
  }

  async getMessage(id: number): Promise<StoredMessage | null> {
    this.assertOpen();
    const m = this.database.messages.get(id);
    return m === undefined ? null : copyMessage(m);
  }

  async producerSequence(producerId: string): Promise<number> {
    this.assertOpen();
    return this.database.producers.get(`${this.cluster}\u0000${producerId}`) ?? -1;
  }

  async forwardedSeen(origin: string, id: number): Promise<boolean> {
    this.assertOpen();
    return this.database.forwards.get(`${this.cluster}\u0000${origin}`)?.has(id) ?? false;
  }

  async txCommitted(txId: string): Promise<boolean> {
    this.assertOpen();
    return this.database.txOutcomes.has(`${this.cluster}\u0000${txId}`);
  }

  async expiredMessages(now: number, limit: number): Promise<StoredMessage[]> {
    this.assertOpen();
    const out: StoredMessage[] = [];
    for (const m of this.database.messages.values()) {
      if (m.expiration > 0 && m.expiration <= now && this.ownsDestination(m.destId)) out.push(m);
    }
    return out
      .sort((a, b) => a.expiration - b.expiration || a.id - b.id)
      .slice(0, Math.max(0, limit))
      .map(copyMessage);
  }

  async pruneProducers(olderThanMs: number): Promise<number> {
    this.assertOpen();
    const db = this.database;
    const prefix = `${this.cluster}\u0000`;
    const cutoff = Date.now() - olderThanMs;
    let n = 0;
    for (const [key, at] of db.producersTouched) {
      if (!key.startsWith(prefix) || at >= cutoff) continue;
      db.producersTouched.delete(key);
      db.producers.delete(key);
      n += 1;
    }
    for (const [key, ids] of db.forwards) {
      if (!key.startsWith(prefix)) continue;
      for (const [id, at] of ids) if (at < cutoff) ids.delete(id);
      if (ids.size === 0) db.forwards.delete(key);
    }
    return n;
  }

  async cleanupTopicMessages(): Promise<number> {
    this.assertOpen();
    const db = this.database;
    const referenced = new Set<number>();
    for (const entries of db.subEntries.values()) for (const msgId of entries.keys()) referenced.add(msgId);
    let removed = 0;
    for (const [id, m] of db.messages) {
      const dest = db.destinations.get(m.destId);
      if (dest?.cluster === this.cluster && dest.type === 'topic' && !referenced.has(id)) {
        db.messages.delete(id);
        removed++;
      }
    }
    return removed;
  }

  // ---- the write path -----------------------------------------------------------------------------

  async commit(batch: StoreBatch): Promise<void> {
    this.assertOpen();
    if (this.pendingFailure !== null) {
      const err = this.pendingFailure;
      this.pendingFailure = null;
      throw err;
    }
    this.checkEpoch();
    const db = this.database;

    // Validate everything that Postgres would refuse before changing anything (all or nothing).
    const newIds = new Set<number>();
    for (const m of batch.inserts) {
      if (db.messages.has(m.id) || newIds.has(m.id)) {
        throw new StoreError(`duplicate message id ${m.id}`, 'STORE_ERROR');
      }
      newIds.add(m.id);
    }
    for (const h of [...batch.inserts, ...batch.moves]) {
      // Postgres jsonb refuses U+0000 in strings; refuse it here too so both stores agree.
      if (JSON.stringify(h.headers).includes('\\u0000')) {
        throw new StoreError(
          `message ${h.id}: headers contain U+0000, which jsonb cannot store`,
          'STORE_ERROR',
        );
      }
    }
    this.checkSchedules(batch);
    const newEntries = new Set<string>();
    for (const e of batch.subEntries) {
      const key = `${e.subId}:${e.msgId}`;
      if (db.subEntries.get(e.subId)?.has(e.msgId) || newEntries.has(key)) {
        throw new StoreError(`duplicate subscription entry ${key}`, 'STORE_ERROR');
      }
      newEntries.add(key);
    }

    for (const m of batch.inserts) db.messages.set(m.id, copyMessage(m));
    for (const e of batch.subEntries) {
      let entries = db.subEntries.get(e.subId);
      if (entries === undefined) {
        entries = new Map();
        db.subEntries.set(e.subId, entries);
      }
      entries.set(e.msgId, { priority: e.priority, deliveryCount: 0 });
    }
    for (const mv of batch.moves) {
      const m = db.messages.get(mv.id);
      if (m === undefined) continue;
      m.destId = mv.destId;
      m.priority = mv.priority;
      m.headers = structuredClone(mv.headers) as MessageHeaders;
      m.deliveryCount = mv.deliveryCount;
      if (mv.expiration !== undefined) m.expiration = mv.expiration;
    }
    for (const dc of batch.deliveryCounts) {
      const m = db.messages.get(dc.id);
      if (m !== undefined) m.deliveryCount = dc.deliveryCount;
    }
    for (const dc of batch.subDeliveryCounts) {
      const e = db.subEntries.get(dc.subId)?.get(dc.msgId);
      if (e !== undefined) e.deliveryCount = dc.deliveryCount;
    }
    for (const id of batch.deletes) db.messages.delete(id);
    for (const d of batch.subEntryDeletes) db.subEntries.get(d.subId)?.delete(d.msgId);
    for (const p of batch.producers) {
      const key = `${this.cluster}\u0000${p.producerId}`;
      db.producers.set(key, Math.max(db.producers.get(key) ?? -1, p.seq));
      db.producersTouched.set(key, Date.now());
    }
    for (const f of batch.forwards) {
      const key = `${this.cluster}\u0000${f.origin}`;
      let ids = db.forwards.get(key);
      if (ids === undefined) {
        ids = new Map();
        db.forwards.set(key, ids);
      }
      ids.set(f.id, Date.now());
    }
    for (const tx of batch.txOutcomes) db.txOutcomes.add(`${this.cluster}\u0000${tx}`);
    this.applySchedules(batch);
  }

  /** Checks a batch's schedule writes the way Postgres would (before anything changes). */
  private checkSchedules(batch: StoreBatch): void {
    const jobs = this.database.schedules.get(this.cluster);
    const added = new Set<string>();
    for (const w of batch.schedules) {
      if (w.op !== 'insert') continue;
      const id = w.schedule.jobId;
      if (jobs?.has(id) || added.has(id))
        throw new StoreError(`duplicate scheduled job ${id}`, 'STORE_ERROR');
      added.add(id);
      if (JSON.stringify(w.schedule.headers).includes('\\u0000')) {
        throw new StoreError(
          `scheduled job ${id}: headers contain U+0000, which jsonb cannot store`,
          'STORE_ERROR',
        );
      }
    }
  }

  /** In StoreBatch order: inserts, advances, deletes, range deletes. */
  private applySchedules(batch: StoreBatch): void {
    if (batch.schedules.length === 0) return;
    let jobs = this.database.schedules.get(this.cluster);
    if (jobs === undefined) {
      jobs = new Map();
      this.database.schedules.set(this.cluster, jobs);
    }
    for (const w of batch.schedules)
      if (w.op === 'insert') jobs.set(w.schedule.jobId, copySchedule(w.schedule));
    for (const w of batch.schedules) {
      if (w.op !== 'advance') continue;
      const job = jobs.get(w.jobId);
      if (job === undefined) continue;
      job.nextDue = w.nextDue;
      job.repeatsLeft = w.repeatsLeft;
      job.cronTime = w.cronTime;
      job.fired = w.fired;
    }
    for (const w of batch.schedules) if (w.op === 'delete') jobs.delete(w.jobId);
    for (const w of batch.schedules) {
      if (w.op !== 'deleteRange') continue;
      for (const [id, job] of jobs) if (job.nextDue >= w.from && job.nextDue <= w.to) jobs.delete(id);
    }
  }

  /** This cluster's jobs in due order (next due, then job id). */
  private sortedSchedules(): ScheduleRecord[] {
    const jobs = [...(this.database.schedules.get(this.cluster)?.values() ?? [])];
    return jobs.sort((a, b) => a.nextDue - b.nextDue || (a.jobId < b.jobId ? -1 : a.jobId > b.jobId ? 1 : 0));
  }

  async dueSchedules(now: number, limit: number): Promise<ScheduleRecord[]> {
    this.assertOpen();
    const out: ScheduleRecord[] = [];
    for (const job of this.sortedSchedules()) {
      if (job.nextDue > now || out.length >= limit) break;
      out.push(copySchedule(job));
    }
    return out;
  }

  async nextScheduleDue(): Promise<number | null> {
    this.assertOpen();
    return this.sortedSchedules()[0]?.nextDue ?? null;
  }

  async pageSchedules(
    cursor: ScheduleCursor | null,
    limit: number,
    range?: { from: number; to: number },
  ): Promise<ScheduleRecord[]> {
    this.assertOpen();
    const after = (j: ScheduleRecord): boolean =>
      cursor === null ||
      j.nextDue > cursor.nextDue ||
      (j.nextDue === cursor.nextDue && j.jobId > cursor.jobId);
    const inRange = (j: ScheduleRecord): boolean =>
      range === undefined || (j.nextDue >= range.from && j.nextDue <= range.to);
    return this.sortedSchedules()
      .filter((j) => after(j) && inRange(j))
      .slice(0, limit)
      .map(copySchedule);
  }

  async getSchedule(jobId: string): Promise<ScheduleRecord | null> {
    this.assertOpen();
    const job = this.database.schedules.get(this.cluster)?.get(jobId);
    return job === undefined ? null : copySchedule(job);
  }

  async countSchedules(): Promise<number> {
    this.assertOpen();
    return this.database.schedules.get(this.cluster)?.size ?? 0;
  }

  private ownsDestination(destId: number): boolean {
    return this.database.destinations.get(destId)?.cluster === this.cluster;
  }

  private assertOpen(): void {
    if (this.closed) throw new StoreError('store is closed', 'STORE_CLOSED');
  }
}

function publicSub(s: SubscriptionRow): DurableSubscriptionRecord {
  return {
    id: s.id,
    clientId: s.clientId,
    name: s.name,
    destId: s.destId,
    selector: s.selector,
    noLocal: s.noLocal,
  };
}
