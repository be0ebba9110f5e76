import { Broker, type LeaseState, type Locker, type LockHolder } from '@keel/core';
import { FileLocker } from '@keel/lock-file';
import { type BridgeStatus, type NetworkService, startNetwork } from '@keel/network';
import { type BrokerDescription, type KeelError, NotMasterError } from '@keel/protocol';
import {
  ensureLockDatabase,
  type HostSelectionStatus,
  HostSelector,
  LeaseLocker,
  migrate,
  PgStore,
  RowLocker,
} from '@keel/store-pg';
import cron, { type ScheduledTask } from 'node-cron';
import { Pool } from 'pg';
import { type AdminHandle, startAdmin } from './admin-wiring';
import { ClientLogin } from './client-login';
import type { NodeConfig } from './config';
import { ConnectionLimiter } from './limits/connection-limiter';
import { nativeListenerLimits, stompListenerLimits } from './limits/limits-config';
import { startStoreUsageSampler } from './limits/store-usage-sampler';
import { type NodeLogger, setLoggerRole } from './logger';
import { NativeListener } from './native/native-listener';
import { NodeRegistry } from './node-registry';
import { PasswordCheckGate } from './password-check-gate';
import {
  SHARED_STORE_EXIT_PREFIX,
  SharedStorePostgres,
  stopLeftoverPostmaster,
} from './shared-store-postgres';
import { type StepDownCause, stepDownError } from './step-down';
import { StompListener } from './stomp/stomp-listener';
import { TlsContext } from './tls/tls-context';

export type NodeRole = 'starting' | 'slave' | 'recovering' | 'master' | 'fenced' | 'stopping' | 'stopped';

export const KEEL_VERSION = '0.1.0';
const PLANNED_HANDOVER = 'planned hand-over';
const FENCED_PREFIX = 'fenced: ';

export interface RunningNode {
  readonly name: string;
  readonly role: NodeRole;
  readonly epoch: number;
  readonly broker: Broker | null;
  endpoints(): NodeEndpoints;
  /** Re-read the TLS PEM files (SIGHUP); open connections keep theirs. Throws CONFIG_INVALID on a bad file. */
  reloadTls(): { servers: number } | null;
  /** Planned hand-over: stop taking work, finish in-flight commits, pass the lock on. */
  handover(): Promise<void>;
  stop(): Promise<void>;
}

/** The node's listeners as URLs; null: not listening (a slave) or not configured. */
export interface NodeEndpoints {
  native: string | null;
  stomp: string | null;
  /** `ssl://` (native over TLS). */
  ssl: string | null;
  stompSsl: string | null;
  admin: string;
}

interface ClientListener {
  start(): Promise<{ port: number }>;
  /** With `reason`, every client gets an ERROR with its code before the close. */
  stop(reason?: KeelError): Promise<void>;
}

export interface Takeover {
  at: Date;
  epoch: number;
  reason: string;
}

function urlHost(host: string): string {
  return host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host;
}

/**
 * One broker node: waits for the master lock, takes over (epoch bump), recovers, serves, and goes
 * back to waiting when it loses the lock or is fenced (DESIGN.md, "Master/slave, precisely").
 * The admin API runs in every role.
 */
export class KeelNode implements RunningNode {
  readonly name: string;
  private roleValue: NodeRole = 'starting';
  private readonly log: NodeLogger;
  /** Client logins (throttled, constant-time for unknown users) and the authorization map (#23.2). */
  private readonly login: ClientLogin;
  /** The node's bound on concurrent password checks: client logins and the admin API's Basic auth. */
  readonly passwordGate = new PasswordCheckGate();
  private readonly store: PgStore;
  private locker: Locker | null = null;
  private brokerValue: Broker | null = null;
  private listeners: ClientListener[] = [];
  private nativePort: number | null = null;
  private stompPort: number | null = null;
  private sslPort: number | null = null;
  private stompSslPort: number | null = null;
  /** The listeners' TLS (tls/tls-context.ts); null without tls settings. */
  readonly tlsContext: TlsContext | null;
  private admin: AdminHandle | null = null;
  /** Network connectors and the consumer advisory publisher; run while this node is master. */
  private network: NetworkService | null = null;
  private readonly pool: Pool;
  private readonly adminHosts: HostSelector;
  readonly registry: NodeRegistry;
  private jobs: ScheduledTask[] = [];
  private announceTimer: NodeJS.Timeout | null = null;
  private abort = new AbortController();
  private loop: Promise<void> | null = null;
  private stopping = false;
  private lost: ((reason: string) => void) | null = null;
  private handoverCooldownUntil = 0;
  /** Shared-storage mode b (`storeDir`): this node's Postgres on the shared data directory. */
  readonly sharedStore: SharedStorePostgres | null;
  readonly startedAt = new Date();
  readonly takeoverLog: Takeover[] = [];
  private lockDb = '';

