import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { parseBrokerUri } from '@keel/protocol';
import { AmqpDriver } from './amqp-driver';
import type { BenchDriver } from './bench-driver';
import { BENCH_USAGE, type BenchOptions, parseBenchArgs, type Scenario } from './bench-options';
import { type BenchReport, type RunResult, runMetrics } from './bench-result';
import { CostMeter } from './cost-meter';
import { machineInfo } from './machine-info';
import { NativeDriver } from './native-driver';
import { runBacklogScenario } from './scenarios/backlog-scenario';
import { runConnectionsScenario } from './scenarios/connections-scenario';
import { runFailoverScenario } from './scenarios/failover-scenario';
import { runFlowScenario, type ScenarioRunContext } from './scenarios/flow-scenario';
import { runManyQueuesScenario } from './scenarios/many-queues-scenario';
import { medianOfRecords } from './stats';
import { StompDriver } from './stomp-driver';
import { StompFailoverDriver } from './stomp-failover-driver';
import { formatTable, type TableColumn } from './table';
import { targetProfile } from './target-profile';

export interface BenchIo {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream & { isTTY?: boolean };
}

/** Heartbeats of native failover connections: a frozen master shows within 3 of them (as in `keel drill`). */
export const FAILOVER_HEARTBEAT_MS = 1_000;

/**
 * The driver for the options: native (@keel/client, `tcp://` or `failover:(…)`), STOMP to one
 * broker, or STOMP down a list of brokers (failover over STOMP).
 */
export function createDriver(o: BenchOptions): BenchDriver {
  if (o.protocol === 'amqp') {
    return new AmqpDriver({
      url: o.url,
      username: o.login,
      password: o.passcode,
      queueType: o.target === 'rabbitmq-quorum' ? 'quorum' : 'classic',
    });
  }
  if (o.protocol === 'native') {
    return new NativeDriver({
      url: o.url,
      username: o.login,
      password: o.passcode,
      heartbeatMs: o.scenario === 'failover' ? FAILOVER_HEARTBEAT_MS : 0,
    });
  }
  const stompTo = (url: string) => {
    const uri = parseBrokerUri(url, { defaultPorts: { stomp: 61613 } });
    return new StompDriver({
      host: uri.host,
      port: uri.port,
      login: o.login,
      passcode: o.passcode,
      profile: targetProfile(o.target),
    });
  };
  if (o.urls.length > 1) {
    return new StompFailoverDriver({ members: o.urls.map((url) => ({ url, driver: stompTo(url) })) });
  }
  return stompTo(o.urls[0] ?? o.url);
}

type Row = { label: string; m: Record<string, number> };

const FLOW_COLUMNS: TableColumn<Row>[] = [
  { header: 'run', value: (r) => r.label },
  { header: 'sent', value: (r) => r.m.sent },
  { header: 'received', value: (r) => r.m.received },
  { header: 'missing', value: (r) => r.m.missing },
  { header: 'sent/s', value: (r) => r.m.sendRate },
  { header: 'recv/s', value: (r) => r.m.receiveRate },
  { header: 'p50 ms', value: (r) => r.m.latencyP50Ms, decimals: 2 },
  { header: 'p99 ms', value: (r) => r.m.latencyP99Ms, decimals: 2 },
  { header: 'max ms', value: (r) => r.m.latencyMaxMs, decimals: 1 },
  { header: 'receipt p99 ms', value: (r) => r.m.receiptP99Ms, decimals: 2 },
  { header: 'broker µs/msg', value: (r) => r.m.brokerCpuUsPerMsg, decimals: 1 },
  { header: 'wr/msg', value: (r) => r.m.brokerWritesPerMsg, decimals: 2 },
  { header: 'pg µs/msg', value: (r) => r.m.pgCpuUsPerMsg, decimals: 1 },
  { header: 'load µs/msg', value: (r) => r.m.loadCpuUsPerMsg, decimals: 1 },
  { header: 'WAL B/msg', value: (r) => r.m.walBytesPerMsg, decimals: 0 },
  { header: 'fsync/msg', value: (r) => r.m.walSyncsPerMsg, decimals: 3 },
];

