/**
 * Helpers of the network-of-brokers e2e tests (network-*.test.ts): broker processes with network
 * connectors, message tallies (sent / received / lost / duplicated), producers and consumers.
 */
import { type Connection, type Consumer, connect, type ReceivedMessage } from '@keel/client';
import {
  type BrokerProcess,
  createTestDatabase,
  FaultProxy,
  freePorts,
  type LogEntry,
  startBroker,
  stopAll,
  type TestDatabase,
} from '@keel/testkit';

export const NET_ENV: Record<string, string> = {
  KEEL_LOCK_LEASE_MS: '1500',
  KEEL_LOCK_KEEP_ALIVE_MS: '300',
  KEEL_LOCK_WAITING_POLL_MS: '300',
  KEEL_HEARTBEAT_MS: '500',
  KEEL_LOG_LEVEL: 'info',
};

export interface NetNodeOptions {
  db: string;
  cluster: string;
  name?: string;
  port?: number;
  connectors?: string[];
  env?: Record<string, string>;
}

/** A broker with `--network-connector` per connector; resolves once it is master (or slave). */
export async function startNetNode(
  o: NetNodeOptions,
  role: 'master' | 'slave' = 'master',
): Promise<BrokerProcess> {
  const args = (o.connectors ?? []).flatMap((c) => ['--network-connector', c]);
  const proc = await startBroker({
    db: o.db,
    name: o.name ?? o.cluster,
    cluster: o.cluster,
    port: o.port,
    args,
    env: { ...NET_ENV, ...o.env },
  });
  await proc.waitForRole(role, 30_000);
  return proc;
}

/** Brokers A and B, each its own cluster and database, with A's one connector to B through a fault proxy. */
export interface ProxiedPair {
  A: BrokerProcess;
  B: BrokerProcess;
  dbB: TestDatabase;
  portB: number;
  proxy: FaultProxy;
}

/**
 * Start B, a FaultProxy in front of it, then A with `static:(tcp://proxy)?<query>`: the link can be
 * cut (proxy) while both run. The databases are pushed onto `dbs` for the caller to drop.
 */
export async function startProxiedPair(o: {
  clusterA: string;
  clusterB: string;
  query: string;
  dbs: TestDatabase[];
}): Promise<ProxiedPair> {
  const [pa, pb] = (await freePorts(2)) as [number, number];
  const [da, db] = await Promise.all([createTestDatabase(), createTestDatabase()]);
  o.dbs.push(da, db);
  const B = await startNetNode({ db: db.url, cluster: o.clusterB, port: pb });
  const proxy = await FaultProxy.start({ targetHost: '127.0.0.1', targetPort: pb });
  const A = await startNetNode({
    db: da.url,
    cluster: o.clusterA,
    port: pa,
    connectors: [`static:(tcp://127.0.0.1:${proxy.port})?${o.query}`],
  });
  return { A, B, dbB: db, portB: pb, proxy };
}

export const isLog =
  (msg: string, fields: Record<string, unknown> = {}) =>
  (e: LogEntry): boolean =>
    e.msg === msg && Object.entries(fields).every(([k, v]) => e[k] === v);

/** Resolves with the `count`-th matching line logged from `from` on. */
export async function waitForLogs(
  proc: BrokerProcess,
  pred: (e: LogEntry) => boolean,
  count = 1,
  from = 0,
  timeoutMs = 20_000,
): Promise<LogEntry> {
  let next = from;
  let e: LogEntry = {};
  for (let i = 0; i < count; i++) {
    e = await proc.waitForLog(pred, timeoutMs, next);
    next = proc.logs.indexOf(e, next) + 1;
  }
  return e;
}

/** Counts what a set of consumers got, by message key (`k` property). */
export class Tally {
  readonly seen = new Map<string, number>();
  readonly byBroker = new Map<string, number>();
  /** When each key was first counted (ms since the epoch). */
  readonly firstAt = new Map<string, number>();
  private waiters: { n: number; resolve: () => void }[] = [];

  add(broker: string, m: ReceivedMessage): void {
    const k = String(m.properties.k);
    this.seen.set(k, (this.seen.get(k) ?? 0) + 1);
    this.byBroker.set(broker, (this.byBroker.get(broker) ?? 0) + 1);
    if (!this.firstAt.has(k)) this.firstAt.set(k, Date.now());
    this.waiters = this.waiters.filter((w) => {
      if (this.total < w.n) return true;
      w.resolve();
      return false;
    });
  }

  get total(): number {
    let t = 0;
    for (const v of this.seen.values()) t += v;
    return t;
  }

  get duplicated(): number {
    let d = 0;
    for (const v of this.seen.values()) d += v - 1;
    return d;
  }

  lost(sent: string[]): string[] {
    return sent.filter((k) => !this.seen.has(k));
  }

  /** sent / received / lost / duplicated, for one `toEqual`. */
  counts(sent: string[]): { sent: number; received: number; lost: number; duplicated: number } {
    return {
      sent: sent.length,
      received: this.total,
      lost: this.lost(sent).length,
      duplicated: this.duplicated,
    };
  }

