import type { BenchReport } from './bench-result';
import { runMetrics } from './bench-result';
import { median } from './stats';
import { formatNumber } from './table';

/**
 * Turn bench result files into docs/benchmarks.md: one table per scenario case (same scenario,
 * connections, window, size, prefetch) with a row per broker holding the MEDIAN of every run of
 * that broker, plus hand-written SVG bar charts. Pure: returns the texts, writes nothing.
 */

export interface RenderOptions {
  /** Path of the SVG folder as the markdown links it (e.g. `benchmarks`). */
  svgHref: string;
  /** Free-form setup facts (versions, persistence settings), shown as a list. */
  setup?: Record<string, string>;
  /** The command that produced the results. */
  command?: string;
  /** What `scripts/pg-limit.js` measured on the same Postgres: shown as the physical-limit section. */
  pgLimit?: PgLimitReport;
  /** Hand-written markdown appended at the end (profile findings, separately measured lines). */
  notes?: string;
}

/** One phase of `scripts/pg-limit.js`: durable batched inserts or deletes of 1 KiB rows. */
export interface PgLimitPhase {
  kind: 'insert' | 'delete';
  clients: number;
  batch: number;
  rows: number;
  commits: number;
  durationMs: number;
  rowsPerSecond: number;
  commitsPerSecond: number;
  commitP50Ms: number | null;
  commitP99Ms: number | null;
}

/** What `scripts/pg-limit.js --out` writes. */
export interface PgLimitReport {
  tool: 'keel-pg-limit';
  startedAt: string;
  postgres: string;
  settings: Record<string, string>;
  sizeBytes: number;
  durationMs: number;
  maxRows: number;
  results: Array<{
    batch: number;
    clients: number;
    insert: PgLimitPhase;
    delete: PgLimitPhase;
    /** 1 / (1/insert + 1/delete): messages a second if each is inserted once and deleted once. */
    insertPlusDeletePerSecond: number;
  }>;
}

export interface RenderedReport {
  markdown: string;
  /** File name -> SVG text. */
  svgs: Record<string, string>;
}

interface CaseGroup {
  key: string;
  title: string;
  slug: string;
  scenario: BenchReport['scenario'];
  config: BenchReport['config'];
  /** target -> every run's metrics. */
  byTarget: Map<string, Record<string, number>[]>;
}

/**
 * Rows of a case: a broker over STOMP (`keel`, `activemq`, `rabbitmq`), or Keel over its native
 * protocol (`keel-native`), so the two Keel rows sit in one table.
 */
const TARGET_ORDER = ['keel-native', 'keel', 'activemq', 'rabbitmq', 'rabbitmq-amqp', 'rabbitmq-quorum'];
const TARGET_NAMES: Record<string, string> = {
  'keel-native': 'Keel (native)',
  keel: 'Keel',
  activemq: 'ActiveMQ',
  rabbitmq: 'RabbitMQ',
  'rabbitmq-amqp': 'RabbitMQ AMQP (classic)',
  'rabbitmq-quorum': 'RabbitMQ AMQP (quorum)',
};
const TARGET_COLORS: Record<string, string> = {
  'keel-native': '#1a365d',
  keel: '#2b6cb0',
  activemq: '#c05621',
  rabbitmq: '#2f855a',
  'rabbitmq-amqp': '#38a169',
  'rabbitmq-quorum': '#276749',
};

/** The row a report goes in: its target, or `<target>-native` over the native protocol. */
export function rowKey(r: Pick<BenchReport, 'target' | 'protocol'>): string {
  return r.protocol === 'native' ? `${r.target}-native` : r.target;
}

const SCENARIO_ORDER: Record<BenchReport['scenario'], number> = {
  throughput: 0,
  fanout: 1,
  backlog: 2,
  failover: 3,
  connections: 4,
  'many-queues': 5,
};

