#!/usr/bin/env node
// Summarise a regression.sh run (base vs head, same bench, alternating). NOT run by CI.
//   node packages/bench/scripts/regression-report.js RESULTS_DIR
// Reads RESULTS_DIR/setup.json, runs.tsv and the r<round>-<target>-<side>.json bench reports;
// prints markdown (per-round figures side by side, medians, head/base) and writes summary.json.
// Throughput is the run's sent msg/s (every run here is count-bound: it ends when all COUNT
// messages are received); "within 5 %" means median head >= 0.95 x median base.

const fs = require('node:fs');
const path = require('node:path');

const dir = process.argv[2];
if (!dir) {
  process.stderr.write('usage: regression-report.js RESULTS_DIR\n');
  process.exit(2);
}
const setup = JSON.parse(fs.readFileSync(path.join(dir, 'setup.json'), 'utf8'));
const [header, ...lines] = fs.readFileSync(path.join(dir, 'runs.tsv'), 'utf8').trim().split('\n');
const cols = header.split('\t');
const rows = lines.map((l) => Object.fromEntries(l.split('\t').map((v, i) => [cols[i], v])));

function read(row) {
  const file = path.join(dir, row.file);
  if (!fs.existsSync(file)) return { ...row, ok: false };
  const rep = JSON.parse(fs.readFileSync(file, 'utf8'));
  const r = rep.runs[0];
  const complete =
    r.received === r.expected && r.missing === 0 && r.sendFailed === 0 && r.errors.length === 0;
  return {
    ...row,
    ok: complete,
    sent: r.sent,
    received: r.received,
    duplicates: r.duplicates,
    rate: r.sendRate,
    recvRate: r.receiveRate,
    p50: r.latencyMs.p50,
    p99: r.latencyMs.p99,
    receiptP99: r.receiptLatencyMs?.p99,
    brokerCpuUs: r.cost?.brokerCpuUsPerMsg,
  };
}
const runs = rows.map(read);

const median = (xs) => {
  const v = xs.filter((x) => typeof x === 'number' && Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return null;
  const m = Math.floor(v.length / 2);
  return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
};
const n0 = (x) => (x == null ? '–' : Math.round(x).toLocaleString('en-US'));
const f2 = (x) => (x == null ? '–' : x.toFixed(2));
const f1 = (x) => (x == null ? '–' : x.toFixed(1));
const pct = (x) => (x == null ? '–' : `${x >= 1 ? '+' : '−'}${(Math.abs(x - 1) * 100).toFixed(1)} %`);
const ratio = (h, b) => (h == null || b == null || b === 0 ? null : h / b);

const targets = [...new Set(runs.map((r) => r.target))];
const label = { 'keel-native': 'Keel (native)', keel: 'Keel (STOMP)' };
const out = [];
out.push(`Base ${setup.base}`, '', `Head ${setup.head}`, '');
out.push(
  '| round | target | order | load before (base / head) | base msg/s | head msg/s | base p99 ms | head p99 ms | base broker CPU µs/msg | head broker CPU µs/msg |',
);
out.push('| ---: | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |');
const rounds = [...new Set(runs.map((r) => r.round))];
for (const round of rounds) {
  for (const t of targets) {
    const b = runs.find((r) => r.round === round && r.target === t && r.side === 'base');
    const h = runs.find((r) => r.round === round && r.target === t && r.side === 'head');
    if (!b || !h) continue;
    const order = b.started <= h.started ? 'base, head' : 'head, base';
    const mark = (r, s) => (r.ok ? s : `${s} (incomplete)`);
    out.push(
      `| ${round} | ${label[t] ?? t} | ${order} | ${b.load_before.split(' ')[0]} / ${h.load_before.split(' ')[0]} | ${mark(b, n0(b.rate))} | ${mark(h, n0(h.rate))} | ${f2(b.p99)} | ${f2(h.p99)} | ${f1(b.brokerCpuUs)} | ${f1(h.brokerCpuUs)} |`,
    );
  }
}
out.push('');
out.push(
  '| target | side | runs | median msg/s | median p50 ms | median p99 ms | median receipt p99 ms | median broker CPU µs/msg |',
);
out.push('| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |');
const summary = { setup, targets: {} };
for (const t of targets) {
  const m = {};
  for (const side of ['base', 'head']) {
    const rs = runs.filter((r) => r.target === t && r.side === side && r.ok);
    m[side] = {
      runs: rs.length,
      incomplete: runs.filter((r) => r.target === t && r.side === side && !r.ok).length,
      rate: median(rs.map((r) => r.rate)),
      p50: median(rs.map((r) => r.p50)),
      p99: median(rs.map((r) => r.p99)),
      receiptP99: median(rs.map((r) => r.receiptP99)),
      brokerCpuUs: median(rs.map((r) => r.brokerCpuUs)),
    };
    const s = m[side];
    out.push(
      `| ${label[t] ?? t} | ${side} | ${s.runs} | ${n0(s.rate)} | ${f2(s.p50)} | ${f2(s.p99)} | ${f2(s.receiptP99)} | ${f1(s.brokerCpuUs)} |`,
    );
  }
  m.ratio = {
    rate: ratio(m.head.rate, m.base.rate),
    p99: ratio(m.head.p99, m.base.p99),
    brokerCpuUs: ratio(m.head.brokerCpuUs, m.base.brokerCpuUs),
  };
  m.withinFivePercent = m.ratio.rate != null && m.ratio.rate >= 0.95;
  summary.targets[t] = m;
}
out.push('');
out.push('| target | head/base msg/s | head/base p99 | head/base broker CPU µs/msg | within 5 % (msg/s) |');
out.push('| --- | ---: | ---: | ---: | --- |');
for (const t of targets) {
  const m = summary.targets[t];
  out.push(
    `| ${label[t] ?? t} | ${f2(m.ratio.rate)} (${pct(m.ratio.rate)}) | ${f2(m.ratio.p99)} | ${f2(m.ratio.brokerCpuUs)} | ${m.withinFivePercent ? 'yes' : 'NO'} |`,
  );
}
summary.runs = runs;
fs.writeFileSync(path.join(dir, 'summary.json'), `${JSON.stringify(summary, null, 2)}\n`);
process.stdout.write(`${out.join('\n')}\n`);
