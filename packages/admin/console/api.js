// The console's only ways to talk to the node: the admin REST API (fetch, Basic credentials in a
// header, never a cookie) and one server-sent-event stream read with fetch (EventSource cannot send
// an Authorization header).

const AUTH_KEY = 'keel.console.authorization';

/** `Basic …` for the signed-in user, or null. Kept for this tab only (sessionStorage). */
export function authorization() {
  return sessionStorage.getItem(AUTH_KEY);
}

export function basicHeader(user, password) {
  // btoa takes Latin-1: encode the UTF-8 bytes first (RFC 7617 §2.1 charset="UTF-8").
  const bytes = new TextEncoder().encode(`${user}:${password}`);
  let bin = '';
  for (const b of bytes) bin += String.fromCharCode(b);
  return `Basic ${btoa(bin)}`;
}

export function setAuthorization(value) {
  if (value) sessionStorage.setItem(AUTH_KEY, value);
  else sessionStorage.removeItem(AUTH_KEY);
}

function headers(extra = {}, auth = authorization()) {
  // x-keel-console: the node leaves WWW-Authenticate off its 401s, so the browser never shows its
  // own Basic prompt (and never caches credentials another site could use).
  const h = { 'x-keel-console': '1', ...extra };
  if (auth) h.authorization = auth;
  return h;
}

export class ApiError extends Error {
  constructor(status, body) {
    super(body?.message ?? `HTTP ${status}`);
    this.status = status;
    this.code = body?.code ?? null;
    this.master = body?.master ?? null;
  }
}

/** JSON request to the admin API; throws ApiError with the API's message on a non-2xx answer. */
export async function api(method, path, body, auth) {
  const init = {
    method,
    headers: headers(body === undefined ? {} : { 'content-type': 'application/json' }, auth),
  };
  if (body !== undefined) init.body = JSON.stringify(body);
  const res = await fetch(path, init);
  const text = await res.text();
  let json = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    json = { message: text };
  }
  if (!res.ok) throw new ApiError(res.status, json);
  return json;
}

export const enc = encodeURIComponent;

/**
 * Read /api/stream until `signal` aborts, calling onEvent(name, data) per event and onStatus(s)
 * with 'open', 'closed' or 'unauthorized'. Reconnects a second after a drop.
 */
export async function readStream(signal, onEvent, onStatus) {
  while (!signal.aborted) {
    try {
      const res = await fetch('/api/stream', { headers: headers(), cache: 'no-store', signal });
      if (res.status === 401 || res.status === 403) {
        onStatus('unauthorized');
        return;
      }
      if (!res.ok || !res.body) throw new Error(`stream answered ${res.status}`);
      onStatus('open');
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let end = buffer.indexOf('\n\n');
        while (end >= 0) {
          dispatch(buffer.slice(0, end), onEvent);
          buffer = buffer.slice(end + 2);
          end = buffer.indexOf('\n\n');
        }
      }
    } catch {
      if (signal.aborted) return;
    }
    onStatus('closed');
    await new Promise((r) => setTimeout(r, 1000));
  }
}

function dispatch(block, onEvent) {
  let event = 'message';
  const data = [];
  for (const line of block.split('\n')) {
    if (line.startsWith(':')) continue;
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
    if (field === 'event') event = value;
    else if (field === 'data') data.push(value);
  }
  if (data.length > 0) onEvent(event, JSON.parse(data.join('\n')));
}