  constructor(
    readonly config: NodeConfig,
    logger: NodeLogger,
  ) {
    this.name = config.name;
    this.log = logger;
    this.login = new ClientLogin({
      users: config.users,
      gate: this.passwordGate,
      logger: logger.child({ component: 'login' }),
    });
    // Bad PEM files fail the start here (CONFIG_INVALID), before anything listens.
    this.tlsContext = config.tls ? new TlsContext(config.tls, logger.child({ component: 'tls' })) : null;
    this.sharedStore = config.storeDir
      ? new SharedStorePostgres({
          storeDir: config.storeDir,
          lockDir: config.fileLocker.directory,
          node: config.name,
          logger: logger.child({ component: 'shared-store' }),
        })
      : null;
    // Mode b: the store is the local Postgres this node runs while it holds the lock.
    const db = this.sharedStore?.url ?? config.db;
    this.store = new PgStore({
      connectionString: db,
      cluster: config.cluster,
      logger: logger.child({ component: 'store' }),
      // A master frozen mid-write holds its locks at most this long (DESIGN.md, "the frozen write").
      idleInTransactionTimeoutMs: config.lock.leaseMs,
      // Every session of this node is recognisable in pg_stat_activity (operators, drills).
      applicationName: `keel-store:${config.name}`.slice(0, 63),
    });
    this.adminHosts = new HostSelector(db, {
      name: 'admin',
      defaultTarget: 'read-write',
      logger: logger.child({ component: 'admin-pool' }),
    });
    this.pool = new Pool(
      this.adminHosts.poolOptions({ max: 3, application_name: `keel-admin:${config.name}`.slice(0, 63) }),
    );
    this.pool.on('error', (err) => this.log.warn({ err: err.message }, 'admin pool error'));
    this.registry = new NodeRegistry(this.pool, config.cluster, config.name);
  }

  get role(): NodeRole {
    return this.roleValue;
  }

  get epoch(): number {
    return this.brokerValue?.epoch ?? this.store.epoch;
  }

  get broker(): Broker | null {
    return this.roleValue === 'master' ? this.brokerValue : null;
  }

  /** The epoch this node last served at (its last takeover); null when it never was master. */
  get nodeEpoch(): number | null {
    const e = this.store.epoch;
    return e > 0 ? e : null;
  }

  /**
   * The cluster's current epoch: this node's own while it serves, else the cluster row's, read
   * through the store (a slave's own epoch is stale once another node took over; issue #18.3).
   */
  clusterEpoch(): Promise<number> {
    if (this.roleValue === 'master') return Promise.resolve(this.epoch);
    // Mode b: a slave has no Postgres to ask; the lock file records the holder's epoch.
    if (this.sharedStore) return this.lockHolderRecord().then((h) => h?.epoch ?? 0);
    return this.store.readEpoch();
  }

  get pgStore(): PgStore {
    return this.store;
  }

  get lockerKind(): string {
    return this.locker?.kind ?? this.config.locker;
  }

  /** Which Postgres host each pool uses (store, lock, admin), for /api/broker and `keel status`. */
  postgresHosts(): HostSelectionStatus[] {
    const lock = (this.locker as { hostSelection?: () => HostSelectionStatus } | null)?.hostSelection?.();
    return [this.store.hostSelection(), ...(lock ? [lock] : []), this.adminHosts.status()];
  }

  /** The holder as the lock records it (file locker); null for the Postgres lockers or when unknown. */
  lockHolderRecord(): Promise<LockHolder | null> {
    return this.locker?.holder?.().catch(() => null) ?? Promise.resolve(null);
  }

  /** The master's lease as the lock records it (lease locker, file locker with a lease); else null. */
  lockLease(): Promise<LeaseState | null> {
    return this.locker?.lease?.().catch(() => null) ?? Promise.resolve(null);
  }

  private setRole(role: NodeRole, details: Record<string, unknown> = {}): void {
    if (this.roleValue === role) return;
    const from = this.roleValue;
    this.roleValue = role;
    setLoggerRole(this.log, role);
    this.log.info({ role, from, epoch: this.epoch, ...details }, 'role changed');
    void this.announce();
  }