function caseOf(r: BenchReport): { key: string; title: string; slug: string } {
  const c = r.config;
  const conns =
    r.scenario === 'fanout'
      ? `${c.producers} producer(s), ${c.consumers} subscribers`
      : `${c.producers} producers, ${c.consumers} consumers`;
  const rate = c.ratePerS ? `, ${formatNumber(c.ratePerS)} msg/s` : '';
  let title: string;
  let slug = `${r.scenario}-p${c.producers}-c${c.consumers}-w${c.inFlight}-s${c.sizeBytes}`;
  if (r.scenario === 'connections') {
    const idle = `${formatNumber(c.idleConnections ?? 0)} idle connections${c.idleSubscribe ? ' (each subscribed)' : ''}`;
    title = `connections: ${idle}, load ${conns}, window ${c.inFlight}, ${c.sizeBytes} B${rate}`;
    slug += `-i${c.idleConnections ?? 0}${c.idleSubscribe ? 's' : ''}-r${c.ratePerS ?? 0}`;
  } else if (r.scenario === 'many-queues') {
    const q = c.queues ?? 0;
    title = `many-queues: ${formatNumber(q)} queues × ${c.consumersPerQueue ?? 0} consumers on ${c.consumers} connections, ${c.producers} producers, window ${c.inFlight}, ${c.sizeBytes} B${rate}`;
    slug += `-q${q}x${c.consumersPerQueue ?? 0}`;
  } else if (r.scenario === 'failover') {
    title = `failover: master SIGKILLed under load, ${conns}, window ${c.inFlight}, ${c.sizeBytes} B${rate}`;
    slug += `-r${c.ratePerS ?? 0}`;
  } else {
    const count = r.scenario === 'backlog' ? `, ${formatNumber(c.count)} messages` : '';
    title = `${r.scenario}: ${conns}, window ${c.inFlight}, ${c.sizeBytes} B${count}${rate}`;
    if (r.scenario === 'backlog') slug += `-n${c.count}`;
    if (c.ratePerS) slug += `-r${c.ratePerS}`;
  }
  return { key: `${slug}-f${c.prefetch}`, title, slug };
}

export function groupReports(reports: readonly BenchReport[]): CaseGroup[] {
  const groups = new Map<string, CaseGroup>();
  for (const r of reports) {
    const { key, title, slug } = caseOf(r);
    let g = groups.get(key);
    if (!g) {
      g = { key, title, slug, scenario: r.scenario, config: r.config, byTarget: new Map() };
      groups.set(key, g);
    }
    const row = rowKey(r);
    const list = g.byTarget.get(row) ?? [];
    for (const run of r.runs) list.push(runMetrics(run));
    g.byTarget.set(row, list);
  }
  return [...groups.values()].sort(
    (a, b) =>
      SCENARIO_ORDER[a.scenario] - SCENARIO_ORDER[b.scenario] ||
      a.key.localeCompare(b.key, 'en', { numeric: true }),
  );
}

/** The sentence under a case's title: the bounds, and what the columns mean where it is not obvious. */
function caseDescription(g: CaseGroup): string {
  const c = g.config;
  const bounds = `Prefetch ${c.prefetch}, count bound ${formatNumber(c.count)}, time bound ${formatNumber(c.durationMs / 1000)} s`;
  switch (g.scenario) {
    case 'backlog':
      return `${bounds} per phase.`;
    case 'failover':
      return (
        `${bounds}; the master SIGKILLed ${formatNumber((c.killAfterMs ?? 0) / 1000, 1)} s into the load, failover connections (native: \`failover:(…)\`, STOMP: the bench reconnects down its URL list and resends what had no receipt). ` +
        "Takeover: kill → a node's admin API reports `master` (polled every 10 ms); first receipt: kill → the first receipt after it; " +
        'pause: the longest gap between receipts (deliveries) from the last one before the kill; lost: receipted, never received.'
      );
    case 'connections':
      return (
        `${bounds} for each load phase: the load's latency for messages sent before the idle connections were opened and with all of them open; ` +
        `idle connections opened ${formatNumber(c.connectBatch ?? 0)} at a time, no heart-beats, ${c.idleSubscribe ? 'each subscribed to a queue of its own' : 'no subscription'}; RSS of the broker process.`
      );
    default:
      return `${bounds}.`;
  }
}

function medianMetric(runs: Record<string, number>[], key: string): number {
  return median(runs.map((m) => m[key]).filter((v): v is number => typeof v === 'number'));
}

function escapeXml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

export interface Bar {
  label: string;
  value: number;
  color?: string;
}

