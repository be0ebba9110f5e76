/**
 * A broker node's configuration: one typed `NodeConfig`, read from four sources in this order of
 * precedence (highest first):
 *
 * 1. command-line flags (already parsed by the CLI, passed as `argv`),
 * 2. environment variables `KEEL_*`,
 * 3. a configuration file (`--config FILE` or `KEEL_CONFIG`, YAML or JSON, nested like NodeConfig),
 * 4. the defaults exported below.
 *
 * A setting from a higher source replaces the whole value from a lower one, lists included
 * (`--user` replaces the file's `users`, it does not add to them). Every value is validated and an
 * error names the setting, what it must be, the value and where it came from:
 * `invalid configuration: port: must be an integer between 0 and 65535 (got "abc") from --port`.
 *
 * Only this package reads environment variables (STYLE.md); other packages receive options.
 */
import { randomBytes, scrypt, scryptSync, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  type AuthorizationEntryOptions,
  AuthorizationMap,
  type CompositeDestinationOptions,
  DEFAULT_CANCELLABLE_HOLD_MS,
  DestinationRouter,
  groupList,
  type TempDestinationAuthorizationOptions,
  type VirtualTopicOptions,
} from '@keel/core';
import { InvalidArgumentError } from '@keel/protocol';
import { databaseOfUrl, parsePgUrl, withDatabase } from '@keel/store-pg';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { assembleLimits, type LimitsConfig, limitSettings } from './limits/limits-config';

// ---------------------------------------------------------------------------------------------
// Defaults

/** Native protocol (`tcp://`), as ActiveMQ's OpenWire port. */
export const DEFAULT_PORT = 61616;
/** STOMP 1.2 (`stomp://`), as ActiveMQ's STOMP port. */
export const DEFAULT_STOMP_PORT = 61613;
/** HTTP admin API, as ActiveMQ's web console. */
export const DEFAULT_ADMIN_PORT = 8161;
/** Native protocol over TLS (`ssl://`), as ActiveMQ's ssl transport connector; opened when tls is set. */
export const DEFAULT_SSL_PORT = 61617;
/** STOMP over TLS (`stomp+ssl://`), as ActiveMQ's; opened when tls is set. */
export const DEFAULT_STOMP_SSL_PORT = 61612;
export const DEFAULT_CLUSTER = 'default';
/**
 * Keel listens on loopback unless told otherwise: a broker reachable from the network should be a
 * deliberate choice (`--host 0.0.0.0`), made together with users and an admin password.
 */
export const DEFAULT_HOST = '127.0.0.1';
export const DEFAULT_LOCKER: LockerKind = 'row';
export const DEFAULT_MAX_FRAME_SIZE = 4 * 1024 * 1024;
export const DEFAULT_HEARTBEAT_MS = 10_000;
/** How often the master runs its keep-alive statement on the lock session. */
export const DEFAULT_LOCK_KEEP_ALIVE_MS = 500;
/** idle_in_transaction_session_timeout of the lock session, and the lease of the lease locker. */
export const DEFAULT_LOCK_LEASE_MS = 2_000;
/** lock_timeout of a waiting node's attempt, so it stays responsive while it waits. */
export const DEFAULT_LOCK_WAITING_POLL_MS = 500;
/** A master that lost its lock session (Postgres restarting) keeps its clients this long. */
export const DEFAULT_LOCK_OUTAGE_GRACE_MS = 5_000;
/** ActiveMQ's SharedFileLocker.lockAcquireSleepInterval: a waiting node tries the lock file this often. */
export const DEFAULT_LOCK_ACQUIRE_SLEEP_INTERVAL = 10_000;
/** The file locker's master checks its lock file (and renews its lease, if any) this often. */
export const DEFAULT_LOCK_KEEP_ALIVE_PERIOD = 1_000;
/** The file locker's lease; 0: none (a frozen master keeps its kernel lock, as in ActiveMQ). */
export const DEFAULT_LEASE_DURATION = 0;
/** After a takeover, recovered messages wait this long for failover clients' replayed acks. */
export const DEFAULT_RECOVERY_HOLD_MS = 1_000;
/** The most store operations the group-commit writer puts in one transaction. */
export const DEFAULT_STORE_MAX_BATCH_SIZE = 1_000;
/** Messages a queue keeps in memory; the rest is paged from Postgres. */
export const DEFAULT_STORE_PAGE_SIZE = 2_000;
/** Duplicate detection remembers a silent producer this long (a resend comes within a failover). */
export const DEFAULT_PRODUCER_RETENTION_MS = 3_600_000;
/** ActiveMQ's org.apache.activemq.RedeliveryPolicy defaults (delays in milliseconds). */
export const DEFAULT_REDELIVERY: Readonly<RedeliveryConfig> = Object.freeze({
  maximumRedeliveries: 6,
  initialRedeliveryDelay: 1_000,
  redeliveryDelay: 1_000,
  useExponentialBackOff: false,
  backOffMultiplier: 5,
  maximumRedeliveryDelay: -1,
});
/** ActiveMQ's SharedDeadLetterStrategy queue. */
export const DEFAULT_DEAD_LETTER_QUEUE = 'ActiveMQ.DLQ';
/** ActiveMQ's IndividualDeadLetterStrategy queuePrefix. */
export const DEFAULT_DLQ_QUEUE_PREFIX = 'DLQ.';
export const DEFAULT_DEAD_LETTER_STRATEGY: DeadLetterStrategyKind = 'shared';
/** ActiveMQ's DeadLetterStrategy.processExpired: expired messages go to the DLQ. */
export const DEFAULT_PROCESS_EXPIRED = true;
export const DEFAULT_LOG_LEVEL: LogLevel = 'info';
/** Roles of a user given as `--user NAME:PASSWORD` (or in KEEL_USERS) and of a file user without roles. */
export const DEFAULT_USER_ROLES: readonly string[] = Object.freeze(['producer', 'consumer']);
/** scrypt cost parameters for hashPassword (N = 2^14, r = 8, p = 1: ~16 MiB, tens of ms). */
export const DEFAULT_SCRYPT = Object.freeze({ N: 16_384, r: 8, p: 1, keyLength: 32, saltLength: 16 });

// ---------------------------------------------------------------------------------------------
// Types

export type LockerKind = 'row' | 'lease' | 'file';
export type LogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal' | 'silent';
export type DeadLetterStrategyKind = 'shared' | 'individual';

export interface UserConfig {
  name: string;
  /** `scrypt$N$r$p$salt$hash` (base64 salt and hash); check a password with verifyPassword. */
  passwordHash: string;
  roles: string[];
  /**
   * Groups for the `authorization` map (ActiveMQ's user groups): `groups` of the file, or the
   * user's roles when it has none (`--user NAME:PASSWORD`: producer, consumer).
   */
  groups: string[];
}

export interface LockConfig {
  keepAliveMs: number;
  leaseMs: number;
  waitingPollMs: number;
  /** How long a master that lost its lock session keeps its clients while it tries to take the lock back. */
  outageGraceMs: number;
  /**
   * After a takeover, recovered messages wait this long before delivery, so failover clients can
   * replay acknowledgements the old master may have lost (no message goes to two consumers).
   */
  recoveryHoldMs: number;
}

