import { EventEmitter } from 'node:events';
import {
  DEFAULT_PRIORITY,
  type Destination,
  type FencedError,
  formatDestination,
  InvalidArgumentError,
  isTopicType,
  isWildcard,
  KeelError,
  MAX_PRIORITY,
  type Message,
  matchesWildcard,
  messageHeaders,
  messageOf,
  NotMasterError,
  parseDestination,
  parseNetworkProducerId,
} from '@keel/protocol';
import { ClientIdRegistry } from './client-id-registry';
import { type ConnectionInfo, ConnectionState, type Transaction } from './connection';
import { BrokerConsumer, type DeliverySink, type InflightRef } from './consumer';
import { DestinationCounters } from './destination-counters';
import { applyConsumerOptions } from './dispatch/destination-options';
import { ForwardedMessages } from './forwarded-messages';
import { DEFAULT_CANCELLABLE_HOLD_MS, GroupCommitWriter } from './group-commit';
import { InDoubtSends } from './in-doubt-sends';
import { type AbortSlowConsumerOptions, AbortSlowConsumerStrategy } from './limits/abort-slow-consumer';
import { messageBytes, SystemUsage, type SystemUsageOptions } from './limits/system-usage';
import { MessageIdAllocator, parseMessageId } from './message-ids';
import { MessageQueue, type QueueBacking, type QueueHost } from './message-queue';
import { validateMessageFields } from './message-validation';
import { type Clock, type Logger, silentLogger, systemClock } from './ports';
import { QueueBrowser } from './queue-browser';
import { deliveryCountToInsert, entrySize, PendingInsert, type QueueEntry } from './queue-entry';
import { type RedeliveryPolicy, redeliveryPolicy } from './redelivery-policy';
import { ResendClaims } from './resend-claims';
import { DestinationRouter, type RoutingOptions } from './routing/destination-router';
import {
  isSchedulerManagement,
  MessageScheduler,
  type MessageSchedulerOptions,
  type SchedulerHost,
} from './scheduler/message-scheduler';
import type { AuthorizationMap, AuthorizationRight } from './security/authorization-map';
import { MessageSelector } from './selector';
import type {
  DurableSubscriptionRecord,
  ScheduleRecord,
  Store,
  StoreBatch,
  StoredMessage,
} from './store/store';

export interface DeadLetterOptions {
  /** 'shared': one queue for all (ActiveMQ's SharedDeadLetterStrategy); 'individual': one per queue. */
  strategy: 'shared' | 'individual';
  /** Shared DLQ name (ActiveMQ.DLQ). */
  queueName: string;
  /** Individual DLQ prefix (DLQ.<queue>). */
  queuePrefix: string;
  /** Send expired messages to the DLQ (ActiveMQ's processExpired, default true); else drop them. */
  processExpired: boolean;
}

export const DEFAULT_DEAD_LETTER: Readonly<DeadLetterOptions> = Object.freeze({
  strategy: 'shared',
  queueName: 'ActiveMQ.DLQ',
  queuePrefix: 'DLQ.',
  processExpired: true,
});

export const DEFAULT_MEMORY_WINDOW = 2000;
/** 64 MiB per queue: ActiveMQ's default per-destination memory limit is a share of a 64 MB memoryUsage. */
export const DEFAULT_MEMORY_WINDOW_BYTES = 64 * 1024 * 1024;
export const DEFAULT_MAX_MESSAGE_SIZE = 4 * 1024 * 1024;
export const DEFAULT_PREFETCH = 1000;
export const DEFAULT_RECOVERY_HOLD_MS = 1000;

export interface BrokerOptions {
  nodeName: string;
  store: Store;
  logger?: Logger;
  clock?: Clock;
  redelivery?: Partial<RedeliveryPolicy>;
  deadLetter?: Partial<DeadLetterOptions>;
  /** Messages per queue held in memory; the rest is paged from the store. */
  memoryWindow?: number;
  /** Bytes per queue held in memory (waiting and in flight); the rest is paged from the store (issue #23.3). */
  memoryWindowBytes?: number;
  /** memoryUsage / storeUsage limits and producer flow control (limits/system-usage.ts). */
  systemUsage?: SystemUsageOptions;
  /** ActiveMQ's AbortSlowConsumerStrategy (limits/abort-slow-consumer.ts); off unless maxSlowDurationMs > 0. */
  slowConsumer?: AbortSlowConsumerOptions;
  maxBatchMessages?: number;
  maxMessageSize?: number;
  /**
   * After a takeover, messages recovered from the store are not delivered for this long (counted
   * from the end of recovery, when clients can connect), so that failover clients can reconnect
   * and replay acknowledgements the old master may not have committed (ackReplay) before those
   * messages go to another consumer. 0 = no hold.
   */
  recoveryHoldMs?: number;
  /**
   * ActiveMQ's concurrentStoreAndDispatchQueues (default true): a persistent queue message goes to
   * a ready consumer while its insert commits, and is never written when the consumer acknowledges
   * it first. The producer's send still completes only once the message is stored or consumed.
   */
  concurrentStoreAndDispatchQueues?: boolean;
  /**
   * With concurrent store and dispatch, a commit round holding such inserts starts this many ms
   * after the first of them (GroupCommitOptions.cancellableHoldMs; default 30), for queues whose
   * consumers acknowledge within that time on average.
   */
  concurrentStoreAndDispatchHoldMs?: number;
  onCommit?: (stats: { operations: number; inserts: number; durationMs: number }) => void;
  /** Scheduled delivery (AMQ_SCHEDULED_*): cron time zone, paging, the firing-lag callback. */
  scheduler?: MessageSchedulerOptions;
  /** Virtual topics and composite destinations (routing/destination-router.ts). */
  routing?: RoutingOptions;
  /**
   * ActiveMQ's authorizationPlugin: who may read, write and create which destinations
   * (security/authorization-map.ts). Absent: every connection may do everything.
   */
  authorization?: AuthorizationMap | null;
}

/** One physical destination a send is delivered to (several for a routed or a transacted send). */
interface RouteTarget {
  /** The message as sent (duplicate detection notes its producer once). */
  origin: Message;
  /** What this destination stores and delivers: `origin`, or a copy addressed to it. */
  message: Message;
  id: number;
  destId: number | null;
  kind: 'queue' | 'topic';
  subs: Subscription[];
  rec: QueueRecord | null;
}

export interface SubscribeOptions {
  consumerId: string;
  destination: string;
  prefetch: number;
  /** Broker acknowledges on delivery (STOMP ack:auto). */
  ackOnDelivery?: boolean;
  selector?: string;
  durableName?: string;
  noLocal?: boolean;
  /** Consumer priority; network bridges use a lower one. Default 0. */
  priority?: number;
  /**
   * Network bridges: messages this consumer must not be given (ActiveMQ's NetworkBridgeFilter:
   * brokerPath and networkTTL). A refused queue message stays for the other consumers and this
   * consumer pauses for `REFUSAL_PAUSE_MS`; a refused topic message is dropped from its subscription.
   */
  accept?: (message: Message) => boolean;
  /**
   * Browse a queue instead of consuming from it (JMS QueueBrowser, ActiveMQ's STOMP `browser:true`):
   * a snapshot in delivery order, then an end marker; see queue-browser.ts.
   */
  browse?: boolean;
  /**
   * ActiveMQ exclusive consumer (STOMP `activemq.exclusive:true`): while it is on a queue it gets
   * every message; see dispatch/exclusive-consumer.ts.
   */
  exclusive?: boolean;
}

/** How long a consumer with an `accept` filter stays paused after refusing a queue's next message. */
export const REFUSAL_PAUSE_MS = 200;

/** A consumer with an `accept` filter (network bridges); see SubscribeOptions.accept. */
class FilteringConsumer extends BrokerConsumer {
  private pausedTimer: NodeJS.Timeout | null = null;

  constructor(
    private readonly accept: (message: Message) => boolean,
    ...args: ConstructorParameters<typeof BrokerConsumer>
  ) {
    super(...args);
  }

  override canTake(): boolean {
    return this.pausedTimer === null && super.canTake();
  }

  override take(queue: MessageQueue, entry: QueueEntry, groupFirst = false): void {
    if (this.accept(entry.message)) {
      super.take(queue, entry, groupFirst);
      return;
    }
    if (queue.key.startsWith('subscriber://')) {
      // A topic subscriber's own copy: refusing it means not wanting it.
      void queue.acknowledge(entry);
      return;
    }
    // Give it back untouched (no redelivery count) and let the other consumers have it.
    queue.unconsumed(entry);
    this.pausedTimer = setTimeout(() => {
      this.pausedTimer = null;
      if (!this.closed) this.wake();
    }, REFUSAL_PAUSE_MS);
    this.pausedTimer.unref?.();
  }

  override detach(): ReturnType<BrokerConsumer['detach']> {
    if (this.pausedTimer) clearTimeout(this.pausedTimer);
    this.pausedTimer = null;
    return super.detach();
  }
}

export interface SendResult {
  messageId: string;
  duplicate: boolean;
}

export interface SendOptions {
  /** Whether this send may have reached a broker before (see Broker.send). */
  resent?: boolean;
}

const NO_SEND_OPTIONS: SendOptions = Object.freeze({});

export interface BrokerEvents {
  'connection:open': [ConnectionState];
  'connection:close': [ConnectionState];
  'consumer:add': [{ connection: ConnectionState; consumer: BrokerConsumer; destination: string }];
  'consumer:remove': [{ connection: ConnectionState; consumer: BrokerConsumer; destination: string }];
  'destination:create': [{ destination: string }];
  fenced: [FencedError];
  'store:error': [KeelError];
}

interface QueueRecord {
  name: string;
  type: 'queue' | 'temp-queue';
  destId: number | null;
  queue: MessageQueue;
  ownerConnection: string | null;
  createdAt: number;
}

interface TopicRecord {
  name: string;
  type: 'topic' | 'temp-topic';
  destId: number | null;
  enqueued: number;
  ownerConnection: string | null;
  createdAt: number;
}

