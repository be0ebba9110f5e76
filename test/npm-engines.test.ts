import { execFile } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const root = join(__dirname, '..');

/**
 * `npm ci` must not warn EBADENGINE on the Node versions package.json declares: a locked package
 * that wants a newer Node than `engines.node` is pinned back (package.json `overrides`; cookie@2 and
 * content-disposition@3 want Node >= 22). npm checks engines from the lockfile, so a dry run of
 * `npm ci` in a copy of the manifests shows its warnings without touching node_modules.
 */
describe('npm ci', () => {
  let dir: string;

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'keel-engines-'));
    for (const file of ['package.json', 'package-lock.json']) cpSync(join(root, file), join(dir, file));
    for (const pkg of readdirSync(join(root, 'packages'))) {
      mkdirSync(join(dir, 'packages', pkg), { recursive: true });
      cpSync(join(root, 'packages', pkg, 'package.json'), join(dir, 'packages', pkg, 'package.json'));
    }
    // the cli's bin shim must exist for npm to plan its link
    cpSync(join(root, 'packages', 'cli', 'bin'), join(dir, 'packages', 'cli', 'bin'), { recursive: true });
  });

  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('declares a Node range that the running Node satisfies', () => {
    const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { engines: { node: string } };
    const min = Number(/^>=\s*(\d+)$/.exec(pkg.engines.node)?.[1]);
    expect(Number(process.versions.node.split('.')[0])).toBeGreaterThanOrEqual(min);
  });

  it('installs without an EBADENGINE warning', async () => {
    const output = await new Promise<string>((resolve, reject) => {
      execFile(
        'npm',
        ['ci', '--dry-run', '--offline', '--ignore-scripts', '--no-audit', '--no-fund'],
        { cwd: dir, timeout: 60_000, env: { ...process.env, npm_config_loglevel: 'warn' } },
        (err, stdout, stderr) =>
          err ? reject(new Error(`${err.message}\n${stderr}`)) : resolve(`${stdout}${stderr}`),
      );
    });
    expect(output).toContain('added');
    expect(output.split('\n').filter((line) => line.includes('EBADENGINE'))).toEqual([]);
  });
});
