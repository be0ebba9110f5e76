export { connect, Connection, isLinkError } from './connection';
export type {
  ConnectOptions,
  ConnectionEvents,
  ConnectionStatus,
  RequestOptions,
  SendResult,
} from './connection';
export { Session, normalizeDestination } from './session';
export type { SessionOptions } from './session';
export { Producer } from './producer';
export type { ProducerOptions, SendOptions } from './producer';
export { Consumer } from './consumer';
export type { ConsumerErrorListener, ConsumerOptions, MessageListener } from './consumer';
export { ReceivedMessage } from './received-message';
export type { ClientLogger } from './logger';
export { silentClientLogger } from './logger';
export { DEFAULT_AUDIT_DEPTH, MessageAudit } from './message-audit';
export {
  DEFAULT_FAILOVER_OPTIONS,
  checkFailoverOverrides,
  endpointFromAnnounced,
  parseConnectUrl,
} from './failover-options';
export type {
  ConnectTarget,
  EndpointOptions,
  FailoverOptionOverrides,
  FailoverOptions,
  ServerEndpoint,
} from './failover-options';
export { reconnectDelayMs } from './backoff';
export type { BackoffOptions, RandomSource } from './backoff';
export { DEFAULT_CONNECT_TIMEOUT_MS, DEFAULT_HEARTBEAT_MS, HEARTBEAT_MISSES } from './wire';