export interface Subscription {
  key: string;
  pattern: string;
  queue: MessageQueue;
  durable: DurableSubscriptionRecord | null;
  consumer: BrokerConsumer | null;
  connectionId: string | null;
  noLocal: boolean;
  /** Its message selector, applied at publish (subscriptionWants). */
  selector?: MessageSelector | null;
}

export interface QueueInfo {
  name: string;
  temporary: boolean;
  depth: number;
  enqueued: number;
  dequeued: number;
  expired: number;
  deadLettered: number;
  consumers: number;
  inflight: number;
  inMemory: number;
  oldestMessageAgeMs: number | null;
}

export interface TopicInfo {
  name: string;
  temporary: boolean;
  enqueued: number;
  subscribers: number;
  durableSubscriptions: number;
}

export interface DurableInfo {
  clientId: string;
  name: string;
  topic: string;
  active: boolean;
  pending: number;
  inflight: number;
}

export interface ConnectionSummary {
  id: string;
  clientId: string;
  protocol: string;
  username: string | null;
  remoteAddress: string | null;
  connectedAt: string;
  consumers: number;
  messagesIn: number;
  messagesOut: number;
}

export interface ConsumerSummary {
  connectionId: string;
  clientId: string;
  consumerId: string;
  destinations: string[];
  credit: number;
  inflight: number;
  delivered: number;
}

export interface BrowsedMessage {
  id: string;
  message: Message;
  deliveryCount: number;
  redelivered: boolean;
}

let connectionCounter = 0;

/**
 * The broker's domain: destinations, dispatch, subscriptions, acknowledgements, redelivery,
 * transactions and duplicate detection, over a Store. One Broker serves while its node is master;
 * `start()` recovers from the store, `stop()` drops every client.
 */
export class Broker extends EventEmitter<BrokerEvents> implements QueueHost, SchedulerHost {
  readonly nodeName: string;
  readonly store: Store;
  readonly logger: Logger;
  readonly clock: Clock;
  readonly redelivery: RedeliveryPolicy;
  readonly deadLetterOptions: DeadLetterOptions;
  private readonly memoryWindow: number;
  private readonly queueOptions: { memoryWindow: number; memoryWindowBytes: number };
  /** memoryUsage / storeUsage and producer flow control (issue #23.3). */
  readonly usage: SystemUsage;
  readonly slowConsumers: AbortSlowConsumerStrategy;
  private readonly concurrentStoreAndDispatchQueues: boolean;
  /** QueueHost: concurrent store and dispatch's hold (ms). */
  readonly dispatchHoldMs: number;
  readonly maxMessageSize: number;
  private readonly opts: BrokerOptions;

  writer: GroupCommitWriter | null = null;
  private ids: MessageIdAllocator | null = null;
  epoch = 0;
  private running = false;
  private readonly startedAt = Date.now();

  private readonly queues = new Map<string, QueueRecord>();
  private readonly queueCreations = new Map<string, Promise<QueueRecord>>();
  private readonly topics = new Map<string, TopicRecord>();
  private readonly topicCreations = new Map<string, Promise<TopicRecord>>();
  private readonly subscriptions = new Set<Subscription>();
  private readonly durables = new Map<string, Subscription>();
  private subsByTopic = new Map<string, Subscription[]>();
  private readonly wildcardQueueConsumers = new Set<{ pattern: string; consumer: BrokerConsumer }>();
  readonly connections = new Map<string, ConnectionState>();
  /** Highest accepted sequence per producer (duplicate detection); `at`: last used (ms), for pruning. */
  private readonly producers = new Map<string, { seq: number; done: Promise<unknown>; at?: number }>();
  private readonly producerLookups = new Map<string, Promise<number>>();
  /** Duplicate detection of network forwards (`net:<origin>:<id>` producers), apart from producers. */
  private readonly forwards: ForwardedMessages;
  /** Resends after a takeover and the consumed messages failover consumers replayed (ackReplay). */
  private readonly resendClaims = new ResendClaims(this);
  /** Sends answered IN_DOUBT, for their producers' resends. */
  private readonly inDoubt = new InDoubtSends(this);
  /** Messages in and out per destination (read by the metrics at scrape time). */
  readonly counters = new DestinationCounters();
  /** Virtual topics and composite destinations: the destinations a send goes to. */
  readonly router: DestinationRouter;
  /** One live connection per client id (InvalidClientIDException, allowLinkStealing). */
  private readonly clientIds: ClientIdRegistry;

  constructor(options: BrokerOptions) {
    super();
    this.opts = options;
    this.nodeName = options.nodeName;
    this.store = options.store;
    this.forwards = new ForwardedMessages(options.store);
    this.logger = options.logger ?? silentLogger;
    this.clock = options.clock ?? systemClock;
    this.redelivery = redeliveryPolicy(options.redelivery);
    this.deadLetterOptions = { ...DEFAULT_DEAD_LETTER, ...options.deadLetter };
    this.memoryWindow = options.memoryWindow ?? DEFAULT_MEMORY_WINDOW;
    this.concurrentStoreAndDispatchQueues = options.concurrentStoreAndDispatchQueues ?? true;
    this.dispatchHoldMs = options.concurrentStoreAndDispatchHoldMs ?? DEFAULT_CANCELLABLE_HOLD_MS;
    this.maxMessageSize = options.maxMessageSize ?? DEFAULT_MAX_MESSAGE_SIZE;
    if (!(this.memoryWindow >= 10)) throw new InvalidArgumentError('memoryWindow must be at least 10');
    const memoryWindowBytes = options.memoryWindowBytes ?? DEFAULT_MEMORY_WINDOW_BYTES;
    if (!(memoryWindowBytes >= 1024))
      throw new InvalidArgumentError('memoryWindowBytes must be at least 1024');
    this.queueOptions = { memoryWindow: this.memoryWindow, memoryWindowBytes };
    this.usage = new SystemUsage(
      {
        onChange: (event, detail) =>
          event === 'released'
            ? this.logger.info({ detail }, 'producer flow control: blocked sends released')
            : this.logger.warn({ detail }, `producer flow control: sends ${event}`),
        ...options.systemUsage,
      },
      () => this.heldInMemory(),
    );
    this.slowConsumers = new AbortSlowConsumerStrategy(options.slowConsumer ?? {}, {
      connections: () => this.connections.values(),
      now: () => this.clock.now(),
      abortConsumer: (conn, consumer, err) => {
        this.logger.warn({ conn: conn.id, consumer: consumer.id, err: err.message }, 'slow consumer aborted');
        this.closeConsumer(conn, consumer, true);
      },
      abortConnection: (conn, err) => {
        this.logger.warn({ conn: conn.id, err: err.message }, 'slow consumer: connection aborted');
        this.closeConnection(conn);
        conn.info.transport?.close(err);
      },
    });
    this.scheduler = new MessageScheduler(this, options.scheduler);
    this.router = new DestinationRouter(options.routing ?? {}, () => this.queueNames());
    this.clientIds = new ClientIdRegistry(this.nodeName, (c) => this.closeConnection(c), this.logger);
  }

  get isRunning(): boolean {
    return this.running;
  }

  // ----- scheduled delivery (scheduler/message-scheduler.ts; the node starts its loop as master) --

  readonly scheduler: MessageScheduler;
  /** Firings in flight: their job's advance joins the commit round that stores the message. */
  private readonly firings = new WeakMap<Message, { mutate: (b: StoreBatch) => void; written: boolean }>();

  /** SchedulerHost. */
  writeSchedules(mutate: (b: StoreBatch) => void): Promise<void> {
    this.assertRunning();
    return this.writer!.write(mutate);
  }

  /** SchedulerHost: an ordinary send, with the job's advance in the round that stores it (noteProducer). */
  async sendFired(message: Message, mutate: (b: StoreBatch) => void): Promise<void> {
    const firing = { mutate, written: false };
    this.firings.set(message, firing);
    await this.sendInternal(message);
    // Not stored (non-persistent, no durable subscriber), or answered before its round committed
    // (a consumer acknowledged it first): this round advances the job, or follows the one that did.
    await this.writer!.write((b) => {
      if (!firing.written) mutate(b);
    });
  }

  /** SchedulerHost. */
  async sendReply(message: Message): Promise<void> {
    await this.sendInternal(message);
  }

  private resyncNeeded = false;
  /** QueueHost: no delivery of recovered messages before this time (ms since the epoch). */
  holdRecoveredUntil = 0;

  /** Set while the node has lost its lock session and waits to know whether it is still master. */
  suspended = false;
  private suspendReason = '';

  private suspension: { promise: Promise<void>; resolve: () => void; reject: (err: Error) => void } | null =
    null;

  /**
   * Stop delivering and hold new sends and commits, keeping every client connected (lock lost,
   * store away). Held requests go on after resume(); if the node steps down instead, its
   * listeners close first and failover clients resend them to the new master.
   */
  suspend(reason: string): void {
    if (this.suspended) return;
    this.suspended = true;
    this.suspendReason = reason;
    let resolve!: () => void;
    let reject!: (err: Error) => void;
    const promise = new Promise<void>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    promise.catch(() => {});
    this.suspension = { promise, resolve, reject };
    this.logger.warn({ reason }, 'broker suspended: sends held, no deliveries until the lock is back');
  }

  /** Sends and commits wait here while the broker is suspended. */
  private async whileSuspended(): Promise<void> {
    while (this.suspended && this.suspension) await this.suspension.promise;
  }

  /**
   * Compare every stored queue and durable subscription with the store and page in rows the broker
   * does not hold (after a store outage, a commit may have succeeded although it reported failure).
   */
  async resyncFromStore(): Promise<void> {
    const all = [...this.queues.values()]
      .map((r) => r.queue)
      .concat([...this.durables.values()].map((s) => s.queue));
    for (const q of all) await q.resync();
  }

  /** Serve again after suspend(): the epoch was still ours and the lock is held again. */
  resume(): void {
    if (!this.suspended) return;
    this.suspended = false;
    this.suspension?.resolve();
    this.suspension = null;
    this.epoch = this.store.epoch;
    for (const q of this.queues.values()) q.queue.scheduleDispatch();
    for (const s of this.subscriptions) s.queue.scheduleDispatch();
    this.logger.info({ epoch: this.epoch }, 'broker resumed');
  }