  endpoints(): NodeEndpoints {
    const h = urlHost(this.config.host);
    const url = (scheme: string, port: number | null) => (port !== null ? `${scheme}://${h}:${port}` : null);
    return {
      native: url('tcp', this.nativePort),
      stomp: url('stomp', this.stompPort),
      ssl: url('ssl', this.sslPort),
      stompSsl: url('stomp+ssl', this.stompSslPort),
      admin: `${this.config.tls?.adminHttps ? 'https' : 'http'}://${h}:${this.config.adminPort}`,
    };
  }

  /**
   * Client URLs this node announces (configured, or derived from its configured ports): `tcp://`,
   * and `ssl://` when that listener is configured (a TLS client takes only the ssl:// ones).
   */
  clientUrls(): string[] {
    if (this.config.advertisedUrls.length > 0) return this.config.advertisedUrls;
    const h = urlHost(this.config.host);
    const ssl =
      this.tlsContext && this.config.sslPort !== false ? (this.sslPort ?? this.config.sslPort) : null;
    return [`tcp://${h}:${this.nativePort ?? this.config.port}`, ...(ssl ? [`ssl://${h}:${ssl}`] : [])];
  }

  reloadTls(): { servers: number } | null {
    return this.tlsContext?.reload() ?? null;
  }

  async start(): Promise<void> {
    const { config, log } = this;
    // A bad lock directory fails the start before anything else (issue #19.5).
    const fileLocker = config.locker === 'file' ? this.makeFileLocker() : null;
    await fileLocker?.check();
    if (this.sharedStore) {
      // Mode b: no Postgres before the lock is held (the master migrates it); a store another lock
      // directory owns is refused now (CONFIG_INVALID), before waiting for the lock.
      this.sharedStore.claim();
    } else {
      const migrated = await migrate({ connectionString: config.db, logger: log });
      if (migrated.applied.length > 0) log.info({ applied: migrated.applied }, 'schema migrated');
      // The file locker needs no lock database: mastership comes from the lock file.
      this.lockDb = fileLocker ? '' : await this.prepareLockDatabase();
      await this.store.open();
    }
    this.locker = fileLocker ?? this.makeLocker();
    this.locker.onLost((reason) => {
      // Mode b: two postmasters must never run on the shared data directory, so the first thing a
      // node that lost the lock does is stop its Postgres (immediate shutdown), then step down.
      this.sharedStore?.stopNow(`lost the master lock: ${reason}`);
      this.lost?.(reason);
    });
    if (this.sharedStore) this.wireSharedStore(this.sharedStore, fileLocker);
    this.admin = await startAdmin(this, log);
    if (config.users.length === 0) {
      log.warn(
        {},
        'no users configured: every client is accepted (configure users with --user NAME:PASSWORD)',
      );
    }
    this.setRole('slave');
    this.announceTimer = setInterval(() => void this.announce(), 2000);
    this.announceTimer.unref();
    this.loop = this.run();
  }

  /**
   * The lock lives in its own database (DESIGN.md). Only when this server does not let us create
   * one (insufficient_privilege) does it fall back to the message database, with a warning: every
   * node of the cluster meets the same refusal, so they all agree on where the lock is.
   */
  private async prepareLockDatabase(): Promise<string> {
    const { config, log } = this;
    try {
      return await ensureLockDatabase(config.db, config.lockDb || undefined, log);
    } catch (err) {
      const cause = (err as { cause?: { code?: string } }).cause;
      if ((err as { code?: string }).code !== '42501' && cause?.code !== '42501') throw err;
      log.warn(
        { err: (err as Error).message },
        'cannot create the lock database: the lock lives in the message database, which holds back VACUUM of consumed messages (see docs/operations.md; create the lock database or use --locker lease)',
      );
      return config.db;
    }
  }

  private makeLocker(): Locker {
    const { config, log } = this;
    const common = {
      connectionString: this.lockDb,
      cluster: config.cluster,
      node: config.name,
      keepAliveMs: config.lock.keepAliveMs,
      leaseMs: config.lock.leaseMs,
      waitingPollMs: config.lock.waitingPollMs,
      logger: log.child({ component: 'locker' }),
    };
    return config.locker === 'lease' ? new LeaseLocker(common) : new RowLocker(common);
  }

  /** ActiveMQ's shared file system master/slave: a kernel lock on `<lock dir>/lock` (issue #19). */
  private makeFileLocker(): FileLocker {
    const { config, log } = this;
    return new FileLocker({
      ...config.fileLocker,
      node: config.name,
      cluster: config.cluster,
      logger: log.child({ component: 'locker' }),
    });
  }