/**
 * The file locker (`locker: {type: file, directory, ...}`, ActiveMQ's shared file system
 * master/slave); times in milliseconds, ActiveMQ's option names. Unused by the row and lease lockers.
 */
export interface FileLockerConfig {
  /** The shared lock directory (`--lock-dir`, KEEL_LOCK_DIR); the lock is `<directory>/lock`. */
  directory: string;
  lockAcquireSleepInterval: number;
  lockKeepAlivePeriod: number;
  /** 0: no lease. */
  leaseDuration: number;
  /** Fences a stale holder on another host (exit 0 = fenced); null: such a holder is waited for. */
  fenceCommand: string | null;
}

export interface StoreConfig {
  maxBatchSize: number;
  pageSize: number;
  /** ActiveMQ's concurrentStoreAndDispatchQueues: dispatch a persistent queue message while it is stored. */
  concurrentStoreAndDispatchQueues: boolean;
  /** How long a commit round holding such inserts waits for the consumers' acks (ms). */
  concurrentStoreAndDispatchHoldMs: number;
  /** How long duplicate detection keeps the sequence of a producer that sends nothing more. */
  producerRetentionMs: number;
}

/** ActiveMQ RedeliveryPolicy names; delays in milliseconds, -1 maximumRedeliveries = forever. */
export interface RedeliveryConfig {
  maximumRedeliveries: number;
  initialRedeliveryDelay: number;
  redeliveryDelay: number;
  useExponentialBackOff: boolean;
  backOffMultiplier: number;
  /** -1: no cap. */
  maximumRedeliveryDelay: number;
}

/** ActiveMQ's SharedDeadLetterStrategy / IndividualDeadLetterStrategy. */
export type DeadLetterConfig =
  | { strategy: 'shared'; deadLetterQueue: string; processExpired: boolean }
  | { strategy: 'individual'; queuePrefix: string; processExpired: boolean };

/** TLS of the node's listeners (tls/tls-context.ts): PEM files, ActiveMQ's needClientAuth, https admin. */
export interface TlsConfig {
  certFile: string;
  keyFile: string;
  /** CA of client certificates (needClientAuth) and of ssl:// network peers; null: Node's root CAs. */
  caFile: string | null;
  needClientAuth: boolean;
  /** The admin API answers https with the same certificate (default true). */
  adminHttps: boolean;
}

export interface NodeConfig {
  /** Node name (logs, lock holder, cluster view). Default `<hostname>-<port>`. */
  name: string;
  cluster: string;
  /** Postgres URL of the message store. */
  db: string;
  /** Postgres URL of the lock database. Default `<database>_lock` on the same server as db. */
  lockDb: string;
  locker: LockerKind;
  /** The file locker's settings (`locker: file`). */
  fileLocker: FileLockerConfig;
  /**
   * Shared-storage mode b (`--store-dir`, with `--locker file` and no `--db`): the lock holder runs
   * PostgreSQL on `<storeDir>/pgdata` and serves from it (shared-store-postgres.ts); null: `db`.
   */
  storeDir: string | null;
  host: string;
  /** 0: any free port. */
  port: number;
  /** false: STOMP disabled (0 or false in any source). */
  stompPort: number | false;
  /** 0: any free port. */
  adminPort: number;
  /** `ssl://` (native over TLS); false: none. Default DEFAULT_SSL_PORT when tls is set. */
  sslPort: number | false;
  /** `stomp+ssl://`; false: none. Default DEFAULT_STOMP_SSL_PORT when tls is set. */
  stompSslPort: number | false;
  /** null: no TLS (no ssl:// listeners, http admin API). */
  tls: TlsConfig | null;
  /** Client URLs this node announces; empty: the server derives them from its bound listeners. */
  advertisedUrls: string[];
  users: UserConfig[];
  /** The admin API's user (the admin password is only kept hashed). Null: no admin user. */
  adminUser: string | null;
  adminPasswordHash: string | null;
  /**
   * The admin API's read routes need credentials too (any admin-API role). Users with the role
   * `admin` may change state like adminUser; users with the role `admin-read` may only read.
   */
  adminReadAuth: boolean;
  /** Bytes. */
  maxFrameSize: number;
  heartbeatMs: number;
  lock: LockConfig;
  store: StoreConfig;
  redelivery: RedeliveryConfig;
  deadLetter: DeadLetterConfig;
  networkConnectors: string[];
  logLevel: LogLevel;
  /** Scheduled delivery: the time zone of AMQ_SCHEDULED_CRON entries (default UTC). */
  scheduler: { timeZone: string };
  /**
   * ActiveMQ's transport connector option `allowLinkStealing` (native and STOMP listeners): a
   * connection with a client id a live connection holds takes it over instead of being refused.
   */
  allowLinkStealing: boolean;
  /** ActiveMQ VirtualTopic `name`/`prefix`/`postfix`; null: ActiveMQ's default (`VirtualTopic.>`, `Consumer.*.`). */
  virtualTopics: VirtualTopicOptions[] | null;
  /** ActiveMQ compositeQueue/compositeTopic with `forwardTo` and `forwardOnly`. */
  compositeDestinations: CompositeDestinationOptions[];
  /** Resource limits and flow control (issue #23.3; limits/limits-config.ts), `limits:` in a file. */
  limits: LimitsConfig;
  /**
   * ActiveMQ's authorizationEntries (`{queue | topic, read, write, admin}`, groups comma-separated);
   * null: no authorization, every authenticated client may do everything.
   */
  authorization: AuthorizationEntryOptions[] | null;
  /** ActiveMQ's tempDestinationAuthorizationEntry; null: temporary destinations refused (with authorization). */
  tempDestinationAuthorization: TempDestinationAuthorizationOptions | null;
}

export interface LoadConfigOptions {
  /** Flags parsed by the CLI (commander's camelCase option names: `port`, `lockDb`, `user`, ...). */
  argv?: Record<string, unknown>;
  /** Defaults to process.env. */
  env?: NodeJS.ProcessEnv;
  /** Configuration file; defaults to argv.config, then KEEL_CONFIG. */
  file?: string;
}

/** One problem with one setting. */
export interface ConfigIssue {
  /** Dotted setting name, e.g. `port` or `lock.leaseMs`. */
  setting: string;
  message: string;
  /** Where the value came from: `--port`, `KEEL_PORT`, `config file keel.yaml`, `default`. */
  source?: string;
}

export class ConfigError extends InvalidArgumentError {
  readonly issues: ConfigIssue[];

  constructor(issues: ConfigIssue[]) {
    super(`invalid configuration: ${issues.map(formatIssue).join('; ')}`, 'CONFIG_INVALID');
    this.issues = issues;
  }
}

function formatIssue(issue: ConfigIssue): string {
  return `${issue.setting}: ${issue.message}${issue.source ? ` from ${issue.source}` : ''}`;
}

// ---------------------------------------------------------------------------------------------
// Passwords

/** Hashes a password with scrypt (node:crypto) as `scrypt$N$r$p$salt$hash`, salt and hash in base64. */
/** scrypt cost parameters of a password hash (the defaults: DEFAULT_SCRYPT). */
export interface ScryptParams {
  N: number;
  r: number;
  p: number;
  keyLength: number;
  saltLength: number;
}