  get uptimeMs(): number {
    return Date.now() - this.startedAt;
  }

  /**
   * Recover destinations, durable subscriptions and pending messages from the store. The caller
   * has taken over the store (store.epoch is ours) before.
   */
  async start(): Promise<void> {
    this.epoch = this.store.epoch;
    this.ids = new MessageIdAllocator(this.store.idBlock);
    this.writer = new GroupCommitWriter(this.store, {
      logger: this.logger,
      maxBatchMessages: this.opts.maxBatchMessages,
      cancellableHoldMs: this.dispatchHoldMs,
      onCommit: (stats) => {
        this.opts.onCommit?.(stats);
        if (this.resyncNeeded && !this.suspended) {
          this.resyncNeeded = false;
          void this.resyncFromStore().catch((err) =>
            this.logger.warn({ err: (err as Error).message }, 'resync failed'),
          );
        }
      },
      onFenced: (err) => this.emit('fenced', err),
      onStoreError: (err) => {
        this.resyncNeeded = true;
        this.emit('store:error', err);
      },
    });
    const started = Date.now();
    const dests = await this.store.loadDestinations();
    for (const d of dests) {
      if (d.type === 'queue') this.registerQueue(d.name, 'queue', d.id, null);
      else this.registerTopic(d.name, 'topic', d.id, null);
    }
    for (const rec of await this.store.loadDurableSubscriptions()) {
      const topicName = dests.find((d) => d.id === rec.destId)?.name;
      if (!topicName) continue;
      this.addDurable(rec, topicName);
    }
    const holdMs = this.opts.recoveryHoldMs ?? DEFAULT_RECOVERY_HOLD_MS;
    if (holdMs > 0) this.holdRecoveredUntil = this.clock.now() + holdMs;
    await Promise.all([
      ...[...this.queues.values()].map((q) => q.queue.recover()),
      ...[...this.durables.values()].map((s) => s.queue.recover()),
    ]);
    // The hold counts from now, when clients can connect: a recovery slowed by a busy machine must
    // not use up the time failover consumers have to replay their acknowledgements.
    if (holdMs > 0) this.holdRecoveredUntil = this.clock.now() + holdMs;
    this.running = true;
    this.slowConsumers.start();
    this.logger.info(
      {
        epoch: this.epoch,
        queues: this.queues.size,
        topics: this.topics.size,
        durableSubscriptions: this.durables.size,
        recoveryMs: Date.now() - started,
      },
      'broker recovered from store',
    );
  }

  /** Stop serving: close every connection (in-flight messages stay in the store). */
  async stop(options: { drain?: boolean } = {}): Promise<void> {
    if (!this.running && !this.writer) return;
    const schedulerStopped = this.scheduler.stop();
    this.running = false;
    this.usage.close();
    this.slowConsumers.stop();
    this.suspension?.reject(
      new NotMasterError(`broker ${this.nodeName} stopped serving (${this.suspendReason})`),
    );
    this.suspension = null;
    for (const c of [...this.connections.values()]) this.closeConnection(c, { redeliver: false });
    if (options.drain && this.writer && !this.writer.isFenced) {
      await this.writer.drain();
    }
    this.writer?.close(new NotMasterError('broker stopped'));
    await schedulerStopped.catch(() => {});
    for (const q of this.queues.values()) q.queue.close();
    for (const s of this.subscriptions) s.queue.close();
  }

  // ----- connections ---------------------------------------------------------------------------

  openConnection(info: ConnectionInfo): ConnectionState {
    this.assertRunning();
    const explicit = typeof info.clientId === 'string' && info.clientId.length > 0;
    this.clientIds.claim(info.clientId, info);
    connectionCounter += 1;
    const id = `${this.nodeName}-${process.pid}-${connectionCounter}`;
    const clientId = explicit ? info.clientId! : `ID:${id}`;
    const conn = new ConnectionState(id, clientId, info);
    this.connections.set(id, conn);
    this.clientIds.hold(conn, explicit);
    this.emit('connection:open', conn);
    return conn;
  }

  /** Connection ended: consumers closed (their in-flight messages redelivered), transactions rolled back. */
  closeConnection(conn: ConnectionState, options: { redeliver?: boolean } = {}): void {
    if (conn.closed) return;
    conn.closed = true;
    for (const tx of conn.transactions.values()) this.rollbackTx(tx);
    conn.transactions.clear();
    for (const consumer of [...conn.consumers.values()])
      this.closeConsumer(conn, consumer, options.redeliver ?? true);
    for (const name of conn.tempDestinations) this.deleteTemporary(name);
    this.connections.delete(conn.id);
    this.clientIds.release(conn);
    this.emit('connection:close', conn);
  }

  setWritable(conn: ConnectionState, writable: boolean): void {
    if (conn.writable === writable) return;
    conn.writable = writable;
    if (writable) for (const c of conn.consumers.values()) c.wake();
  }

  // ----- sending -------------------------------------------------------------------------------

  /**
   * Accept a message. Resolves once it is safe: for a persistent message on a durable destination
   * after the store commit that holds it. A resend of a (producerId, producerSeq) already accepted
   * resolves without storing it again. Producer flow control first (issue #23.3): while memoryUsage
   * or storeUsage is at its limit the send waits, or fails with RESOURCE_LIMIT (sendFailIfNoSpace).
   */
  send(
    conn: ConnectionState,
    message: Message,
    txId?: string,
    /**
     * `resent`: the sender says whether this send may have reached a broker before (a failover
     * client's resend, a network bridge forwarding a redelivered message). false — a declared first
     * attempt — lets a new producer's first send skip the store lookup of its sequence.
     */
    options: SendOptions = NO_SEND_OPTIONS,
  ): Promise<SendResult> {
    const bytes = Buffer.isBuffer(message?.body) ? messageBytes(message.body) : 0;
    let wait: Promise<void> | null;
    try {
      wait = this.usage.acquire(bytes, message?.persistent === true);
    } catch (err) {
      return Promise.reject(err);
    }
    if (wait !== null) return this.sendWhenAdmitted(wait, bytes, conn, message, txId, options);
    // The common case, without an async frame of its own: this is every message's path.
    const sent = this.sendAdmitted(conn, message, txId, options);
    const release = (): void => this.usage.release(bytes);
    sent.then(release, release);
    return sent;
  }

  private async sendWhenAdmitted(
    wait: Promise<void>,
    bytes: number,
    conn: ConnectionState,
    message: Message,
    txId: string | undefined,
    options: SendOptions,
  ): Promise<SendResult> {
    await wait;
    try {
      return await this.sendAdmitted(conn, message, txId, options);
    } finally {
      this.usage.release(bytes);
    }
  }

  private async sendAdmitted(
    conn: ConnectionState,
    message: Message,
    txId: string | undefined,
    options: SendOptions,
  ): Promise<SendResult> {
    this.assertRunning();
    if (this.suspended) await this.whileSuspended();
    const dest = this.checkMessage(message);
    // Authorization before anything is stored or queued in a transaction (security/).
    this.authorize(conn, 'write', dest);
    if (!isSchedulerManagement(dest)) this.authorizeCreate(conn, dest);
    // ActiveMQ's scheduler: its management destination, and sends that ask for a schedule.
    if (isSchedulerManagement(dest)) {
      await this.scheduler.manage(message);
      return { messageId: '', duplicate: false };
    }
    // Validated now (INVALID_ARGUMENT at the SEND); inside a transaction the job is stored at commit.
    const schedule = this.scheduler.parse(message);
    conn.messagesIn += 1;
    if (txId !== undefined) {
      const tx = this.transaction(conn, txId);
      const messageId = String(this.ids!.next());
      message.messageId = messageId;
      tx.sends.push(message);
      return { messageId, duplicate: false };
    }
    // The resend of a send answered IN_DOUBT: done if its consumer acknowledged it, stored if not.
    const doubt = options.resent === true ? this.inDoubt.resent(message) : null;
    if (doubt === 'consumed') {
      this.logger.debug(
        { producerId: message.producerId, seq: message.producerSeq },
        'resend of an in-doubt send its consumer acknowledged: done',
      );
      return { messageId: message.messageId ?? '', duplicate: true };
    }
    const forward = message.producerSeq === 1 ? parseNetworkProducerId(message.producerId) : null;
    if (doubt === 'store') {
      // Not a duplicate whatever the producer's stored sequence says: it never was stored.
    } else if (forward !== null) {
      // A network forward: a declared first attempt cannot be here yet (ForwardedMessages).
      if (
        options.resent !== false &&
        (await this.forwards.isDuplicate(message.producerId!, forward.origin, forward.id))
      ) {
        this.logger.debug({ producerId: message.producerId }, 'duplicate network forward dropped');
        return { messageId: message.messageId ?? '', duplicate: true };
      }
    } else {
      const dup =
        options.resent === false && message.producerSeq === 1 && !this.producers.has(message.producerId ?? '')
          ? null
          : await this.checkDuplicate(message);
      if (dup) return dup;
    }
    const resent = options.resent === true ? this.resendClaims.resent(message) : null;
    if (resent === 'consumed') {
      this.logger.debug(
        { producerId: message.producerId, seq: message.producerSeq },
        'resend of a consumed message dropped',
      );
      return { messageId: message.messageId ?? '', duplicate: true };
    }
    const id = this.ids!.next();
    message.messageId = String(id);
    const routes = this.router.routes(dest);
    let done =
      schedule !== null
        ? this.scheduler.accept(message, schedule, (b) => this.noteProducer(b, message))
        : routes === null
          ? this.route(conn, dest, id, message, resent === 'hold')
          : this.routeMany(conn, message, dest, id);
    if (doubt === 'store') {
      done = done.then(
        () => this.inDoubt.resolved(message),
        (err) => {
          throw KeelError.isInstance(err) && err.code === 'IN_DOUBT'
            ? err
            : this.inDoubt.failedAgain(message, err);
        },
      );
    }
    const pid = message.producerId;
    if (forward !== null) this.forwards.accepted(pid!, done);
    else if (
      pid !== undefined &&
      message.producerSeq !== undefined &&
      !(doubt === 'store' && (this.producers.get(pid)?.seq ?? -1) > message.producerSeq)
    ) {
      const state = { seq: message.producerSeq, done };
      this.producers.set(pid, state);
      // Not stored: forget what we believed, the store knows the producer's true sequence; and if
      // it failed for a passing reason, its resend must not be taken for a duplicate.
      done.catch((err: unknown) => {
        if (this.producers.get(pid) === state) this.producers.delete(pid);
        this.inDoubt.notStored(message, err);
      });
    }
    await done;
    return { messageId: message.messageId, duplicate: false };
  }

