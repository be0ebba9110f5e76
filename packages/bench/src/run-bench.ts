import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import type { BenchDriver } from './bench-driver';
import { BENCH_USAGE, type BenchOptions, parseBenchArgs } from './bench-options';
import { type BenchReport, type RunResult, runMetrics } from './bench-result';
import { machineInfo } from './machine-info';
import { runBacklogScenario } from './scenarios/backlog-scenario';
import { runFlowScenario } from './scenarios/flow-scenario';
import { medianOfRecords } from './stats';
import { StompDriver } from './stomp-driver';
import { formatTable, type TableColumn } from './table';
import { targetProfile } from './target-profile';

export interface BenchIo {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream & { isTTY?: boolean };
}

/** The driver for the options; only STOMP today (a native driver on @keel/client can join here). */
export function createDriver(o: BenchOptions): BenchDriver {
  return new StompDriver({
    host: o.host,
    port: o.port,
    login: o.login,
    passcode: o.passcode,
    profile: targetProfile(o.target),
  });
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

/** The table printed after a bench: one row per run, then the median row. */
export function formatReportTable(report: Pick<BenchReport, 'scenario' | 'runs' | 'median'>): string {
  const rows: Row[] = report.runs.map((r) => ({ label: String(r.run), m: runMetrics(r) }));
  if (report.runs.length > 1) rows.push({ label: 'median', m: report.median });
  return formatTable(report.scenario === 'backlog' ? BACKLOG_COLUMNS : FLOW_COLUMNS, rows);
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
  io.stdout.write(
    `${o.scenario} on ${o.target} at ${o.host}:${o.port} (${driver.protocol}): ${o.producers} producers, ` +
      `${o.consumers} consumers, ${o.inFlight} in flight, ${o.sizeBytes} B persistent, count ${o.count}, ` +
      `bound ${o.durationMs} ms, prefetch ${o.prefetch}, ${o.runs} run(s)\n`,
  );
  const runs: RunResult[] = [];
  for (let run = 1; run <= o.runs; run++) {
    const runId = `${tag}.${run}`;
    const ctx = {
      driver,
      options: o,
      run,
      runId,
      destinationName: o.queue ?? `bench-${o.scenario}-${tag}-${run}`,
      progressStream: io.stderr,
    };
    const result =
      o.scenario === 'backlog'
        ? await runBacklogScenario(ctx)
        : await runFlowScenario(ctx, o.scenario === 'fanout' ? 'topic' : 'queue');
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
  if (o.out !== undefined) {
    writeFileSync(o.out, `${JSON.stringify(report, null, 2)}\n`);
    io.stdout.write(`wrote ${o.out}\n`);
  }
  return report;
}
