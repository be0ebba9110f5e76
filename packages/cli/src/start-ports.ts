/**
 * The ports of `keel start`'s two nodes. Each of the first node's ports (native, STOMP, admin) comes
 * from its flag, else its KEEL_* variable (as `keel broker` reads them), else the default
 * (61616, 61613, 8161):
 *
 * - a port given by flag or variable must be free: busy, it is refused with an error that names it
 *   and where it came from (the user asked for that port; another one would surprise them);
 * - a default port that is busy moves up to the next free port (61616 busy: 61617, then 61618 …);
 * - the second node takes, for each kind, the next free port above the first node's.
 *
 * No two chosen ports are equal. "Free" means it could be bound on the host just now.
 */
import {
  ConfigError,
  DEFAULT_ADMIN_PORT,
  DEFAULT_PORT,
  DEFAULT_SSL_PORT,
  DEFAULT_STOMP_PORT,
  DEFAULT_STOMP_SSL_PORT,
} from '@keel/server';
import { isPortFree } from './ports';

/** How far above a wanted port `keel start` looks for a free one. */
export const PORT_SEARCH_SPAN = 100;

export type PortKind = 'port' | 'stompPort' | 'adminPort';
export const PORT_KINDS: readonly PortKind[] = ['port', 'stompPort', 'adminPort'];

/** A port and where it came from: `--port`, `KEEL_PORT` or `default`. */
export interface PortSetting {
  value: number;
  source: string;
}

export type NodePorts = Record<PortKind, number>;

export interface StartPortOptions {
  port?: string;
  stompPort?: string;
  adminPort?: string;
  pgPort?: string;
}

const FLAGS: Record<PortKind | 'pgPort', { flag: string; env: string; fallback?: number }> = {
  port: { flag: '--port', env: 'KEEL_PORT', fallback: DEFAULT_PORT },
  stompPort: { flag: '--stomp-port', env: 'KEEL_STOMP_PORT', fallback: DEFAULT_STOMP_PORT },
  adminPort: { flag: '--admin-port', env: 'KEEL_ADMIN_PORT', fallback: DEFAULT_ADMIN_PORT },
  pgPort: { flag: '--pg-port', env: 'KEEL_PG_PORT' },
};

/** The setting's port from flag > variable > default; undefined for pgPort when neither is set. */
export function portSetting(
  key: PortKind | 'pgPort',
  options: StartPortOptions,
  env: NodeJS.ProcessEnv,
): PortSetting | undefined {
  const { flag, env: variable, fallback } = FLAGS[key];
  const given = options[key] ?? env[variable]?.trim();
  const source = options[key] !== undefined ? flag : variable;
  if (given === undefined || given === '') {
    return fallback === undefined ? undefined : { value: fallback, source: 'default' };
  }
  const value = Number(given);
  if (!/^\d+$/.test(given) || value < 1 || value > 65535) {
    throw new ConfigError([
      {
        setting: key,
        message: `must be an integer between 1 and 65535 (got ${JSON.stringify(given)})`,
        source,
      },
    ]);
  }
  return { value, source };
}

/** A busy port the user asked for. */
export function portInUse(key: string, setting: PortSetting, host: string): ConfigError {
  return new ConfigError([
    {
      setting: key,
      message: `${setting.value} is already in use on ${host} (choose another, or leave it out to take the next free one)`,
      source: setting.source,
    },
  ]);
}

/** The first port from `from` upwards (PORT_SEARCH_SPAN of them) that is free and not taken. */
async function nextFreePort(from: number, taken: Set<number>, host: string, key: string): Promise<number> {
  for (let port = from; port < from + PORT_SEARCH_SPAN && port <= 65535; port++) {
    if (!taken.has(port) && (await isPortFree(port, host))) return port;
  }
  throw new ConfigError([
    {
      setting: key,
      message: `no free port in ${from}-${Math.min(from + PORT_SEARCH_SPAN - 1, 65535)} on ${host}`,
    },
  ]);
}

/**
 * The ports of `count` nodes on host: node 0 from the settings (explicit busy ports refused,
 * default busy ports moved up), every further node the next free ports above the previous node's.
 * `taken`: ports already spoken for (they count as busy).
 */
export async function planNodePorts(
  settings: Record<PortKind, PortSetting>,
  host: string,
  count = 2,
  taken: Iterable<number> = [],
): Promise<NodePorts[]> {
  const used = new Set(taken);
  const first = {} as NodePorts;
  // The ports asked for first, so that a default moves out of their way rather than clash.
  for (const key of PORT_KINDS) {
    const setting = settings[key];
    if (setting.source === 'default') continue;
    const clash = PORT_KINDS.find((k) => k !== key && first[k] === setting.value);
    if (clash) {
      throw new ConfigError([
        {
          setting: key,
          message: `must differ from ${clash} (both ${setting.value})`,
          source: setting.source,
        },
      ]);
    }
    if (used.has(setting.value) || !(await isPortFree(setting.value, host))) {
      throw portInUse(key, setting, host);
    }
    first[key] = setting.value;
    used.add(setting.value);
  }
  for (const key of PORT_KINDS) {
    const setting = settings[key];
    if (setting.source !== 'default') continue;
    first[key] = await nextFreePort(setting.value, used, host, key);
    used.add(first[key]);
  }
  const nodes = [first];
  for (let i = 1; i < count; i++) {
    const previous = nodes[i - 1] as NodePorts;
    const next = {} as NodePorts;
    for (const key of PORT_KINDS) {
      next[key] = await nextFreePort(previous[key] + 1, used, host, key);
      used.add(next[key]);
    }
    nodes.push(next);
  }
  return nodes;
}

/** `keel start --tls`: each node's ssl:// and stomp+ssl:// ports. */
export interface NodeTlsPorts {
  sslPort: number;
  stompSslPort: number;
}

/**
 * The TLS ports of `keel start --tls`'s nodes: from ActiveMQ's defaults (61617, 61612) upwards,
 * free and clear of the ports already planned (`taken`: the nodes' other ports).
 */
export async function planTlsPorts(
  count: number,
  host: string,
  taken: Iterable<number>,
): Promise<NodeTlsPorts[]> {
  const used = new Set(taken);
  const out: NodeTlsPorts[] = [];
  let ssl = DEFAULT_SSL_PORT;
  let stompSsl = DEFAULT_STOMP_SSL_PORT;
  for (let i = 0; i < count; i++) {
    const sslPort = await nextFreePort(ssl, used, host, 'sslPort');
    used.add(sslPort);
    const stompSslPort = await nextFreePort(stompSsl, used, host, 'stompSslPort');
    used.add(stompSslPort);
    out.push({ sslPort, stompSslPort });
    ssl = sslPort + 1;
    stompSsl = stompSslPort + 1;
  }
  return out;
}
