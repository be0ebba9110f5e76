#!/usr/bin/env node
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import type { BenchReport } from './bench-result';
import { type PgLimitReport, renderBenchmarksMarkdown, spliceSection } from './render-report';

/**
 * `node packages/bench/dist/render-report-main.js RESULTS_DIR [--md docs/benchmarks.md] [--svg-dir docs/benchmarks] [--notes NOTES.md]`
 * Reads every `*.json` bench result in RESULTS_DIR (and `setup.json`, a flat object of setup facts,
 * `command.txt`, and `pg-limit.json` from scripts/pg-limit.js when present) and writes the markdown
 * and its SVG charts; NOTES.md (hand-written findings) is appended. With `--section TITLE` the
 * report replaces only the section TITLE of the markdown file (spliceSection), the rest is kept.
 */
function main(argv: string[]): number {
  const dir = argv[0];
  if (dir === undefined || dir.startsWith('--')) {
    process.stderr.write('usage: render-report-main.js RESULTS_DIR [--md FILE] [--svg-dir DIR]\n');
    return 2;
  }
  let md = 'docs/benchmarks.md';
  let svgDir = 'docs/benchmarks';
  let notes: string | undefined;
  let section: string | undefined;
  for (let i = 1; i < argv.length; i += 2) {
    if (argv[i] === '--md' && argv[i + 1]) md = argv[i + 1]!;
    else if (argv[i] === '--svg-dir' && argv[i + 1]) svgDir = argv[i + 1]!;
    else if (argv[i] === '--notes' && argv[i + 1]) notes = readFileSync(argv[i + 1]!, 'utf8');
    else if (argv[i] === '--section' && argv[i + 1]) section = argv[i + 1]!;
    else {
      process.stderr.write(`unknown option ${argv[i]}\n`);
      return 2;
    }
  }
  const reports: BenchReport[] = [];
  let setup: Record<string, string> | undefined;
  let command: string | undefined;
  let pgLimit: PgLimitReport | undefined;
  for (const f of readdirSync(dir).sort()) {
    const path = join(dir, f);
    if (f === 'setup.json') setup = JSON.parse(readFileSync(path, 'utf8')) as Record<string, string>;
    else if (f === 'command.txt') command = readFileSync(path, 'utf8').trim();
    else if (f.endsWith('.json')) {
      const r = JSON.parse(readFileSync(path, 'utf8')) as BenchReport | PgLimitReport;
      if (r.tool === 'keel-bench') reports.push(r);
      else if (r.tool === 'keel-pg-limit') pgLimit = r;
    }
  }
  const out = renderBenchmarksMarkdown(reports, {
    svgHref: relative(dirname(md), svgDir) || '.',
    setup,
    command,
    pgLimit,
    notes,
  });
  mkdirSync(svgDir, { recursive: true });
  for (const [name, svg] of Object.entries(out.svgs)) writeFileSync(join(svgDir, name), svg);
  if (section === undefined) writeFileSync(md, out.markdown);
  else
    writeFileSync(md, spliceSection(existsSync(md) ? readFileSync(md, 'utf8') : '', section, out.markdown));
  process.stdout.write(
    `wrote ${md} and ${Object.keys(out.svgs).length} charts in ${svgDir} from ${reports.length} results\n`,
  );
  return 0;
}

process.exitCode = main(process.argv.slice(2));
