export type { BackoffOptions, RandomSource } from './backoff';
export { reconnectDelayMs } from './backoff';
export type { ClientTlsOptions } from './client-tls';
export type {
  ConnectionEvents,
  ConnectionStatus,
  ConnectOptions,
  RequestOptions,
  SendResult,
} from './connection';
export { Connection, connect, isLinkError } from './connection';
export type { ConsumerErrorListener, ConsumerOptions, MessageListener } from './consumer';
export { Consumer } from './consumer';
export type {
  ConnectTarget,
  EndpointOptions,
  FailoverOptionOverrides,
  FailoverOptions,
  ServerEndpoint,
} from './failover-options';
export {
  checkFailoverOverrides,
  DEFAULT_FAILOVER_OPTIONS,
  endpointFromAnnounced,
  parseConnectUrl,
} from './failover-options';
export type { ClientLogger } from './logger';
export { silentClientLogger } from './logger';
export { DEFAULT_AUDIT_DEPTH, MessageAudit } from './message-audit';
export type { ProducerOptions, SendOptions } from './producer';
export { Producer } from './producer';
export type { BrowseOptions } from './queue-browser';
export { DEFAULT_BROWSE_PREFETCH, QueueBrowser } from './queue-browser';
export { ReceivedMessage } from './received-message';
export type { SessionOptions } from './session';
export { normalizeDestination, Session } from './session';
export { DEFAULT_CONNECT_TIMEOUT_MS, DEFAULT_HEARTBEAT_MS, HEARTBEAT_MISSES } from './wire';
