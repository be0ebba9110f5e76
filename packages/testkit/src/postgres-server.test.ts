import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { Client } from 'pg';
import {
  dockerAnswers,
  findPostgresBindir,
  redactUrl,
  startPostgresServer,
  waitForServer,
} from './postgres-server';

async function selectOne(url: string): Promise<number | undefined> {
  const c = new Client({ connectionString: url });
  await c.connect();
  try {
    return (await c.query<{ one: number }>('SELECT 1 AS one')).rows[0]?.one;
  } finally {
    await c.end();
  }
}

/** Polls cond every 100 ms until true or timeoutMs (for effects of another process). */
async function eventually(cond: () => Promise<boolean> | boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('startPostgresServer', () => {
  test('an external URL is used as is and never stopped', async () => {
    const adminUrl = process.env.KEEL_TEST_PG_ADMIN_URL as string;
    const server = await startPostgresServer({ externalUrl: adminUrl });
    expect(server).toMatchObject({ kind: 'external', owned: false, adminUrl });
    await server.stop();
    expect(await selectOne(adminUrl)).toBe(1);
  });

  test('no Docker engine answers on this machine (or the probe says so quickly)', async () => {
    const started = Date.now();
    const answer = await dockerAnswers(300);
    expect(typeof answer).toBe('boolean');
    expect(Date.now() - started).toBeLessThan(5000); // a 300-ms probe, on a possibly busy machine
  });

  test('finds the PostgreSQL binaries of this machine (CI installs them)', () => {
    expect(findPostgresBindir()).toMatch(/bin$/);
  });

  test('a private cluster from the binaries starts, and stop() removes it', async () => {
    const server = await startPostgresServer({ externalUrl: null, skip: ['testcontainers'] });
    expect(server).toMatchObject({ kind: 'binaries', owned: true });
    expect(server.adminUrl).toMatch(/^postgres:\/\/postgres@127\.0\.0\.1:\d+\/postgres$/);
    const settings = new Client({ connectionString: server.adminUrl });
    await settings.connect();
    const rows = (
      await settings.query<{ name: string; setting: string }>(
        "SELECT name, setting FROM pg_settings WHERE name IN ('max_connections', 'listen_addresses') ORDER BY name",
      )
    ).rows;
    await settings.end();
    expect(rows).toEqual([
      { name: 'listen_addresses', setting: '127.0.0.1' },
      { name: 'max_connections', setting: '400' },
    ]);
    await server.stop();
    expect(existsSync(server.dir as string)).toBe(false);
    await expect(waitForServer(server.adminUrl, 200)).rejects.toThrow(/did not answer/);
  });

  test('the reaper stops and removes the cluster when its owner dies without teardown', async () => {
    const owner = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' });
    const ownerExited = new Promise((r) => owner.once('exit', r));
    const server = await startPostgresServer({
      externalUrl: null,
      skip: ['testcontainers'],
      reaperOwnerPid: owner.pid,
    });
    try {
      expect(await selectOne(server.adminUrl)).toBe(1);
      owner.kill('SIGKILL');
      await ownerExited;
      await eventually(() => !existsSync(server.dir as string), 20_000);
      await expect(waitForServer(server.adminUrl, 200)).rejects.toThrow(/did not answer/);
    } finally {
      owner.kill('SIGKILL');
      await server.stop().catch(() => {});
    }
  });

  test('redactUrl hides the password', () => {
    expect(redactUrl('postgres://u:secret@h:1/db')).toBe('postgres://u:***@h:1/db');
  });
});