  private async announce(): Promise<void> {
    if (this.roleValue === 'stopped') return;
    // Mode b: the registry lives in the master's Postgres; a slave has none to write to.
    if (this.sharedStore && !this.sharedStore.running) return;
    try {
      await this.registry.announce(this.roleValue, this.clientUrls(), this.admin?.url ?? null);
    } catch (err) {
      this.log.debug({ err: (err as Error).message }, 'node announce failed');
    }
  }

  /** The master/slave loop: wait for the lock, serve until it is lost, repeat. */
  private async run(): Promise<void> {
    const signal = this.abort.signal;
    while (!this.stopping) {
      try {
        const wait = this.handoverCooldownUntil - Date.now();
        if (wait > 0) await new Promise((r) => setTimeout(r, wait));
        await this.locker!.acquire(signal);
      } catch {
        if (this.stopping) return;
        continue;
      }
      if (this.stopping) break;
      const lost = new Promise<string>((resolve) => {
        this.lost = resolve;
      });
      try {
        await this.becomeMaster();
      } catch (err) {
        const code = (err as KeelError).code;
        const detail = `takeover failed: ${(err as Error).message}`;
        this.log.error({ err: (err as Error).message, code }, 'takeover failed');
        const storeDown = code === 'STORE_UNAVAILABLE' || code === 'STORE_ERROR';
        await this.stepDown('takeover failed', {
          error: stepDownError(this.name, { kind: storeDown ? 'store-unavailable' : 'not-master', detail }),
        });
        // Back to waiting on the lock, and said so: not `recovering` until the next takeover.
        this.setRole('slave', { reason: 'takeover failed' });
        await new Promise((r) => setTimeout(r, 500));
        continue;
      }
      const fenced = new Promise<string>((resolve) =>
        this.brokerValue?.once('fenced', (e) => resolve(`${FENCED_PREFIX}${e.message}`)),
      );
      let reason = await Promise.race([lost, fenced]);
      let cause: StepDownCause | null = null;
      // The lock session died but nobody may have taken over (Postgres restarting, a stall): keep
      // the clients, serve nothing, and take the lock back if the epoch is still ours. Not with
      // the file locker: its lock is lost only when another node may hold it (the lock file was
      // replaced or removed, or the lease overran), so the node stops serving at once.
      const fileLock = this.locker?.kind === 'file';
      while (
        !this.stopping &&
        !fileLock &&
        reason !== PLANNED_HANDOVER &&
        !reason.startsWith(FENCED_PREFIX)
      ) {
        const again = new Promise<string>((resolve) => {
          this.lost = resolve;
        });
        const outcome = await this.rideOutLockLoss(reason);
        if (outcome !== 'resumed') {
          cause = outcome;
          break;
        }
        reason = await Promise.race([again, fenced]);
      }
      this.lost = null;
      if (this.stopping) return;
      const planned = reason === PLANNED_HANDOVER;
      if (!planned) {
        this.log.warn({ reason }, 'stopped serving');
        this.setRole('fenced', { reason });
      }
      cause ??= planned
        ? { kind: 'not-master', detail: 'planned hand-over' }
        : reason.startsWith(FENCED_PREFIX)
          ? { kind: 'fenced', detail: reason.slice(FENCED_PREFIX.length) }
          : reason.startsWith(SHARED_STORE_EXIT_PREFIX)
            ? { kind: 'store-unavailable', detail: reason }
            : fileLock
              ? { kind: 'not-master', detail: `lost the master lock: ${reason}` }
              : { kind: 'store-unavailable', detail: reason };
      await this.stepDown(reason, { drain: planned, error: stepDownError(this.name, cause) });
      this.setRole('slave');
      const done = this.handoverDone;
      this.handoverDone = null;
      done?.();
    }
  }

  /** Mode b: a Postgres that dies under the master ends its mastership; fencing stops a dead holder's. */
  private wireSharedStore(shared: SharedStorePostgres, locker: FileLocker | null): void {
    shared.onUnexpectedExit((reason) => {
      // Step down and release the lock (after the cool-down another node may take it and run
      // crash recovery); no ride-out: without its Postgres this node cannot serve.
      this.handoverCooldownUntil = Date.now() + Math.max(2000, this.config.lock.leaseMs * 2);
      this.lost?.(reason);
    });
    // The file locker fences a stale holder on this host by SIGKILL of its pid; its postmaster
    // (which the parent-death signal should already have stopped) is stopped here for certain.
    locker?.addFenceHook(async () => {
      await stopLeftoverPostmaster(shared.dataDir, this.log.child({ component: 'shared-store' }));
    });
  }

