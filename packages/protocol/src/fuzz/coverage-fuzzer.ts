import { createHash } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import type { FuzzTarget } from './fuzz-targets';

/**
 * A small coverage-guided fuzzer (libFuzzer's loop) on V8's own block coverage, so it needs no
 * native addon: @jazzer.js/core 4.0.0 ships its libFuzzer addon for macOS arm64 only, and its
 * older releases download theirs from GitHub at install time (docs/security.md, "Fuzzing").
 *
 * Coverage: `Profiler.startPreciseCoverage({callCount, detailed})` counts every basic block of
 * the scripts whose path contains `coverageFilter`; a feature is a block with its count bucketed
 * as libFuzzer buckets its 8-bit counters (1, 2, 3, 4-7, 8-15, 16-31, 32-127, 128+). Inputs run
 * in batches and coverage is read once per batch; a batch that reached a new feature is re-run
 * one input at a time, and every input that reaches a new feature on its own joins the corpus.
 *
 * Findings: anything the target throws is saved to `crashDir` as `crash-<sha1>`; an input that
 * runs longer than `timeoutMs` is saved as `timeout-<sha1>` by a watchdog thread, which then
 * kills the process (a synchronous decoder that loops cannot be interrupted otherwise).
 */
export interface FuzzOptions {
  target: FuzzTarget;
  corpusDir: string;
  crashDir: string;
  /** Path fragment of the scripts whose coverage counts, e.g. `/protocol/dist/`. */
  coverageFilter: (url: string) => boolean;
  seconds?: number;
  maxRuns?: number;
  maxLen?: number;
  timeoutMs?: number;
  seed?: number;
  batch?: number;
  /** Stop at the first finding (libFuzzer's default); otherwise go on, one file per distinct error. */
  stopOnCrash?: boolean;
  log?: (line: string) => void;
}

export interface FuzzStats {
  target: string;
  execs: number;
  seconds: number;
  /** Distinct basic blocks reached (libFuzzer's "cov"). */
  blocks: number;
  /** Distinct (block, count bucket) features (libFuzzer's "ft"). */
  features: number;
  corpus: number;
  crashes: string[];
}

interface CoverageRange {
  startOffset: number;
  endOffset: number;
  count: number;
}
interface ScriptCoverage {
  url: string;
  functions: Array<{ ranges: CoverageRange[] }>;
}

function bucket(count: number): number {
  if (count <= 3) return count;
  if (count < 8) return 4;
  if (count < 16) return 5;
  if (count < 32) return 6;
  if (count < 128) return 7;
  return 8;
}

/** V8 block coverage of the filtered scripts, read (and reset) through the inspector. */
class BlockCoverage {
  private readonly session = new Session();
  private readonly urls = new Map<string, number>();

  constructor(private readonly filter: (url: string) => boolean) {
    this.session.connect();
    this.post('Profiler.enable');
    this.post('Profiler.startPreciseCoverage', { callCount: true, detailed: true });
  }

  private post(method: string, params?: object): unknown {
    let result: unknown;
    let error: Error | null = null;
    let done = false;
    this.session.post(method, params, (err, res) => {
      error = err;
      result = res;
      done = true;
    });
    // An in-process inspector session answers synchronously.
    if (!done) throw new Error(`inspector did not answer ${method} synchronously`);
    if (error) throw error;
    return result;
  }

  /**
   * Ranges reported since the last call: range key → count bucket (0 for a range not run). V8
   * merges a nested range into its parent when their counts are equal, so which ranges come back
   * at count 0 tells how deep an input got, and counts as a feature too.
   */
  take(): Map<string, number> {
    const { result } = this.post('Profiler.takePreciseCoverage') as { result: ScriptCoverage[] };
    const features = new Map<string, number>();
    for (const script of result) {
      if (!this.filter(script.url)) continue;
      let id = this.urls.get(script.url);
      if (id === undefined) {
        id = this.urls.size;
        this.urls.set(script.url, id);
      }
      for (const fn of script.functions) {
        for (const r of fn.ranges) {
          features.set(`${id}:${r.startOffset}:${r.endOffset}`, bucket(r.count));
        }
      }
    }
    return features;
  }

  close(): void {
    this.post('Profiler.stopPreciseCoverage');
    this.session.disconnect();
  }
}

