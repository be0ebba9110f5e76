import { rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { fuzz, mergeCorpus, readInputs } from './coverage-fuzzer';
import { FUZZ_TARGETS } from './fuzz-targets';

/**
 * `npm run fuzz -- <stomp|native> [--seconds N] [--runs N] [--seed N] [--max-len N]`: a
 * coverage-guided campaign against one decoder (coverage-fuzzer.ts). New inputs go to
 * packages/protocol/fuzz/corpus/<target>/, findings to packages/protocol/fuzz/crashes/<target>/.
 * `--merge` shrinks the corpus directory to the inputs that each add coverage. Not run in CI; CI
 * replays both directories (fuzz-corpus.test.ts).
 */
const USAGE =
  'usage: keel-fuzz <stomp|native> [--seconds N] [--runs N] [--seed N] [--max-len N] [--timeout-ms N] [--merge]';

export const FUZZ_DIR = resolve(__dirname, '..', '..', 'fuzz');
const DIST_DIR = resolve(__dirname, '..');

/** Coverage counts in the protocol package's compiled code, not in the fuzzer itself. */
export function protocolCoverage(url: string): boolean {
  const path = url.startsWith('file://') ? decodeURIComponent(new URL(url).pathname) : url;
  return path.startsWith(DIST_DIR) && !path.startsWith(__dirname);
}

async function main(): Promise<number> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      seconds: { type: 'string', default: '60' },
      runs: { type: 'string' },
      seed: { type: 'string' },
      'max-len': { type: 'string', default: '4096' },
      'timeout-ms': { type: 'string', default: '5000' },
      merge: { type: 'boolean', default: false },
    },
  });
  const target = FUZZ_TARGETS[positionals[0] ?? ''];
  if (target === undefined) {
    process.stderr.write(`${USAGE}\n`);
    return 2;
  }
  const corpusDir = join(FUZZ_DIR, 'corpus', target.name);
  const crashDir = join(FUZZ_DIR, 'crashes', target.name);
  if (values.merge) {
    const inputs = readInputs(corpusDir);
    const kept = new Set(mergeCorpus(target, inputs, protocolCoverage));
    for (const { name } of inputs) if (!kept.has(name)) rmSync(join(corpusDir, name));
    process.stderr.write(`merge ${target.name}: kept ${kept.size} of ${inputs.length} inputs\n`);
    return 0;
  }
  const stats = await fuzz({
    target,
    corpusDir,
    crashDir,
    coverageFilter: protocolCoverage,
    seconds: Number(values.seconds),
    maxRuns: values.runs === undefined ? undefined : Number(values.runs),
    seed: values.seed === undefined ? undefined : Number(values.seed),
    maxLen: Number(values['max-len']),
    timeoutMs: Number(values['timeout-ms']),
  });
  process.stdout.write(`${JSON.stringify(stats)}\n`);
  return stats.crashes.length > 0 ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (err) => {
    process.stderr.write(`${(err as Error).stack ?? err}\n`);
    process.exit(2);
  },
);
