/**
 * `keel drill` as a real process (the built CLI) for the e2e drills: run to its end (SIGINT on a
 * timeout, so it still cleans up), its JSON result and its whole output (stdout and stderr).
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { CLI_MAIN } from '@keel/testkit';

export async function runDrillCli<T>(
  out: string,
  name: string,
  args: string[],
  timeoutMs = 200_000,
): Promise<{ result: T; output: string }> {
  const json = path.join(out, `${name}.json`);
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('KEEL_')) env[k] = v;
  const child = spawn(
    process.execPath,
    [CLI_MAIN, 'drill', '--json', json, '--chart', path.join(out, `${name}.svg`), ...args],
    { cwd: out, env, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let output = '';
  child.stdout?.on('data', (b: Buffer) => {
    output += b.toString();
  });
  child.stderr?.on('data', (b: Buffer) => {
    output += b.toString();
  });
  const timer = setTimeout(() => child.kill('SIGINT'), timeoutMs);
  const code = await new Promise<number | null>((resolve) => child.once('exit', (c) => resolve(c)));
  clearTimeout(timer);
  if (code !== 0) throw new Error(`keel drill ${args.join(' ')} exited ${code}:\n${output}`);
  return { result: JSON.parse(readFileSync(json, 'utf8')) as T, output };
}