  /**
   * Throws NOT_AUTHORIZED unless the connection's user has `right` on `dest`. The broker's own
   * connections (internal, admin API — which checks its own roles) and a network bridge's local
   * connection without a user are not checked; a bridge is checked as its user on the peer.
   */
  private authorize(conn: ConnectionState, right: AuthorizationRight, dest: Destination): void {
    const map = this.opts.authorization;
    if (!map) return;
    const { protocol, username } = conn.info;
    if (protocol === 'internal' || protocol === 'admin' || (protocol === 'network' && username === undefined))
      return;
    map.check(username, right, dest);
  }

  /**
   * Creating a destination on first use needs the admin right, as in ActiveMQ
   * (AuthorizationBroker.addDestination): a destination that exists needs none. Wildcards create
   * nothing.
   */
  private authorizeCreate(conn: ConnectionState, dest: Destination): void {
    if (!this.opts.authorization || isWildcard(dest.name)) return;
    const key = formatDestination(dest);
    if (this.queues.has(key) || this.topics.has(key)) return;
    this.authorize(conn, 'admin', dest);
  }

  private checkMessage(message: Message): Destination {
    if (!message || typeof message !== 'object') throw new InvalidArgumentError('message missing');
    const dest = parseDestination(message.destination);
    if (isWildcard(dest.name))
      throw new InvalidArgumentError(`cannot send to a wildcard destination ${message.destination}`);
    if (!Buffer.isBuffer(message.body)) throw new InvalidArgumentError('message body must be bytes');
    if (message.body.length > this.maxMessageSize) {
      throw new InvalidArgumentError(
        `message body of ${message.body.length} bytes exceeds the maximum of ${this.maxMessageSize}`,
        'RESOURCE_LIMIT',
      );
    }
    if (message.priority === undefined || message.priority === null) message.priority = DEFAULT_PRIORITY;
    if (!Number.isInteger(message.priority) || message.priority < 0 || message.priority > MAX_PRIORITY) {
      throw new InvalidArgumentError(`priority must be an integer 0-9 (got ${message.priority})`);
    }
    if (!message.timestamp) message.timestamp = this.clock.now();
    if (!message.expiration) message.expiration = 0;
    if (!message.properties) message.properties = {};
    message.persistent = message.persistent === true;
    validateMessageFields(message);
    return dest;
  }

  private async checkDuplicate(message: Message): Promise<SendResult | null> {
    const pid = message.producerId;
    const seq = message.producerSeq;
    if (pid === undefined || seq === undefined) return null;
    if (typeof pid !== 'string' || !Number.isSafeInteger(seq) || seq < 0) {
      throw new InvalidArgumentError('producerId must be a string and producerSeq a non-negative integer');
    }
    let state = this.producers.get(pid);
    if (!state) {
      let lookup = this.producerLookups.get(pid);
      if (!lookup) {
        lookup = this.store.producerSequence(pid);
        this.producerLookups.set(pid, lookup);
        lookup.finally(() => this.producerLookups.delete(pid)).catch(() => {});
      }
      const stored = await lookup;
      state = this.producers.get(pid);
      if (!state) {
        state = { seq: stored, done: Promise.resolve() };
        this.producers.set(pid, state);
      }
    }
    if (seq <= state.seq) {
      await state.done;
      this.logger.debug({ producerId: pid, seq }, 'duplicate send dropped');
      return { messageId: message.messageId ?? '', duplicate: true };
    }
    return null;
  }

  private route(
    conn: ConnectionState | null,
    dest: Destination,
    id: number,
    message: Message,
    /** A resend held for the recovery hold (queues only; see holdResend). */
    held = false,
  ): Promise<void> {
    const name = formatDestination(dest);
    this.counters.countIn(name);
    if (isTopicType(dest.type)) return this.publish(conn, dest, id, message);
    const existing = this.queues.get(name);
    if (existing) return this.enqueueTo(existing, id, message, held);
    return this.ensureQueue(dest).then((rec) => this.enqueueTo(rec, id, message, held));
  }

  /**
   * A send the router delivers to several destinations (virtual topic, composite): every copy is
   * stored in one commit (one group-commit operation), so a takeover finds all or none of them;
   * then each is delivered. No concurrent store and dispatch here: nothing is handed to a consumer
   * before the commit, so a resend after a failover is a plain duplicate (producer sequence).
   */
  private async routeMany(
    conn: ConnectionState,
    message: Message,
    dest: Destination,
    id: number,
  ): Promise<void> {
    const targets = await this.routeTargets(conn, message, dest, id);
    if (targets.some((t) => this.storesTarget(t)))
      await this.writer!.write((b) => this.writeTargets(b, targets));
    this.deliverTargets(targets);
  }

  /** Where `message` (id `id`) goes: its destination, or the router's (copies with ids of their own). */
  private async routeTargets(
    conn: ConnectionState | null,
    origin: Message,
    dest: Destination,
    id: number,
  ): Promise<RouteTarget[]> {
    const routes = this.router.routes(dest);
    const targets: RouteTarget[] = [];
    for (const [i, d] of (routes ?? [dest]).entries()) {
      const tid = i === 0 ? id : this.ids!.next();
      const message =
        routes === null ? origin : { ...origin, destination: formatDestination(d), messageId: String(tid) };
      if (isTopicType(d.type)) {
        const rec = this.topics.get(formatDestination(d)) ?? (await this.ensureTopic(d));
        rec.enqueued += 1;
        const subs = this.matchingSubscriptions(d.name).filter((s) =>
          this.subscriptionWants(s, conn, tid, message),
        );
        targets.push({ origin, message, id: tid, destId: rec.destId, kind: 'topic', subs, rec: null });
      } else {
        const rec = this.queues.get(formatDestination(d)) ?? (await this.ensureQueue(d));
        targets.push({ origin, message, id: tid, destId: rec.destId, kind: 'queue', subs: [], rec });
      }
    }
    return targets;
  }

  private storesTarget(t: RouteTarget): boolean {
    return (
      t.message.persistent &&
      t.destId !== null &&
      (t.kind === 'queue' || t.subs.some((s) => s.durable !== null))
    );
  }

  /** The rows of `targets` in one batch; each sent message's producer sequence noted once. */
  private writeTargets(b: StoreBatch, targets: RouteTarget[]): void {
    const noted = new Set<Message>();
    for (const t of targets) {
      if (!this.storesTarget(t)) continue;
      b.inserts.push(this.storedRow(t.id, t.destId!, t.message));
      for (const s of t.subs)
        if (s.durable) b.subEntries.push({ subId: s.durable.id, msgId: t.id, priority: t.message.priority });
      if (noted.has(t.origin)) continue;
      noted.add(t.origin);
      this.noteProducer(b, t.origin);
    }
  }

  private deliverTargets(targets: RouteTarget[]): void {
    for (const t of targets) {
      this.counters.countIn(t.message.destination);
      const stored = this.storesTarget(t);
      if (t.kind === 'queue') t.rec!.queue.enqueue(this.newEntry(t.id, t.message, stored));
      else
        for (const s of t.subs) s.queue.enqueue(this.newEntry(t.id, t.message, stored && s.durable !== null));
    }
  }

  /** Names of the queues (not temporary ones) that exist: virtual topics' consumer queues. */
  private *queueNames(): Iterable<string> {
    for (const rec of this.queues.values()) if (rec.type === 'queue') yield rec.name;
  }

  private enqueueTo(rec: QueueRecord, id: number, message: Message, held = false): Promise<void> {
    const entry = this.newEntry(id, message, rec.destId !== null && message.persistent);
    if (entry.stored && !held && this.concurrentStoreAndDispatchQueues && rec.queue.acceptsBeforeStored())
      return this.storeAndDispatch(rec.queue, entry, rec.destId!);
    return this.storeThenEnqueue(rec, entry, held);
  }

  private async storeThenEnqueue(rec: QueueRecord, entry: QueueEntry, held: boolean): Promise<void> {
    if (entry.stored) {
      const { id, message } = entry;
      const destId = rec.destId!;
      // Sends after this one wait for its commit too (MessageQueue.arriving): order is kept.
      const arrived = rec.queue.arriving();
      try {
        await this.writer!.write((b) => {
          b.inserts.push(this.storedRow(id, destId, message));
          this.noteProducer(b, message);
        });
      } finally {
        arrived();
      }
    }
    if (held) this.holdResend(rec.queue, entry);
    else rec.queue.enqueue(entry);
  }

  /**
   * A failover client's resend of a send the old master never confirmed, arriving during the
   * recovery hold: the old master may have handed it to a consumer before storing it (concurrent
   * store and dispatch), so it is stored (above) but held until the hold ends, and dropped if a
   * consumer's replay (ackReplay) says it already consumed it.
   */
  private holdResend(queue: MessageQueue, entry: QueueEntry): void {
    if (this.resendClaims.isConsumed(entry.message)) {
      // The consumer's replay came while the insert committed.
      queue.stats.enqueued += 1;
      queue.stats.dequeued += 1;
      if (entry.stored) {
        queue.trackRemoval(
          entry.id,
          this.writer!.write((b) => queue.removeOp(b, entry)),
        );
      }
      return;
    }
    queue.enqueueHeld(entry, this.holdRecoveredUntil);
    this.resendClaims.hold(entry.message, queue, entry, this.holdRecoveredUntil);
  }

