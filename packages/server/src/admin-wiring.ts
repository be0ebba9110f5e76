import type { Server as TlsServer } from 'node:tls';
import {
  type AdminContext,
  type NodeRole as AdminRole,
  type ClusterNode,
  KeelMetrics,
  type ReadOnlyView,
  startAdminServer,
  storeReadOnlyView,
} from '@keel/admin';
import type { Broker, LeaseState, LockHolder } from '@keel/core';
import { dummyPasswordHash, type NodeConfig, verifyPassword } from './config';
import type { NodeLogger } from './logger';
import type { KeelNode } from './node';
import { PasswordCheckGate } from './password-check-gate';

export interface AdminHandle {
  url: string;
  metrics: KeelMetrics;
  attachBroker(broker: Broker | null): void;
  close(): Promise<void>;
}

/**
 * The admin API's users: adminUser (admin), and users of the configuration whose roles include
 * `admin` (may change state) or `admin-read` (may only read). Null: no such user or a wrong password.
 * Every check queues at `gate`, the node's bound on concurrent password checks (shared with client
 * logins), so Basic-auth floods cannot take the thread pool; past it, AuthError LOGIN_THROTTLED.
 */
export function adminAuthenticator(
  config: NodeConfig,
  gate: PasswordCheckGate = new PasswordCheckGate(),
): ((user: string, password: string, address?: string) => Promise<'admin' | 'read-only' | null>) | undefined {
  const fileAdmins = config.users.filter((u) => u.roles.includes('admin') || u.roles.includes('admin-read'));
  if (config.adminUser === null && fileAdmins.length === 0) return undefined;
  // An unknown user's password is checked against this, so that timing does not tell names apart.
  const dummy = dummyPasswordHash(config.adminPasswordHash ?? fileAdmins[0]?.passwordHash);
  return (user, password, address = 'unknown') =>
    gate.run(address, async () => {
      if (user === config.adminUser && config.adminPasswordHash !== null) {
        return (await verifyPassword(password, config.adminPasswordHash)) ? 'admin' : null;
      }
      const u = fileAdmins.find((x) => x.name === user);
      const ok = await verifyPassword(password, u?.passwordHash ?? dummy);
      if (!u || !ok) return null;
      return u.roles.includes('admin') ? 'admin' : 'read-only';
    });
}

function adminRole(role: string): AdminRole {
  switch (role) {
    case 'master':
    case 'recovering':
    case 'fenced':
      return role;
    case 'slave':
    case 'stopping':
      return 'slave';
    default:
      return 'waiting';
  }
}

/** The admin API of a node: runs in every role, answers from the broker (master) or the store (slave). */
export async function startAdmin(node: KeelNode, logger: NodeLogger): Promise<AdminHandle> {
  const config = node.config;
  const metrics = new KeelMetrics({ defaultLabels: { node: config.name, cluster: config.cluster }, logger });
  const readOnly: ReadOnlyView = storeReadOnlyView(node.pgStore);
  let lockHolder: string | null = null;
  let lockRecord: LockHolder | null = null;
  let lease: LeaseState | null = null;
  const refreshHolder = async (): Promise<void> => {
    lease = await node.lockLease();
    // The file locker's lock file names its holder; the Postgres lockers' holder is the cluster row.
    lockRecord = await node.lockHolderRecord();
    if (lockRecord) {
      lockHolder = lockRecord.name;
      return;
    }
    await node.registry
      .lockHolder()
      .then((h) => {
        lockHolder = h;
      })
      .catch(() => {});
  };
  // Read before the API answers: a slave must not report no lock holder while a master holds the
  // lock only because the first read had not returned yet (a busy machine, issue #17.7).
  await refreshHolder();
  const holderTimer = setInterval(() => void refreshHolder(), 2000);
  holderTimer.unref();
  let detach: (() => void) | null = null;
  let adminUrl = `http://${config.host}:${config.adminPort}`;
  const withoutSharedStore = () => node.sharedStore !== null && !node.sharedStore.running;

  const ctx: AdminContext = {
    node: () => ({
      name: config.name,
      cluster: config.cluster,
      role: adminRole(node.role),
      epoch: node.epoch,
      nodeEpoch: node.nodeEpoch,
      startedAt: node.startedAt,
      version: '0.1.0',
      lockHolder: node.role === 'master' ? config.name : lockHolder,
      locker: {
        kind: node.lockerKind,
        directory: config.locker === 'file' ? config.fileLocker.directory : null,
        holder: lockRecord,
        lease,
      },
      listeners: { ...node.endpoints(), admin: adminUrl },
      postgres: node.postgresHosts(),
    }),
    broker: () => node.broker,
    readOnly: () => readOnly,
    // Mode b: a node whose shared-store Postgres is not running (a slave) answers from lock.json.
    takeovers: async (limit) => {
      if (!withoutSharedStore()) return node.pgStore.takeovers(limit);
      if (!lockRecord || limit < 1) return [];
      const { name, epoch, acquiredAt } = lockRecord;
      return [{ node: name, epoch, reason: 'holds the lock file', at: new Date(acquiredAt) }];
    },
    clusterEpoch: () => node.clusterEpoch(),
    clusterNodes: async (): Promise<ClusterNode[]> => {
      if (withoutSharedStore()) {
        const self: ClusterNode = { name: config.name, role: adminRole(node.role), lastSeen: new Date() };
        return lockRecord && lockRecord.name !== config.name
          ? [self, { name: lockRecord.name, role: 'master', lastSeen: null }]
          : [self];
      }
      const nodes = await node.registry.list(60_000);
      // Nodes announce every 2 s: one silent for longer than 3 announcements is not trusted.
      const stale = Date.now() - 6_000;
      return nodes.map((n) => ({
        name: n.name,
        role: n.role === 'stopped' || n.lastSeen.getTime() < stale ? 'unknown' : adminRole(n.role),
        lastSeen: n.lastSeen,
        adminUrl: n.adminUrl,
        startedAt: n.startedAt,
      }));
    },
    storeHealth: () => node.registry.storeHealth(),
    handover: () => node.handover(),
    bridges: () => node.bridges(),
  };
  const started = await startAdminServer(ctx, {
    host: config.host,
    port: config.adminPort,
    logger: logger.child({ component: 'admin' }),
    metrics,
    authenticate: adminAuthenticator(config, node.passwordGate),
    readAuth: config.adminReadAuth,
    // https with the node's certificate (tls.adminHttps); reloaded with the listeners' on SIGHUP.
    https: config.tls?.adminHttps ? node.tlsContext?.httpsOptions() : undefined,
  });
  if (config.tls?.adminHttps) node.tlsContext?.track(started.app.server as unknown as TlsServer);
  adminUrl = started.url;
  const handle: AdminHandle = {
    url: started.url,
    metrics,
    attachBroker(broker) {
      detach?.();
      detach = null;
      if (broker) {
        detach = metrics.attachBroker(broker);
        metrics.observeTakeover();
      }
    },
    async close() {
      clearInterval(holderTimer);
      detach?.();
      await started.app.close();
    },
  };
  return handle;
}