export function hashPassword(password: string, params: Partial<ScryptParams> = {}): string {
  const { N, r, p, keyLength, saltLength } = { ...DEFAULT_SCRYPT, ...params };
  const salt = randomBytes(saltLength);
  const hash = scryptSync(password, salt, keyLength, { N, r, p, maxmem: scryptMaxmem(N, r) });
  return `scrypt$${N}$${r}$${p}$${salt.toString('base64')}$${hash.toString('base64')}`;
}

const HASH_FORMAT = /^scrypt\$(\d+)\$(\d+)\$(\d+)\$([A-Za-z0-9+/]+={0,2})\$([A-Za-z0-9+/]+={0,2})$/;

interface ParsedHash {
  N: number;
  r: number;
  p: number;
  salt: Buffer;
  hash: Buffer;
}

function parseHash(stored: string): ParsedHash | null {
  const m = HASH_FORMAT.exec(stored);
  if (!m) return null;
  const [N, r, p] = [Number(m[1]), Number(m[2]), Number(m[3])];
  // N a power of two > 1 (scrypt's requirement); bounds keep a hostile file from eating memory.
  if (N < 2 || N > 2 ** 20 || (N & (N - 1)) !== 0 || r < 1 || r > 32 || p < 1 || p > 16) return null;
  const hash = Buffer.from(m[5] as string, 'base64');
  if (hash.length < 16) return null;
  return { N, r, p, salt: Buffer.from(m[4] as string, 'base64'), hash };
}

function scryptMaxmem(N: number, r: number): number {
  return 128 * N * r * 2 + 1024 * 1024;
}

/**
 * A hash of a random password with the cost parameters of `like` (DEFAULT_SCRYPT when it is not a
 * hash): checking an unknown user's password against it takes as long as a known user's.
 */
export function dummyPasswordHash(like?: string): string {
  const parsed = like === undefined ? null : parseHash(like);
  const params = parsed ? { N: parsed.N, r: parsed.r, p: parsed.p, keyLength: parsed.hash.length } : {};
  return hashPassword(randomBytes(18).toString('base64'), params);
}

/** True when stored is a well-formed `scrypt$N$r$p$salt$hash` string. */
export function isPasswordHash(stored: string): boolean {
  return parseHash(stored) !== null;
}

/**
 * Checks password against a hash made by hashPassword, in constant time. Runs scrypt on the libuv
 * thread pool so that authenticating a connection does not block the event loop. A malformed hash
 * verifies nothing (false).
 */
export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const parsed = parseHash(stored);
  if (!parsed) return false;
  const { N, r, p, salt, hash } = parsed;
  const derived = await new Promise<Buffer>((resolve, reject) => {
    scrypt(password, salt, hash.length, { N, r, p, maxmem: scryptMaxmem(N, r) }, (err, key) =>
      err ? reject(err) : resolve(key),
    );
  });
  return timingSafeEqual(derived, hash);
}

// ---------------------------------------------------------------------------------------------
// Settings table

interface Setting {
  /** Dotted path in NodeConfig / the config file. */
  key: string;
  env: string;
  /** commander's attribute name in argv, and the flag shown in messages. */
  argv: string;
  flag: string;
  schema: z.ZodType<unknown>;
  /** Completes "must be ...". */
  expect: string;
}

const intString = z
  .string()
  .trim()
  .regex(/^[-+]?\d+$/)
  .transform(Number);
const numberString = z
  .string()
  .trim()
  .regex(/^[-+]?(\d+\.?\d*|\.\d+)(e[-+]?\d+)?$/i)
  .transform(Number);

function int(min: number, max = Number.MAX_SAFE_INTEGER): z.ZodType<unknown> {
  return z.union([z.number(), intString]).pipe(z.number().int().min(min).max(max));
}

function num(min: number, max = Number.MAX_VALUE): z.ZodType<unknown> {
  return z.union([z.number(), numberString]).pipe(z.number().min(min).max(max));
}

const TRUE = ['true', '1', 'yes', 'on'];
const FALSE = ['false', '0', 'no', 'off'];
const bool: z.ZodType<unknown> = z.union([
  z.boolean(),
  z
    .string()
    .trim()
    .toLowerCase()
    .refine((s) => TRUE.includes(s) || FALSE.includes(s))
    .transform((s) => TRUE.includes(s)),
]);

/** A port that can also be switched off with 0 or false: yields false when off. */
const optionalPort: z.ZodType<unknown> = z
  .union([
    z.literal(false),
    z
      .string()
      .trim()
      .toLowerCase()
      .refine((s) => FALSE.includes(s) || /^\d+$/.test(s))
      .transform((s) => (FALSE.includes(s) ? false : Number(s))),
    z.number(),
  ])
  .pipe(z.union([z.literal(false), z.number().int().min(0).max(65535)]))
  .transform((v) => (v === 0 ? false : v));

/** Whether Intl knows `zone` (cron entries of AMQ_SCHEDULED_CRON are read in it). */
function isTimeZone(zone: string): boolean {
  try {
    new Intl.DateTimeFormat('en', { timeZone: zone });
    return true;
  } catch {
    return false;
  }
}

const nonEmpty = (max = 255) =>
  z
    .string()
    .trim()
    .min(1)
    .max(max)
    .refine((s) => !/[\s]/.test(s));

/**
 * A postgres:// URL naming a database, with one host or libpq's host list (`h1:5432,h2:5432`) and
 * target_session_attrs / connect_timeout (store-pg's pg-url.ts). What is wrong with a malformed
 * one is told after the setting's name (a `detail` issue, see parseSettings).
 */
const postgresUrl: z.ZodType<unknown> = z
  .string()
  .trim()
  .superRefine((s, ctx) => {
    let detail: string | null = null;
    try {
      if (parsePgUrl(s).database === '') detail = 'the URL names no database';
    } catch (err) {
      detail = (err as Error).message;
    }
    // Not a postgres:// URL at all: the expectation says it already.
    const scheme = /^postgres(ql)?:\/\//i.test(s);
    if (detail !== null) ctx.addIssue({ code: 'custom', message: detail, params: { detail: scheme } });
  });

/** A list of objects: an array (configuration file) or a JSON array in a string (environment). */
const groupsSchema = z.union([z.string(), z.array(z.string())]);

/** An object: as is (file) or a JSON string (environment). */
function jsonObject(item: z.ZodType<unknown>): z.ZodType<unknown> {
  return z
    .union([
      z.record(z.string(), z.unknown()),
      z.string().transform((s, ctx) => {
        try {
          return JSON.parse(s) as unknown;
        } catch {
          ctx.addIssue({ code: 'custom', message: 'not JSON' });
          return z.NEVER;
        }
      }),
    ])
    .pipe(item);
}

function jsonList(item: z.ZodType<unknown>): z.ZodType<unknown> {
  return z
    .union([
      z.array(z.unknown()),
      z.string().transform((s, ctx) => {
        try {
          return JSON.parse(s) as unknown;
        } catch {
          ctx.addIssue({ code: 'custom', message: 'not JSON' });
          return z.NEVER;
        }
      }),
    ])
    .pipe(z.array(item));
}

