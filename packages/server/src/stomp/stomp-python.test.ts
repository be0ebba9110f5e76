/**
 * Interoperability with stomp.py (Debian's python3-stomp, a client no one here wrote): runs
 * test/python/stomp_interop.py against a listener on an ephemeral port and asserts its JSON result.
 */
import { spawn } from 'node:child_process';
import { resolve } from 'node:path';
import { type StompFixture, startStomp } from './__tests__/stomp-test-kit';

const PYTHON = '/usr/bin/python3';
const SCRIPT = resolve(__dirname, '../../../../test/python/stomp_interop.py');

function run(
  args: string[],
  timeoutMs: number,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((done, fail) => {
    const child = spawn(PYTHON, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', (err) => {
      clearTimeout(timer);
      fail(err);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      done({ code, stdout, stderr });
    });
  });
}

describe('StompListener with stomp.py', () => {
  let fx: StompFixture;
  afterEach(async () => {
    await fx?.close();
  });

  it('passes the python interop script (queue, topic, durable, NACK, transaction, receipt)', async () => {
    const probe = await run(['-c', 'import stomp'], 10_000);
    if (probe.code !== 0)
      throw new Error(`python3-stomp is missing (apt-get install -y python3-stomp): ${probe.stderr}`);
    fx = await startStomp();
    const { code, stdout, stderr } = await run([SCRIPT, '127.0.0.1', String(fx.port)], 50_000);
    const lines = stdout.trim().split('\n');
    let result: { ok: boolean; results: Record<string, string> };
    try {
      result = JSON.parse(lines[lines.length - 1]!);
    } catch {
      throw new Error(`no JSON result (exit ${code}): ${stdout}\n${stderr}`);
    }
    expect(result.results).toEqual({
      queue: 'ok',
      topic: 'ok',
      durable: 'ok',
      client_individual_nack: 'ok',
      transaction: 'ok',
      receipt: 'ok',
    });
    expect(result.ok).toBe(true);
    expect(code).toBe(0);
    await fx.listener.stop();
    expect(fx.broker.listDurables()).toEqual([]);
  });
});