const BACKLOG_COLUMNS: TableColumn<Row>[] = [
  { header: 'run', value: (r) => r.label },
  { header: 'filled', value: (r) => r.m.sent },
  { header: 'fill/s', value: (r) => r.m.fillRate },
  { header: 'drained', value: (r) => r.m.received },
  { header: 'drain/s', value: (r) => r.m.drainRate },
  { header: 'missing', value: (r) => r.m.missing },
  { header: 'peak RSS MiB', value: (r) => r.m.peakRssMiB, decimals: 1 },
];

const FAILOVER_COLUMNS: TableColumn<Row>[] = [
  { header: 'run', value: (r) => r.label },
  { header: 'sent', value: (r) => r.m.sent },
  { header: 'receipted', value: (r) => r.m.receipted },
  { header: 'received', value: (r) => r.m.received },
  { header: 'lost', value: (r) => r.m.lost },
  { header: 'duplicated', value: (r) => r.m.duplicated },
  { header: 'failed', value: (r) => r.m.failed },
  { header: 'takeover ms', value: (r) => r.m.takeoverMs },
  { header: 'first receipt ms', value: (r) => r.m.firstReceiptAfterKillMs },
  { header: 'receipt pause ms', value: (r) => r.m.receiptPauseMs },
  { header: 'delivery pause ms', value: (r) => r.m.deliveryPauseMs },
  { header: 'p50 ms', value: (r) => r.m.latencyP50Ms, decimals: 2 },
  { header: 'p99 ms', value: (r) => r.m.latencyP99Ms, decimals: 2 },
];

const CONNECTIONS_COLUMNS: TableColumn<Row>[] = [
  { header: 'run', value: (r) => r.label },
  { header: 'idle open', value: (r) => r.m.idleOpened },
  { header: 'failed', value: (r) => r.m.idleFailed },
  { header: 'ramp s', value: (r) => (r.m.rampMs === undefined ? undefined : r.m.rampMs / 1000), decimals: 1 },
  { header: 'connect p50 ms', value: (r) => r.m.connectP50Ms, decimals: 1 },
  { header: 'connect p99 ms', value: (r) => r.m.connectP99Ms, decimals: 1 },
  { header: 'RSS before MiB', value: (r) => r.m.rssBeforeMiB, decimals: 1 },
  { header: 'RSS idle MiB', value: (r) => r.m.rssIdleMiB, decimals: 1 },
  { header: 'KiB/conn', value: (r) => r.m.rssPerIdleConnectionKiB, decimals: 1 },
  { header: 'p50 before', value: (r) => r.m.beforeP50Ms, decimals: 2 },
  { header: 'p99 before', value: (r) => r.m.beforeP99Ms, decimals: 2 },
  { header: 'p50 idle', value: (r) => r.m.idleP50Ms, decimals: 2 },
  { header: 'p99 idle', value: (r) => r.m.idleP99Ms, decimals: 2 },
  { header: 'missing', value: (r) => r.m.missing },
];

const MANY_QUEUES_COLUMNS: TableColumn<Row>[] = [
  { header: 'run', value: (r) => r.label },
  { header: 'queues', value: (r) => r.m.queues },
  {
    header: 'subscribe s',
    value: (r) => (r.m.subscribeMs === undefined ? undefined : r.m.subscribeMs / 1000),
    decimals: 1,
  },
  { header: 'sent', value: (r) => r.m.sent },
  { header: 'missing', value: (r) => r.m.missing },
  { header: 'recv/s', value: (r) => r.m.receiveRate },
  { header: 'p50 ms', value: (r) => r.m.latencyP50Ms, decimals: 2 },
  { header: 'p99 ms', value: (r) => r.m.latencyP99Ms, decimals: 2 },
  { header: 'broker µs/msg', value: (r) => r.m.brokerCpuUsPerMsg, decimals: 1 },
  { header: 'pg µs/msg', value: (r) => r.m.pgCpuUsPerMsg, decimals: 1 },
  { header: 'RSS base MiB', value: (r) => r.m.rssBaselineMiB, decimals: 1 },
  { header: 'RSS idle MiB', value: (r) => r.m.rssIdleMiB, decimals: 1 },
  { header: 'KiB/queue', value: (r) => r.m.rssIdlePerQueueKiB, decimals: 1 },
  { header: 'RSS steady MiB', value: (r) => r.m.rssSteadyMiB, decimals: 1 },
  { header: 'RSS peak MiB', value: (r) => r.m.rssPeakMiB, decimals: 1 },
];