/** A horizontal bar chart as SVG text, bars labelled with their value. */
export function barChartSvg(title: string, unit: string, bars: readonly Bar[]): string {
  const width = 640;
  const left = 110;
  const right = 120;
  const barH = 22;
  const gap = 10;
  const top = 36;
  const height = top + bars.length * (barH + gap) + 10;
  const finite = bars.map((b) => (Number.isFinite(b.value) ? b.value : 0));
  const max = Math.max(1e-9, ...finite);
  const scale = (width - left - right) / max;
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="13">`,
    `<rect width="${width}" height="${height}" fill="#ffffff"/>`,
    `<text x="10" y="22" font-size="14" font-weight="bold">${escapeXml(title)}</text>`,
  ];
  bars.forEach((b, i) => {
    const y = top + i * (barH + gap);
    const w = Math.max(0, finite[i]! * scale);
    parts.push(
      `<text x="${left - 8}" y="${y + barH * 0.7}" text-anchor="end">${escapeXml(b.label)}</text>`,
      `<rect x="${left}" y="${y}" width="${w.toFixed(1)}" height="${barH}" fill="${b.color ?? '#4a5568'}"/>`,
      `<text x="${(left + w + 6).toFixed(1)}" y="${y + barH * 0.7}">${escapeXml(`${formatNumber(b.value, b.value < 10 ? 2 : 0)} ${unit}`)}</text>`,
    );
  });
  parts.push('</svg>');
  return `${parts.join('\n')}\n`;
}

/** [metric key, column header, decimals, factor applied to the value (default 1)]. */
type MetricColumn = [key: string, header: string, decimals: number, factor?: number];

const FLOW_METRICS: MetricColumn[] = [
  ['sendRate', 'sent msg/s', 0],
  ['receiveRate', 'received msg/s', 0],
  ['latencyP50Ms', 'latency p50 ms', 2],
  ['latencyP99Ms', 'latency p99 ms', 2],
  ['latencyMaxMs', 'latency max ms', 1],
  ['receiptP99Ms', 'receipt p99 ms', 2],
];

const BACKLOG_METRICS: MetricColumn[] = [
  ['sent', 'filled', 0],
  ['received', 'drained', 0],
  ['fillRate', 'fill msg/s', 0],
  ['drainRate', 'drain msg/s', 0],
  ['fillDurationMs', 'fill s', 1, 1 / 1000],
  ['drainDurationMs', 'drain s', 1, 1 / 1000],
  ['peakRssMiB', 'peak broker RSS MiB', 0],
];

const FAILOVER_METRICS: MetricColumn[] = [
  ['takeoverMs', 'takeover ms', 0],
  ['firstReceiptAfterKillMs', 'first receipt after kill ms', 0],
  ['receiptPauseMs', 'receipt pause ms', 0],
  ['deliveryPauseMs', 'delivery pause ms', 0],
  ['receipted', 'receipted', 0],
  ['received', 'received', 0],
  ['lost', 'lost', 0],
  ['duplicated', 'duplicated', 0],
];

const CONNECTIONS_METRICS: MetricColumn[] = [
  ['idleOpened', 'idle opened', 0],
  ['rampMs', 'ramp s', 1, 1 / 1000],
  ['connectP99Ms', 'connect p99 ms', 1],
  ['rssBeforeMiB', 'RSS before MiB', 0],
  ['rssIdleMiB', 'RSS with idle MiB', 0],
  ['rssPerIdleConnectionKiB', 'KiB per idle conn', 1],
  ['beforeP50Ms', 'p50 before ms', 2],
  ['beforeP99Ms', 'p99 before ms', 2],
  ['idleP50Ms', 'p50 with idle ms', 2],
  ['idleP99Ms', 'p99 with idle ms', 2],
];

const MANY_QUEUES_METRICS: MetricColumn[] = [
  ['queues', 'queues', 0],
  ['receiveRate', 'received msg/s', 0],
  ['latencyP99Ms', 'latency p99 ms', 2],
  ['brokerCpuUsPerMsg', 'broker CPU µs/msg', 1],
  ['rssIdleMiB', 'RSS idle MiB', 0],
  ['rssIdlePerQueueKiB', 'KiB per queue', 1],
  ['rssSteadyMiB', 'RSS steady MiB', 0],
  ['rssPeakMiB', 'RSS peak MiB', 0],
];

/** Cost per message (cost-meter.ts), a table of its own under a throughput or fanout case. */
const COST_METRICS: MetricColumn[] = [
  ['brokerCpuUsPerMsg', 'broker CPU µs/msg', 1],
  ['brokerWritesPerMsg', 'broker write syscalls/msg', 2],
  ['brokerReadsPerMsg', 'broker read syscalls/msg', 2],
  ['pgCpuUsPerMsg', 'Postgres CPU µs/msg', 1],
  ['loadCpuUsPerMsg', 'load generator CPU µs/msg', 1],
  ['walBytesPerMsg', 'WAL bytes/msg', 0],
  ['walSyncsPerMsg', 'WAL fsyncs/msg', 3],
];

const METRICS: Record<BenchReport['scenario'], MetricColumn[]> = {
  throughput: FLOW_METRICS,
  fanout: FLOW_METRICS,
  backlog: BACKLOG_METRICS,
  failover: FAILOVER_METRICS,
  connections: CONNECTIONS_METRICS,
  'many-queues': MANY_QUEUES_METRICS,
};

/** The bar chart of a case: [metric, title, unit]. */
const CHART: Record<BenchReport['scenario'], [key: string, title: string, unit: string]> = {
  throughput: ['receiveRate', 'received msg/s (median)', 'msg/s'],
  fanout: ['receiveRate', 'received msg/s (median)', 'msg/s'],
  backlog: ['drainRate', 'drain rate (median)', 'msg/s'],
  failover: ['receiptPauseMs', 'longest pause between receipts (median)', 'ms'],
  connections: ['idleP99Ms', 'latency p99 with the idle connections open (median)', 'ms'],
  'many-queues': ['receiveRate', 'received msg/s (median)', 'msg/s'],
};

function targets(g: CaseGroup): string[] {
  return [...g.byTarget.keys()].sort((a, b) => TARGET_ORDER.indexOf(a) - TARGET_ORDER.indexOf(b));
}

export function renderBenchmarksMarkdown(
  reports: readonly BenchReport[],
  options: RenderOptions,
): RenderedReport {
  if (reports.length === 0) throw new RangeError('no bench results to render');
  const svgs: Record<string, string> = {};
  const first = reports[0]!;
  const m = first.machine;
  const dates = reports.map((r) => r.startedAt).sort();
  const brokers = [...new Set(reports.map((r) => r.target as string))].sort(
    (a, b) => TARGET_ORDER.indexOf(a) - TARGET_ORDER.indexOf(b),
  );
  const native = reports.some((r) => r.protocol === 'native');
  const amqp = reports.some((r) => r.protocol === 'amqp');
  const stomp = reports.some((r) => r.protocol === 'stomp');
  const over = amqp
    ? [
        stomp ? 'over STOMP' : '',
        native ? 'Keel over its native protocol (rows `Keel (native)`, @keel/client)' : '',
        'RabbitMQ over AMQP 0-9-1 (rows `RabbitMQ AMQP`, amqplib)',
      ]
        .filter((s) => s !== '')
        .join(', ')
    : native
      ? 'over STOMP, and Keel also over its native protocol (rows `Keel (native)`, @keel/client)'
      : 'over STOMP';
  const lines: string[] = [
    '# Benchmarks',
    '',
    'Generated from measured results by `packages/bench` (`render-report`); every figure is the',
    'median of the runs listed.',
    brokers.length > 1
      ? `${brokers.map((t) => TARGET_NAMES[t] ?? t).join(', ')} ran on the same machine, alternating run by run, each driven ${over} by the same load generator (\`npm run bench\`).`
      : `Only ${TARGET_NAMES[brokers[0]!] ?? brokers[0]} was measured in these results, driven by the load generator (\`npm run bench\`) ${native ? 'over STOMP and over its native protocol (rows `Keel (native)`, @keel/client)' : 'over STOMP'}.`,
    '',
    '## Setup',
    '',
    `- Date: ${dates[0]!.slice(0, 10)}${dates.length > 1 && dates[dates.length - 1]!.slice(0, 10) !== dates[0]!.slice(0, 10) ? ` to ${dates[dates.length - 1]!.slice(0, 10)}` : ''}`,
    `- Machine: ${m.nproc} CPUs (${m.cpuModel}), ${formatNumber(m.memoryBytes / 1024 ** 3, 1)} GiB memory, Linux ${m.kernel}, Node ${m.node}`,
    '- Messages: persistent (`persistent:true`), a receipt awaited for every send, consumers with',
    '  `ack:client-individual` acknowledging every message; latency is end to end (producer writes',
    '  SEND to consumer reads MESSAGE, timestamp in the body); rates run from the first send to the',
    '  last receipt (sent) or the last message (received).',
  ];
  if (amqp) {
    lines.push(
      '- AMQP 0-9-1 rows: a confirm channel per producer (`confirm.select`; the window is the',
      '  publishes awaiting their `basic.ack`), `deliveryMode` 2, a durable queue declared with',
      '  `x-queue-type` classic or quorum; consumers on a channel each with `basic.qos` prefetch-count',
      '  and manual `basic.ack` of every delivery.',
    );
  }
  if (options.command) lines.push(`- Command: \`${options.command}\``);
  for (const [k, v] of Object.entries(options.setup ?? {})) lines.push(`- ${k}: ${v}`);
  lines.push('');

  for (const g of groupReports(reports)) {
    const ts = targets(g);
    const metrics = METRICS[g.scenario];
    lines.push(`## ${g.title}`, '');
    lines.push(`${caseDescription(g)}`, '');
    lines.push(`| broker | runs | ${metrics.map(([, h]) => h).join(' | ')} |`);
    lines.push(`| --- | ---: | ${metrics.map(() => '---:').join(' | ')} |`);
    for (const t of ts) {
      const runs = g.byTarget.get(t)!;
      const cells = metrics.map(([k, , d, f]) => formatNumber(medianMetric(runs, k) * (f ?? 1), d));
      lines.push(`| ${TARGET_NAMES[t] ?? t} | ${runs.length} | ${cells.join(' | ')} |`);
    }
    const costed = ts.filter((t) => g.byTarget.get(t)!.some((r) => r.brokerCpuUsPerMsg !== undefined));
    if (costed.length > 0) {
      lines.push(
        '',
        'Cost per message sent (medians): CPU time (utime + stime from `/proc/PID/stat`) of the broker process and its read and write syscalls (`syscr`, `syscw` from `/proc/PID/io`), of every Postgres process (the postmaster, its children and the children it reaped during the run) and of the load generator, read before and after each run; WAL bytes and fsyncs from `pg_stat_wal`. The RabbitMQ rows have no Postgres of their own: their Postgres columns show what else the server did meanwhile.',
        '',
        `| broker | ${COST_METRICS.map(([, h]) => h).join(' | ')} |`,
        `| --- | ${COST_METRICS.map(() => '---:').join(' | ')} |`,
      );
      for (const t of costed) {
        const runs = g.byTarget.get(t)!;
        const cells = COST_METRICS.map(([k, , d]) => formatNumber(medianMetric(runs, k), d));
        lines.push(`| ${TARGET_NAMES[t] ?? t} | ${cells.join(' | ')} |`);
      }
    }
    const incomplete = ts.filter((t) =>
      g.byTarget.get(t)!.some((r) => (r.missing ?? 0) > 0 || (r.lost ?? 0) > 0),
    );
    if (incomplete.length > 0) {
      lines.push(
        '',
        `Some runs ended with messages not received within the bound: ${incomplete.map((t) => TARGET_NAMES[t] ?? t).join(', ')}.`,
      );
    }
    const [rateKey, rateTitle, unit] = CHART[g.scenario];
    const file = `${g.slug}.svg`;
    svgs[file] = barChartSvg(
      `${g.title}: ${rateTitle}`,
      unit,
      ts.map((t) => ({
        label: TARGET_NAMES[t] ?? t,
        value: medianMetric(g.byTarget.get(t)!, rateKey),
        color: TARGET_COLORS[t],
      })),
    );
    // Throughput and latency charts on one line: side by side where the markdown is rendered.
    let images = `![${g.title}](${options.svgHref}/${file})`;
    if (g.scenario === 'throughput' || g.scenario === 'fanout') {
      const latFile = `${g.slug}-p99.svg`;
      svgs[latFile] = barChartSvg(
        `${g.title}: latency p99 (median)`,
        'ms',
        ts.map((t) => ({
          label: TARGET_NAMES[t] ?? t,
          value: medianMetric(g.byTarget.get(t)!, 'latencyP99Ms'),
          color: TARGET_COLORS[t],
        })),
      );
      images += ` ![${g.title} p99 latency](${options.svgHref}/${latFile})`;
    }
    lines.push('', images, '');
  }
  const groups = groupReports(reports);
  const amqpClassic = groups.some((g) => g.byTarget.has('rabbitmq-amqp'));
  lines.push(...(amqpClassic ? renderAmqpTargetsSection(groups) : renderTargetsSection(groups)));
  if (options.pgLimit) lines.push(...renderPgLimitSection(options.pgLimit, groups));
  if (options.notes) lines.push(options.notes.trimEnd(), '');
  return { markdown: `${lines.join('\n')}\n`, svgs };
}

