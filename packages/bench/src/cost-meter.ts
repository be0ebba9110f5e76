import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { Client } from 'pg';

/**
 * The cost of a message, not only the rate: CPU time of the broker process, of the Postgres server
 * (all its processes) and of the load generator, and Postgres's WAL bytes and fsyncs, read before
 * and after a run and divided by the messages of the run.
 */

/** CPU fields of /proc/PID/stat, in clock ticks (proc(5): fields 14-17). */
export interface ProcCpuTicks {
  utime: number;
  stime: number;
  /** Time of waited-for (reaped) children. */
  cutime: number;
  cstime: number;
  ppid: number;
}

/**
 * Parse /proc/PID/stat. The second field, `(comm)`, may hold spaces and parentheses: the fields
 * are counted from the last `)`. proc(5): 4 ppid, 14 utime, 15 stime, 16 cutime, 17 cstime.
 */
export function parseProcStat(stat: string): ProcCpuTicks {
  const close = stat.lastIndexOf(')');
  if (close === -1) throw new RangeError(`not a /proc/PID/stat line: ${JSON.stringify(stat.slice(0, 60))}`);
  // After ") " comes field 3 (state): rest[0] is field 3.
  const rest = stat
    .slice(close + 2)
    .trim()
    .split(/\s+/);
  const field = (n: number) => Number(rest[n - 3]);
  return { ppid: field(4), utime: field(14), stime: field(15), cutime: field(16), cstime: field(17) };
}

let clockTicks: number | undefined;
/** sysconf(_SC_CLK_TCK), the unit of /proc/PID/stat times (100 on Linux unless told otherwise). */
export function clockTicksPerSecond(): number {
  if (clockTicks === undefined) {
    try {
      clockTicks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      clockTicks = 100;
    }
  }
  return clockTicks;
}

function readStat(pid: number): ProcCpuTicks | null {
  try {
    return parseProcStat(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return null;
  }
}

/** CPU time of one process (every thread), seconds; null when it is gone. */
export function processCpuSeconds(pid: number): number | null {
  const s = readStat(pid);
  return s === null ? null : (s.utime + s.stime) / clockTicksPerSecond();
}

/**
 * CPU time of a process tree, seconds: the root and every live descendant, plus the root's
 * reaped children (cutime + cstime: a Postgres backend that exited during the run is counted
 * there once the postmaster has waited for it). Null when the root is gone.
 */
export function processTreeCpuSeconds(rootPid: number): number | null {
  const root = readStat(rootPid);
  if (root === null) return null;
  const children = new Map<number, number[]>();
  const stats = new Map<number, ProcCpuTicks>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    const s = readStat(pid);
    if (s === null) continue;
    stats.set(pid, s);
    const list = children.get(s.ppid);
    if (list) list.push(pid);
    else children.set(s.ppid, [pid]);
  }
  let ticks = root.utime + root.stime + root.cutime + root.cstime;
  const queue = [...(children.get(rootPid) ?? [])];
  while (queue.length > 0) {
    const pid = queue.pop()!;
    const s = stats.get(pid)!;
    ticks += s.utime + s.stime;
    queue.push(...(children.get(pid) ?? []));
  }
  return ticks / clockTicksPerSecond();
}

/** Read and write syscalls of a process so far (/proc/PID/io `syscr`, `syscw`; every thread). */
export interface SyscallCounts {
  reads: number;
  writes: number;
}

/** Parse /proc/PID/io (proc(5)): `syscr` and `syscw`; null when absent. */
export function parseProcIo(text: string): SyscallCounts | null {
  const r = /^syscr:\s+(\d+)$/m.exec(text);
  const w = /^syscw:\s+(\d+)$/m.exec(text);
  return r && w ? { reads: Number(r[1]), writes: Number(w[1]) } : null;
}

function readSyscalls(pid: number): SyscallCounts | null {
  try {
    return parseProcIo(readFileSync(`/proc/${pid}/io`, 'utf8'));
  } catch {
    return null; // gone, or not ours to read
  }
}

/** One reading of `pg_stat_wal` (Postgres 14+). */
export interface WalReading {
  walBytes: number;
  walSync: number;
  walWrite: number;
  walRecords: number;
}

/** A reading of every counter, taken before or after a run. */
export interface CostReading {
  atMs: number;
  brokerCpuS: number | null;
  brokerSyscalls: SyscallCounts | null;
  pgCpuS: number | null;
  loadCpuS: number;
  wal: WalReading | null;
}

/** Per message (µs of CPU, bytes, fsyncs); absent where not measured. */
export interface MessageCost {
  messages: number;
  /** Wall time between the two readings, ms. */
  wallMs: number;
  brokerCpuUsPerMsg?: number;
  /** The broker's read / write syscalls (sockets to clients and to Postgres, files) per message. */
  brokerReadsPerMsg?: number;
  brokerWritesPerMsg?: number;
  pgCpuUsPerMsg?: number;
  loadCpuUsPerMsg?: number;
  walBytesPerMsg?: number;
  walSyncsPerMsg?: number;
  /** The raw differences, for the JSON. */
  totals: {
    brokerCpuS?: number;
    brokerReads?: number;
    brokerWrites?: number;
    pgCpuS?: number;
    loadCpuS: number;
    walBytes?: number;
    walSyncs?: number;
    walWrites?: number;
  };
}

