import { runBench } from '@keel/bench';
import type { Output } from '../output';

/**
 * `keel bench SCENARIO [options]`: the load generator of packages/bench (the same as `npm run
 * bench`). Everything after `bench` goes to it unchanged; `keel bench --help` lists its options.
 * Exit status 1 when a run lost messages or sends failed.
 */
export async function benchCommand(args: string[], _output: Output): Promise<void> {
  const report = await runBench(args);
  if (report === null) return;
  const incomplete = report.runs.some((r) =>
    r.kind === 'flow' ? r.missing > 0 || r.sendFailed > 0 : r.drain.missing > 0 || r.fill.failed > 0,
  );
  if (incomplete) process.exitCode = 1;
}