/** The 4 × 4 throughput case of a window, and the backlog case, if measured. */
function findCase(groups: readonly CaseGroup[], scenario: BenchReport['scenario'], inFlight?: number) {
  return groups.find(
    (g) =>
      g.scenario === scenario &&
      g.config.producers === 4 &&
      g.config.consumers === 4 &&
      (inFlight === undefined || g.config.inFlight === inFlight),
  );
}

function ratio(a: number, b: number): number {
  return b > 0 ? a / b : Number.NaN;
}

function verdict(ok: boolean | null): string {
  return ok === null ? 'not measured' : ok ? '**met**' : '**not met**';
}

/**
 * The targets of the issue "Benchmarks side by side with ActiveMQ and RabbitMQ on the same
 * machine", checked against the medians: window 64 ≥ 2× RabbitMQ and ≥ 10× ActiveMQ with p99 < 50 ms;
 * window 1 ≥ 2× RabbitMQ with p99 < 3 ms; backlog drain ≥ 2× RabbitMQ.
 */
export function renderTargetsSection(groups: readonly CaseGroup[]): string[] {
  const med = (g: CaseGroup | undefined, t: string, k: string) => {
    const runs = g?.byTarget.get(t);
    return runs ? medianMetric(runs, k) : Number.NaN;
  };
  const rows: string[] = [];
  const row = (target: string, measured: string, ok: boolean | null) =>
    rows.push(`| ${target} | ${measured} | ${verdict(ok)} |`);
  const cmp = (g: CaseGroup | undefined, key: string, peer: string, factor: number, label: string) => {
    const k = med(g, 'keel', key);
    const p = med(g, peer, key);
    const r = ratio(k, p);
    row(
      `${label}: Keel ≥ ${factor}× ${TARGET_NAMES[peer]}`,
      Number.isNaN(r)
        ? '-'
        : `Keel ${formatNumber(k)} msg/s, ${TARGET_NAMES[peer]} ${formatNumber(p)} msg/s: ${formatNumber(r, 2)}×`,
      Number.isNaN(r) ? null : r >= factor,
    );
  };
  const p99 = (g: CaseGroup | undefined, limitMs: number, label: string) => {
    const v = med(g, 'keel', 'latencyP99Ms');
    row(
      `${label}: Keel p99 < ${limitMs} ms`,
      Number.isNaN(v) ? '-' : `${formatNumber(v, 2)} ms`,
      Number.isNaN(v) ? null : v < limitMs,
    );
  };
  const w64 = findCase(groups, 'throughput', 64);
  const w1 = findCase(groups, 'throughput', 1);
  const backlog = findCase(groups, 'backlog');
  cmp(w64, 'receiveRate', 'rabbitmq', 2, 'window 64');
  cmp(w64, 'receiveRate', 'activemq', 10, 'window 64');
  p99(w64, 50, 'window 64');
  cmp(w1, 'receiveRate', 'rabbitmq', 2, 'window 1');
  p99(w1, 3, 'window 1');
  cmp(backlog, 'drainRate', 'rabbitmq', 2, 'backlog drain');
  // "Over the native protocol faster still": Keel native against Keel over STOMP, same case.
  const nativeCmp = (g: CaseGroup | undefined, label: string) => {
    const n = med(g, 'keel-native', 'receiveRate');
    const st = med(g, 'keel', 'receiveRate');
    const r = ratio(n, st);
    row(
      `${label}: Keel native faster than Keel over STOMP`,
      Number.isNaN(r)
        ? '-'
        : `native ${formatNumber(n)} msg/s, STOMP ${formatNumber(st)} msg/s: ${formatNumber(r, 2)}×`,
      Number.isNaN(r) ? null : r > 1,
    );
  };
  nativeCmp(w64, 'window 64');
  nativeCmp(w1, 'window 1');
  // "After SIGKILL of the master a slave serves within 150 ms": the takeover as the admin API
  // shows it (polled every 10 ms), and the first receipt the clients got after the kill.
  const failover = groups.find(
    (g) => g.scenario === 'failover' && (g.byTarget.has('keel-native') || g.byTarget.has('keel')),
  );
  const who = failover?.byTarget.has('keel-native') ? 'keel-native' : 'keel';
  const takeover = med(failover, who, 'takeoverMs');
  const firstReceipt = med(failover, who, 'firstReceiptAfterKillMs');
  row(
    "failover: a slave serves within 150 ms of the master's SIGKILL",
    Number.isNaN(takeover)
      ? '-'
      : `takeover ${formatNumber(takeover)} ms (admin API), first receipt after the kill ${formatNumber(firstReceipt)} ms (${TARGET_NAMES[who]})`,
    Number.isNaN(takeover) ? null : takeover <= 150,
  );
  return [
    '## Against the targets of the issue',
    '',
    'Received msg/s (throughput) and drain msg/s (backlog), takeover (failover), medians of the tables above.',
    '',
    '| target | measured (medians) | verdict |',
    '| --- | --- | --- |',
    ...rows,
    '',
  ];
}