export interface CostMeterOptions {
  /** The broker process (Keel's node, RabbitMQ's beam.smp, ActiveMQ's JVM). */
  brokerPid?: number;
  /** Any database of the Postgres server; the server must run on this machine (its PIDs are read). */
  pgUrl?: string;
  /** Wait before the closing reading when Postgres is read (its backends' stats flush lazily). */
  settleMs?: number;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * Reads the counters at `start()` and at `finish(messages)` and divides. The load generator is
 * this process (`process.cpuUsage()`). Postgres: the postmaster is the parent of this meter's own
 * backend, and its CPU is the whole tree's (processTreeCpuSeconds); WAL from `pg_stat_wal`. The
 * meter's one connection stays open between the readings (its own CPU is a few queries).
 */
export class CostMeter {
  private client: Client | null = null;
  private postmasterPid: number | null = null;
  private before: CostReading | null = null;

  constructor(private readonly options: CostMeterOptions) {}

  async start(): Promise<void> {
    if (this.options.pgUrl !== undefined && this.client === null) {
      const client = new Client({ connectionString: this.options.pgUrl });
      client.on('error', () => undefined);
      await client.connect();
      this.client = client;
      const { rows } = await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
      const backend = readStat(rows[0]!.pid);
      this.postmasterPid = backend?.ppid ?? null;
    }
    this.before = await this.read();
  }

  /**
   * The closing reading, the cost per message; closes the meter's connection. CPU is read at
   * once (it is counted live), WAL after `settleMs` (backends report their WAL stats lazily).
   */
  async finish(messages: number): Promise<MessageCost> {
    if (this.before === null) throw new Error('CostMeter.finish before start');
    try {
      const after = this.readCpu();
      if (this.client !== null) {
        await sleep(this.options.settleMs ?? 0);
        after.wal = await this.readWal();
      }
      return costPerMessage(this.before, after, messages);
    } finally {
      await this.close();
    }
  }

  async close(): Promise<void> {
    const c = this.client;
    this.client = null;
    if (c !== null) await c.end().catch(() => undefined);
  }

  private async read(): Promise<CostReading> {
    const wal = await this.readWal();
    const r = this.readCpu();
    r.wal = wal;
    return r;
  }

  private async readWal(): Promise<WalReading | null> {
    if (this.client === null) return null;
    const { rows } = await this.client.query<Record<string, string>>(
      'SELECT wal_bytes::text AS b, wal_sync::text AS s, wal_write::text AS w, wal_records::text AS r FROM pg_stat_wal',
    );
    const r = rows[0]!;
    return { walBytes: Number(r.b), walSync: Number(r.s), walWrite: Number(r.w), walRecords: Number(r.r) };
  }

  private readCpu(): CostReading {
    const cpu = process.cpuUsage();
    return {
      atMs: performance.now(),
      brokerCpuS: this.options.brokerPid !== undefined ? processCpuSeconds(this.options.brokerPid) : null,
      brokerSyscalls: this.options.brokerPid !== undefined ? readSyscalls(this.options.brokerPid) : null,
      pgCpuS: this.postmasterPid !== null ? processTreeCpuSeconds(this.postmasterPid) : null,
      loadCpuS: (cpu.user + cpu.system) / 1e6,
      wal: null,
    };
  }
}

/** The differences of two readings, per message. Pure. */
export function costPerMessage(before: CostReading, after: CostReading, messages: number): MessageCost {
  const per = (v: number, scale: number) => (messages > 0 ? (v * scale) / messages : Number.NaN);
  const cost: MessageCost = {
    messages,
    wallMs: after.atMs - before.atMs,
    loadCpuUsPerMsg: per(after.loadCpuS - before.loadCpuS, 1e6),
    totals: { loadCpuS: after.loadCpuS - before.loadCpuS },
  };
  if (before.brokerCpuS !== null && after.brokerCpuS !== null) {
    cost.totals.brokerCpuS = after.brokerCpuS - before.brokerCpuS;
    cost.brokerCpuUsPerMsg = per(cost.totals.brokerCpuS, 1e6);
  }
  if (before.brokerSyscalls && after.brokerSyscalls) {
    cost.totals.brokerReads = after.brokerSyscalls.reads - before.brokerSyscalls.reads;
    cost.totals.brokerWrites = after.brokerSyscalls.writes - before.brokerSyscalls.writes;
    cost.brokerReadsPerMsg = per(cost.totals.brokerReads, 1);
    cost.brokerWritesPerMsg = per(cost.totals.brokerWrites, 1);
  }
  if (before.pgCpuS !== null && after.pgCpuS !== null) {
    cost.totals.pgCpuS = after.pgCpuS - before.pgCpuS;
    cost.pgCpuUsPerMsg = per(cost.totals.pgCpuS, 1e6);
  }
  if (before.wal !== null && after.wal !== null) {
    cost.totals.walBytes = after.wal.walBytes - before.wal.walBytes;
    cost.totals.walSyncs = after.wal.walSync - before.wal.walSync;
    cost.totals.walWrites = after.wal.walWrite - before.wal.walWrite;
    cost.walBytesPerMsg = per(cost.totals.walBytes, 1);
    cost.walSyncsPerMsg = per(cost.totals.walSyncs, 1);
  }
  return cost;
}
