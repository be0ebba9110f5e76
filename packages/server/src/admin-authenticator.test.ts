import { adminAuthenticator } from './admin-wiring';
import { loadConfig } from './config';

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
});