/**
 * The targets of issue #25 ("Twice RabbitMQ on its own protocol"), against the medians: Keel
 * native at window 64 ≥ 2× RabbitMQ AMQP on a classic queue with p99 latency no worse; window 1
 * ≥ 2.5×; Keel over STOMP within 10 % of native.
 */
export function renderAmqpTargetsSection(groups: readonly CaseGroup[]): string[] {
  const med = (g: CaseGroup | undefined, t: string, k: string) => {
    const runs = g?.byTarget.get(t);
    return runs ? medianMetric(runs, k) : Number.NaN;
  };
  const rows: string[] = [];
  const row = (target: string, measured: string, ok: boolean | null) =>
    rows.push(`| ${target} | ${measured} | ${verdict(ok)} |`);
  const w64 = findCase(groups, 'throughput', 64);
  const w1 = findCase(groups, 'throughput', 1);
  const lead = (g: CaseGroup | undefined, factor: number, label: string) => {
    const k = med(g, 'keel-native', 'receiveRate');
    const p = med(g, 'rabbitmq-amqp', 'receiveRate');
    const r = ratio(k, p);
    row(
      `${label}: Keel native ≥ ${factor}× RabbitMQ AMQP (classic)`,
      Number.isNaN(r)
        ? '-'
        : `Keel ${formatNumber(k)} msg/s, RabbitMQ ${formatNumber(p)} msg/s: ${formatNumber(r, 2)}×`,
      Number.isNaN(r) ? null : r >= factor,
    );
  };
  lead(w64, 2, 'window 64');
  const kp99 = med(w64, 'keel-native', 'latencyP99Ms');
  const rp99 = med(w64, 'rabbitmq-amqp', 'latencyP99Ms');
  row(
    "window 64: Keel native p99 latency no worse than RabbitMQ AMQP's",
    Number.isNaN(kp99) || Number.isNaN(rp99)
      ? '-'
      : `Keel ${formatNumber(kp99, 2)} ms, RabbitMQ ${formatNumber(rp99, 2)} ms`,
    Number.isNaN(kp99) || Number.isNaN(rp99) ? null : kp99 <= rp99,
  );
  lead(w1, 2.5, 'window 1');
  for (const [g, label] of [
    [w64, 'window 64'],
    [w1, 'window 1'],
  ] as const) {
    const n = med(g, 'keel-native', 'receiveRate');
    const st = med(g, 'keel', 'receiveRate');
    const r = ratio(st, n);
    row(
      `${label}: Keel over STOMP within 10 % of native`,
      Number.isNaN(r)
        ? '-'
        : `STOMP ${formatNumber(st)} msg/s, native ${formatNumber(n)} msg/s: ${formatNumber(100 * r)} %`,
      Number.isNaN(r) ? null : r >= 0.9,
    );
  }
  return [
    '## Against the targets of issue #25',
    '',
    'Received msg/s and end-to-end latency p99, medians of the tables above.',
    '',
    '| target | measured (medians) | verdict |',
    '| --- | --- | --- |',
    ...rows,
    '',
  ];
}