  /** Mode b, once the lock is held: Postgres on the shared data directory (crash recovery), migrated. */
  private async startSharedStore(shared: SharedStorePostgres): Promise<void> {
    await shared.start();
    if (!this.locker?.held) {
      shared.stopNow('the master lock was lost while Postgres started');
      throw new NotMasterError(`${this.name} lost the master lock while its Postgres started`);
    }
    const migrated = await migrate({ connectionString: shared.url, logger: this.log });
    if (migrated.applied.length > 0) {
      this.log.info({ applied: migrated.applied }, 'schema migrated');
      await shared.checkpoint(); // the next takeover's crash recovery starts after the migrations
    }
    await this.store.open();
  }

  private async becomeMaster(): Promise<void> {
    const started = Date.now();
    if (this.sharedStore) await this.startSharedStore(this.sharedStore);
    // The previous holder first, then the role change: its announcement would take the admin
    // pool's one warm connection and leave this query a new one to open (measured in the slave's
    // log: 23–55 ms of a takeover before, 6–27 ms after).
    const previous = await this.registry.lockHolder().catch(() => null);
    this.setRole('recovering');
    const reason =
      previous && previous !== this.name ? `took over from ${previous}` : 'acquired the master lock';
    const epoch = await this.store.takeOver(this.name, reason);
    // The file locker keeps the epoch in its lock file too (the store's epoch fences the writes).
    await this.locker?.recordEpoch?.(epoch);
    this.takeoverLog.unshift({ at: new Date(), epoch, reason });
    const broker = new Broker({
      nodeName: this.name,
      store: this.store,
      logger: this.log.child({ component: 'broker' }),
      redelivery: this.config.redelivery,
      deadLetter:
        this.config.deadLetter.strategy === 'shared'
          ? {
              strategy: 'shared',
              queueName: this.config.deadLetter.deadLetterQueue,
              processExpired: this.config.deadLetter.processExpired,
            }
          : {
              strategy: 'individual',
              queuePrefix: this.config.deadLetter.queuePrefix,
              processExpired: this.config.deadLetter.processExpired,
            },
      memoryWindow: this.config.store.pageSize,
      recoveryHoldMs: this.config.lock.recoveryHoldMs,
      maxBatchMessages: this.config.store.maxBatchSize,
      concurrentStoreAndDispatchQueues: this.config.store.concurrentStoreAndDispatchQueues,
      concurrentStoreAndDispatchHoldMs: this.config.store.concurrentStoreAndDispatchHoldMs,
      // Resource limits (issue #23.3; limits/limits-config.ts).
      maxMessageSize: this.config.limits.maxMessageSize,
      memoryWindowBytes: this.config.limits.memoryWindowBytes,
      systemUsage: {
        memoryLimitBytes: this.config.limits.memoryUsage,
        storeLimitBytes: this.config.limits.storeUsage,
        sendFailIfNoSpace: this.config.limits.sendFailIfNoSpace,
        sendFailIfNoSpaceAfterTimeoutMs: this.config.limits.sendFailIfNoSpaceAfterTimeout,
      },
      slowConsumer: {
        maxSlowDurationMs: this.config.limits.maxSlowDuration,
        abortConnection: this.config.limits.abortSlowConsumerConnection,
      },
      onCommit: (s) => this.admin?.metrics?.observeCommit(s),
      scheduler: {
        timeZone: this.config.scheduler.timeZone,
        onFired: (lagMs) => this.admin?.metrics?.observeScheduledFiring(lagMs),
      },
      routing: {
        virtualTopics: this.config.virtualTopics ?? undefined,
        compositeDestinations: this.config.compositeDestinations,
      },
      authorization: this.login.authorizationMap(this.config),
    });
    broker.on('store:error', (err) =>
      this.log.warn({ code: err.code, err: err.message }, 'store unavailable'),
    );
    await broker.start();
    startStoreUsageSampler({
      broker,
      pool: this.pool,
      cluster: this.config.cluster,
      intervalMs: this.config.limits.storeUsageCheckIntervalMs,
      logger: this.log.child({ component: 'store-usage' }),
    });
    this.brokerValue = broker;
    this.admin?.attachBroker(broker);
    await this.openListeners(broker);
    this.network = startNetwork({
      broker,
      // A master/slave pair is one node of the network: brokerPath names clusters.
      localName: this.config.cluster,
      nodeName: this.name,
      // What multicast discovery announces (the listeners are open by now).
      advertiseUrls: this.clientUrls(),
      connectors: this.config.networkConnectors,
      logger: this.log.child({ component: 'network' }),
      // ssl:// peers: trust tls.ca and show this node's certificate (ActiveMQ's broker sslContext).
      ...(this.tlsContext ? { connectOptions: { tls: this.tlsContext.clientOptions() } } : {}),
    });
    this.setRole('master', { epoch, takeoverMs: Date.now() - started, reason });
    // Scheduled delivery fires on the master only; a due time passed during the takeover fires now.
    await broker.scheduler.start();
    // node-cron's first schedule costs ~100 ms: after serving has begun, not before.
    setImmediate(() => {
      if (this.brokerValue === broker && this.roleValue === 'master') this.scheduleJobs(broker);
    });
  }

