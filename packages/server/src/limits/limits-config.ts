import {
  ABORT_SLOW_CONSUMER_DEFAULTS,
  DEFAULT_MAX_MESSAGE_SIZE,
  DEFAULT_MEMORY_WINDOW_BYTES,
  SYSTEM_USAGE_DEFAULTS,
} from '@keel/core';
import { z } from 'zod';
import { CONNECTION_LIMIT_DEFAULTS, type ConnectionLimiter } from './connection-limiter';

/**
 * Resource limits of a node (issue #23.3), ActiveMQ's names where it has them. In a configuration
 * file they sit under `limits:`; each also has a KEEL_* variable and a `keel broker` flag.
 */
export interface LimitsConfig {
  /** ActiveMQ `maximumConnections`: client sockets on this node, native and STOMP together; 0 = none. */
  maximumConnections: number;
  /** Client sockets from one remote address; 0 = none. */
  maximumConnectionsPerAddress: number;
  /** Largest frame (headers included) before CONNECT/HELLO is answered, bytes. */
  preAuthMaxFrameSize: number;
  /** ActiveMQ `transport.connectAttemptTimeout`: a socket that sends no CONNECT/HELLO in time is closed (ms). */
  connectTimeoutMs: number;
  /** Largest message body, bytes (at most maxFrameSize). */
  maxMessageSize: number;
  /** Body bytes of a connection's sends awaiting the broker before its socket stops being read. */
  maxPendingBytes: number;
  /** Bytes of messages a queue holds in memory before the rest stays in the store. */
  memoryWindowBytes: number;
  /** ActiveMQ `memoryUsage` limit, bytes; 0 = none. */
  memoryUsage: number;
  /** ActiveMQ `storeUsage` limit, bytes of stored messages; 0 = none. */
  storeUsage: number;
  /** How often the stored bytes are measured (ms). */
  storeUsageCheckIntervalMs: number;
  /** ActiveMQ `sendFailIfNoSpace`: refuse (RESOURCE_LIMIT) instead of blocking the producer. */
  sendFailIfNoSpace: boolean;
  /** ActiveMQ `sendFailIfNoSpaceAfterTimeout` (ms): refuse a send blocked this long; 0 = block. */
  sendFailIfNoSpaceAfterTimeout: number;
  /** AbortSlowConsumerStrategy `maxSlowDuration` (ms); 0 = off. */
  maxSlowDuration: number;
  /** AbortSlowConsumerStrategy `abortConnection`: close the connection (true) or only the consumer. */
  abortSlowConsumerConnection: boolean;
}

export const LIMIT_DEFAULTS: Readonly<LimitsConfig> = Object.freeze({
  maximumConnections: CONNECTION_LIMIT_DEFAULTS.maximumConnections,
  maximumConnectionsPerAddress: CONNECTION_LIMIT_DEFAULTS.maximumConnectionsPerAddress,
  preAuthMaxFrameSize: 64 * 1024,
  connectTimeoutMs: 30_000,
  maxMessageSize: DEFAULT_MAX_MESSAGE_SIZE,
  maxPendingBytes: 16 * 1024 * 1024,
  memoryWindowBytes: DEFAULT_MEMORY_WINDOW_BYTES,
  memoryUsage: SYSTEM_USAGE_DEFAULTS.memoryLimitBytes,
  storeUsage: SYSTEM_USAGE_DEFAULTS.storeLimitBytes,
  storeUsageCheckIntervalMs: 10_000,
  sendFailIfNoSpace: SYSTEM_USAGE_DEFAULTS.sendFailIfNoSpace,
  sendFailIfNoSpaceAfterTimeout: SYSTEM_USAGE_DEFAULTS.sendFailIfNoSpaceAfterTimeoutMs,
  maxSlowDuration: ABORT_SLOW_CONSUMER_DEFAULTS.maxSlowDurationMs,
  abortSlowConsumerConnection: ABORT_SLOW_CONSUMER_DEFAULTS.abortConnection,
});

const UNITS: Record<string, number> = {
  '': 1,
  b: 1,
  k: 1024,
  kb: 1000,
  kib: 1024,
  m: 1024 ** 2,
  mb: 1000 ** 2,
  mib: 1024 ** 2,
  g: 1024 ** 3,
  gb: 1000 ** 3,
  gib: 1024 ** 3,
};

/** A byte count: a number, or a string such as `65536`, `64 KiB`, `512MiB`, `100 GB`. */
export function byteSize(min: number, max = Number.MAX_SAFE_INTEGER): z.ZodType<unknown> {
  const text = z
    .string()
    .trim()
    .toLowerCase()
    .transform((s, ctx) => {
      const m = /^(\d+(?:\.\d+)?)\s*([a-z]*)$/.exec(s);
      const unit = m ? UNITS[m[2] as string] : undefined;
      if (!m || unit === undefined) {
        ctx.addIssue({ code: 'custom', message: 'not a size' });
        return z.NEVER;
      }
      return Math.round(Number(m[1]) * unit);
    });
  return z.union([z.number(), text]).pipe(z.number().int().min(min).max(max));
}

type Kind = 'bytes' | 'count' | 'ms' | 'bool';