/**
 * Put a generated report into an existing markdown file as one section: its title becomes a
 * level-2 heading `title`, every other heading goes one level down, and the whole sits between
 * `<!-- bench-section: title -->` markers, replacing what was between them before (or appended
 * at the end the first time).
 */
export function spliceSection(existing: string, title: string, generated: string): string {
  let fenced = false; // inside a ``` block a leading # is not a heading (a shell comment, say)
  const body = generated
    .split('\n')
    .map((line, i) => {
      if (line.startsWith('```')) fenced = !fenced;
      if (i === 0 && line.startsWith('# ')) return `## ${title}`;
      return !fenced && line.startsWith('#') ? `#${line}` : line;
    })
    .join('\n')
    .trimEnd();
  const open = `<!-- bench-section: ${title} -->`;
  const close = `<!-- /bench-section: ${title} -->`;
  const block = `${open}\n${body}\n${close}`;
  const a = existing.indexOf(open);
  const b = existing.indexOf(close);
  if (a !== -1 && b > a) return existing.slice(0, a) + block + existing.slice(b + close.length);
  return `${existing.trimEnd()}\n\n${block}\n`;
}

/** The physical-limit section: what this Postgres does durably, and how close Keel gets. */
export function renderPgLimitSection(pg: PgLimitReport, groups: readonly CaseGroup[]): string[] {
  const lines = [
    '## The physical limit: this Postgres, durable batched inserts and deletes',
    '',
    `Measured by \`node packages/bench/scripts/pg-limit.js\` on ${pg.startedAt.slice(0, 16).replace('T', ' ')} UTC against the same server (Postgres ${pg.postgres}; ` +
      `${Object.entries(pg.settings)
        .map(([k, v]) => `${k}=${v}`)
        .join(
          ', ',
        )}): rows shaped like \`keel_messages\` (${pg.sizeBytes} B body, the same ordering index), ` +
      'one transaction and one statement per batch (`INSERT ... SELECT FROM unnest($ids, $bodies)`, ' +
      '`DELETE ... WHERE id = ANY($ids)`), each commit waiting for its WAL flush; every phase bounded to ' +
      `${formatNumber(pg.durationMs / 1000)} s and ${formatNumber(pg.maxRows)} rows. A message's durable life is one insert plus one delete.`,
    '',
    '| batch | clients | insert rows/s | insert commits/s | insert commit p99 ms | delete rows/s | delete commits/s | insert + delete msg/s |',
    '| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
  ];
  for (const r of pg.results) {
    lines.push(
      `| ${r.batch} | ${r.clients} | ${formatNumber(r.insert.rowsPerSecond)} | ${formatNumber(r.insert.commitsPerSecond)} | ${formatNumber(r.insert.commitP99Ms ?? Number.NaN, 2)} | ${formatNumber(r.delete.rowsPerSecond)} | ${formatNumber(r.delete.commitsPerSecond)} | ${formatNumber(r.insertPlusDeletePerSecond)} |`,
    );
  }
  const best = pg.results.reduce<PgLimitReport['results'][number] | undefined>(
    (b, r) => (b === undefined || r.insertPlusDeletePerSecond > b.insertPlusDeletePerSecond ? r : b),
    undefined,
  );
  const keel = (g: CaseGroup | undefined, key: string) => {
    const runs = g?.byTarget.get('keel');
    return runs ? medianMetric(runs, key) : Number.NaN;
  };
  const w64 = keel(findCase(groups, 'throughput', 64), 'receiveRate');
  const w1 = keel(findCase(groups, 'throughput', 1), 'receiveRate');
  if (best && !Number.isNaN(w64)) {
    lines.push(
      '',
      `Best insert + delete rate above: ${formatNumber(best.insertPlusDeletePerSecond)} msg/s (batch ${best.batch}, ${best.clients} client(s)). ` +
        `Keel window 64 reaches ${formatNumber(w64)} msg/s, ${formatNumber((100 * w64) / best.insertPlusDeletePerSecond)} % of it.`,
    );
  }
  // Window 1 carries at most 4 sends at a time: its yardstick is the one-row commit.
  const single = pg.results
    .filter((r) => r.batch === 1)
    .reduce<PgLimitReport['results'][number] | undefined>(
      (b, r) => (b === undefined || r.insertPlusDeletePerSecond > b.insertPlusDeletePerSecond ? r : b),
      undefined,
    );
  if (single && !Number.isNaN(w1)) {
    lines.push(
      '',
      `With one row per commit the best insert + delete rate is ${formatNumber(single.insertPlusDeletePerSecond)} msg/s (${single.clients} client(s)); ` +
        `Keel window 1 (4 producers, one send each in flight) reaches ${formatNumber(w1)} msg/s by grouping the concurrent sends into shared commits and by never writing the messages its consumers acknowledge first (concurrent store and dispatch).`,
    );
  }
  lines.push('');
  return lines;
}