  private authenticate = (username?: string, password?: string, remoteAddress?: string): Promise<boolean> =>
    this.login.check(username, password, remoteAddress);

  describe(): { broker: BrokerDescription; brokers: string[] } {
    return {
      broker: {
        name: this.name,
        cluster: this.config.cluster,
        role:
          this.roleValue === 'master'
            ? 'master'
            : this.roleValue === 'recovering'
              ? 'recovering'
              : this.roleValue === 'fenced'
                ? 'fenced'
                : 'slave',
        epoch: this.epoch,
        version: KEEL_VERSION,
      },
      brokers: this.knownBrokers,
    };
  }

  private knownBrokers: string[] = [];
  /** The node's client sockets against maximumConnections (new each time it serves). */
  private connectionLimiter = new ConnectionLimiter();

  private async openListeners(broker: Broker): Promise<void> {
    const { config } = this;
    try {
      const nodes = await this.registry.list();
      this.knownBrokers = [...new Set([...this.clientUrls(), ...nodes.flatMap((n) => n.clientUrls)])];
    } catch {
      this.knownBrokers = this.clientUrls();
    }
    // maximumConnections counts every client socket of this node, whichever listener took it.
    this.connectionLimiter = new ConnectionLimiter({
      maximumConnections: config.limits.maximumConnections,
      maximumConnectionsPerAddress: config.limits.maximumConnectionsPerAddress,
    });
    const native = new NativeListener({
      ...nativeListenerLimits(config.limits, this.connectionLimiter),
      broker,
      host: config.host,
      port: config.port,
      logger: this.log.child({ component: 'native' }),
      maxFrameSize: config.maxFrameSize,
      heartbeatMs: config.heartbeatMs,
      authenticate: this.authenticate,
      describe: () => this.describe(),
      allowLinkStealing: config.allowLinkStealing,
    });
    const { port } = await native.start();
    this.nativePort = port;
    this.listeners.push(native);
    if (config.stompPort !== false) {
      const stomp = new StompListener({
        ...stompListenerLimits(config.limits, this.connectionLimiter),
        broker,
        host: config.host,
        port: config.stompPort,
        logger: this.log.child({ component: 'stomp' }),
        maxFrameSize: config.maxFrameSize,
        heartbeatMs: config.heartbeatMs,
        authenticate: this.authenticate,
        serverName: `Keel/${KEEL_VERSION}`,
        allowLinkStealing: config.allowLinkStealing,
      });
      const s = await stomp.start();
      this.stompPort = s.port;
      this.listeners.push(stomp);
    }
    await this.openTlsListeners(broker);
    this.log.info({ ...this.endpoints() }, 'listening for clients');
  }

  /** `ssl://` and `stomp+ssl://`: the same listeners over a TLS server (tls/tls-context.ts). */
  private async openTlsListeners(broker: Broker): Promise<void> {
    const { config, tlsContext } = this;
    if (!tlsContext) return;
    const createServer = tlsContext.createServer.bind(tlsContext);
    if (config.sslPort !== false) {
      const ssl = new NativeListener({
        ...nativeListenerLimits(config.limits, this.connectionLimiter),
        broker,
        host: config.host,
        port: config.sslPort,
        logger: this.log.child({ component: 'native-ssl' }),
        maxFrameSize: config.maxFrameSize,
        heartbeatMs: config.heartbeatMs,
        authenticate: this.authenticate,
        describe: () => this.describe(),
        allowLinkStealing: config.allowLinkStealing,
        createServer,
      });
      this.sslPort = (await ssl.start()).port;
      this.listeners.push(ssl);
    }
    if (config.stompSslPort !== false) {
      const stompSsl = new StompListener({
        ...stompListenerLimits(config.limits, this.connectionLimiter),
        broker,
        host: config.host,
        port: config.stompSslPort,
        logger: this.log.child({ component: 'stomp-ssl' }),
        maxFrameSize: config.maxFrameSize,
        heartbeatMs: config.heartbeatMs,
        authenticate: this.authenticate,
        serverName: `Keel/${KEEL_VERSION}`,
        allowLinkStealing: config.allowLinkStealing,
        createServer,
      });
      this.stompSslPort = (await stompSsl.start()).port;
      this.listeners.push(stompSsl);
    }
  }