/** Deterministic PRNG (mulberry32, period 2^32) so a campaign can be repeated with --seed. */
export class Rng {
  private state: number;
  constructor(seed: number) {
    this.state = seed | 0;
  }
  next(): number {
    this.state = (this.state + 0x6d2b79f5) | 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }
  below(n: number): number {
    return n <= 1 ? 0 : this.next() % n;
  }
}

const INTERESTING_U32 = [
  0, 1, 2, 6, 7, 0x7f, 0x80, 0xff, 0x100, 0x7fff, 0xffff, 0x10000, 0x7fffffff, 0x80000000, 0xffffffff,
];

/** libFuzzer-style mutations: flips, interesting integers, inserts, erases, copies, dictionary, crossover. */
export class Mutator {
  constructor(
    private readonly rng: Rng,
    private readonly dictionary: Buffer[],
    private readonly maxLen: number,
  ) {}

  mutate(input: Buffer, other: Buffer): Buffer {
    let out: Buffer = Buffer.from(input);
    const rounds = 1 + this.rng.below(5);
    for (let i = 0; i < rounds; i++) out = this.once(out, other);
    return out.length > this.maxLen ? out.subarray(0, this.maxLen) : out;
  }

  private once(buf: Buffer, other: Buffer): Buffer {
    const r = this.rng;
    const at = r.below(buf.length + 1);
    switch (r.below(11)) {
      case 0: // flip a bit
        if (buf.length > 0) buf[r.below(buf.length)]! ^= 1 << r.below(8);
        return buf;
      case 1: // random byte
        if (buf.length > 0) buf[r.below(buf.length)] = r.below(256);
        return buf;
      case 2: // small add/sub on a byte
        if (buf.length > 0) {
          const i = r.below(buf.length);
          buf[i] = (buf[i]! + r.below(70) - 35) & 0xff;
        }
        return buf;
      case 3: {
        // interesting big-endian integer of 1, 2 or 4 bytes
        const width = [1, 2, 4][r.below(3)]!;
        if (buf.length < width) return buf;
        const v = INTERESTING_U32[r.below(INTERESTING_U32.length)]!;
        const i = r.below(buf.length - width + 1);
        if (width === 1) buf[i] = v & 0xff;
        else if (width === 2) buf.writeUInt16BE(v & 0xffff, i);
        else buf.writeUInt32BE(v >>> 0, i);
        return buf;
      }
      case 4: {
        // insert random bytes
        const n = 1 + r.below(8);
        const ins = Buffer.alloc(n);
        for (let i = 0; i < n; i++) ins[i] = r.below(256);
        return Buffer.concat([buf.subarray(0, at), ins, buf.subarray(at)]);
      }
      case 5: {
        // erase a range
        if (buf.length === 0) return buf;
        const n = 1 + r.below(Math.min(16, buf.length - Math.min(at, buf.length - 1)));
        const from = Math.min(at, buf.length - 1);
        return Buffer.concat([buf.subarray(0, from), buf.subarray(from + n)]);
      }
      case 6: {
        // duplicate a range somewhere else
        if (buf.length === 0) return buf;
        const from = r.below(buf.length);
        const n = 1 + r.below(Math.min(64, buf.length - from));
        return Buffer.concat([buf.subarray(0, at), buf.subarray(from, from + n), buf.subarray(at)]);
      }
      case 7:
      case 8: {
        // dictionary token, inserted or overwriting
        if (this.dictionary.length === 0) return buf;
        const tok = this.dictionary[r.below(this.dictionary.length)]!;
        if (r.below(2) === 0 || buf.length < tok.length) {
          return Buffer.concat([buf.subarray(0, at), tok, buf.subarray(at)]);
        }
        tok.copy(buf, r.below(buf.length - tok.length + 1));
        return buf;
      }
      case 9: {
        // crossover: splice a piece of another corpus input in
        if (other.length === 0) return buf;
        const from = r.below(other.length);
        const n = 1 + r.below(other.length - from);
        return Buffer.concat([buf.subarray(0, at), other.subarray(from, from + n), buf.subarray(at)]);
      }
      default: {
        // shuffle a few bytes
        if (buf.length < 2) return buf;
        const i = r.below(buf.length - 1);
        const n = Math.min(buf.length - i, 2 + r.below(7));
        const piece = Buffer.from(buf.subarray(i, i + n));
        for (let k = n - 1; k > 0; k--) {
          const j = r.below(k + 1);
          const t = piece[k]!;
          piece[k] = piece[j]!;
          piece[j] = t;
        }
        piece.copy(buf, i);
        return buf;
      }
    }
  }
}