/** A list: an array (repeated flag, YAML/JSON list) or a string of items separated by commas,
 * whitespace or newlines outside parentheses (`static:(tcp://a:1,tcp://b:2)` stays one item). */
function list(item: z.ZodType<string, string>): z.ZodType<unknown> {
  return z.union([z.array(z.string()), z.string().transform(splitList)]).pipe(z.array(item));
}

export function splitList(s: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let cur = '';
  for (const ch of s) {
    if (ch === '(') depth++;
    if (ch === ')') depth = Math.max(0, depth - 1);
    if (depth === 0 && (ch === ',' || /\s/.test(ch))) {
      if (cur) out.push(cur);
      cur = '';
    } else {
      cur += ch;
    }
  }
  if (cur) out.push(cur);
  return out;
}

const clientUrl = z.string().refine((s) => {
  try {
    const u = new URL(s);
    return (
      (u.protocol === 'tcp:' || u.protocol === 'stomp:' || u.protocol === 'ssl:') &&
      u.hostname !== '' &&
      u.port !== ''
    );
  } catch {
    return false;
  }
});

const connectorUri = z.string().regex(/^(static:|multicast:|tcp:|ssl:|failover:|masterslave:)\S+$/);

/** Users: `NAME:PASSWORD` strings (flags, env) or `{name, password | passwordHash, roles}` (file). */
const userItem = z.union([
  z.string(),
  z.strictObject({
    name: z.string(),
    password: z.string().optional(),
    passwordHash: z.string().optional(),
    roles: z.array(z.string().trim().min(1)).optional(),
    groups: z.union([z.string(), z.array(z.string().trim().min(1))]).optional(),
  }),
]);
const usersSchema: z.ZodType<unknown> = z
  .union([
    z.array(userItem),
    z.string().transform((s) =>
      s
        .split(/[,\n]/)
        .map((x) => x.trim())
        .filter(Boolean),
    ),
  ])
  .pipe(z.array(userItem));

