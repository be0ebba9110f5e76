/**
 * libpq connection URIs with several hosts (PostgreSQL 15 docs, 34.1.1.2 "Connection URIs" and
 * 34.1.1.3 "Specifying Multiple Hosts"): `postgres://user:pw@h1:5432,[::1]:5433,h3/db?target_session_attrs=read-write&connect_timeout=2`.
 * node-postgres takes one host only, so Keel parses the list itself and hands pg one single-host URL
 * per attempt (see host-selection.ts). No pg import here: config validation uses this too.
 */

/** libpq `target_session_attrs` (34.1.2): which server of the list a session must land on. */
export const TARGET_SESSION_ATTRS = [
  'any',
  'read-write',
  'read-only',
  'primary',
  'standby',
  'prefer-standby',
] as const;
export type TargetSessionAttrs = (typeof TARGET_SESSION_ATTRS)[number];

export interface PgHost {
  /** Host name or address; an IPv6 address without its brackets. */
  host: string;
  port: number;
}

export interface PgUrl {
  /** `postgres:` or `postgresql:` */
  protocol: string;
  /** `user[:password]` as written (still percent-encoded), or '' */
  userinfo: string;
  hosts: PgHost[];
  /** The host list as written (formatPgUrl keeps it, so a URL it did not change reads the same). */
  hostText: string;
  /** Database name, decoded; '' when the URL names none. */
  database: string;
  /** Query parameters other than the two below (port= included), in order, decoded. */
  params: [string, string][];
  /** target_session_attrs when the URL gives one. */
  targetSessionAttrs?: TargetSessionAttrs;
  /** connect_timeout (seconds in the URL) in ms, when the URL gives one. */
  connectTimeoutMs?: number;
}

export class PgUrlError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PgUrlError';
  }
}

