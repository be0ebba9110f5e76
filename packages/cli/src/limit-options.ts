import { CONFIG_SETTINGS, LIMIT_DEFAULTS, type LimitsConfig } from '@keel/server';
import type { Command } from 'commander';

/** What each limit does, for `keel broker --help` (docs/operations.md "Resource limits" has more). */
const HELP: Record<keyof LimitsConfig, string> = {
  maximumConnections:
    "client sockets on this node, native and STOMP together, 0: none (ActiveMQ's maximumConnections)",
  maximumConnectionsPerAddress: 'client sockets from one remote address, 0: none',
  preAuthMaxFrameSize: 'largest frame before CONNECT/HELLO is answered, bytes (e.g. 64KiB)',
  connectTimeoutMs:
    "a socket that sends no CONNECT/HELLO in time is closed (ActiveMQ's transport.connectAttemptTimeout)",
  maxMessageSize: 'largest message body, bytes (at most --max-frame-size)',
  maxPendingBytes:
    "body bytes of a connection's sends awaiting the broker before its socket stops being read",
  memoryWindowBytes: 'bytes of messages a queue holds in memory before the rest stays in the store',
  memoryUsage: "bytes of messages held in memory before producers block (ActiveMQ's memoryUsage), 0: none",
  storeUsage: "bytes of stored messages before persistent producers block (ActiveMQ's storeUsage), 0: none",
  storeUsageCheckIntervalMs: 'how often the stored bytes are measured',
  sendFailIfNoSpace: 'refuse a send with RESOURCE_LIMIT instead of blocking the producer (true/false)',
  sendFailIfNoSpaceAfterTimeout: 'refuse a send blocked this many ms, 0: block',
  maxSlowDuration:
    'abort a consumer whose prefetch stays full this many ms while messages wait, 0: off (AbortSlowConsumerStrategy)',
  abortSlowConsumerConnection: 'a slow consumer loses its connection (true) or only the consumer (false)',
};

/** The `limits.*` settings as `keel broker` flags (issue #23.3). */
export function addLimitOptions(command: Command): Command {
  for (const setting of CONFIG_SETTINGS) {
    if (!setting.key.startsWith('limits.')) continue;
    const key = setting.key.slice('limits.'.length) as keyof LimitsConfig;
    const value = typeof LIMIT_DEFAULTS[key] === 'boolean' ? '<true|false>' : '<value>';
    command.option(
      `${setting.flag} ${value}`,
      `${HELP[key]} (${setting.env}; default: ${String(LIMIT_DEFAULTS[key])})`,
    );
  }
  return command;
}