const SETTINGS: Setting[] = [
  s('name', 'KEEL_NAME', 'name', nonEmpty(128), 'a non-empty name without spaces (at most 128 characters)'),
  s(
    'cluster',
    'KEEL_CLUSTER',
    'cluster',
    nonEmpty(128),
    'a non-empty name without spaces (at most 128 characters)',
  ),
  s('db', 'KEEL_DB', 'db', postgresUrl, 'a postgres:// URL that names a database'),
  s('lockDb', 'KEEL_LOCK_DB', 'lockDb', postgresUrl, 'a postgres:// URL that names a database'),
  s('locker', 'KEEL_LOCKER', 'locker', z.enum(['row', 'lease', 'file']), "'row', 'lease' or 'file'"),
  // The file locker (issue #19); in a file, `locker: {type: file, directory, lockAcquireSleepInterval, ...}`.
  s('locker.directory', 'KEEL_LOCK_DIR', 'lockDir', z.string().trim().min(1).max(4096), 'a directory path'),
  s(
    'locker.lockAcquireSleepInterval',
    'KEEL_LOCK_ACQUIRE_SLEEP_INTERVAL',
    'lockAcquireSleepInterval',
    int(10, 3_600_000),
    'an integer number of milliseconds between 10 and 3600000',
  ),
  s(
    'locker.lockKeepAlivePeriod',
    'KEEL_LOCK_KEEP_ALIVE_PERIOD',
    'lockKeepAlivePeriod',
    int(10, 600_000),
    'an integer number of milliseconds between 10 and 600000',
  ),
  s(
    'locker.leaseDuration',
    'KEEL_LEASE_DURATION',
    'leaseDuration',
    int(0, 3_600_000),
    'an integer number of milliseconds between 0 and 3600000 (0: no lease)',
  ),
  s('locker.fenceCommand', 'KEEL_FENCE_COMMAND', 'fenceCommand', z.string().trim().min(1), 'a shell command'),
  // Shared-storage master/slave, mode b (issue #19.2b): the master runs Postgres on this directory.
  s('storeDir', 'KEEL_STORE_DIR', 'storeDir', z.string().trim().min(1).max(4096), 'a directory path'),
  s('host', 'KEEL_HOST', 'host', nonEmpty(255), 'a host name or IP address'),
  s('port', 'KEEL_PORT', 'port', int(0, 65535), 'an integer between 0 and 65535'),
  s(
    'stompPort',
    'KEEL_STOMP_PORT',
    'stompPort',
    optionalPort,
    'an integer between 0 and 65535, or false (0 or false disables STOMP)',
  ),
  s('adminPort', 'KEEL_ADMIN_PORT', 'adminPort', int(0, 65535), 'an integer between 0 and 65535'),
  // TLS (issue #23.1); in a file, `tls: {cert, key, ca, needClientAuth, adminHttps}`.
  s(
    'sslPort',
    'KEEL_SSL_PORT',
    'sslPort',
    optionalPort,
    'an integer between 0 and 65535, or false (0 or false: no ssl:// listener)',
  ),
  s(
    'stompSslPort',
    'KEEL_STOMP_SSL_PORT',
    'stompSslPort',
    optionalPort,
    'an integer between 0 and 65535, or false (0 or false: no stomp+ssl:// listener)',
  ),
  s('tls.cert', 'KEEL_TLS_CERT', 'tlsCert', z.string().trim().min(1).max(4096), 'a PEM certificate file'),
  s('tls.key', 'KEEL_TLS_KEY', 'tlsKey', z.string().trim().min(1).max(4096), 'a PEM private key file'),
  s('tls.ca', 'KEEL_TLS_CA', 'tlsCa', z.string().trim().min(1).max(4096), 'a PEM CA certificate file'),
  s('tls.needClientAuth', 'KEEL_NEED_CLIENT_AUTH', 'needClientAuth', bool, 'true or false'),
  s('tls.adminHttps', 'KEEL_ADMIN_HTTPS', 'adminHttps', bool, 'true or false'),
  s(
    'advertisedUrls',
    'KEEL_ADVERTISED_URLS',
    'advertisedUrl',
    list(clientUrl),
    'a list of tcp://host:port or stomp://host:port URLs',
  ),
  s(
    'users',
    'KEEL_USERS',
    'user',
    usersSchema,
    'a list of NAME:PASSWORD or {name, password | passwordHash, roles, groups}',
  ),
  s('adminUser', 'KEEL_ADMIN_USER', 'adminUser', nonEmpty(128), 'a non-empty user name without spaces'),
  s('adminPassword', 'KEEL_ADMIN_PASSWORD', 'adminPassword', z.string().min(1), 'a non-empty password'),
  s('adminReadAuth', 'KEEL_ADMIN_READ_AUTH', 'adminReadAuth', bool, 'true or false'),
  s(
    'maxFrameSize',
    'KEEL_MAX_FRAME_SIZE',
    'maxFrameSize',
    int(1024, 1024 ** 3),
    'an integer number of bytes between 1024 and 1 GiB',
  ),
  s(
    'heartbeatMs',
    'KEEL_HEARTBEAT_MS',
    'heartbeatMs',
    int(0, 3_600_000),
    'an integer number of milliseconds between 0 and 3600000',
  ),
  s(
    'lock.keepAliveMs',
    'KEEL_LOCK_KEEP_ALIVE_MS',
    'lockKeepAliveMs',
    int(50, 600_000),
    'an integer number of milliseconds between 50 and 600000',
  ),
  s(
    'lock.leaseMs',
    'KEEL_LOCK_LEASE_MS',
    'lockLeaseMs',
    int(100, 3_600_000),
    'an integer number of milliseconds between 100 and 3600000',
  ),
  s(
    'lock.waitingPollMs',
    'KEEL_LOCK_WAITING_POLL_MS',
    'lockWaitingPollMs',
    int(10, 600_000),
    'an integer number of milliseconds between 10 and 600000',
  ),
  s(
    'lock.recoveryHoldMs',
    'KEEL_RECOVERY_HOLD_MS',
    'recoveryHoldMs',
    int(0, 600_000),
    'an integer number of milliseconds between 0 and 600000',
  ),
  s(
    'lock.outageGraceMs',
    'KEEL_LOCK_OUTAGE_GRACE_MS',
    'lockOutageGraceMs',
    int(0, 3_600_000),
    'an integer number of milliseconds between 0 and 3600000',
  ),
  s(
    'store.maxBatchSize',
    'KEEL_STORE_MAX_BATCH_SIZE',
    'storeMaxBatchSize',
    int(1, 100_000),
    'an integer between 1 and 100000',
  ),
  s(
    'store.concurrentStoreAndDispatchQueues',
    'KEEL_CONCURRENT_STORE_AND_DISPATCH_QUEUES',
    'concurrentStoreAndDispatchQueues',
    bool,
    'true or false',
  ),
  s(
    'store.concurrentStoreAndDispatchHoldMs',
    'KEEL_CONCURRENT_STORE_AND_DISPATCH_HOLD_MS',
    'concurrentStoreAndDispatchHoldMs',
    int(0, 1000),
    'an integer number of milliseconds between 0 and 1000',
  ),
  s(
    'store.producerRetentionMs',
    'KEEL_PRODUCER_RETENTION_MS',
    'producerRetentionMs',
    int(60_000, 365 * 86_400_000),
    'an integer number of milliseconds between 60000 and 31536000000',
  ),
  s(
    'store.pageSize',
    'KEEL_STORE_PAGE_SIZE',
    'storePageSize',
    int(1, 10_000_000),
    'an integer between 1 and 10000000',
  ),
  s(
    'redelivery.maximumRedeliveries',
    'KEEL_MAXIMUM_REDELIVERIES',
    'maximumRedeliveries',
    int(-1),
    'an integer >= -1 (-1: forever)',
  ),
  s(
    'redelivery.initialRedeliveryDelay',
    'KEEL_INITIAL_REDELIVERY_DELAY',
    'initialRedeliveryDelay',
    int(0),
    'an integer number of milliseconds >= 0',
  ),
  s(
    'redelivery.redeliveryDelay',
    'KEEL_REDELIVERY_DELAY',
    'redeliveryDelay',
    int(0),
    'an integer number of milliseconds >= 0',
  ),
  s(
    'redelivery.useExponentialBackOff',
    'KEEL_USE_EXPONENTIAL_BACK_OFF',
    'useExponentialBackOff',
    bool,
    'true or false',
  ),
  s(
    'redelivery.backOffMultiplier',
    'KEEL_BACK_OFF_MULTIPLIER',
    'backOffMultiplier',
    num(1, 1000),
    'a number between 1 and 1000',
  ),
  s(
    'redelivery.maximumRedeliveryDelay',
    'KEEL_MAXIMUM_REDELIVERY_DELAY',
    'maximumRedeliveryDelay',
    int(-1),
    'an integer number of milliseconds >= -1 (-1: no cap)',
  ),
  s(
    'deadLetter.strategy',
    'KEEL_DEAD_LETTER_STRATEGY',
    'deadLetterStrategy',
    z.enum(['shared', 'individual']),
    "'shared' or 'individual'",
  ),
  s(
    'deadLetter.deadLetterQueue',
    'KEEL_DEAD_LETTER_QUEUE',
    'deadLetterQueue',
    nonEmpty(255),
    'a queue name without spaces',
  ),
  s(
    'deadLetter.queuePrefix',
    'KEEL_DLQ_QUEUE_PREFIX',
    'dlqQueuePrefix',
    nonEmpty(255),
    'a queue name prefix without spaces',
  ),
  s('deadLetter.processExpired', 'KEEL_PROCESS_EXPIRED', 'processExpired', bool, 'true or false'),
  s(
    'scheduler.timeZone',
    'KEEL_SCHEDULER_TIME_ZONE',
    'schedulerTimeZone',
    nonEmpty(64).refine(isTimeZone),
    'an IANA time zone name such as UTC or Europe/Berlin',
  ),
  s('allowLinkStealing', 'KEEL_ALLOW_LINK_STEALING', 'allowLinkStealing', bool, 'true or false'),
  s(
    'virtualTopics',
    'KEEL_VIRTUAL_TOPICS',
    'virtualTopics',
    jsonList(
      z.object({ name: z.string().min(1), prefix: z.string(), postfix: z.string().optional() }).strict(),
    ),
    'a list of {name, prefix, postfix?} (a JSON array in KEEL_VIRTUAL_TOPICS)',
  ),
  s(
    'compositeDestinations',
    'KEEL_COMPOSITE_DESTINATIONS',
    'compositeDestinations',
    jsonList(
      z
        .object({
          queue: z.string().min(1).optional(),
          topic: z.string().min(1).optional(),
          forwardTo: z.array(z.string().min(1)).min(1),
          forwardOnly: z.boolean().optional(),
        })
        .strict(),
    ),
    'a list of {queue | topic, forwardTo: [/queue/x | /topic/y ...], forwardOnly?} (a JSON array in KEEL_COMPOSITE_DESTINATIONS)',
  ),
  // ActiveMQ's authorizationPlugin (issue #23.2): security/authorization-map.ts in core.
  s(
    'authorization',
    'KEEL_AUTHORIZATION',
    'authorization',
    jsonList(
      z
        .object({
          queue: z.string().min(1).optional(),
          topic: z.string().min(1).optional(),
          read: groupsSchema.optional(),
          write: groupsSchema.optional(),
          admin: groupsSchema.optional(),
        })
        .strict(),
    ),
    'a list of {queue | topic, read?, write?, admin?} with comma-separated groups (a JSON array in KEEL_AUTHORIZATION)',
  ),
  s(
    'tempDestinationAuthorization',
    'KEEL_TEMP_DESTINATION_AUTHORIZATION',
    'tempDestinationAuthorization',
    jsonObject(
      z
        .object({
          read: groupsSchema.optional(),
          write: groupsSchema.optional(),
          admin: groupsSchema.optional(),
        })
        .strict(),
    ),
    'an object {read?, write?, admin?} with comma-separated groups (JSON in KEEL_TEMP_DESTINATION_AUTHORIZATION)',
  ),
  s(
    'networkConnectors',
    'KEEL_NETWORK_CONNECTORS',
    'networkConnector',
    list(connectorUri),
    'a list of connector URIs (static:(tcp://host:port,...) or multicast://default)',
  ),
  s(
    'logLevel',
    'KEEL_LOG_LEVEL',
    'logLevel',
    z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']),
    'one of trace, debug, info, warn, error, fatal, silent',
  ),
];

