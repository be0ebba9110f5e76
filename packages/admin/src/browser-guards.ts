import type { FastifyInstance } from 'fastify';

/** Requests from the web console carry this header (set by its fetch calls, never by a form). */
export const CONSOLE_REQUEST_HEADER = 'x-keel-console';

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

/**
 * Why a state-changing request is refused as cross-site, or null when it is not. Browsers send
 * `Origin` with every POST/PUT/DELETE (Fetch §3.1) and `Sec-Fetch-Site` (Fetch Metadata) on
 * requests they make; a page on another site that makes one (a form, fetch with credentials the
 * browser cached from a Basic prompt) is refused. Clients that are not browsers send neither.
 */
export function crossSiteRefusal(
  method: string,
  headers: Record<string, string | string[] | undefined>,
): string | null {
  if (SAFE_METHODS.has(method.toUpperCase())) return null;
  const site = headers['sec-fetch-site'];
  if (site === 'cross-site' || site === 'same-site')
    return `cross-site request refused (Sec-Fetch-Site: ${site}): state changes come from this node's own console or a non-browser client`;
  const origin = headers.origin;
  if (typeof origin !== 'string' || origin === '') return null;
  const host = headers['x-forwarded-host'] ?? headers.host;
  let originHost: string;
  try {
    originHost = new URL(origin).host;
  } catch {
    return `cross-site request refused (Origin: ${origin} is not a URL)`;
  }
  const hosts = (Array.isArray(host) ? host : [host ?? '']).flatMap((h) => h.split(',').map((x) => x.trim()));
  if (hosts.includes(originHost)) return null;
  return `cross-site request refused (Origin ${origin} is not this node's ${hosts[0] ?? ''})`;
}

/**
 * CSRF defence for the admin API (state changes need HTTP Basic credentials in a header, never a
 * cookie, and are refused when a browser says they come from another site), and no Basic prompt
 * for the console: a 401 to its requests carries no WWW-Authenticate, so the browser never caches
 * credentials that another site's page could then use.
 */
export function registerBrowserGuards(app: FastifyInstance): void {
  app.addHook('onRequest', async (request, reply) => {
    const refusal = crossSiteRefusal(request.method, request.headers);
    if (!refusal) return;
    request.log.info({ method: request.method, url: request.url }, 'cross-site admin request refused');
    return reply
      .code(403)
      .send({ statusCode: 403, error: 'Forbidden', code: 'NOT_AUTHORIZED', message: refusal });
  });
  app.addHook('onSend', async (request, reply, payload) => {
    if (request.headers[CONSOLE_REQUEST_HEADER] !== undefined) reply.removeHeader('www-authenticate');
    return payload;
  });
}