  /**
   * Concurrent store and dispatch (ActiveMQ's concurrentStoreAndDispatchQueues): hand the message to
   * the queue's consumers while its insert waits for the next commit round. The send is safe — and
   * resolves — when the insert commits or when a consumer acknowledges the message, whichever comes
   * first; an acknowledgement that arrives before the round starts withdraws the insert, so a
   * message consumed that fast is never written (the producer's sequence still is).
   */
  private storeAndDispatch(queue: MessageQueue, entry: QueueEntry, destId: number): Promise<void> {
    const message = entry.message;
    // Hold the round back only for consumers that acknowledge within the hold (acksWithin).
    const hold = queue.acksWithin(this.dispatchHoldMs) ? this.dispatchHoldMs : 0;
    const write = this.writer!.writeCancellable(
      (b) => b.inserts.push(this.storedRow(entry.id, destId, message, deliveryCountToInsert(entry))),
      (b) => this.noteProducer(b, message),
      hold,
    );
    // Resolves at the insert's commit or the consumer's acknowledgement, whichever comes first.
    let resolve!: () => void;
    let reject!: (err: unknown) => void;
    const safe = new Promise<void>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    entry.storing = new PendingInsert(write, resolve);
    write.committed.then(
      () => {
        if (entry.storing) entry.storing = null;
        resolve();
      },
      // Never "failed" for a message a consumer may have (issue #17.3): in doubt instead.
      (err) => reject(queue.storeFailed(entry) ? err : this.inDoubt.add(entry, err)),
    );
    queue.enqueue(entry);
    return safe;
  }

  private async publish(
    conn: ConnectionState | null,
    dest: Destination,
    id: number,
    message: Message,
  ): Promise<void> {
    const rec = this.topics.get(formatDestination(dest)) ?? (await this.ensureTopic(dest));
    rec.enqueued += 1;
    const subs = this.matchingSubscriptions(dest.name).filter((s) =>
      this.subscriptionWants(s, conn, id, message),
    );
    const durable = subs.filter((s) => s.durable !== null);
    const store = message.persistent && durable.length > 0 && rec.destId !== null;
    if (store) {
      const destId = rec.destId!;
      await this.writer!.write((b) => {
        b.inserts.push(this.storedRow(id, destId, message));
        for (const s of durable)
          b.subEntries.push({ subId: s.durable!.id, msgId: id, priority: message.priority });
        this.noteProducer(b, message);
      });
    }
    for (const s of subs) s.queue.enqueue(this.newEntry(id, message, store && s.durable !== null));
  }

  private noteProducer(b: StoreBatch, message: Message): void {
    const firing = this.firings.get(message);
    if (firing !== undefined && !firing.written) {
      firing.mutate(b);
      firing.written = true;
    }
    if (message.producerId === undefined || message.producerSeq === undefined) return;
    const forward = message.producerSeq === 1 ? parseNetworkProducerId(message.producerId) : null;
    if (forward !== null) b.forwards.push(forward);
    else b.producers.push({ producerId: message.producerId, seq: message.producerSeq });
  }

  private storedRow(id: number, destId: number, message: Message, deliveryCount = 0): StoredMessage {
    return {
      id,
      destId,
      priority: message.priority,
      expiration: message.expiration,
      deliveryCount,
      headers: messageHeaders(message),
      body: message.body,
    };
  }

  private newEntry(id: number, message: Message, stored: boolean): QueueEntry {
    return {
      id,
      message,
      priority: message.priority,
      expiration: message.expiration,
      deliveryCount: 0,
      redelivered: false,
      stored,
      size: entrySize(message),
      notBefore: 0,
    };
  }

  entryFromStored(row: StoredMessage): QueueEntry {
    const message = messageOf(row.headers, row.body);
    return {
      id: row.id,
      message,
      priority: row.priority,
      expiration: row.expiration,
      deliveryCount: row.deliveryCount,
      // The store counts every delivery (MessageQueue.noteDelivery), so a message recovered after a
      // takeover is flagged redelivered iff it was handed to a consumer before (JMSRedelivered; the
      // one window left, a crash before a delivery's mark committed: docs/architecture.md).
      redelivered: row.deliveryCount > 0,
      storedDeliveryCount: row.deliveryCount,
      stored: true,
      size: entrySize(message),
      notBefore: 0,
    };
  }

  // ----- destinations --------------------------------------------------------------------------

  private registerQueue(
    name: string,
    type: 'queue' | 'temp-queue',
    destId: number | null,
    owner: string | null,
  ): QueueRecord {
    const key = formatDestination({ type, name });
    const store = this.store;
    const backing: QueueBacking | null =
      destId === null
        ? null
        : {
            page: (cursor, limit) => store.pageMessages(destId, cursor, limit),
            pageWhere: store.pageMessagesWhere
              ? (cursor, limit, where) => store.pageMessagesWhere!(destId, cursor, limit, where)
              : undefined,
            count: () => store.countMessages(destId),
            remove: (b, id) => b.deletes.push(id),
            setDeliveryCount: (b, id, deliveryCount) => b.deliveryCounts.push({ id, deliveryCount }),
          };
    const rec: QueueRecord = {
      name,
      type,
      destId,
      queue: new MessageQueue(key, this, backing, this.queueOptions),
      ownerConnection: owner,
      createdAt: Date.now(),
    };
    this.queues.set(key, rec);
    this.router.queuesChanged();
    this.counters.touch(key);
    for (const w of this.wildcardQueueConsumers) {
      if (matchesWildcard(w.pattern, name)) w.consumer.attach(rec.queue);
    }
    return rec;
  }

  private registerTopic(
    name: string,
    type: 'topic' | 'temp-topic',
    destId: number | null,
    owner: string | null,
  ): TopicRecord {
    const rec: TopicRecord = {
      name,
      type,
      destId,
      enqueued: 0,
      ownerConnection: owner,
      createdAt: Date.now(),
    };
    const key = formatDestination({ type, name });
    this.topics.set(key, rec);
    this.counters.touch(key);
    return rec;
  }

  /** Find or create a queue (created on first use, like ActiveMQ). */
  ensureQueue(dest: Destination, owner: string | null = null): Promise<QueueRecord> {
    const key = formatDestination(dest);
    const existing = this.queues.get(key);
    if (existing) return Promise.resolve(existing);
    let creating = this.queueCreations.get(key);
    if (!creating) {
      creating = (async () => {
        const destId = dest.type === 'queue' ? await this.store.ensureDestination('queue', dest.name) : null;
        const rec =
          this.queues.get(key) ??
          this.registerQueue(dest.name, dest.type as 'queue' | 'temp-queue', destId, owner);
        this.emit('destination:create', { destination: key });
        return rec;
      })();
      this.queueCreations.set(key, creating);
      creating.finally(() => this.queueCreations.delete(key)).catch(() => {});
    }
    return creating;
  }

  ensureTopic(dest: Destination, owner: string | null = null): Promise<TopicRecord> {
    const key = formatDestination(dest);
    const existing = this.topics.get(key);
    if (existing) return Promise.resolve(existing);
    let creating = this.topicCreations.get(key);
    if (!creating) {
      creating = (async () => {
        const destId = dest.type === 'topic' ? await this.store.ensureDestination('topic', dest.name) : null;
        const rec =
          this.topics.get(key) ??
          this.registerTopic(dest.name, dest.type as 'topic' | 'temp-topic', destId, owner);
        this.emit('destination:create', { destination: key });
        return rec;
      })();
      this.topicCreations.set(key, creating);
      creating.finally(() => this.topicCreations.delete(key)).catch(() => {});
    }
    return creating;
  }

  private deleteTemporary(key: string): void {
    const q = this.queues.get(key);
    if (q) {
      for (const c of q.queue.consumerList) (c as BrokerConsumer).closed = true;
      q.queue.close();
      this.queues.delete(key);
      this.router.queuesChanged();
    }
    this.topics.delete(key);
  }

  /**
   * Whether a topic subscription takes this message: not its own connection's with noLocal, and
   * its selector matches — topic selectors filter at publish, as ActiveMQ's TopicSubscription, so a
   * durable subscription never stores what it would not deliver.
   */
  private subscriptionWants(
    s: Subscription,
    conn: ConnectionState | null,
    id: number,
    message: Message,
  ): boolean {
    if (s.noLocal && conn !== null && s.connectionId === conn.id) return false;
    const selector = s.selector;
    if (selector == null) return true;
    return selector.matches({
      id,
      message,
      priority: message.priority,
      deliveryCount: 0,
      redelivered: false,
    });
  }

  private matchingSubscriptions(topicName: string): Subscription[] {
    let subs = this.subsByTopic.get(topicName);
    if (!subs) {
      subs = [...this.subscriptions].filter(
        (s) => s.pattern === topicName || matchesWildcard(s.pattern, topicName),
      );
      if (this.subsByTopic.size > 10000) this.subsByTopic.clear();
      this.subsByTopic.set(topicName, subs);
    }
    return subs;
  }

  private addDurable(rec: DurableSubscriptionRecord, topicName: string): Subscription {
    const store = this.store;
    const backing: QueueBacking = {
      page: (cursor, limit) => store.pageSubscription(rec.id, cursor, limit),
      count: () => store.countSubscription(rec.id),
      remove: (b, id) => b.subEntryDeletes.push({ subId: rec.id, msgId: id }),
      setDeliveryCount: (b, id, deliveryCount) =>
        b.subDeliveryCounts.push({ subId: rec.id, msgId: id, deliveryCount }),
    };
    const key = durableKey(rec.clientId, rec.name);
    const sub: Subscription = {
      key,
      pattern: topicName,
      queue: new MessageQueue(`durable://${key}`, this, backing, this.queueOptions),
      durable: rec,
      consumer: null,
      connectionId: null,
      noLocal: rec.noLocal,
      selector: MessageSelector.of(rec.selector),
    };
    this.durables.set(key, sub);
    this.subscriptions.add(sub);
    this.subsByTopic.clear();
    return sub;
  }

  // ----- consuming -----------------------------------------------------------------------------