function s(key: string, env: string, argv: string, schema: z.ZodType<unknown>, expect: string): Setting {
  return {
    key,
    env,
    argv,
    flag: `--${argv.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`,
    schema,
    expect,
  };
}

// Resource limits (issue #23.3); in a file, `limits: {maximumConnections, memoryUsage, ...}`.
for (const l of limitSettings(bool)) SETTINGS.push(s(l.key, l.env, l.argv, l.schema, l.expect));

const BY_KEY = new Map(SETTINGS.map((x) => [x.key, x]));
/** Top-level keys of the file that hold a group of settings. */
const GROUPS = ['lock', 'store', 'redelivery', 'deadLetter', 'scheduler', 'tls', 'limits'];

/** Every setting: its dotted key, environment variable and flag (for help texts and docs). */
export const CONFIG_SETTINGS: ReadonlyArray<{ key: string; env: string; flag: string }> = SETTINGS.map(
  ({ key, env, flag }) => ({ key, env, flag }),
);

// ---------------------------------------------------------------------------------------------
// Loading

interface Sourced {
  value: unknown;
  source: string;
}

/**
 * Builds the node's configuration from flags > KEEL_* environment variables > file > defaults.
 * Throws ConfigError naming every bad setting.
 */
export function loadConfig(options: LoadConfigOptions = {}): NodeConfig {
  const argv = options.argv ?? {};
  const env = options.env ?? process.env;
  const issues: ConfigIssue[] = [];
  const raw = new Map<string, Sourced>();

  const file = options.file ?? stringOrUndefined(argv.config) ?? nonBlank(env.KEEL_CONFIG);
  if (file !== undefined) {
    for (const [key, sourced] of readConfigFile(file, issues)) raw.set(key, sourced);
  }
  for (const setting of SETTINGS) {
    const value = nonBlank(env[setting.env]);
    if (value !== undefined) raw.set(setting.key, { value, source: setting.env });
  }
  for (const setting of SETTINGS) {
    const value = argv[setting.argv];
    if (value === undefined || value === null || (Array.isArray(value) && value.length === 0)) continue;
    raw.set(setting.key, { value, source: setting.flag });
  }

  const values = new Map<string, unknown>();
  const sources = new Map<string, string>();
  for (const [key, { value, source }] of raw) {
    const setting = BY_KEY.get(key) as Setting;
    const parsed = setting.schema.safeParse(value);
    if (parsed.success) {
      values.set(key, parsed.data);
      sources.set(key, source);
    } else {
      const detail = parsed.error.issues.find((i) => i.code === 'custom' && i.params?.detail)?.message;
      issues.push({
        setting: key,
        message: `must be ${setting.expect} (got ${show(value)})${detail ? `: ${detail}` : ''}`,
        source,
      });
    }
  }
  if (issues.length > 0) throw new ConfigError(issues);

  const cfg = assemble(values, sources, issues);
  if (issues.length > 0) throw new ConfigError(issues);
  return cfg;
}