const DEFAULT_PORT = 5432;
const URL_RE = /^(postgres(?:ql)?:)\/\/([^/?#]*)(\/[^?#]*)?(\?[^#]*)?(#.*)?$/i;

function parsePort(text: string, where: string): number {
  if (!/^\d{1,5}$/.test(text) || Number(text) < 1 || Number(text) > 65535)
    throw new PgUrlError(`invalid port "${text}" in ${where}`);
  return Number(text);
}

function parseHost(entry: string, defaultPort: number): PgHost {
  if (entry === '') throw new PgUrlError('empty host in the host list');
  if (entry.startsWith('[')) {
    const close = entry.indexOf(']');
    if (close < 0) throw new PgUrlError(`unclosed "[" in host "${entry}"`);
    const host = entry.slice(1, close);
    if (!/^[0-9a-fA-F:.]+(%[\w.-]+)?$/.test(host) || !host.includes(':'))
      throw new PgUrlError(`invalid IPv6 address "${entry}"`);
    const rest = entry.slice(close + 1);
    if (rest === '') return { host, port: defaultPort };
    if (!rest.startsWith(':'))
      throw new PgUrlError(`unexpected "${rest}" after "${entry.slice(0, close + 1)}"`);
    return { host, port: parsePort(rest.slice(1), `host "${entry}"`) };
  }
  const colon = entry.lastIndexOf(':');
  const host = decodeURIComponent(colon < 0 ? entry : entry.slice(0, colon));
  if (host === '') throw new PgUrlError(`empty host name in "${entry}"`);
  // libpq: a host beginning with a slash is the directory of a Unix-domain socket (percent-encoded
  // in a URL: `postgres://user@%2Ftmp%2Fdir:5432/db`); the shared store's Postgres listens on one.
  if (host.startsWith('/')) {
    return { host, port: colon < 0 ? defaultPort : parsePort(entry.slice(colon + 1), `host "${entry}"`) };
  }
  if (/[\s[\]@/]/.test(host) || host.includes(':'))
    throw new PgUrlError(`invalid host "${entry}" (an IPv6 address needs brackets: [::1]:5432)`);
  return { host, port: colon < 0 ? defaultPort : parsePort(entry.slice(colon + 1), `host "${entry}"`) };
}

/** Parses a postgres:// URL with one or more hosts. Throws PgUrlError naming what is wrong. */
export function parsePgUrl(url: string): PgUrl {
  const m = URL_RE.exec(url.trim());
  if (!m) throw new PgUrlError('not a postgres:// or postgresql:// URL');
  const [, protocol, authority = '', pathPart = '', queryPart = ''] = m;
  const at = authority.lastIndexOf('@');
  const userinfo = at < 0 ? '' : authority.slice(0, at);
  const hostList = at < 0 ? authority : authority.slice(at + 1);

  const params: [string, string][] = [];
  let targetSessionAttrs: TargetSessionAttrs | undefined;
  let connectTimeoutMs: number | undefined;
  let portParam: number | undefined;
  for (const [k, v] of new URLSearchParams(queryPart.slice(1))) {
    if (k === 'target_session_attrs') {
      if (!(TARGET_SESSION_ATTRS as readonly string[]).includes(v))
        throw new PgUrlError(
          `target_session_attrs must be one of ${TARGET_SESSION_ATTRS.join(', ')} (got "${v}")`,
        );
      targetSessionAttrs = v as TargetSessionAttrs;
    } else if (k === 'connect_timeout') {
      if (!/^\d+$/.test(v)) throw new PgUrlError(`connect_timeout must be whole seconds (got "${v}")`);
      // libpq: a timeout below 2 s counts as 2 s; 0 waits forever (here: the caller's default).
      if (Number(v) > 0) connectTimeoutMs = Math.max(2, Number(v)) * 1000;
    } else if (k === 'host' || k === 'hostaddr') {
      throw new PgUrlError(
        `the ${k}= parameter is not supported: list the hosts in the URL (h1:5432,h2:5432)`,
      );
    } else {
      if (k === 'port') portParam = parsePort(v, 'the port= parameter');
      params.push([k, v]);
    }
  }

  const entries = hostList === '' ? ['localhost'] : hostList.split(',');
  const hosts = entries.map((e) => parseHost(e, portParam ?? DEFAULT_PORT));
  let database: string;
  try {
    database = decodeURIComponent(pathPart.replace(/^\//, ''));
  } catch {
    throw new PgUrlError('invalid percent-encoding in the database name');
  }
  if (database.includes('/')) throw new PgUrlError(`invalid database name "${database}"`);
  return {
    protocol: (protocol as string).toLowerCase(),
    userinfo,
    hosts,
    hostText: hostList,
    database,
    params,
    ...(targetSessionAttrs ? { targetSessionAttrs } : {}),
    ...(connectTimeoutMs ? { connectTimeoutMs } : {}),
  };
}

/** `h:port`, `[v6]:port`: how Keel names a host in logs, errors and the admin API. */
export function formatHost(h: PgHost): string {
  return h.host.includes(':') ? `[${h.host}]:${h.port}` : `${h.host}:${h.port}`;
}

function query(u: PgUrl, withSelection: boolean): string {
  // A single-host URL carries its port in the authority; pg would let port= override it.
  const q = new URLSearchParams(withSelection ? u.params : u.params.filter(([k]) => k !== 'port'));
  if (withSelection && u.targetSessionAttrs) q.set('target_session_attrs', u.targetSessionAttrs);
  if (withSelection && u.connectTimeoutMs) q.set('connect_timeout', String(u.connectTimeoutMs / 1000));
  const s = q.toString();
  return s ? `?${s}` : '';
}

function authority(u: PgUrl, hostText: string): string {
  return `${u.userinfo ? `${u.userinfo}@` : ''}${hostText}`;
}

/** The whole URL again, every host (as written) and the selection parameters included. */
export function formatPgUrl(u: PgUrl): string {
  return `${u.protocol}//${authority(u, u.hostText)}/${encodeURIComponent(u.database)}${query(u, true)}`;
}

/** A single-host URL node-postgres understands: one host of u, without the multi-host parameters. */
export function singleHostUrl(u: PgUrl, host: PgHost): string {
  const h = host.host.includes(':')
    ? `[${host.host}]:${host.port}`
    : `${encodeURIComponent(host.host)}:${host.port}`;
  return `${u.protocol}//${authority(u, h)}/${encodeURIComponent(u.database)}${query(u, false)}`;
}

/** url on another database of the same servers (all hosts and parameters kept). */
export function withDatabase(url: string, database: string): string {
  return formatPgUrl({ ...parsePgUrl(url), database });
}

/** The database url names ('' when none). */
export function databaseOfUrl(url: string): string {
  return parsePgUrl(url).database;
}

/** The decoded user name of url ('' when none). */
export function userOfUrl(url: string): string {
  const info = parsePgUrl(url).userinfo;
  const colon = info.indexOf(':');
  return decodeURIComponent(colon < 0 ? info : info.slice(0, colon));
}