  async subscribe(
    conn: ConnectionState,
    requested: SubscribeOptions,
    sink: DeliverySink,
  ): Promise<BrokerConsumer> {
    this.assertRunning();
    // ActiveMQ destination options (`queue://q?consumer.exclusive=true`): dispatch/destination-options.ts.
    const options = requested.destination.includes('?') ? applyConsumerOptions(requested) : requested;
    if (conn.consumers.has(options.consumerId)) {
      throw new InvalidArgumentError(`consumer id ${options.consumerId} already in use on this connection`);
    }
    // JMS message selector (selector/): an invalid one is refused with INVALID_SELECTOR, where and why.
    const selector = MessageSelector.of(options.selector);
    if (selector !== null && options.browse === true) {
      throw new InvalidArgumentError(
        'a selector on a queue browser is not supported by Keel yet',
        'NOT_SUPPORTED',
      );
    }
    if (!Number.isInteger(options.prefetch) || options.prefetch < 0) {
      throw new InvalidArgumentError(`prefetch must be a non-negative integer (got ${options.prefetch})`);
    }
    const dest = parseDestination(options.destination);
    // Consuming, browsing and durable subscriptions need the read right (ActiveMQ AuthorizationBroker.addConsumer).
    this.authorize(conn, 'read', dest);
    this.authorizeCreate(conn, dest);
    if (options.browse === true) return this.browse(conn, dest, options, sink);
    const args: ConstructorParameters<typeof BrokerConsumer> = [
      options.consumerId,
      options.priority ?? 0,
      options.prefetch,
      options.ackOnDelivery === true,
      conn,
      (d) => {
        conn.messagesOut += 1;
        this.counters.countOut(d.message.destination);
        sink(d);
      },
      options.noLocal ? conn.id : undefined,
    ];
    const consumer = options.accept
      ? new FilteringConsumer(options.accept, ...args)
      : new BrokerConsumer(...args);
    consumer.exclusive = options.exclusive === true;
    // A queue's consumer is given only what it matches; a topic's subscription filters at publish.
    if (!isTopicType(dest.type)) consumer.selector = selector;
    if (isTopicType(dest.type)) {
      await this.subscribeTopic(conn, dest, options, consumer);
    } else if (isWildcard(dest.name)) {
      this.wildcardQueueConsumers.add({ pattern: dest.name, consumer });
      for (const rec of this.queues.values()) {
        if (rec.type === 'queue' && matchesWildcard(dest.name, rec.name)) consumer.attach(rec.queue);
      }
    } else {
      const rec = await this.ensureQueue(dest, dest.type === 'temp-queue' ? conn.id : null);
      if (dest.type === 'temp-queue' && rec.ownerConnection === conn.id)
        conn.tempDestinations.add(formatDestination(dest));
      consumer.attach(rec.queue);
    }
    conn.consumers.set(consumer.id, consumer);
    this.emit('consumer:add', { connection: conn, consumer, destination: options.destination });
    return consumer;
  }

  /** SubscribeOptions.browse: a QueueBrowser over a snapshot of the queue, taken now. */
  private async browse(
    conn: ConnectionState,
    dest: Destination,
    options: SubscribeOptions,
    sink: DeliverySink,
  ): Promise<BrokerConsumer> {
    if (
      (dest.type !== 'queue' && dest.type !== 'temp-queue') ||
      isWildcard(dest.name) ||
      options.durableName
    ) {
      throw new InvalidArgumentError(
        `only a queue can be browsed, not ${options.destination}${options.durableName ? ' (durable)' : ''}`,
      );
    }
    const key = formatDestination(dest);
    // A queue is created on first use (ActiveMQ); a temporary one only by its owner.
    const queue = (dest.type === 'queue' ? await this.ensureQueue(dest) : this.queues.get(key))?.queue;
    const memory = queue ? queue.waitingEntries() : [];
    if (queue) {
      for (const c of queue.consumerList) {
        for (const ref of (c as BrokerConsumer).inflight.values())
          if (ref.queue === queue) memory.push(ref.entry);
      }
      // Acknowledged inside a transaction not committed yet: still on the queue.
      for (const other of this.connections.values())
        for (const tx of other.transactions.values())
          for (const ref of tx.acks) if (ref.queue === queue) memory.push(ref.entry);
    }
    const browser = new QueueBrowser(
      options.consumerId,
      options.prefetch,
      options.ackOnDelivery === true,
      conn,
      (d) => {
        if (!d.browseEnd) conn.messagesOut += 1;
        sink(d);
      },
      {
        destination: key,
        memory,
        maxId: this.ids!.last,
        page: queue?.isSpilled ? (cursor, limit) => queue.pageStored(cursor, limit) : null,
        toEntry: (row) => this.entryFromStored(row),
      },
      { clock: this.clock, logger: this.logger },
    );
    conn.consumers.set(browser.id, browser);
    this.emit('consumer:add', { connection: conn, consumer: browser, destination: options.destination });
    browser.wake();
    return browser;
  }

  private async subscribeTopic(
    conn: ConnectionState,
    dest: Destination,
    options: SubscribeOptions,
    consumer: BrokerConsumer,
  ): Promise<void> {
    if (!isWildcard(dest.name)) await this.ensureTopic(dest, dest.type === 'temp-topic' ? conn.id : null);
    if (dest.type === 'temp-topic') conn.tempDestinations.add(formatDestination(dest));
    if (options.durableName) {
      if (dest.type !== 'topic') throw new InvalidArgumentError('durable subscriptions need a topic');
      if (!conn.info.clientId) {
        throw new InvalidArgumentError('a durable subscription needs a client id on the connection');
      }
      const key = durableKey(conn.clientId, options.durableName);
      let sub = this.durables.get(key);
      const selectorText = MessageSelector.of(options.selector)?.text ?? null;
      if (sub && (sub.pattern !== dest.name || (sub.durable!.selector ?? null) !== selectorText)) {
        // ActiveMQ: subscribing with another topic or selector replaces the subscription.
        if (sub.consumer)
          throw new InvalidArgumentError(`durable subscription ${options.durableName} is in use`);
        await this.deleteDurable(sub);
        sub = undefined;
      }
      if (!sub) {
        const topicRec = await this.ensureTopic(dest);
        const rec = await this.store.ensureDurableSubscription({
          clientId: conn.clientId,
          name: options.durableName,
          destId: topicRec.destId!,
          selector: selectorText,
          noLocal: options.noLocal === true,
        });
        sub = this.durables.get(key) ?? this.addDurable(rec, dest.name);
      }
      if (sub.consumer && !sub.consumer.closed) {
        throw new InvalidArgumentError(
          `durable subscription ${options.durableName} already has an active consumer`,
        );
      }
      sub.consumer = consumer;
      sub.connectionId = conn.id;
      consumer.attach(sub.queue);
      return;
    }
    const sub: Subscription = {
      key: `${conn.id}/${consumer.id}`,
      pattern: dest.name,
      queue: new MessageQueue(`subscriber://${conn.id}/${consumer.id}`, this, null, {
        memoryWindow: this.memoryWindow,
      }),
      durable: null,
      consumer,
      connectionId: conn.id,
      noLocal: options.noLocal === true,
      selector: MessageSelector.of(options.selector),
    };
    this.subscriptions.add(sub);
    this.subsByTopic.clear();
    consumer.attach(sub.queue);
  }

  consumer(conn: ConnectionState, consumerId: string): BrokerConsumer {
    const c = conn.consumers.get(consumerId);
    if (!c) throw new InvalidArgumentError(`unknown consumer ${consumerId}`, 'UNKNOWN_CONSUMER');
    return c;
  }

  unsubscribe(conn: ConnectionState, consumerId: string): void {
    this.closeConsumer(conn, this.consumer(conn, consumerId), true);
  }

  private closeConsumer(conn: ConnectionState, consumer: BrokerConsumer, redeliver: boolean): void {
    const refs = consumer.detach();
    conn.consumers.delete(consumer.id);
    for (const w of this.wildcardQueueConsumers)
      if (w.consumer === consumer) this.wildcardQueueConsumers.delete(w);
    for (const ref of refs) {
      if (redeliver) ref.queue.redeliver(ref.entry, 'consumer closed');
      else ref.queue.unconsumed(ref.entry, true);
    }
    for (const s of this.subscriptions) {
      if (s.consumer !== consumer) continue;
      if (s.durable) {
        s.consumer = null;
        s.connectionId = null;
      } else {
        s.queue.close();
        this.subscriptions.delete(s);
        this.subsByTopic.clear();
      }
    }
    this.emit('consumer:remove', { connection: conn, consumer, destination: consumer.queues[0]?.key ?? '' });
  }

  /**
   * Acknowledge. Individual: exactly these messages. Cumulative (JMS CLIENT_ACKNOWLEDGE, STOMP
   * ack:client): every message delivered to this consumer up to and including each id. Inside a
   * transaction the acks take effect at commit. Resolves after the removal is committed.
   */
  async ack(
    conn: ConnectionState,
    consumerId: string,
    messageIds: string[],
    options: { cumulative?: boolean; txId?: string } = {},
  ): Promise<void> {
    const removals = this.acknowledge(conn, consumerId, messageIds, options);
    // Resolves once the removals committed; a failed round does not fail the ack, it is retried.
    await Promise.all(removals);
  }

  /**
   * An ack nobody waits on (a STOMP ACK without receipt): the same checks, thrown at once, and the
   * same removals, without a promise per ack kept until their commit round — with slow rounds those
   * add up to a few hundred bytes per acknowledged message.
   */
  ackOneWay(
    conn: ConnectionState,
    consumerId: string,
    messageIds: string[],
    options: { cumulative?: boolean; txId?: string } = {},
  ): void {
    this.acknowledge(conn, consumerId, messageIds, options);
  }

