/**
 * The drill's `keel broker` nodes: free ports, one DrillNode child per node (restartable by
 * index), waiting for a node's role, and asking every node's admin API who is master.
 */
import * as path from 'node:path';
import { freePort } from '../ports';
import { AdminClient, type BrokerReply } from './admin-client';
import { DrillNode, type DrillNodePlan } from './drill-node';
import type { DrillRun } from './drill-run';

/** How long a node may take to report its role. */
export const DRILL_NODE_READY_TIMEOUT_MS = 60_000;
/** Client settings: find the new master quickly, notice a frozen one in 3 heartbeats. */
export const DRILL_CLIENT_MAX_RECONNECT_DELAY_MS = 500;
export const DRILL_CLIENT_TIMEOUT_MS = 120_000;

export interface DrillClusterNodeWiring {
  db: string;
  lockDb: string;
  args?: string[];
  env?: Record<string, string>;
}

export class DrillCluster {
  readonly nodes: DrillNode[] = [];
  private readonly mainJs = path.resolve(__dirname, '..', 'main.js');

  private constructor(
    private readonly run: DrillRun,
    readonly plans: DrillNodePlan[],
  ) {
    run.onKillNow(() => {
      for (const n of this.nodes) n.killNow();
    });
    run.cleanup('broker nodes', async () => {
      await Promise.all(this.nodes.map((n) => n.stop(10_000)));
    });
  }

  /** Plans `count` nodes n1…nN (free ports, logs in the run's directory); starts none. */
  static async plan(
    run: DrillRun,
    cluster: string,
    count: number,
    wiring: (index: number) => DrillClusterNodeWiring,
  ): Promise<DrillCluster> {
    const ports: number[] = [];
    while (ports.length < count * 2) {
      const p = await freePort();
      if (!ports.includes(p)) ports.push(p);
    }
    const plans = Array.from({ length: count }, (_, i) => ({
      name: `n${i + 1}`,
      cluster,
      port: ports[i * 2] as number,
      adminPort: ports[i * 2 + 1] as number,
      logFile: path.join(run.tmp, `n${i + 1}.log`),
      ...wiring(i),
    }));
    return new DrillCluster(run, plans);
  }

  /** The clients' URL: every node in order, quick reconnects. */
  get failoverUrl(): string {
    return `failover:(${this.plans.map((p) => `tcp://127.0.0.1:${p.port}`).join(',')})?randomize=false&maxReconnectDelay=${DRILL_CLIENT_MAX_RECONNECT_DELAY_MS}&timeout=${DRILL_CLIENT_TIMEOUT_MS}`;
  }

  /** Starts (or restarts) node i. */
  launch(i: number): DrillNode {
    const node = new DrillNode(this.plans[i] as DrillNodePlan, this.mainJs);
    this.nodes[i] = node;
    return node;
  }

  /** Starts every node in order: the first must become master, the others slaves. */
  async startAll(): Promise<void> {
    for (let i = 0; i < this.plans.length; i++) {
      const node = this.launch(i);
      this.run.log(
        `${node.plan.name} starting (tcp://127.0.0.1:${node.plan.port}, admin ${node.plan.adminPort}, pid ${node.pid})`,
      );
      const change = await this.waitForRole(node, i === 0 ? ['master'] : ['slave']);
      this.run.log(`${node.plan.name} is ${change.role}`);
    }
  }

  /** The node's latest role line at or after sinceMs, once it is one of `roles`. */
  waitForRole(node: DrillNode, roles: string[], sinceMs = 0) {
    return this.run.waitFor(
      () => {
        if (node.exited) {
          throw new Error(
            `${node.plan.name} exited (${node.exitDescription}); last lines:\n    ${node.lastLines()}`,
          );
        }
        const change = [...node.roleChanges].reverse().find((c) => c.atMs >= sinceMs);
        return change && roles.includes(change.role) && node.role === change.role ? change : undefined;
      },
      DRILL_NODE_READY_TIMEOUT_MS,
      () =>
        `${node.plan.name} did not become ${roles.join(' or ')} within ${DRILL_NODE_READY_TIMEOUT_MS} ms (role: ${node.role ?? 'none'}); last lines:\n    ${node.lastLines()}`,
    );
  }

  /** Indexes of the nodes whose admin API says master now. */
  async masters(): Promise<number[]> {
    const replies = await Promise.all(
      this.nodes.map(async (n, i) => {
        if (n.exited || n.paused) return null;
        try {
          const reply = await this.admin(i).get<BrokerReply>('/api/broker');
          return reply.role === 'master' ? i : null;
        } catch {
          return null;
        }
      }),
    );
    return replies.filter((i): i is number => i !== null);
  }

  /** Polls until exactly one node says master; its index. */
  async oneMaster(timeoutMs: number, what: string): Promise<number> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      this.run.checkAbort();
      const masters = await this.masters();
      if (masters.length === 1) return masters[0] as number;
      if (Date.now() > deadline) {
        throw new Error(`${what}: expected one master, the admin APIs report ${masters.length}`);
      }
      await this.run.sleep(200);
    }
  }

  admin(i: number): AdminClient {
    const plan = this.plans[i] as DrillNodePlan;
    return new AdminClient({ admin: `http://127.0.0.1:${plan.adminPort}`, timeoutMs: 2_000, env: {} });
  }
}
