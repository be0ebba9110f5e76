import { Broker, type BrokerOptions, type Logger, MemoryDatabase, MemoryStore } from '@keel/core';
import type { AdminContext, NodeInfo, NodeRole, StoreHealth } from '../admin-context';
import { storeReadOnlyView } from '../store-read-only-view';

export const ADMIN = { user: 'root', password: 's3cret' };
export const READER = { user: 'viewer', password: 'look' };

/** Test stand-in for the server's scrypt verifyPassword: hashes are `plain:<password>`. */
export const verifyPassword = async (password: string, hash: string): Promise<boolean> =>
  hash === `plain:${password}`;

export const authOptions = {
  adminUser: ADMIN.user,
  adminPasswordHash: `plain:${ADMIN.password}`,
  readOnlyUsers: [{ name: READER.user, passwordHash: `plain:${READER.password}` }],
  verifyPassword,
};

export function basic(user: string, password: string): { authorization: string } {
  return { authorization: `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}` };
}

/** A logger that records what it is given and resolves waiters on a message. */
export class RecordingLogger implements Logger {
  readonly entries: { level: string; obj: object; msg?: string }[] = [];
  private waiters: { msg: string; resolve: () => void }[] = [];
  private record(level: string, obj: object, msg?: string): void {
    this.entries.push({ level, obj, msg });
    this.waiters = this.waiters.filter((w) => {
      if (w.msg !== msg) return true;
      w.resolve();
      return false;
    });
  }
  debug = (obj: object, msg?: string): void => this.record('debug', obj, msg);
  info = (obj: object, msg?: string): void => this.record('info', obj, msg);
  warn = (obj: object, msg?: string): void => this.record('warn', obj, msg);
  error = (obj: object, msg?: string): void => this.record('error', obj, msg);
  child = (): Logger => this;
  /** Resolves on the next entry with this message. */
  next(msg: string, timeoutMs = 3000): Promise<void> {
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`timed out waiting for log "${msg}"`)), timeoutMs);
      this.waiters.push({
        msg,
        resolve: () => {
          clearTimeout(t);
          resolve();
        },
      });
    });
  }
}

export interface TestNode {
  ctx: AdminContext;
  broker: Broker | null;
  store: MemoryStore;
  healthCalls: number;
  stop(): Promise<void>;
}

const HEALTH: StoreHealth = {
  deadRows: { keel_messages: 12, keel_sub_entries: 3 },
  tableBytes: { keel_messages: 81920, keel_sub_entries: 16384 },
  oldestTransactionAgeSeconds: 1.5,
};

function context(
  node: () => NodeInfo,
  broker: Broker | null,
  store: MemoryStore,
  t: { healthCalls: number },
): AdminContext {
  const view = storeReadOnlyView(store);
  return {
    node,
    broker: () => broker,
    readOnly: () => view,
    takeovers: (limit) => store.takeovers(limit),
    clusterEpoch: () => store.readEpoch(),
    clusterNodes: () => [
      { name: 'node-a', role: 'master', lastSeen: null },
      { name: 'node-b', role: 'slave', lastSeen: new Date() },
    ],
    storeHealth: async () => {
      t.healthCalls += 1;
      return HEALTH;
    },
  };
}

function nodeInfo(name: string, role: NodeRole, epoch: number): NodeInfo {
  return {
    name,
    cluster: 'test',
    role,
    epoch,
    nodeEpoch: role === 'master' ? epoch : null,
    startedAt: new Date(Date.now() - 5000),
    version: '0.1.0-test',
    lockHolder: 'node-a',
    listeners: {
      native: role === 'master' ? 'tcp://127.0.0.1:61616' : null,
      stomp: role === 'master' ? 'stomp://127.0.0.1:61613' : null,
      admin: 'http://127.0.0.1:8161',
    },
  };
}

/** node-a: the master, a real Broker over the memory store. */
export async function masterNode(db: MemoryDatabase, opts: Partial<BrokerOptions> = {}): Promise<TestNode> {
  const store = new MemoryStore({ database: db, cluster: 'test' });
  await store.open();
  const epoch = await store.takeOver('node-a', 'test start');
  const broker = new Broker({
    nodeName: 'node-a',
    store,
    redelivery: { initialRedeliveryDelay: 0, redeliveryDelay: 0 },
    ...opts,
  });
  await broker.start();
  const t: TestNode = {
    ctx: undefined as unknown as AdminContext,
    broker,
    store,
    healthCalls: 0,
    stop: async () => {
      await broker.stop();
      await store.close();
    },
  };
  t.ctx = context(() => nodeInfo('node-a', 'master', epoch), broker, store, t);
  return t;
}

/** node-b: a slave on the same database, no broker, reading from the store. */
export async function slaveNode(db: MemoryDatabase): Promise<TestNode> {
  const store = new MemoryStore({ database: db, cluster: 'test' });
  await store.open();
  const epoch = await store.readEpoch();
  const t: TestNode = {
    ctx: undefined as unknown as AdminContext,
    broker: null,
    store,
    healthCalls: 0,
    stop: () => store.close(),
  };
  t.ctx = context(() => nodeInfo('node-b', 'slave', epoch), null, store, t);
  return t;
}

export { MemoryDatabase };