  /** Take the acknowledged messages from the consumer and start their removals. */
  private acknowledge(
    conn: ConnectionState,
    consumerId: string,
    messageIds: string[],
    options: { cumulative?: boolean; txId?: string },
  ): Promise<void>[] {
    const consumer = this.consumer(conn, consumerId);
    const refs = this.takeInflight(consumer, messageIds, options.cumulative === true);
    consumer.addCredit(refs.length);
    if (options.txId !== undefined) {
      this.transaction(conn, options.txId).acks.push(...refs);
      return [];
    }
    return refs.map((ref) => ref.queue.acknowledge(ref.entry));
  }

  /** Negative acknowledgement: redeliver (after the redelivery delay) or dead-letter. */
  nack(conn: ConnectionState, consumerId: string, messageIds: string[]): void {
    const consumer = this.consumer(conn, consumerId);
    const refs = this.takeInflight(consumer, messageIds, false);
    for (const ref of refs) ref.queue.redeliver(ref.entry, 'negative acknowledgement');
    consumer.addCredit(refs.length);
  }

  private takeInflight(consumer: BrokerConsumer, messageIds: string[], cumulative: boolean): InflightRef[] {
    if (!Array.isArray(messageIds)) throw new InvalidArgumentError('messageIds must be a list');
    const out: InflightRef[] = [];
    for (const raw of messageIds) {
      const id = parseMessageId(raw);
      if (Number.isNaN(id)) throw new InvalidArgumentError(`invalid message id ${JSON.stringify(raw)}`);
      for (const ref of consumer.select(id, cumulative)) {
        consumer.inflight.delete(ref.entry.id);
        out.push(ref);
      }
    }
    return out;
  }

  /**
   * Acknowledgements replayed by a failover client: the messages it acknowledged on the old master,
   * whose removal may have died with it. Any of them still waiting here is removed, so it is not
   * delivered again (to this or another consumer). Returns how many were removed.
   */
  ackReplay(
    conn: ConnectionState,
    request: {
      destination: string;
      durableName?: string;
      messageIds: string[];
      /** Producer id and sequence of each acknowledged message that has them (resends). */
      producerSeqs?: { producerId: string; producerSeq: number }[];
    },
  ): { removed: number } {
    this.assertRunning();
    let queue: MessageQueue | undefined;
    if (request.durableName) {
      queue = this.durables.get(durableKey(conn.clientId, request.durableName))?.queue;
    } else {
      const dest = parseDestination(request.destination);
      if (!isTopicType(dest.type)) queue = this.queues.get(formatDestination(dest))?.queue;
    }
    let removed = 0;
    for (const key of (request.producerSeqs ?? []).slice(0, 100_000)) {
      const held = this.resendClaims.consumed(key);
      if (!held?.queue.takePending(held.entry.id)) continue;
      held.queue.stats.dequeued += 1;
      void held.queue.forget(held.entry);
      removed += 1;
    }
    if (!queue) return { removed };
    for (const raw of request.messageIds.slice(0, 100_000)) {
      const id = parseMessageId(raw);
      if (Number.isNaN(id)) continue;
      const entry = queue.takePending(id);
      if (!entry) {
        // Not in memory: a recovered row past the pages read so far is removed when paged in.
        queue.noteReplayedAck(id);
        continue;
      }
      queue.stats.dequeued += 1;
      void queue.forget(entry);
      removed += 1;
    }
    if (removed > 0)
      this.logger.info(
        { queue: queue.key, removed },
        'replayed acknowledgements removed redelivered messages',
      );
    return { removed };
  }

  // ----- transactions --------------------------------------------------------------------------

  begin(conn: ConnectionState, txId: string): void {
    this.assertRunning();
    if (typeof txId !== 'string' || txId.length === 0)
      throw new InvalidArgumentError('transaction id missing');
    if (conn.transactions.has(txId)) throw new InvalidArgumentError(`transaction ${txId} already begun`);
    conn.transactions.set(txId, { id: txId, sends: [], acks: [] });
  }

  private transaction(conn: ConnectionState, txId: string): Transaction {
    const tx = conn.transactions.get(txId);
    if (!tx) throw new InvalidArgumentError(`unknown transaction ${txId}`, 'UNKNOWN_TRANSACTION');
    return tx;
  }

  /** Commit: every send and ack of the transaction in one store transaction, then dispatch. */
  async commit(conn: ConnectionState, txId: string): Promise<void> {
    this.assertRunning();
    if (this.suspended) await this.whileSuspended();
    const tx = this.transaction(conn, txId);
    conn.transactions.delete(txId);
    const targets: RouteTarget[] = [];
    const fresh: Message[] = [];
    /** Scheduled sends (AMQ_SCHEDULED_*): ActiveMQ stores their jobs at commit, drops them at rollback. */
    const jobs: ScheduleRecord[] = [];
    for (const message of tx.sends) {
      if (await this.checkDuplicate(message)) continue;
      fresh.push(message);
    }
    for (const message of fresh) {
      const schedule = this.scheduler.parse(message);
      if (schedule !== null) {
        jobs.push(this.scheduler.job(message, schedule));
        continue;
      }
      const dest = parseDestination(message.destination);
      // A composite or virtual-topic send in a transaction: its copies commit with the rest.
      targets.push(...(await this.routeTargets(conn, message, dest, Number(message.messageId))));
    }
    const committed = this.writer!.write((b) => {
      this.writeTargets(b, targets);
      for (const job of jobs) b.schedules.push({ op: 'insert', schedule: job });
      for (const ref of tx.acks) ref.queue.removeOp(b, ref.entry);
      b.txOutcomes.push(txId);
    });
    for (const m of fresh) {
      if (m.producerId !== undefined && m.producerSeq !== undefined) {
        this.producers.set(m.producerId, { seq: m.producerSeq, done: committed });
      }
    }
    for (const ref of tx.acks) ref.queue.trackRemoval(ref.entry.id, committed);
    try {
      await committed;
    } catch (err) {
      // Nothing of the transaction took effect: its acked messages come back.
      for (const ref of tx.acks) ref.queue.redeliver(ref.entry, 'transaction commit failed');
      throw err;
    }
    for (const ref of tx.acks) {
      ref.queue.acknowledgedInTransaction(ref.entry);
    }
    for (const job of jobs) this.scheduler.stored(job);
    this.deliverTargets(targets);
  }

  rollback(conn: ConnectionState, txId: string): void {
    const tx = this.transaction(conn, txId);
    conn.transactions.delete(txId);
    this.rollbackTx(tx);
  }

  private rollbackTx(tx: Transaction): void {
    for (const ref of tx.acks) ref.queue.redeliver(ref.entry, 'transaction rolled back');
  }

  async txOutcome(txId: string): Promise<'committed' | 'unknown'> {
    return (await this.store.txCommitted(txId)) ? 'committed' : 'unknown';
  }

  // ----- durable subscriptions -----------------------------------------------------------------

  async removeDurable(clientId: string, name: string): Promise<void> {
    const sub = this.durables.get(durableKey(clientId, name));
    if (!sub)
      throw new InvalidArgumentError(
        `no durable subscription ${name} for client ${clientId}`,
        'UNKNOWN_DESTINATION',
      );
    if (sub.consumer && !sub.consumer.closed)
      throw new InvalidArgumentError(`durable subscription ${name} is active`);
    await this.deleteDurable(sub);
  }

  private async deleteDurable(sub: Subscription): Promise<void> {
    await this.store.deleteDurableSubscription(sub.durable!.id);
    sub.queue.close();
    this.durables.delete(sub.key);
    this.subscriptions.delete(sub);
    this.subsByTopic.clear();
  }

  // ----- dead letters and expiry ---------------------------------------------------------------

  deadLetterQueueFor(queueKey: string): string {
    const o = this.deadLetterOptions;
    if (o.strategy === 'shared') return o.queueName;
    const i = queueKey.indexOf('://');
    return `${o.queuePrefix}${i >= 0 ? queueKey.slice(i + 3) : queueKey}`;
  }

  private isDeadLetterQueue(name: string): boolean {
    const o = this.deadLetterOptions;
    return name === o.queueName || name.startsWith(o.queuePrefix);
  }

  /** QueueHost: move an entry to its dead-letter queue, keeping the reason on the message. */
  deadLetter(queue: MessageQueue, entry: QueueEntry, reason: string): void {
    const expired = reason === 'expired';
    // Metrics (keel_messages_expired_total, keel_messages_dead_lettered_total), by the message's destination.
    if (expired) this.counters.countExpired(entry.message.destination);
    else this.counters.countDeadLettered(entry.message.destination);
    const source = queue.key;
    const sourceName = source.slice(source.indexOf('://') + 3);
    const drop =
      (expired && !this.deadLetterOptions.processExpired) ||
      !entry.message.persistent ||
      (source.startsWith('queue://') && this.isDeadLetterQueue(sourceName));
    const writer = this.writer;
    if (drop) {
      this.logger.debug({ queue: source, messageId: entry.id, reason }, 'message discarded');
      if (entry.stored && writer) {
        queue.trackRemoval(
          entry.id,
          writer.write((b) => queue.removeOp(b, entry)),
        );
      }
      return;
    }
    const dlqName = this.deadLetterQueueFor(
      source.startsWith('durable://') ? entry.message.destination : source,
    );
    const headers = {
      ...entry.message,
      destination: `queue://${dlqName}`,
      originalDestination: entry.message.originalDestination ?? entry.message.destination,
      dlqReason: reason,
      expiration: 0,
    };
    const moved: Message = headers;
    if (!writer) return;
    const fromDurable = source.startsWith('durable://');
    const newId = fromDurable || !entry.stored ? this.ids!.next() : entry.id;
    const dlqReady = this.ensureQueue({ type: 'queue', name: dlqName });
    const done = dlqReady.then((dlq) =>
      writer.write((b) => {
        const { body, ...h } = moved;
        const row = {
          id: newId,
          destId: dlq.destId!,
          priority: entry.priority,
          expiration: 0,
          deliveryCount: entry.deliveryCount,
          headers: h,
          body,
        };
        if (!entry.stored) b.inserts.push(row);
        else if (fromDurable) {
          b.inserts.push(row);
          queue.removeOp(b, entry);
        } else {
          b.moves.push({
            id: entry.id,
            destId: dlq.destId!,
            priority: entry.priority,
            headers: h,
            deliveryCount: entry.deliveryCount,
            expiration: 0,
          });
        }
      }),
    );
    // Registered now, so that a page or a sweep read before the move commits skips this message.
    if (entry.stored) queue.trackRemoval(entry.id, done);
    Promise.all([dlqReady, done])
      .then(([dlq]) => {
        dlq.queue.enqueue({ ...this.newEntry(newId, moved, true), deliveryCount: entry.deliveryCount });
        this.logger.info({ from: source, to: dlqName, messageId: entry.id, reason }, 'message dead-lettered');
      })
      .catch((err) =>
        this.logger.warn({ err: (err as Error).message, messageId: entry.id }, 'dead-lettering failed'),
      );
  }

