#!/usr/bin/env node
import { InvalidArgumentError } from '@keel/protocol';
import { BENCH_USAGE } from './bench-options';
import { runIncomplete } from './bench-result';
import { runBench } from './run-bench';

/** `node packages/bench/dist/main.js SCENARIO [options]` (root script `npm run bench`). */
async function main(): Promise<number> {
  try {
    const report = await runBench(process.argv.slice(2));
    if (report === null) return 0;
    return report.runs.some(runIncomplete) ? 1 : 0;
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