  private scheduleJobs(broker: Broker): void {
    const run = (job: string, fn: () => Promise<number>) => async () => {
      if (this.roleValue !== 'master') return;
      try {
        const n = await fn();
        if (n > 0) this.log.info({ job, count: n }, 'maintenance job done');
      } catch (err) {
        this.log.warn({ job, err: (err as Error).message }, 'maintenance job failed');
      }
    };
    this.jobs.push(
      cron.schedule(
        '*/5 * * * * *',
        run('expiry-sweep', () => broker.sweepExpired()),
        { noOverlap: true, name: 'expiry-sweep' },
      ),
      cron.schedule(
        '*/30 * * * * *',
        run('topic-cleanup', () => broker.cleanupTopicMessages()),
        { noOverlap: true, name: 'topic-cleanup' },
      ),
      cron.schedule(
        '0 * * * * *',
        run('producer-prune', () => broker.pruneProducers(this.config.store.producerRetentionMs)),
        { noOverlap: true, name: 'producer-prune' },
      ),
    );
  }

  /**
   * Stop serving: close client listeners first (clients fail over; with `error`, each gets an
   * ERROR with its code before the close), then the broker.
   */
  private async stepDown(
    reason: string,
    options: { drain?: boolean; error?: KeelError } = {},
  ): Promise<void> {
    for (const j of this.jobs) await Promise.resolve(j.stop()).catch(() => {});
    this.jobs = [];
    const network = this.network;
    this.network = null;
    await network?.stop().catch(() => {});
    const listeners = this.listeners;
    this.listeners = [];
    await Promise.all(listeners.map((l) => l.stop(options.error).catch(() => {})));
    this.nativePort = null;
    this.stompPort = null;
    this.sslPort = null;
    this.stompSslPort = null;
    const broker = this.brokerValue;
    await broker?.scheduler.stop().catch(() => {});
    this.brokerValue = null;
    this.admin?.attachBroker(null);
    if (broker) await broker.stop({ drain: options.drain }).catch(() => {});
    // Mode b: Postgres has exited before the lock is released (a clean shutdown when draining).
    await this.sharedStore?.stop(options.drain ? 'fast' : 'immediate').catch((err: Error) => {
      this.log.error({ err: err.message }, 'the shared-store Postgres did not stop');
    });
    await this.locker?.release().catch(() => {});
    this.log.info({ reason }, 'stepped down');
  }

