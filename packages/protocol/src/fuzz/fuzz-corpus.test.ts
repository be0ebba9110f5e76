import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { readInputs } from './coverage-fuzzer';
import { chunkBoundaries, FUZZ_TARGETS } from './fuzz-targets';

/**
 * CI replays what the coverage-guided campaign (`npm run fuzz`, docs/security.md "Fuzzing") kept:
 * every corpus input and every crash it found (fixed since) goes through both decoders' targets,
 * which check that only ProtocolErrors come out, that chunking does not change the outcome, and
 * that decoded frames survive encode → decode.
 */
const FUZZ_DIR = resolve(__dirname, '..', '..', 'fuzz');
/** The built fuzzer (`npm test` builds first). */
const DIST_FUZZ = resolve(__dirname, '..', '..', 'dist', 'fuzz');

describe.each(Object.keys(FUZZ_TARGETS))('fuzz regression inputs: %s', (name) => {
  const target = FUZZ_TARGETS[name]!;
  const corpus = readInputs(join(FUZZ_DIR, 'corpus', name));
  const crashes = readInputs(join(FUZZ_DIR, 'crashes', name));

  it('has a committed corpus', () => {
    expect(corpus.length).toBeGreaterThan(20);
  });

  it('replays every corpus input', () => {
    for (const { name: file, data } of corpus) {
      expect(() => target.run(data)).not.toThrow(file);
    }
  });

  it('replays every crash and timeout the campaign found', () => {
    for (const { name: file, data } of crashes) {
      const started = Date.now();
      try {
        target.run(data);
      } catch (err) {
        throw new Error(`${name} ${file}: ${(err as Error).stack}`);
      }
      expect(Date.now() - started).toBeLessThan(5_000);
    }
  });

  it('replays its seeds', () => {
    for (const seed of target.seeds()) target.run(seed);
  });
});

describe('fuzz harness', () => {
  it('chunks deterministically, covering every byte once', () => {
    expect(chunkBoundaries(10, 0)).toEqual([]);
    expect(chunkBoundaries(5, 255)).toEqual([1, 2, 3, 4]);
    for (let seed = 1; seed < 256; seed++) {
      const cuts = chunkBoundaries(100, seed);
      expect(cuts).toEqual(chunkBoundaries(100, seed));
      expect([...cuts].sort((a, b) => a - b)).toEqual(cuts);
      expect(new Set(cuts).size).toBe(cuts.length);
      expect(cuts.every((c) => c > 0 && c < 100)).toBe(true);
    }
  });

  // In a plain node process on the built fuzzer (jest's module registry makes every coverage read
  // slow): the same engine `npm run fuzz` runs.
  it('follows V8 block coverage to a bug behind four nested comparisons', () => {
    const dir = mkdtempSync(join(tmpdir(), 'keel-fuzz-toy-'));
    try {
      writeFileSync(join(dir, 'toy.js'), TOY_TARGET_JS);
      const script = `
        const { fuzz } = require(${JSON.stringify(join(DIST_FUZZ, 'coverage-fuzzer.js'))});
        const dir = ${JSON.stringify(dir)};
        fuzz({ target: require(dir + '/toy.js'), corpusDir: dir + '/corpus', crashDir: dir + '/crashes',
          coverageFilter: (url) => url.endsWith('/toy.js'), seconds: 100, seed: 7, maxLen: 16,
          stopOnCrash: true, log: () => {} }).then((s) => console.log(JSON.stringify(s)));`;
      const out = execFileSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 115_000 });
      const stats = JSON.parse(out.trim().split('\n').pop()!);
      expect(stats.crashes).toHaveLength(1);
      expect(readdirSync(join(dir, 'crashes'))).toHaveLength(1);
      // aaaa, K..., KE.., KEE.: one corpus entry per comparison passed.
      expect(readdirSync(join(dir, 'corpus')).length).toBeGreaterThanOrEqual(4);
      // Deterministic for a seed: this one gets there in well under a million runs.
      expect(stats.execs).toBeLessThan(1_000_000);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);
});

/** The bug sits behind four byte comparisons: blind inputs hit it once in 2^32 runs. */
const TOY_TARGET_JS = `module.exports = {
  name: 'toy', dictionary: [], seeds: () => [Buffer.from('aaaa')],
  run(i) { if (i[0] === 0x4b) { if (i[1] === 0x45) { if (i[2] === 0x45) { if (i[3] === 0x4c) throw new Error('planted bug reached'); } } } },
};
`;
