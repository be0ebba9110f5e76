#!/usr/bin/env node
import { InvalidArgumentError } from '@keel/protocol';
import { BENCH_USAGE } from './bench-options';
import { runBench } from './run-bench';

/** `node packages/bench/dist/main.js SCENARIO [options]` (root script `npm run bench`). */
async function main(): Promise<number> {
  try {
    const report = await runBench(process.argv.slice(2));
    if (report === null) return 0;
    const incomplete = report.runs.some((r) =>
      r.kind === 'flow' ? r.missing > 0 || r.sendFailed > 0 : r.drain.missing > 0 || r.fill.failed > 0,
    );
    return incomplete ? 1 : 0;
  } catch (err) {
    if (err instanceof InvalidArgumentError) {
      process.stderr.write(`keel bench: ${err.message}\n\n${BENCH_USAGE}`);
      return 2;
    }
    process.stderr.write(`keel bench: ${(err as Error).stack ?? String(err)}\n`);
    return 1;
  }
}

main().then((code) => {
  process.exitCode = code;
});