  /**
   * After losing the lock session (not fenced): suspend the broker (no sends, no dispatch; the
   * clients stay connected) and try to take the lock back. Resumes only if the cluster's epoch is
   * still ours, i.e. no other node took over; gives up after lock.outageGraceMs. Never two masters:
   * a suspended node neither writes nor delivers. Answers 'resumed', or why it stopped serving.
   */
  private async rideOutLockLoss(reason: string): Promise<'resumed' | StepDownCause> {
    const broker = this.brokerValue;
    if (!broker) return { kind: 'not-master', detail: reason };
    let ourEpoch = this.store.epoch;
    broker.suspend(reason);
    this.setRole('recovering', { reason, suspended: true });
    const graceMs = this.config.lock.outageGraceMs;
    const deadline = Date.now() + graceMs;
    const rival: StepDownCause = { kind: 'fenced', detail: 'another node took over while the lock was lost' };
    while (!this.stopping && Date.now() < deadline) {
      // A write refused for another node's epoch settles it: another node took over.
      if (broker.writer?.isFenced) return rival;
      let epoch: number;
      try {
        // Each attempt is bounded by what is left of the grace: a silent (partitioned) database
        // must not keep the clients here past it.
        epoch = await withTimeout(
          this.store.readEpoch(),
          Math.max(100, Math.min(1000, deadline - Date.now())),
        );
      } catch {
        await new Promise((r) => setTimeout(r, 200));
        continue;
      }
      if (epoch !== ourEpoch) {
        // A takeover of our own whose answer was lost (its session terminated after COMMIT) moved
        // the epoch too: the cluster row then still names this node.
        const holder = await this.registry.lockHolder().catch(() => null);
        if (holder !== this.name) {
          this.log.warn({ epoch, ourEpoch, holder }, 'another node took over while the lock was lost');
          return { kind: 'not-master', detail: `${holder ?? 'another node'} took over at epoch ${epoch}` };
        }
        this.log.info(
          { epoch, ourEpoch },
          'the epoch moved by a takeover of this node whose answer was lost',
        );
        ourEpoch = epoch;
      }
      const attempt = new AbortController();
      const timer = setTimeout(
        () => attempt.abort(new Error('lock still held')),
        this.config.lock.waitingPollMs * 2 + 500,
      );
      try {
        await this.locker!.acquire(attempt.signal);
      } catch {
        // Held by someone else (about to take over), or Postgres flapping: let the loop re-check.
        continue;
      } finally {
        clearTimeout(timer);
      }
      // The lock is ours again: bump the epoch, retrying while the store's sessions are being cut
      // too (each failed attempt may or may not have committed; the store tells its own epochs from
      // a rival's either way).
      let next: number | null = null;
      while (next === null && this.locker!.held && !this.stopping && Date.now() < deadline) {
        try {
          next = await this.store.takeOver(this.name, `resumed after losing the lock: ${reason}`);
        } catch (err) {
          this.log.warn(
            { err: (err as Error).message },
            'could not bump the epoch after retaking the lock; retrying',
          );
          await new Promise((r) => setTimeout(r, 200));
        }
      }
      if (next === null) {
        if (this.locker!.held) break;
        continue; // lost the lock again: start over
      }
      ourEpoch = next;
      this.takeoverLog.unshift({ at: new Date(), epoch: next, reason: 'resumed after losing the lock' });
      broker.resume();
      // A commit whose answer was lost in the outage may have stored messages the broker does not
      // hold: read the queues' counts again so paging finds them.
      void broker
        .resyncFromStore()
        .catch((err) => this.log.warn({ err: (err as Error).message }, 'resync failed'));
      this.setRole('master', { epoch: this.store.epoch, resumed: true });
      return 'resumed';
    }
    await this.locker!.release().catch(() => {});
    if (this.stopping) return { kind: 'not-master', detail: 'the node is stopping' };
    return {
      kind: 'store-unavailable',
      detail: `lost the master lock (${reason}) and could not take it back within ${graceMs} ms`,
    };
  }

  private handoverDone: (() => void) | null = null;

  /** Network bridges of this node (its connectors and the accepting ends of peers' duplex connectors; empty unless master), for the admin API. */
  bridges(): BridgeStatus[] {
    return this.network?.bridges() ?? [];
  }

  /** Planned hand-over: stop taking work, finish in-flight commits, release the lock, wait a while. */
  async handover(): Promise<void> {
    if (this.roleValue !== 'master' || !this.lost) throw new NotMasterError(`${this.name} is not the master`);
    this.log.info({}, 'planned hand-over: finishing in-flight work and passing the lock on');
    this.handoverCooldownUntil = Date.now() + Math.max(2000, this.config.lock.leaseMs * 2);
    const done = new Promise<void>((resolve) => {
      this.handoverDone = resolve;
    });
    this.lost(PLANNED_HANDOVER);
    await done;
  }

  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    if (this.announceTimer) clearInterval(this.announceTimer);
    this.setRole('stopping');
    this.abort.abort(new Error('node stopping'));
    this.lost?.('node stopping');
    await this.stepDown('node stopping', {
      drain: true,
      error: stepDownError(this.name, { kind: 'not-master', detail: 'the node is stopping' }),
    });
    await this.loop?.catch(() => {});
    // Mode b: a Postgres a takeover in progress started is stopped too, before the lock goes.
    await this.sharedStore?.stop('fast').catch(() => {});
    await this.locker?.close().catch(() => {});
    await this.admin?.close().catch(() => {});
    await this.registry.announce('stopped', this.clientUrls(), null).catch(() => {});
    this.roleValue = 'stopped';
    this.log.info({ role: 'stopped' }, 'node stopped');
    await this.store.close().catch(() => {});
    await this.pool.end().catch(() => {});
  }
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
    p.then(
      (v) => {
        clearTimeout(t);
        resolve(v);
      },
      (e) => {
        clearTimeout(t);
        reject(e);
      },
    );
  });
}

export async function startNode(config: NodeConfig, logger: NodeLogger): Promise<RunningNode> {
  const node = new KeelNode(config, logger);
  await node.start();
  return node;
}
