#!/usr/bin/env node
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { BenchReport } from './bench-result';
import { connectionsTables, LINEAR_TOLERANCE, manyQueuesTables, RSS_NOISE_KIB } from './scale-summary';

/**
 * `node packages/bench/dist/scale-summary-main.js RESULTS_DIR` (scripts/scale.sh runs it): the
 * markdown tables of issue #25.4 from every many-queues and connections `*.json` report in
 * RESULTS_DIR, on stdout.
 */
function main(argv: string[]): number {
  const dir = argv[0];
  if (dir === undefined) {
    process.stderr.write('usage: scale-summary-main.js RESULTS_DIR\n');
    return 2;
  }
  const reports: BenchReport[] = [];
  for (const f of readdirSync(dir).sort()) {
    if (!f.endsWith('.json')) continue;
    const r = JSON.parse(readFileSync(join(dir, f), 'utf8')) as Partial<BenchReport>;
    if (r.tool === 'keel-bench' && (r.scenario === 'many-queues' || r.scenario === 'connections')) {
      reports.push(r as BenchReport);
    }
  }
  const queues = manyQueuesTables(reports);
  const conns = connectionsTables(reports);
  const rule =
    `Verdict: RSS grows no faster than linearly when no later step costs more per unit than ${LINEAR_TOLERANCE}× the first step, ` +
    `or its excess over the first step's rate is below ${RSS_NOISE_KIB / 1024} MiB in all (the readings' noise).`;
  process.stdout.write(
    [queues && `#### Many queues\n\n${queues}`, conns && `#### Idle connections\n\n${conns}`, rule]
      .filter((s) => s)
      .join('\n'),
  );
  process.stdout.write('\n');
  return 0;
}

process.exitCode = main(process.argv.slice(2));
