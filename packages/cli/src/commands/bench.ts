import { runBench, runIncomplete } from '@keel/bench';
import type { Output } from '../output';

/**
 * `keel bench SCENARIO [options]`: the load generator of packages/bench (the same as `npm run
 * bench`). Everything after `bench` goes to it unchanged; `keel bench --help` lists its scenarios
 * (throughput, fanout, backlog, failover, connections) and options.
 * Exit status 1 when a run lost messages, sends failed, or (failover) the master could not be killed.
 */
export async function benchCommand(args: string[], _output: Output): Promise<void> {
  const report = await runBench(args);
  if (report === null) return;
  if (report.runs.some(runIncomplete)) process.exitCode = 1;
}
