import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isPasswordHash, loadConfig, verifyPassword } from '@keel/server';
import { bufferOutput } from '../output';
import { hashPasswordCommand } from './hash-password';

describe('keel hash-password', () => {
  test("prints a scrypt hash of standard input's first line that a user's passwordHash accepts", async () => {
    const output = bufferOutput();
    const hash = await hashPasswordCommand({ input: 'pa:ss word\n' }, output);
    expect(output.stdout()).toBe(`${hash}\n`);
    expect(isPasswordHash(hash)).toBe(true);
    expect(await verifyPassword('pa:ss word', hash)).toBe(true);
    expect(await verifyPassword('pa:ss word\n', hash)).toBe(false);
    const file = join(mkdtempSync(join(tmpdir(), 'keel-hash-')), 'keel.json');
    writeFileSync(file, JSON.stringify({ users: [{ name: 'a', passwordHash: hash }] }));
    const cfg = loadConfig({ file, env: { KEEL_DB: 'postgres://u@h/k' } });
    expect(cfg.users[0]?.passwordHash).toBe(hash);
  });

  test('no password: refused', async () => {
    await expect(hashPasswordCommand({ input: '' }, bufferOutput())).rejects.toThrow(/no password/);
  });
});