/** [key under limits., env, flag's camelCase name, kind, minimum] */
const TABLE: [keyof LimitsConfig, string, string, Kind, number][] = [
  ['maximumConnections', 'KEEL_MAXIMUM_CONNECTIONS', 'maximumConnections', 'count', 0],
  [
    'maximumConnectionsPerAddress',
    'KEEL_MAXIMUM_CONNECTIONS_PER_ADDRESS',
    'maximumConnectionsPerAddress',
    'count',
    0,
  ],
  ['preAuthMaxFrameSize', 'KEEL_PRE_AUTH_MAX_FRAME_SIZE', 'preAuthMaxFrameSize', 'bytes', 1024],
  ['connectTimeoutMs', 'KEEL_CONNECT_TIMEOUT_MS', 'connectTimeoutMs', 'ms', 1],
  ['maxMessageSize', 'KEEL_MAX_MESSAGE_SIZE', 'maxMessageSize', 'bytes', 1],
  ['maxPendingBytes', 'KEEL_MAX_PENDING_BYTES', 'maxPendingBytes', 'bytes', 1024],
  ['memoryWindowBytes', 'KEEL_MEMORY_WINDOW_BYTES', 'memoryWindowBytes', 'bytes', 1024],
  ['memoryUsage', 'KEEL_MEMORY_USAGE', 'memoryUsage', 'bytes', 0],
  ['storeUsage', 'KEEL_STORE_USAGE', 'storeUsage', 'bytes', 0],
  ['storeUsageCheckIntervalMs', 'KEEL_STORE_USAGE_CHECK_INTERVAL_MS', 'storeUsageCheckIntervalMs', 'ms', 10],
  ['sendFailIfNoSpace', 'KEEL_SEND_FAIL_IF_NO_SPACE', 'sendFailIfNoSpace', 'bool', 0],
  [
    'sendFailIfNoSpaceAfterTimeout',
    'KEEL_SEND_FAIL_IF_NO_SPACE_AFTER_TIMEOUT',
    'sendFailIfNoSpaceAfterTimeout',
    'ms',
    0,
  ],
  ['maxSlowDuration', 'KEEL_MAX_SLOW_DURATION', 'maxSlowDuration', 'ms', 0],
  [
    'abortSlowConsumerConnection',
    'KEEL_ABORT_SLOW_CONSUMER_CONNECTION',
    'abortSlowConsumerConnection',
    'bool',
    0,
  ],
];

export interface LimitSetting {
  key: string;
  env: string;
  argv: string;
  schema: z.ZodType<unknown>;
  expect: string;
}

/** The limits.* settings for config.ts's table (`bool`: its boolean schema). */
export function limitSettings(bool: z.ZodType<unknown>): LimitSetting[] {
  return TABLE.map(([key, env, argv, kind, min]) => {
    const maxMs = 24 * 3_600_000;
    const [schema, expect] =
      kind === 'bool'
        ? [bool, 'true or false']
        : kind === 'bytes'
          ? [byteSize(min), `a size in bytes >= ${min} (e.g. 65536, 64KiB, 512MiB, 100GiB)`]
          : kind === 'ms'
            ? [
                z
                  .union([z.number(), z.string().trim().regex(/^\d+$/).transform(Number)])
                  .pipe(z.number().int().min(min).max(maxMs)),
                `an integer number of milliseconds between ${min} and ${maxMs}`,
              ]
            : [
                z
                  .union([z.number(), z.string().trim().regex(/^\d+$/).transform(Number)])
                  .pipe(z.number().int().min(min).max(10_000_000)),
                `an integer between ${min} and 10000000 (0: no limit)`,
              ];
    return { key: `limits.${key}`, env, argv, schema, expect };
  });
}

/** NodeConfig.limits from the parsed settings; `maxFrameSize` caps maxMessageSize. */
export function assembleLimits(
  get: <T>(key: string, fallback: T) => T,
  maxFrameSize: number,
  problem: (setting: string, message: string) => void,
): LimitsConfig {
  const out = {} as Record<string, unknown>;
  for (const [key] of TABLE) out[key] = get(`limits.${key}`, LIMIT_DEFAULTS[key]);
  const limits = out as unknown as LimitsConfig;
  if (limits.maxMessageSize > maxFrameSize) {
    // The default follows a smaller maxFrameSize; an explicit larger one is a mistake.
    if (get<number | null>('limits.maxMessageSize', null) !== null)
      problem(
        'limits.maxMessageSize',
        `must be at most maxFrameSize (${maxFrameSize}): a body has to fit in a frame`,
      );
    limits.maxMessageSize = maxFrameSize;
  }
  if (limits.preAuthMaxFrameSize > maxFrameSize) limits.preAuthMaxFrameSize = maxFrameSize;
  return limits;
}

/** What the native listener takes from the limits (`limiter`: the node's, shared by every listener). */
export function nativeListenerLimits(limits: LimitsConfig, limiter: ConnectionLimiter) {
  return {
    connectionLimiter: limiter,
    preHandshakeMaxFrameSize: limits.preAuthMaxFrameSize,
    handshakeTimeoutMs: limits.connectTimeoutMs,
    maxPendingBytes: limits.maxPendingBytes,
  };
}

/** What the STOMP listener takes from the limits. */
export function stompListenerLimits(limits: LimitsConfig, limiter: ConnectionLimiter) {
  return {
    connectionLimiter: limiter,
    preConnectMaxFrameSize: limits.preAuthMaxFrameSize,
    connectTimeoutMs: limits.connectTimeoutMs,
    maxPendingBytes: limits.maxPendingBytes,
  };
}
