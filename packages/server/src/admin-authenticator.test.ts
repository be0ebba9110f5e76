import { AdminAuth } from '@keel/admin';
import type { KeelError } from '@keel/protocol';
import { adminAuthenticator } from './admin-wiring';
import { ClientLogin } from './client-login';
import { hashPassword, loadConfig } from './config';
import { PasswordCheckGate } from './password-check-gate';

async function elapsed(fn: () => Promise<unknown>): Promise<number> {
  const t = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - t) / 1e6;
}

describe('adminAuthenticator', () => {
  const config = loadConfig({
    argv: { adminUser: 'root', adminPassword: 'root-pw' },
    env: { KEEL_DB: 'postgres://u@h/k' },
  });
  const auth = adminAuthenticator(config)!;

  test('roles of the admin user; unknown and wrong: null', async () => {
    expect(await auth('root', 'root-pw')).toBe('admin');
    expect(await auth('root', 'nope')).toBeNull();
    expect(await auth('mallory', 'root-pw')).toBeNull();
  });

  test('an unknown user costs a scrypt check like a known one (issue #23: 0.3 ms vs 35 ms before)', async () => {
    const known: number[] = [];
    const unknown: number[] = [];
    for (let i = 0; i < 5; i++) {
      known.push(await elapsed(() => auth('root', 'wrong')));
      unknown.push(await elapsed(() => auth(`nobody${i}`, 'wrong')));
    }
    const median = (a: number[]) => [...a].sort((x, y) => x - y)[2] as number;
    expect(median(unknown)).toBeGreaterThan(median(known) * 0.5);
  });

  test('admin checks share the node gate with client logins: a login flood refuses them (429), it does not queue them', async () => {
    const gate = new PasswordCheckGate({
      maxConcurrentHashes: 1,
      maxWaitingHashes: 3,
      maxHashesPerAddress: 1,
    });
    const login = new ClientLogin({
      users: [{ name: 'app', passwordHash: hashPassword('app-pw'), roles: [], groups: [] }],
      gate,
    });
    const shared = adminAuthenticator(config, gate)!;
    const adminAuth = new AdminAuth({ authenticate: shared });
    const basic = `Basic ${Buffer.from('root:root-pw').toString('base64')}`;
    // Client logins fill the gate: one check running, three waiting (one per address).
    const flood = ['a', 'b', 'c', 'd'].map((a) => login.check('app', 'wrong', a));
    expect(await shared('root', 'root-pw', 'e').catch((e: KeelError) => e.code)).toBe('LOGIN_THROTTLED');
    expect(await adminAuth.check('admin', basic, 'f')).toMatchObject({
      ok: false,
      status: 429,
      code: 'LOGIN_THROTTLED',
    });
    expect(await Promise.all(flood)).toEqual([false, false, false, false]);
    // Once the flood is through, the admin's check runs.
    expect(await adminAuth.check('admin', basic, 'f')).toMatchObject({ ok: true, role: 'admin' });
  });
});
