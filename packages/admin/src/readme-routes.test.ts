import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import type { AdminContext } from './admin-context';
import { buildAdminServer } from './admin-server';

/** `| METHOD | `/route` | auth | what |` rows of the README's admin API table. */
function readmeRoutes(): { method: string; url: string; auth: string }[] {
  const readme = readFileSync(path.resolve(__dirname, '..', '..', '..', 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('## The admin API'));
  return [
    ...section
      .slice(0, section.indexOf('\n## ', 1))
      .matchAll(/^\| (GET|POST|DELETE|PUT|PATCH) \| `([^`]+)` \| (\w+) \|/gm),
  ].map((m) => ({ method: m[1] as string, url: m[2] as string, auth: m[3] as string }));
}

describe('README admin API table', () => {
  it('lists exactly the routes the admin server registers, each with its access', async () => {
    // Routes are only registered, never called: the context is not consulted beyond the version.
    const ctx = { node: () => ({ version: 'test' }) } as unknown as AdminContext;
    const app = buildAdminServer(ctx);
    const routes: { method: string; url: string; auth: string }[] = [];
    app.addHook('onRoute', (route) => {
      if (route.url.startsWith('/docs')) return; // the OpenAPI UI, named in the text
      for (const method of [route.method].flat()) {
        if (method === 'HEAD') continue;
        const access = (route.config as { access?: string } | undefined)?.access ?? 'open';
        routes.push({ method, url: route.url, auth: access });
      }
    });
    await app.ready();
    await app.close();
    expect(routes.length).toBeGreaterThan(10);
    const key = (r: { method: string; url: string }) => `${r.method} ${r.url}`;
    expect(readmeRoutes().sort((a, b) => key(a).localeCompare(key(b)))).toEqual(
      routes.sort((a, b) => key(a).localeCompare(key(b))),
    );
  });
});