  until(n: number, timeoutMs = 30_000): Promise<void> {
    if (this.total >= n) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`only ${this.total} of ${n} messages arrived`)), timeoutMs);
      this.waiters.push({
        n,
        resolve: () => {
          clearTimeout(t);
          resolve();
        },
      });
    });
  }
}

export class Clients {
  private readonly conns: Connection[] = [];

  async open(url: string, options: Parameters<typeof connect>[1] = {}): Promise<Connection> {
    const c = await connect(url, { heartbeatMs: 1000, ...options });
    c.on('error', () => {});
    this.conns.push(c);
    return c;
  }

  async closeAll(): Promise<void> {
    await Promise.all(this.conns.splice(0).map((c) => c.close().catch(() => {})));
  }
}

/**
 * A consumer counting into `tally` under `label`. Individual acks, counted once the broker
 * confirmed the ack: a message counted is consumed, one not yet acked when the consumer closes
 * goes back to the queue (and is counted where it is consumed next).
 */
export async function consume(
  conn: Connection,
  label: string,
  destination: string,
  tally: Tally,
  options: { prefetch?: number; delayMs?: number; limit?: number } = {},
): Promise<Consumer> {
  const s = await conn.createSession({ ackMode: 'individual' });
  const consumer = await s.createConsumer(destination, { prefetch: options.prefetch ?? 100 });
  let taken = 0;
  consumer.onMessage(async (m) => {
    // Past `limit`: neither acked nor counted; it goes back to the queue when the consumer closes.
    if (options.limit !== undefined && taken >= options.limit) return;
    taken += 1;
    if (options.delayMs) await new Promise((r) => setTimeout(r, options.delayMs));
    await m.ack();
    tally.add(label, m);
  });
  return consumer;
}

/** Sends `count` persistent messages with properties k = `<prefix>-<i>`, 50 in flight at most. */
export async function produce(
  conn: Connection,
  destination: string,
  prefix: string,
  count: number,
): Promise<string[]> {
  const s = await conn.createSession();
  const p = s.createProducer(destination, { persistent: true });
  const keys: string[] = [];
  const window: Promise<unknown>[] = [];
  for (let i = 0; i < count; i++) {
    const k = `${prefix}-${i}`;
    keys.push(k);
    window.push(p.send(`body ${k}`, { properties: { k } }));
    if (window.length >= 50) await Promise.all(window.splice(0));
  }
  await Promise.all(window);
  return keys;
}

/** Queue depth through the admin API (0 for a queue that does not exist). */
export async function queueDepth(proc: BrokerProcess, queue: string): Promise<number> {
  const r = await fetch(`http://127.0.0.1:${proc.adminPort}/api/queues/${encodeURIComponent(queue)}`);
  if (r.status === 404) return 0;
  const q = (await r.json()) as { depth: number };
  return q.depth;
}

/** Polls `fn` every `everyMs` until it returns true (a state visible only through the admin API). */
export async function pollUntil(
  what: string,
  fn: () => Promise<boolean>,
  timeoutMs = 20_000,
  everyMs = 50,
): Promise<void> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    if (await fn()) return;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** A row of GET /api/bridges. */
export interface BridgeInfo {
  peerUrl: string;
  remoteName: string | null;
  state: string;
  forwarded: number;
  inflight: number;
  forwarding: string[];
  connects: number;
  duplex?: boolean;
  accepted?: boolean;
  received?: number;
}

export async function bridgesOf(proc: BrokerProcess): Promise<BridgeInfo[]> {
  const r = await fetch(`http://127.0.0.1:${proc.adminPort}/api/bridges`);
  return ((await r.json()) as { bridges: BridgeInfo[] }).bridges;
}

/** A log line's time (pino `time`, ms since the epoch). */
export function logTime(e: LogEntry): number {
  const t = e.time;
  if (typeof t === 'number') return t;
  if (typeof t === 'string') return Date.parse(t);
  throw new Error(`log line without time: ${JSON.stringify(e)}`);
}

/**
 * What a network test file starts and must release, registered once at its top: client
 * connections, every broker process (testkit's stopAll) and the test databases. `beforeStop` runs
 * after the clients close and before the brokers stop (e.g. closing a fault proxy).
 */
export function networkTestResources(beforeStop?: () => Promise<void> | undefined): {
  clients: Clients;
  dbs: TestDatabase[];
  database(): Promise<TestDatabase>;
} {
  const clients = new Clients();
  const dbs: TestDatabase[] = [];
  afterAll(async () => {
    await clients.closeAll();
    await beforeStop?.();
    await stopAll();
    await Promise.all(dbs.map((d) => d.drop().catch(() => {})));
  });
  return {
    clients,
    dbs,
    database: async () => {
      const d = await createTestDatabase();
      dbs.push(d);
      return d;
    },
  };
}