export function sha1(data: Buffer): string {
  return createHash('sha1').update(data).digest('hex');
}

/** Every regular file of a directory (missing directory: none), sorted by name. */
export function readInputs(dir: string): Array<{ name: string; data: Buffer }> {
  let names: string[];
  try {
    names = readdirSync(dir).sort();
  } catch {
    return [];
  }
  return names
    .filter((n) => !n.startsWith('.') && statSync(join(dir, n)).isFile())
    .map((name) => ({ name, data: readFileSync(join(dir, name)) }));
}

const WATCHDOG_SOURCE = `
const { workerData } = require('node:worker_threads');
const { writeFileSync } = require('node:fs');
const { createHash } = require('node:crypto');
const ctrl = new Int32Array(workerData.ctrl);
const data = new Uint8Array(workerData.data);
let last = -1, since = Date.now();
setInterval(() => {
  const n = Atomics.load(ctrl, 0);
  if (Atomics.load(ctrl, 2) === 0 || n !== last) { last = n; since = Date.now(); return; }
  if (Date.now() - since < workerData.timeoutMs) return;
  const input = Buffer.from(data.subarray(0, Atomics.load(ctrl, 1)));
  const file = workerData.crashDir + '/timeout-' + createHash('sha1').update(input).digest('hex');
  writeFileSync(file, input);
  process.stderr.write('TIMEOUT: an input ran over ' + workerData.timeoutMs + ' ms, saved to ' + file + '\\n');
  process.kill(process.pid, 'SIGKILL');
}, Math.min(250, workerData.timeoutMs / 4)).unref();
`;