function assemble(
  values: Map<string, unknown>,
  sources: Map<string, string>,
  issues: ConfigIssue[],
): NodeConfig {
  const get = <T>(key: string, fallback: T): T => (values.has(key) ? (values.get(key) as T) : fallback);
  const problem = (setting: string, message: string) =>
    issues.push({ setting, message, source: sources.get(setting) });

  const port = get('port', DEFAULT_PORT);
  const stompPort = get<number | false>('stompPort', DEFAULT_STOMP_PORT);
  const adminPort = get('adminPort', DEFAULT_ADMIN_PORT);
  const tls = buildTls(get, problem, values);
  const sslPort = get<number | false>('sslPort', tls ? DEFAULT_SSL_PORT : false);
  const stompSslPort = get<number | false>('stompSslPort', tls ? DEFAULT_STOMP_SSL_PORT : false);
  if (!tls) {
    for (const key of ['sslPort', 'stompSslPort'] as const) {
      if (values.get(key) !== undefined && values.get(key) !== false)
        problem(key, 'needs tls.cert and tls.key (--tls-cert, --tls-key)');
    }
  }

  const db = get<string | undefined>('db', undefined);
  const storeDir = get<string | null>('storeDir', null);
  if (db === undefined && storeDir === null) {
    problem(
      'db',
      'is required: set --db, KEEL_DB or db in the configuration file (or --store-dir with --locker file)',
    );
  }
  if (storeDir !== null && db !== undefined) {
    problem(
      'storeDir',
      'cannot be combined with db: with --store-dir the master runs its own Postgres on that directory',
    );
  }
  if (storeDir !== null && get<LockerKind>('locker', DEFAULT_LOCKER) !== 'file') {
    problem(
      'storeDir',
      'needs --locker file and --lock-dir: only the holder of the lock file may start Postgres on it',
    );
  }
  let lockDb = get<string | undefined>('lockDb', undefined);
  if (lockDb === undefined && db !== undefined) {
    lockDb = withDatabase(db, `${databaseOfUrl(db)}_lock`);
  }
  if (db !== undefined && lockDb !== undefined && sameDatabase(db, lockDb)) {
    problem(
      'lockDb',
      'must be another database than db (a lock held in the message database keeps VACUUM from removing consumed messages)',
    );
  }

  // Two listeners on one port: caught here rather than as EADDRINUSE at start.
  const ports: [string, number | false][] = [
    ['port', port],
    ['stompPort', stompPort],
    ['adminPort', adminPort],
    ['sslPort', sslPort],
    ['stompSslPort', stompSslPort],
  ];
  for (let i = 0; i < ports.length; i++) {
    for (let j = i + 1; j < ports.length; j++) {
      const [ki, pi] = ports[i] as [string, number | false];
      const [kj, pj] = ports[j] as [string, number | false];
      if (pi !== false && pi !== 0 && pi === pj) problem(kj, `must differ from ${ki} (both ${pi})`);
    }
  }

  const lock: LockConfig = {
    keepAliveMs: get('lock.keepAliveMs', DEFAULT_LOCK_KEEP_ALIVE_MS),
    leaseMs: get('lock.leaseMs', DEFAULT_LOCK_LEASE_MS),
    waitingPollMs: get('lock.waitingPollMs', DEFAULT_LOCK_WAITING_POLL_MS),
    outageGraceMs: get('lock.outageGraceMs', DEFAULT_LOCK_OUTAGE_GRACE_MS),
    recoveryHoldMs: get('lock.recoveryHoldMs', DEFAULT_RECOVERY_HOLD_MS),
  };
  if (lock.keepAliveMs >= lock.leaseMs) {
    problem(
      values.has('lock.keepAliveMs') ? 'lock.keepAliveMs' : 'lock.leaseMs',
      `lock.keepAliveMs (${lock.keepAliveMs}) must be less than lock.leaseMs (${lock.leaseMs}), or the lease lapses between keep-alives`,
    );
  }

  const locker = get<LockerKind>('locker', DEFAULT_LOCKER);
  const fileLocker: FileLockerConfig = {
    directory: get('locker.directory', ''),
    lockAcquireSleepInterval: get('locker.lockAcquireSleepInterval', DEFAULT_LOCK_ACQUIRE_SLEEP_INTERVAL),
    lockKeepAlivePeriod: get('locker.lockKeepAlivePeriod', DEFAULT_LOCK_KEEP_ALIVE_PERIOD),
    leaseDuration: get('locker.leaseDuration', DEFAULT_LEASE_DURATION),
    fenceCommand: get<string | null>('locker.fenceCommand', null),
  };
  if (locker === 'file' && fileLocker.directory === '') {
    problem(
      'locker.directory',
      'is required with locker file: set --lock-dir, KEEL_LOCK_DIR or locker.directory',
    );
  }
  if (locker !== 'file') {
    for (const key of [...values.keys()].filter((k) => k.startsWith('locker.'))) {
      problem(key, `is a setting of the file locker, but the locker is ${locker} (set --locker file)`);
    }
  }
  if (fileLocker.leaseDuration > 0 && fileLocker.leaseDuration <= fileLocker.lockKeepAlivePeriod) {
    problem(
      'locker.leaseDuration',
      `must be greater than locker.lockKeepAlivePeriod (${fileLocker.lockKeepAlivePeriod}), or 0 for no lease`,
    );
  }

  const users = buildUsers(get<unknown[]>('users', []), sources.get('users'), issues);

  const adminUser = get<string | null>('adminUser', null);
  const adminPassword = get<string | null>('adminPassword', null);
  if (adminUser !== null && adminPassword === null) {
    problem('adminPassword', 'is required when adminUser is set (--admin-password or KEEL_ADMIN_PASSWORD)');
  }
  if (adminPassword !== null && adminUser === null) {
    problem('adminUser', 'is required when adminPassword is set (--admin-user or KEEL_ADMIN_USER)');
  }

  const strategy = get<DeadLetterStrategyKind>('deadLetter.strategy', DEFAULT_DEAD_LETTER_STRATEGY);
  const processExpired = get('deadLetter.processExpired', DEFAULT_PROCESS_EXPIRED);
  const deadLetter: DeadLetterConfig =
    strategy === 'shared'
      ? {
          strategy,
          deadLetterQueue: get('deadLetter.deadLetterQueue', DEFAULT_DEAD_LETTER_QUEUE),
          processExpired,
        }
      : { strategy, queuePrefix: get('deadLetter.queuePrefix', DEFAULT_DLQ_QUEUE_PREFIX), processExpired };

  const virtualTopics = get<VirtualTopicOptions[] | null>('virtualTopics', null);
  const compositeDestinations = get<CompositeDestinationOptions[]>('compositeDestinations', []);
  try {
    new DestinationRouter({ virtualTopics: virtualTopics ?? undefined, compositeDestinations }, () => []);
  } catch (err) {
    const message = (err as Error).message;
    problem(message.startsWith('virtualTopics') ? 'virtualTopics' : 'compositeDestinations', message);
  }

  const authorization = get<AuthorizationEntryOptions[] | null>('authorization', null);
  const tempDestinationAuthorization = get<TempDestinationAuthorizationOptions | null>(
    'tempDestinationAuthorization',
    null,
  );
  if (authorization !== null) {
    try {
      new AuthorizationMap({ entries: authorization, tempDestinations: tempDestinationAuthorization });
    } catch (err) {
      problem('authorization', (err as Error).message.replace(/^authorization\[\d+\]:? ?/, ''));
    }
    if (users.length === 0) {
      problem(
        'authorization',
        'needs users (with groups): without users every client is anonymous and has no rights',
      );
    }
  } else if (tempDestinationAuthorization !== null) {
    problem('tempDestinationAuthorization', 'is only used with authorization');
  }

  return {
    name: get('name', `${os.hostname()}-${port}`),
    cluster: get('cluster', DEFAULT_CLUSTER),
    db: db ?? '',
    lockDb: lockDb ?? '',
    locker,
    fileLocker,
    storeDir,
    host: get('host', DEFAULT_HOST),
    port,
    stompPort,
    adminPort,
    sslPort,
    stompSslPort,
    tls,
    advertisedUrls: get<string[]>('advertisedUrls', []),
    users,
    adminUser,
    adminPasswordHash: adminPassword === null ? null : hashPassword(adminPassword),
    adminReadAuth: get('adminReadAuth', false),
    maxFrameSize: get('maxFrameSize', DEFAULT_MAX_FRAME_SIZE),
    limits: assembleLimits(get, get('maxFrameSize', DEFAULT_MAX_FRAME_SIZE), problem),
    heartbeatMs: get('heartbeatMs', DEFAULT_HEARTBEAT_MS),
    lock,
    store: {
      maxBatchSize: get('store.maxBatchSize', DEFAULT_STORE_MAX_BATCH_SIZE),
      pageSize: get('store.pageSize', DEFAULT_STORE_PAGE_SIZE),
      concurrentStoreAndDispatchQueues: get('store.concurrentStoreAndDispatchQueues', true),
      concurrentStoreAndDispatchHoldMs: get(
        'store.concurrentStoreAndDispatchHoldMs',
        DEFAULT_CANCELLABLE_HOLD_MS,
      ),
      producerRetentionMs: get('store.producerRetentionMs', DEFAULT_PRODUCER_RETENTION_MS),
    },
    redelivery: {
      maximumRedeliveries: get('redelivery.maximumRedeliveries', DEFAULT_REDELIVERY.maximumRedeliveries),
      initialRedeliveryDelay: get(
        'redelivery.initialRedeliveryDelay',
        DEFAULT_REDELIVERY.initialRedeliveryDelay,
      ),
      redeliveryDelay: get('redelivery.redeliveryDelay', DEFAULT_REDELIVERY.redeliveryDelay),
      useExponentialBackOff: get(
        'redelivery.useExponentialBackOff',
        DEFAULT_REDELIVERY.useExponentialBackOff,
      ),
      backOffMultiplier: get('redelivery.backOffMultiplier', DEFAULT_REDELIVERY.backOffMultiplier),
      maximumRedeliveryDelay: get(
        'redelivery.maximumRedeliveryDelay',
        DEFAULT_REDELIVERY.maximumRedeliveryDelay,
      ),
    },
    deadLetter,
    networkConnectors: get<string[]>('networkConnectors', []),
    logLevel: get('logLevel', DEFAULT_LOG_LEVEL),
    scheduler: { timeZone: get('scheduler.timeZone', 'UTC') },
    allowLinkStealing: get('allowLinkStealing', false),
    virtualTopics,
    compositeDestinations,
    authorization,
    tempDestinationAuthorization,
  };
}