const COLUMNS: Record<Scenario, TableColumn<Row>[]> = {
  throughput: FLOW_COLUMNS,
  fanout: FLOW_COLUMNS,
  backlog: BACKLOG_COLUMNS,
  failover: FAILOVER_COLUMNS,
  connections: CONNECTIONS_COLUMNS,
  'many-queues': MANY_QUEUES_COLUMNS,
};

/** The table printed after a bench: one row per run, then the median row. */
export function formatReportTable(report: Pick<BenchReport, 'scenario' | 'runs' | 'median'>): string {
  const rows: Row[] = report.runs.map((r) => ({ label: String(r.run), m: runMetrics(r) }));
  if (report.runs.length > 1) rows.push({ label: 'median', m: report.median });
  return formatTable(COLUMNS[report.scenario], rows);
}

/** The line printed before the runs: what is measured, where, how. */
export function describeRun(o: BenchOptions, protocol: string): string {
  const where = o.protocol === 'native' || o.urls.length > 1 ? o.url : `${o.host}:${o.port}`;
  const rate = o.ratePerS > 0 ? `${o.ratePerS} msg/s` : 'unpaced';
  let line =
    `${o.scenario} on ${o.target} at ${where} (${protocol}): ${o.producers} producers, ` +
    `${o.consumers} consumers, ${o.inFlight} in flight, ${o.sizeBytes} B persistent, ${rate}, count ${o.count}, ` +
    `bound ${o.durationMs} ms${o.scenario === 'connections' ? ' per phase' : ''}, prefetch ${o.prefetch}, ${o.runs} run(s)`;
  if (o.scenario === 'failover') {
    line += `; SIGKILL pid ${o.masterPid} at ${o.killAfterMs} ms${o.adminUrls.length ? `, takeover from ${o.adminUrls.join(' ')}` : ''}`;
  }
  if (o.scenario === 'connections') {
    line += `; ${o.idleConnections} idle connections, ${o.connectBatch} at a time, ${o.idleSubscribe ? 'each subscribed to its own queue' : 'no subscription'}`;
  }
  if (o.scenario === 'many-queues') {
    line += `; ${o.queues} queues × ${o.consumersPerQueue} consumers over ${o.consumers} connections, idle ${o.idleSettleMs} ms before the load`;
  }
  return `${line}\n`;
}

/** Details below the table that do not fit in it. */
function formatDetails(runs: readonly RunResult[]): string {
  const lines: string[] = [];
  for (const r of runs) {
    if (r.kind === 'failover') {
      const ev = r.events.filter((e) => e.event !== 'error');
      lines.push(
        `run ${r.run}: killed pid ${r.killedPid} at ${r.killAtMs === null ? '-' : `${(r.killAtMs / 1000).toFixed(1)} s`}` +
          `${r.newMasterAdmin ? `, ${r.newMasterAdmin} master after ${r.takeoverMs?.toFixed(0)} ms` : ''}` +
          `, first delivery after ${r.firstDeliveryAfterKillMs?.toFixed(0) ?? '-'} ms; ` +
          `${ev.filter((e) => e.event === 'interrupted').length} connections interrupted, ` +
          `${ev.filter((e) => e.event === 'resumed').length} resumed` +
          `${r.deliveredWithoutReceipt ? `; ${r.deliveredWithoutReceipt} delivered without receipt` : ''}`,
      );
    } else if (r.kind === 'connections') {
      const b = r.before;
      const w = r.withIdle;
      lines.push(
        `run ${r.run}: before: ${b.sent} receipted in ${(b.durationMs / 1000).toFixed(1)} s, receipt p99 ${b.receiptLatencyMs.p99.toFixed(2)} ms; ` +
          `with ${r.idle.opened} idle: ${w.sent} in ${(w.durationMs / 1000).toFixed(1)} s, receipt p99 ${w.receiptLatencyMs.p99.toFixed(2)} ms; ` +
          `ramp load p99 ${r.ramp.latencyMs.p99.toFixed(2)} ms; closed in ${(r.idle.closeMs / 1000).toFixed(1)} s` +
          `${r.rss?.peakKiB != null ? `; peak RSS ${(r.rss.peakKiB / 1024).toFixed(1)} MiB` : ''}`,
      );
    }
  }
  return lines.length === 0 ? '' : `${lines.join('\n')}\n`;
}

