import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { BrokerProcess, CLI_MAIN, liveBrokers, startBroker, stopAll } from './broker-process';
import { freePort, freePorts } from './free-port';

/**
 * A stand-in for the broker: prints its argv, then `slave`; SIGUSR2 makes it master, SIGUSR1 slave
 * again; SIGTERM makes it log and exit 0. Also one non-JSON line and one line on stderr.
 */
const FAKE_BROKER = `
const log = (o) => process.stdout.write(JSON.stringify({ level: 30, time: Date.now(), ...o }) + '\\n');
process.on('SIGUSR2', () => log({ role: 'master', msg: 'role changed' }));
process.on('SIGUSR1', () => log({ role: 'slave', msg: 'role changed' }));
process.on('SIGTERM', () => { log({ msg: 'stopping' }); process.exit(0); });
log({ msg: 'starting', argv: process.argv.slice(1) });
process.stdout.write('not json\\n');
process.stderr.write('a warning on stderr\\n');
log({ node: 'fake', role: 'slave', msg: 'role changed' });
setInterval(() => {}, 1000);
`;
const fake = (script = FAKE_BROKER) => [process.execPath, '-e', script, '--'];

afterEach(async () => {
  await stopAll();
  expect(liveBrokers()).toEqual([]);
});

describe('freePort', () => {
  test('returns a port that can be bound on 127.0.0.1', async () => {
    const port = await freePort();
    expect(port).toBeGreaterThan(0);
    const server = net.createServer();
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', resolve);
    });
    await new Promise((r) => server.close(r));
  });

  test('freePorts returns distinct ports', async () => {
    const ports = await freePorts(5);
    expect(new Set(ports).size).toBe(5);
  });
});

describe('BrokerProcess', () => {
  test('defaults to the built CLI', () => {
    expect(CLI_MAIN.endsWith(path.join('packages', 'cli', 'dist', 'main.js'))).toBe(true);
  });

  test('passes the broker arguments with free ports and parses its JSON log', async () => {
    const b = await startBroker({
      db: 'postgres://x/db',
      name: 'n1',
      cluster: 'c1',
      args: ['--lease-ms', '500'],
      command: fake(),
    });
    const start = await b.waitForLog((e) => e.msg === 'starting', 5000);
    expect(start.argv).toEqual([
      'broker',
      '--db',
      'postgres://x/db',
      '--name',
      'n1',
      '--cluster',
      'c1',
      '--port',
      String(b.port),
      '--stomp-port',
      String(b.stompPort),
      '--admin-port',
      String(b.adminPort),
      '--lease-ms',
      '500',
    ]);
    expect(new Set([b.port, b.stompPort, b.adminPort]).size).toBe(3);
    expect(b.pid).toBeGreaterThan(0);
    await b.waitForLog((e) => e.msg === 'not json', 5000);
    await b.waitForRole('slave', 5000);
    expect(b.role).toBe('slave');
  });

  test('waitForRole waits for the next role change, and pause() freezes the process', async () => {
    const b = await BrokerProcess.start({ db: 'd', name: 'n', cluster: 'c', command: fake() });
    await b.waitForRole('slave', 5000);
    b.pause();
    expect(b.isPaused).toBe(true);
    b.kill('SIGSTOP'); // stays stopped
    process.kill(b.pid, 'SIGUSR2'); // queued while stopped
    const becameMaster = b.waitForRole('master', 5000);
    let settled = false;
    void becameMaster.then(() => {
      settled = true;
    });
    await new Promise((r) => setTimeout(r, 150));
    expect(settled).toBe(false);
    b.resume();
    const line = await becameMaster;
    expect(line).toMatchObject({ role: 'master', msg: 'role changed' });
    expect(b.role).toBe('master');
    // Already master: resolves at once. Back to slave: a later master line is needed.
    await b.waitForRole('master', 1000);
    b.kill('SIGUSR1');
    await b.waitForRole('slave', 5000);
    const again = b.waitForRole('master', 5000);
    b.kill('SIGUSR2');
    await expect(again).resolves.toMatchObject({ role: 'master' });
  });

  test('stop() ends it with SIGTERM; exited resolves with the exit status; stderr is kept', async () => {
    const b = await startBroker({ db: 'd', name: 'n', cluster: 'c', command: fake() });
    await b.waitForRole('slave', 5000);
    expect(await b.stop()).toEqual({ code: 0, signal: null });
    expect(b.logs.at(-1)).toMatchObject({ msg: 'stopping' });
    expect(b.stderr).toContain('a warning on stderr');
    expect(b.exitStatus).toEqual({ code: 0, signal: null });
  });

  test('kill(SIGKILL) of a paused process; waiting on a dead process rejects with its output', async () => {
    const b = await startBroker({ db: 'd', name: 'n', cluster: 'c', command: fake() });
    await b.waitForRole('slave', 5000);
    b.pause();
    b.kill('SIGKILL');
    expect(await b.exited).toEqual({ code: null, signal: 'SIGKILL' });
    await expect(b.waitForRole('master', 5000)).rejects.toThrow(
      /exited \(signal SIGKILL\)[\s\S]*a warning on stderr/,
    );
  });

  test('a timeout rejects with the tail of the log; logFile gets everything', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'keel-broker-'));
    try {
      const logFile = path.join(dir, 'n.log');
      const b = await startBroker({ db: 'd', name: 'n', cluster: 'c', command: fake(), logFile });
      await b.waitForRole('slave', 5000);
      await expect(b.waitForLog((e) => e.msg === 'never', 100)).rejects.toThrow(
        /within 100 ms[\s\S]*role changed/,
      );
      await b.stop();
      const text = readFileSync(logFile, 'utf8');
      expect(text).toContain('"msg":"starting"');
      expect(text).toContain('a warning on stderr');
      expect(text).toContain('"msg":"stopping"');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('stopAll() SIGKILLs a broker that ignores SIGTERM', async () => {
    const stubborn = `process.on('SIGTERM', () => {}); console.log(JSON.stringify({ role: 'slave', msg: 'role changed' })); setInterval(() => {}, 1000);`;
    const b = await startBroker({ db: 'd', name: 'n', cluster: 'c', command: fake(stubborn) });
    await b.waitForRole('slave', 5000);
    await stopAll(200);
    expect(b.exitStatus).toEqual({ code: null, signal: 'SIGKILL' });
  });
});