/** The tls.* settings: cert and key together, or none of them (then no TLS). */
function buildTls(
  get: <T>(key: string, fallback: T) => T,
  problem: (setting: string, message: string) => void,
  values: Map<string, unknown>,
): TlsConfig | null {
  const certFile = get<string | null>('tls.cert', null);
  const keyFile = get<string | null>('tls.key', null);
  if (certFile === null && keyFile === null) {
    for (const key of ['tls.ca', 'tls.needClientAuth', 'tls.adminHttps']) {
      if (values.has(key)) problem(key, 'needs tls.cert and tls.key (--tls-cert, --tls-key)');
    }
    return null;
  }
  if (certFile === null || keyFile === null) {
    problem(
      certFile === null ? 'tls.cert' : 'tls.key',
      'is required with the other: set both --tls-cert and --tls-key',
    );
    return null;
  }
  const caFile = get<string | null>('tls.ca', null);
  const needClientAuth = get('tls.needClientAuth', false);
  if (needClientAuth && caFile === null) {
    problem('tls.needClientAuth', 'needs tls.ca (--tls-ca): the CA that signs the client certificates');
  }
  return { certFile, keyFile, caFile, needClientAuth, adminHttps: get('tls.adminHttps', true) };
}

const USER_NAME = /^[^\s:]{1,128}$/;

function buildUsers(items: unknown[], source: string | undefined, issues: ConfigIssue[]): UserConfig[] {
  const users: UserConfig[] = [];
  const seen = new Set<string>();
  items.forEach((item, i) => {
    const at = `users[${i}]`;
    const bad = (message: string) => issues.push({ setting: at, message, source });
    let name: string;
    let password: string | undefined;
    let passwordHash: string | undefined;
    let roles: string[] = [...DEFAULT_USER_ROLES];
    let groups: string[] | undefined;
    if (typeof item === 'string') {
      // NAME:PASSWORD, split at the first colon so a password may contain colons.
      const colon = item.indexOf(':');
      if (colon <= 0 || colon === item.length - 1) {
        bad(`must be NAME:PASSWORD (got ${show(redactUserArg(item))})`);
        return;
      }
      name = item.slice(0, colon);
      password = item.slice(colon + 1);
    } else {
      const o = item as {
        name: string;
        password?: string;
        passwordHash?: string;
        roles?: string[];
        groups?: string | string[];
      };
      name = o.name;
      password = o.password;
      passwordHash = o.passwordHash;
      if (o.roles) roles = o.roles;
      if (o.groups !== undefined) groups = groupList(o.groups);
      if ((password === undefined) === (passwordHash === undefined)) {
        bad(`must have exactly one of password and passwordHash (user ${show(name)})`);
        return;
      }
      if (passwordHash !== undefined && !isPasswordHash(passwordHash)) {
        bad(`passwordHash must be scrypt$N$r$p$salt$hash as made by hashPassword (user ${show(name)})`);
        return;
      }
    }
    if (!USER_NAME.test(name)) {
      bad(`name must be 1 to 128 characters without spaces or colons (got ${show(name)})`);
      return;
    }
    if (password === '') {
      bad(`password must not be empty (user ${show(name)})`);
      return;
    }
    if (seen.has(name)) {
      bad(`user ${show(name)} is given twice`);
      return;
    }
    seen.add(name);
    users.push({
      name,
      passwordHash: passwordHash ?? hashPassword(password as string),
      roles,
      groups: groups ?? [...roles],
    });
  });
  return users;
}

function redactUserArg(s: string): string {
  const colon = s.indexOf(':');
  return colon < 0 ? s : `${s.slice(0, colon)}:***`;
}

/** Reads and flattens a YAML or JSON file into dotted settings. */
function readConfigFile(file: string, issues: ConfigIssue[]): Map<string, Sourced> {
  const out = new Map<string, Sourced>();
  const source = `config file ${file}`;
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    issues.push({ setting: 'config', message: `cannot read ${file}: ${(err as Error).message}` });
    throw new ConfigError(issues);
  }
  let doc: unknown;
  try {
    doc = path.extname(file).toLowerCase() === '.json' ? JSON.parse(text) : parseYaml(text);
  } catch (err) {
    issues.push({ setting: 'config', message: `cannot parse ${file}: ${(err as Error).message}` });
    throw new ConfigError(issues);
  }
  if (doc === null || doc === undefined) return out; // an empty file
  if (!isPlainObject(doc)) {
    issues.push({ setting: 'config', message: `${file} must hold a mapping of settings (got ${show(doc)})` });
    throw new ConfigError(issues);
  }
  const put = (key: string, value: unknown) => {
    if (!BY_KEY.has(key)) {
      issues.push({ setting: key, message: 'is not a known setting', source });
      return;
    }
    // null in a file means "not set here".
    if (value !== null && value !== undefined) out.set(key, { value, source });
  };
  for (const [k, v] of Object.entries(doc)) {
    if (k === 'locker' && isPlainObject(v)) {
      // ActiveMQ-style `locker: {type: file, directory, lockAcquireSleepInterval, ...}`; `locker: row`
      // (a string) is read like any other setting.
      for (const [sub, sv] of Object.entries(v)) put(sub === 'type' ? 'locker' : `locker.${sub}`, sv);
    } else if (GROUPS.includes(k)) {
      if (!isPlainObject(v)) {
        issues.push({ setting: k, message: `must be a mapping (got ${show(v)})`, source });
        continue;
      }
      for (const [sub, sv] of Object.entries(v)) put(`${k}.${sub}`, sv);
    } else {
      put(k, v);
    }
  }
  if (issues.length > 0) throw new ConfigError(issues);
  return out;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Both URLs name the same database on a common host (any host of a multi-host list). */
function sameDatabase(a: string, b: string): boolean {
  const ua = parsePgUrl(a);
  const ub = parsePgUrl(b);
  return (
    ua.database === ub.database &&
    ua.hosts.some((h) => ub.hosts.some((k) => k.host === h.host && k.port === h.port))
  );
}

function stringOrUndefined(v: unknown): string | undefined {
  return typeof v === 'string' && v.trim() !== '' ? v : undefined;
}

function nonBlank(v: string | undefined): string | undefined {
  return v === undefined || v.trim() === '' ? undefined : v;
}

function show(v: unknown): string {
  const text = JSON.stringify(v) ?? String(v);
  return text.length > 120 ? `${text.slice(0, 117)}...` : text;
}

// ---------------------------------------------------------------------------------------------
// Redaction

const REDACTED = '***';

/** Replaces the password of any URL (`scheme://user:pass@`) and `password=` parameters. */
export function redactUrl(s: string): string {
  return s
    .replace(/(\/\/[^/:@\s]*:)[^@/\s]*@/g, `$1${REDACTED}@`)
    .replace(/([?&;(]password=)[^&;)\s]*/gi, `$1${REDACTED}`);
}

/** A copy of cfg for logging: password hashes and URL passwords replaced by '***'. */
export function redactConfig(cfg: NodeConfig): NodeConfig {
  return {
    ...cfg,
    db: redactUrl(cfg.db),
    lockDb: redactUrl(cfg.lockDb),
    advertisedUrls: cfg.advertisedUrls.map(redactUrl),
    networkConnectors: cfg.networkConnectors.map(redactUrl),
    users: cfg.users.map((u) => ({ ...u, passwordHash: REDACTED })),
    adminPasswordHash: cfg.adminPasswordHash === null ? null : REDACTED,
    lock: { ...cfg.lock },
    fileLocker: { ...cfg.fileLocker },
    tls: cfg.tls && { ...cfg.tls },
    store: { ...cfg.store },
    redelivery: { ...cfg.redelivery },
    deadLetter: { ...cfg.deadLetter },
  };
}