/** Run one campaign; resolves with its figures. */
export async function fuzz(options: FuzzOptions): Promise<FuzzStats> {
  const {
    target,
    corpusDir,
    crashDir,
    seconds = 60,
    maxRuns = Number.POSITIVE_INFINITY,
    maxLen = 4096,
    timeoutMs = 5000,
    batch = 32,
  } = options;
  const log = options.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const rng = new Rng(options.seed ?? Date.now());
  const mutator = new Mutator(rng, target.dictionary, maxLen);
  mkdirSync(corpusDir, { recursive: true });
  mkdirSync(crashDir, { recursive: true });

  // Watchdog: the current input lives in shared memory; ctrl = [execs, input length, running].
  const ctrlBuf = new SharedArrayBuffer(12);
  const ctrl = new Int32Array(ctrlBuf);
  const dataBuf = new SharedArrayBuffer(maxLen + 64 * 1024);
  const shared = Buffer.from(dataBuf);
  const watchdog = new Worker(WATCHDOG_SOURCE, {
    eval: true,
    workerData: { ctrl: ctrlBuf, data: dataBuf, timeoutMs, crashDir },
  });
  watchdog.unref();

  const coverage = new BlockCoverage(options.coverageFilter);
  const seen = new Map<string, number>(); // block → highest bucket reached
  const featureSet = new Set<string>();
  const corpus: Buffer[] = [];
  const crashes: string[] = [];
  const crashSignatures = new Set<string>();
  let execs = 0;

  const exec = (input: Buffer): void => {
    const n = Math.min(input.length, shared.length);
    input.copy(shared, 0, 0, n);
    Atomics.store(ctrl, 1, n);
    Atomics.store(ctrl, 0, ++execs);
    try {
      target.run(input);
    } catch (err) {
      const e = err as Error;
      const signature = `${e?.name}: ${e?.message}`.slice(0, 200);
      if (!crashSignatures.has(signature)) {
        crashSignatures.add(signature);
        const file = join(crashDir, `crash-${sha1(input)}`);
        writeFileSync(file, input);
        crashes.push(file);
        log(`CRASH ${file}\n${e?.stack ?? String(err)}`);
      }
    }
  };

  /** Record what `features` adds; returns how many new features it had. */
  const absorb = (features: Map<string, number>): number => {
    let added = 0;
    for (const [block, b] of features) {
      if (b > 0) seen.set(block, Math.max(seen.get(block) ?? 0, b));
      const f = `${block}#${b}`;
      if (!featureSet.has(f)) {
        featureSet.add(f);
        added++;
      }
    }
    return added;
  };
  // Counts summed over a batch are not any one input's counts: a batch is re-run input by input
  // when it reached a block never reached, or a batch-level count bucket never seen at batch level.
  const batchFeatures = new Set<string>();
  const worthRerun = (features: Map<string, number>): boolean => {
    let worth = false;
    for (const [block, b] of features) {
      if (b > 0 && !seen.has(block)) worth = true;
      const f = `${block}#${b}`;
      if (!batchFeatures.has(f)) {
        batchFeatures.add(f);
        worth = true;
      }
    }
    return worth;
  };

  const keep = (input: Buffer, save: boolean): void => {
    corpus.push(input);
    if (save) writeFileSync(join(corpusDir, sha1(input)), input);
  };

  Atomics.store(ctrl, 2, 1);
  coverage.take(); // drop what loading did
  // Load the corpus (or the target's seeds), keeping what adds coverage.
  const existing = readInputs(corpusDir).map((f) => f.data);
  const initial = existing.length > 0 ? existing : target.seeds();
  for (const input of initial) {
    exec(input);
    if (absorb(coverage.take()) > 0 || corpus.length === 0) keep(input, existing.length === 0);
  }
  log(`#${execs} INITED cov: ${seen.size} ft: ${featureSet.size} corp: ${corpus.length}/${initial.length}`);

  const started = Date.now();
  const deadline = started + seconds * 1000;
  let nextReport = started + 10_000;
  while (execs < maxRuns && Date.now() < deadline && !(options.stopOnCrash && crashes.length > 0)) {
    const inputs: Buffer[] = [];
    for (let i = 0; i < batch; i++) {
      const base = corpus[rng.below(corpus.length)]!;
      const other = corpus[rng.below(corpus.length)]!;
      inputs.push(mutator.mutate(base, other));
    }
    for (const input of inputs) exec(input);
    if (worthRerun(coverage.take())) {
      for (const input of inputs) {
        exec(input);
        const added = absorb(coverage.take());
        if (added > 0) keep(input, true);
      }
    }
    const now = Date.now();
    if (now >= nextReport) {
      nextReport = now + 10_000;
      const secs = (now - started) / 1000;
      log(
        `#${execs} pulse cov: ${seen.size} ft: ${featureSet.size} corp: ${corpus.length} exec/s: ${Math.round(execs / secs)} crashes: ${crashes.length}`,
      );
    }
  }
  Atomics.store(ctrl, 2, 0);
  coverage.close();
  await watchdog.terminate();
  const stats: FuzzStats = {
    target: target.name,
    execs,
    seconds: Math.round((Date.now() - started) / 1000),
    blocks: seen.size,
    features: featureSet.size,
    corpus: corpus.length,
    crashes,
  };
  log(
    `#${execs} DONE cov: ${stats.blocks} ft: ${stats.features} corp: ${stats.corpus} crashes: ${crashes.length}`,
  );
  return stats;
}

/**
 * Shrink a corpus to the inputs that each add coverage, smallest first (libFuzzer's -merge=1):
 * returns the names to keep.
 */
export function mergeCorpus(
  target: FuzzTarget,
  inputs: Array<{ name: string; data: Buffer }>,
  coverageFilter: (url: string) => boolean,
): string[] {
  const coverage = new BlockCoverage(coverageFilter);
  coverage.take();
  const features = new Set<string>();
  const kept: string[] = [];
  const sorted = [...inputs].sort((a, b) => a.data.length - b.data.length || a.name.localeCompare(b.name));
  for (const { name, data } of sorted) {
    try {
      target.run(data);
    } catch {
      // a crashing input belongs in the crash directory, not here; still counts its coverage
    }
    let added = false;
    for (const [block, b] of coverage.take()) {
      const f = `${block}#${b}`;
      if (!features.has(f)) {
        features.add(f);
        added = true;
      }
    }
    if (added) kept.push(name);
  }
  coverage.close();
  return kept;
}
