import { existsSync } from 'node:fs';
import Module from 'node:module';
import * as path from 'node:path';

type StorePg = Pick<typeof import('@keel/store-pg'), 'migrate' | 'ensureLockDatabase' | 'loadMigrations'>;

interface ModuleInternals {
  _resolveFilename(request: string, parent: unknown, ...rest: unknown[]): string;
}

/**
 * Loads `@keel/store-pg` from code that runs outside jest's module mapper (the global setup).
 * From compiled testkit (dist) it is an ordinary require. From TypeScript sources, run by jest's
 * globalSetup (whose transform hook compiles `.ts` while setup runs), `@keel/<pkg>` is resolved
 * to `packages/<pkg>/src/index.ts` for the duration of the load, so no package has to be built.
 */
export function loadStorePg(): StorePg {
  if (!__filename.endsWith('.ts')) return require('@keel/store-pg') as StorePg;
  const packagesDir = path.resolve(__dirname, '..', '..');
  const internals = Module as unknown as ModuleInternals;
  const original = internals._resolveFilename;
  internals._resolveFilename = function resolveKeelSource(
    this: unknown,
    request: string,
    parent: unknown,
    ...rest: unknown[]
  ) {
    const m = /^@keel\/([a-z-]+)$/.exec(request);
    if (m) {
      const src = path.join(packagesDir, m[1] as string, 'src', 'index.ts');
      if (existsSync(src)) return src;
    }
    return original.call(this, request, parent, ...rest);
  };
  try {
    // Only the migration runner: the rest of the package may be mid-edit and is not needed here.
    return require(path.join(packagesDir, 'store-pg', 'src', 'migrate.ts')) as StorePg;
  } finally {
    internals._resolveFilename = original;
  }
}