function runScenario(ctx: ScenarioRunContext): Promise<RunResult> {
  switch (ctx.options.scenario) {
    case 'backlog':
      return runBacklogScenario(ctx);
    case 'failover':
      return runFailoverScenario(ctx);
    case 'connections':
      return runConnectionsScenario(ctx);
    case 'many-queues':
      return runManyQueuesScenario(ctx);
    case 'fanout':
      return runFlowScenario(ctx, 'topic');
    case 'throughput':
      return runFlowScenario(ctx, 'queue');
  }
}

/**
 * throughput and fanout: the run between two CostMeter readings (CPU of --broker-pid, of the
 * --pg-url server and of this process; pg_stat_wal), divided by the messages sent.
 */
async function runMeasured(ctx: ScenarioRunContext): Promise<RunResult> {
  const o = ctx.options;
  if (o.scenario !== 'throughput' && o.scenario !== 'fanout') return runScenario(ctx);
  const meter = new CostMeter({ brokerPid: o.brokerPid, pgUrl: o.pgUrl, settleMs: o.costSettleMs });
  await meter.start();
  let result: RunResult;
  try {
    result = await runScenario(ctx);
  } catch (err) {
    await meter.close();
    throw err;
  }
  if (result.kind === 'flow') result.cost = await meter.finish(result.sent);
  else await meter.close();
  return result;
}

/**
 * Run `keel bench SCENARIO [options]`: parse argv (throws InvalidArgumentError naming the bad
 * option), run the scenario --runs times, print the configuration and a table on stdout, write
 * JSON to --out. Returns the report, or null for --help.
 */
export async function runBench(
  argv: readonly string[],
  io: BenchIo = { stdout: process.stdout, stderr: process.stderr },
): Promise<BenchReport | null> {
  const o = parseBenchArgs(argv);
  if (o.help) {
    io.stdout.write(BENCH_USAGE);
    return null;
  }
  const driver = createDriver(o);
  const startedAt = new Date().toISOString();
  const tag = `${Date.now().toString(36)}${randomBytes(2).toString('hex')}`;
  const { passcode: _p, help: _h, quiet: _q, out: _o, ...config } = o;
  io.stdout.write(describeRun(o, driver.protocol));
  const runs: RunResult[] = [];
  for (let run = 1; run <= o.runs; run++) {
    const runId = `${tag}.${run}`;
    const ctx: ScenarioRunContext = {
      driver,
      options: o,
      run,
      runId,
      destinationName: o.queue ?? `bench-${o.scenario}-${tag}-${run}`,
      progressStream: io.stderr,
    };
    const result = await runMeasured(ctx);
    runs.push(result);
    for (const e of result.errors) io.stderr.write(`run ${run}: ${e}\n`);
  }
  const report: BenchReport = {
    tool: 'keel-bench',
    formatVersion: 1,
    scenario: o.scenario,
    target: o.target,
    protocol: driver.protocol,
    startedAt,
    config,
    machine: machineInfo(),
    runs,
    median: medianOfRecords(runs.map(runMetrics)),
  };
  io.stdout.write(formatReportTable(report));
  io.stdout.write(formatDetails(runs));
  if (o.out !== undefined) {
    writeFileSync(o.out, `${JSON.stringify(report, null, 2)}\n`);
    io.stdout.write(`wrote ${o.out}\n`);
  }
  return report;
}