  /**
   * Expiry sweep (scheduled on the master): expired messages waiting in memory, and expired queue
   * messages that sit in the store only (a spilled backlog), go to the dead-letter queue or away
   * (DeadLetterOptions.processExpired). Returns how many were handled.
   */
  async sweepExpired(limit = 1000): Promise<number> {
    if (!this.running) return 0;
    const now = this.clock.now();
    let n = 0;
    const all = [...this.queues.values()]
      .map((r) => r.queue)
      .concat([...this.subscriptions].map((s) => s.queue));
    for (const q of all) {
      for (const e of [...q.pending.values()]) {
        if (e.expiration > 0 && now >= e.expiration && q.takePending(e.id)) {
          q.stats.expired += 1;
          this.deadLetter(q, e, 'expired');
          n += 1;
        }
      }
    }
    const byDest = new Map<number, QueueRecord>();
    for (const r of this.queues.values()) if (r.destId !== null) byDest.set(r.destId, r);
    for (const row of await this.store.expiredMessages(now, limit)) {
      const rec = byDest.get(row.destId);
      if (!rec || rec.queue.holds(row.id)) continue; // topic rows, or in flight right now
      rec.queue.spilledRemoved();
      rec.queue.stats.expired += 1;
      this.deadLetter(rec.queue, this.entryFromStored(row), 'expired');
      n += 1;
    }
    return n;
  }

  async cleanupTopicMessages(): Promise<number> {
    if (!this.running) return 0;
    return this.store.cleanupTopicMessages();
  }

  /**
   * Forget producers not heard from for `retentionMs`: their rows in the store, and sooner (after
   * `memoryMs`) their entries here (a later send looks its sequence up in the store again), and the
   * network forwards the store recorded longer ago than `retentionMs`.
   */
  async pruneProducers(retentionMs: number, memoryMs = Math.min(retentionMs, 5 * 60_000)): Promise<number> {
    if (!this.running) return 0;
    const now = this.clock.now();
    for (const [pid, state] of this.producers) {
      if (state.at === undefined) state.at = now;
      else if (now - state.at > memoryMs) this.producers.delete(pid);
    }
    return this.store.pruneProducers(retentionMs);
  }

  // ----- inspection and administration ---------------------------------------------------------

  queueInfo(rec: QueueRecord): QueueInfo {
    const q = rec.queue;
    const oldest = q.oldestTimestamp();
    return {
      name: rec.name,
      temporary: rec.type === 'temp-queue',
      depth: q.depth,
      enqueued: q.stats.enqueued,
      dequeued: q.stats.dequeued,
      expired: q.stats.expired,
      deadLettered: q.stats.deadLettered,
      consumers: q.consumerCount,
      inflight: q.inflight,
      inMemory: q.inMemory,
      oldestMessageAgeMs: oldest === null ? null : Math.max(0, this.clock.now() - oldest),
    };
  }

  listQueues(): QueueInfo[] {
    return [...this.queues.values()]
      .map((r) => this.queueInfo(r))
      .sort((a, b) => a.name.localeCompare(b.name));
  }

  getQueue(name: string): QueueInfo | null {
    const rec = this.queues.get(`queue://${name}`) ?? this.queues.get(`temp-queue://${name}`);
    return rec ? this.queueInfo(rec) : null;
  }

  private queueRecord(name: string): QueueRecord {
    const rec = this.queues.get(`queue://${name}`) ?? this.queues.get(`temp-queue://${name}`);
    if (!rec) throw new InvalidArgumentError(`unknown queue ${name}`, 'UNKNOWN_DESTINATION');
    return rec;
  }

  async browseQueue(name: string, limit: number, offset = 0): Promise<BrowsedMessage[]> {
    const rec = this.queueRecord(name);
    const entries = await rec.queue.browse(limit, offset);
    return entries.map((e) => ({
      id: String(e.id),
      message: e.message,
      deliveryCount: e.deliveryCount,
      redelivered: e.redelivered || e.deliveryCount > 0,
    }));
  }

  async purgeQueue(name: string): Promise<number> {
    return this.queueRecord(name).queue.purge();
  }

  async deleteQueue(name: string): Promise<void> {
    const rec = this.queueRecord(name);
    if (rec.queue.consumerCount > 0) {
      throw new InvalidArgumentError(
        `queue ${name} has ${rec.queue.consumerCount} consumers`,
        'DESTINATION_IN_USE',
      );
    }
    await rec.queue.purge();
    rec.queue.close();
    this.queues.delete(formatDestination({ type: rec.type, name: rec.name }));
    this.router.queuesChanged();
    if (rec.destId !== null) await this.store.deleteDestination(rec.destId);
  }

  /** Move a pending message to another queue (admin move, or retry of a DLQ message). */
  async moveMessage(fromQueue: string, messageId: string, toQueue: string | null): Promise<string> {
    const rec = this.queueRecord(fromQueue);
    const id = parseMessageId(messageId);
    if (Number.isNaN(id)) throw new InvalidArgumentError(`invalid message id ${messageId}`);
    let entry = rec.queue.takePending(id);
    if (!entry && rec.destId !== null) {
      const row = await this.store.getMessage(id);
      if (row && row.destId === rec.destId) {
        entry = this.entryFromStored(row);
        rec.queue.spilledRemoved();
      }
    }
    if (!entry)
      throw new InvalidArgumentError(
        `message ${messageId} is not pending on ${fromQueue}`,
        'UNKNOWN_MESSAGE',
      );
    const target = toQueue ?? entry.message.originalDestination?.replace(/^queue:\/\//, '') ?? null;
    if (!target || entry.message.originalDestination?.startsWith('topic://')) {
      rec.queue.enqueue(entry);
      throw new InvalidArgumentError(`message ${messageId} has no original queue to retry to`);
    }
    const dest = await this.ensureQueue({ type: 'queue', name: target });
    const { dlqReason: _r, originalDestination: _o, ...rest } = entry.message;
    const moved: Message =
      toQueue === null
        ? { ...rest, destination: `queue://${target}` }
        : { ...entry.message, destination: `queue://${target}` };
    const moveEntry = entry;
    if (entry.stored && dest.destId !== null && this.writer) {
      const { body: _b, ...headers } = moved;
      await this.writer.write((b) =>
        b.moves.push({
          id: moveEntry.id,
          destId: dest.destId!,
          priority: moveEntry.priority,
          headers,
          deliveryCount: toQueue === null ? 0 : moveEntry.deliveryCount,
        }),
      );
    }
    dest.queue.enqueue({
      ...entry,
      message: moved,
      deliveryCount: toQueue === null ? 0 : entry.deliveryCount,
      redelivered: false,
    });
    return String(entry.id);
  }

  listTopics(): TopicInfo[] {
    return [...this.topics.values()]
      .map((t) => {
        const subs = this.matchingSubscriptions(t.name);
        return {
          name: t.name,
          temporary: t.type === 'temp-topic',
          enqueued: t.enqueued,
          subscribers: subs.filter((s) => s.consumer && !s.consumer.closed).length,
          durableSubscriptions: subs.filter((s) => s.durable).length,
        };
      })
      .sort((a, b) => a.name.localeCompare(b.name));
  }

  listDurables(): DurableInfo[] {
    return [...this.durables.values()].map((s) => ({
      clientId: s.durable!.clientId,
      name: s.durable!.name,
      topic: s.pattern,
      active: s.consumer !== null && !s.consumer.closed,
      pending: s.queue.depth,
      inflight: s.queue.inflight,
    }));
  }

  listConnections(): ConnectionSummary[] {
    return [...this.connections.values()].map((c) => ({
      id: c.id,
      clientId: c.clientId,
      protocol: c.info.protocol,
      username: c.info.username ?? null,
      remoteAddress: c.info.remoteAddress ?? null,
      connectedAt: new Date(c.connectedAt).toISOString(),
      consumers: c.consumers.size,
      messagesIn: c.messagesIn,
      messagesOut: c.messagesOut,
    }));
  }

  listConsumers(): ConsumerSummary[] {
    const out: ConsumerSummary[] = [];
    for (const c of this.connections.values()) {
      for (const k of c.consumers.values()) {
        out.push({
          connectionId: c.id,
          clientId: c.clientId,
          consumerId: k.id,
          destinations: k.queues.map((q) => q.key),
          credit: k.credit,
          inflight: k.inflight.size,
          delivered: k.delivered,
        });
      }
    }
    return out;
  }

  /** Send from inside the broker (admin API, network bridges): a connection of its own. */
  private internal: ConnectionState | null = null;
  async sendInternal(message: Message): Promise<SendResult> {
    if (!this.internal || this.internal.closed)
      this.internal = this.openConnection({ protocol: 'internal', clientId: `${this.nodeName}-internal` });
    return this.send(this.internal, message);
  }

  /** memoryUsage of the destinations: bytes of the messages their queues hold in memory. */
  private heldInMemory(): number {
    let n = 0;
    for (const rec of this.queues.values()) n += rec.queue.memoryBytes;
    for (const s of this.subscriptions) n += s.queue.memoryBytes;
    for (const s of this.durables.values()) if (!this.subscriptions.has(s)) n += s.queue.memoryBytes;
    return n;
  }

  private assertRunning(): void {
    if (!this.running) throw new NotMasterError(`broker ${this.nodeName} is not serving`);
  }
}

function durableKey(clientId: string, name: string): string {
  return `${clientId}:${name}`;
}
