import type { Broker, BrowsedMessage, TakeoverRecord } from '@keel/core';

/**
 * What the admin API needs from the node it runs in. The server implements it; the admin package
 * never imports the server (dependency direction: core <- admin <- server).
 */

/**
 * A node's role. `master`: holds the lock and serves clients. `slave`: waits on the lock (the
 * admin API answers read-only from the store). `recovering`: took the lock, still loading queues
 * from the store. `fenced`: stopped serving after losing the lock or its epoch (self-fencing),
 * on its way back to waiting. `waiting`: started, not yet in the lock race (store not reached).
 */
export type NodeRole = 'master' | 'slave' | 'recovering' | 'fenced' | 'waiting';

export const NODE_ROLES: readonly NodeRole[] = ['master', 'slave', 'recovering', 'fenced', 'waiting'];

export interface NodeListeners {
  /** `tcp://host:port` of the native listener, null when not listening (slaves). */
  native: string | null;
  /** `stomp://host:port`, null when disabled or not listening. */
  stomp: string | null;
  /** `ssl://host:port` (native over TLS), null when not configured or not listening. */
  ssl?: string | null;
  /** `stomp+ssl://host:port`, null when not configured or not listening. */
  stompSsl?: string | null;
  /** `http://host:port` (or `https://`) of the admin API. */
  admin: string;
}

export interface NodeInfo {
  name: string;
  cluster: string;
  role: NodeRole;
  /** The cluster epoch this node last saw (its own while master); see AdminContext.clusterEpoch. */
  epoch: number;
  /** The epoch this node last served at (its last takeover); null when it never was master. */
  nodeEpoch?: number | null;
  startedAt: Date;
  version: string;
  /** Name of the node holding the master lock, null when unknown or none. */
  lockHolder: string | null;
  /** The master lock: its kind, the file locker's directory and the holder its lock file records. */
  locker?: LockerInfo;
  listeners: NodeListeners;
  /** Which Postgres host each of the node's pools uses (store, lock, admin); see host-selection.ts. */
  postgres?: PostgresPoolHosts[];
}

/** One pool's host list and the host it uses now (a multi-host database URL). */
export interface PostgresPoolHosts {
  /** `store`, `lock` or `admin`. */
  name: string;
  /** target_session_attrs in force (`any` for a single-host URL). */
  target: string;
  hosts: string[];
  /** `host:port` new connections go to; null before the first one or after it failed. */
  current: string | null;
  /** Why hosts were last passed over, by `host:port`. */
  rejected: Record<string, string>;
}

export interface LockerInfo {
  kind: string;
  /** The file locker's lock directory; null for the Postgres lockers. */
  directory: string | null;
  /** The holder as the lock file records it (file locker); null otherwise or when unknown. */
  holder: { name: string; host: string; pid: number; epoch: number; acquiredAt: string } | null;
  /**
   * The master's lease as the lock records it (lease locker; file locker with a leaseDuration):
   * who renewed it last, when, until when; null for the row locker and a file lock without lease.
   */
  lease?: { holder: string | null; renewedAt: string; expiresAt: string; durationMs: number } | null;
}

export interface ClusterNode {
  name: string;
  role: NodeRole | 'unknown';
  /** When this node last heard of it; null when never (e.g. only named as lock holder). */
  lastSeen: Date | null;
  /** Its admin API (`http://host:port`) as it announced it; the console links to it. */
  adminUrl?: string | null;
  /** When it started, as it announced it. */
  startedAt?: Date | null;
}

/**
 * A queue as the admin API shows it. Counters the store does not keep (enqueued, dequeued, ...)
 * are null on a slave, which answers from the store.
 */
export interface QueueView {
  name: string;
  temporary: boolean;
  depth: number;
  enqueued: number | null;
  dequeued: number | null;
  expired: number | null;
  deadLettered: number | null;
  consumers: number | null;
  inflight: number | null;
  oldestMessageAgeMs: number | null;
}

export interface TopicView {
  name: string;
  temporary: boolean;
  enqueued: number | null;
  subscribers: number | null;
  durableSubscriptions: number;
}

export interface DurableView {
  clientId: string;
  name: string;
  topic: string;
  /** Null on a slave (it has no consumers). */
  active: boolean | null;
  pending: number;
  inflight: number | null;
}

/** Read-only view for slaves: answers from the store (Postgres). See storeReadOnlyView. */
export interface ReadOnlyView {
  listQueues(): Promise<QueueView[]>;
  /** Null when there is no such queue. */
  getQueue(name: string): Promise<QueueView | null>;
  /** Pending messages in delivery order, never removing them; null when there is no such queue. */
  browse(queue: string, limit: number, offset: number): Promise<BrowsedMessage[] | null>;
  listTopics(): Promise<TopicView[]>;
  listDurables(): Promise<DurableView[]>;
}

/**
 * The store's health as Postgres sees it. The admin package imports no pg; the server implements
 * this with SQL on its store pool, along these lines:
 *
 * ```sql
 * -- dead rows per message table (keel_messages, keel_sub_entries)
 * SELECT relname, n_dead_tup FROM pg_stat_user_tables
 *  WHERE relname IN ('keel_messages', 'keel_sub_entries');
 * -- bytes per table, indexes and TOAST included
 * SELECT relname, pg_total_relation_size(relid) FROM pg_stat_user_tables
 *  WHERE relname IN ('keel_messages', 'keel_sub_entries');
 * -- age of the oldest open transaction in the store database (what holds VACUUM back)
 * SELECT EXTRACT(EPOCH FROM max(now() - xact_start))::float8 AS age
 *   FROM pg_stat_activity WHERE datname = current_database() AND xact_start IS NOT NULL;
 * ```
 */
export interface StoreHealth {
  /** Table name -> n_dead_tup. */
  deadRows: Record<string, number>;
  /** Table name -> pg_total_relation_size in bytes. */
  tableBytes: Record<string, number>;
  /** Null when no transaction is open (or the store is not Postgres). */
  oldestTransactionAgeSeconds: number | null;
}

export interface AdminContext {
  node(): NodeInfo;
  /** The serving broker, only while master (null otherwise). */
  broker(): Broker | null;
  /** Read-only view answering from the store; used whenever broker() is null. */
  readOnly(): ReadOnlyView;
  /** Takeover history, newest first. */
  takeovers(limit: number): Promise<TakeoverRecord[]>;
  /** The nodes this node knows of (at least itself and the lock holder). */
  clusterNodes(): Promise<ClusterNode[]> | ClusterNode[];
  storeHealth(): Promise<StoreHealth>;
  /**
   * The cluster's current epoch, read from its row in Postgres (a slave reads the store read-only):
   * a slave's own epoch is stale as soon as another node takes over (issue #18.3). Default:
   * node().epoch.
   */
  clusterEpoch?(): Promise<number>;
  /** Give up the master lock so another node takes over (POST /api/broker/handover). */
  handover?(): Promise<void>;
  /** Network bridges of this node (GET /api/bridges); none when absent. */
  bridges?(): BridgeView[];
}

export interface BridgeView {
  connector: string;
  localName: string;
  peerUrl: string;
  remoteName: string | null;
  state: string;
  forwarding: string[];
  forwarded: number;
  inflight: number;
  connects: number;
  lastError: string | null;
  duplex?: boolean;
  accepted?: boolean;
  received?: number;
}
