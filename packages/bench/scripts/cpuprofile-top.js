#!/usr/bin/env node
// Summarise a V8 .cpuprofile (from `node --cpu-prof`): top functions by self time, and self time
// grouped by package/area. NOT run by CI.
//   node packages/bench/scripts/cpuprofile-top.js /tmp/prof/CPU.*.cpuprofile [--top 25] [--json]
//     [--from-us T0 --to-us T1]
// --from-us/--to-us: only the samples taken in [T0, T1], monotonic µs (the clock of the profile's
// startTime, CLOCK_MONOTONIC on Linux: process.hrtime), e.g. network-bench.js's `monoUs` of a run.

const { readFileSync } = require('node:fs');

const file = process.argv[2];
if (!file) {
  process.stderr.write('usage: cpuprofile-top.js FILE.cpuprofile [--top N] [--json]\n');
  process.exit(2);
}
const topIdx = process.argv.indexOf('--top');
const top = topIdx === -1 ? 25 : Number(process.argv[topIdx + 1]);
const asJson = process.argv.includes('--json');
const optNum = (name) => {
  const i = process.argv.indexOf(name);
  return i === -1 ? null : Number(process.argv[i + 1]);
};
const fromUs = optNum('--from-us');
const toUs = optNum('--to-us');

const prof = JSON.parse(readFileSync(file, 'utf8'));
const byId = new Map(prof.nodes.map((n) => [n.id, n]));
// Self time: each sample is attributed to one node; timeDeltas[i] is the time before sample i.
const selfUs = new Map();
let at = prof.startTime;
let windowUs = 0;
let windowSamples = 0;
for (let i = 0; i < prof.samples.length; i++) {
  at += prof.timeDeltas[i] ?? 0;
  if ((fromUs !== null && at < fromUs) || (toUs !== null && at > toUs)) continue;
  const id = prof.samples[i];
  selfUs.set(id, (selfUs.get(id) ?? 0) + (prof.timeDeltas[i] ?? 0));
  windowUs += prof.timeDeltas[i] ?? 0;
  windowSamples += 1;
}
const windowed = fromUs !== null || toUs !== null;
const totalUs = windowed ? windowUs : prof.endTime - prof.startTime;

function area(url, name) {
  if (name === '(idle)') return '(idle)';
  if (name === '(garbage collector)') return '(garbage collector)';
  if (name === '(program)') return '(program)';
  if (!url) return '(native/builtin)';
  const m = /\/packages\/([^/]+)\//.exec(url);
  if (m && !url.includes('node_modules')) return `@keel/${m[1]}`;
  const nm = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (nm) return nm[1];
  if (url.startsWith('node:')) return 'node core';
  return url;
}

const fn = new Map();
const areas = new Map();
for (const [id, us] of selfUs) {
  const n = byId.get(id);
  const cf = n.callFrame;
  const url = cf.url.replace(/^file:\/\//, '');
  const short = url.replace(/^.*\/(packages|node_modules)\//, '$1/');
  const key = `${cf.functionName || '(anonymous)'} ${short ? `${short}:${cf.lineNumber + 1}` : ''}`.trim();
  fn.set(key, (fn.get(key) ?? 0) + us);
  const a = area(url, cf.functionName);
  areas.set(a, (areas.get(a) ?? 0) + us);
}
// Total (inclusive) time: a sample counts once for every distinct function on its stack.
const parent = new Map();
for (const n of prof.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
const keyOf = (n) => {
  const cf = n.callFrame;
  const short = cf.url.replace(/^file:\/\//, '').replace(/^.*\/(packages|node_modules)\//, '$1/');
  return `${cf.functionName || '(anonymous)'} ${short ? `${short}:${cf.lineNumber + 1}` : ''}`.trim();
};
const total = new Map();
for (const [id, us] of selfUs) {
  const seen = new Set();
  for (let cur = id; cur !== undefined; cur = parent.get(cur)) {
    const k = keyOf(byId.get(cur));
    if (seen.has(k)) continue;
    seen.add(k);
    total.set(k, (total.get(k) ?? 0) + us);
  }
}
const sorted = (m) => [...m.entries()].sort((a, b) => b[1] - a[1]);
const pct = (us) => ((100 * us) / totalUs).toFixed(1);
const result = {
  file,
  totalMs: Math.round(totalUs / 1000),
  samples: windowed ? windowSamples : prof.samples.length,
  functions: sorted(fn)
    .slice(0, top)
    .map(([name, us]) => ({ name, selfMs: Math.round(us / 1000), selfPct: Number(pct(us)) })),
  totals: sorted(total)
    .filter(([name]) => !name.startsWith('(root)'))
    .slice(0, top)
    .map(([name, us]) => ({ name, totalMs: Math.round(us / 1000), totalPct: Number(pct(us)) })),
  areas: sorted(areas).map(([name, us]) => ({
    name,
    selfMs: Math.round(us / 1000),
    selfPct: Number(pct(us)),
  })),
};
if (asJson) process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
else {
  process.stdout.write(
    `${file}: ${result.totalMs} ms profiled, ${result.samples} samples\n\nself ms  self %  function\n`,
  );
  for (const f of result.functions)
    process.stdout.write(`${String(f.selfMs).padStart(7)}  ${f.selfPct.toFixed(1).padStart(5)}  ${f.name}\n`);
  process.stdout.write('\ntotal ms  total %  function (inclusive)\n');
  for (const f of result.totals)
    process.stdout.write(
      `${String(f.totalMs).padStart(8)}  ${f.totalPct.toFixed(1).padStart(6)}  ${f.name}\n`,
    );
  process.stdout.write('\nself ms  self %  area\n');
  for (const a of result.areas)
    process.stdout.write(`${String(a.selfMs).padStart(7)}  ${a.selfPct.toFixed(1).padStart(5)}  ${a.name}\n`);
}
