import type { KeelError, Message } from '@keel/protocol';
import type { BrokerConsumer, InflightRef } from './consumer';

export type ConnectionProtocol = 'native' | 'stomp' | 'network' | 'admin' | 'internal';

/** What the broker may ask of a connection's transport (the listener's socket); core has no net. */
export interface ConnectionTransport {
  /**
   * Whether the peer is still there: false once the socket is gone, or when heart-beats were agreed
   * and the peer has missed them (a half-open connection).
   */
  alive(): boolean;
  /** Close with an ERROR carrying `err` (a client id taken over: ActiveMQ allowLinkStealing). */
  close(err: KeelError): void;
}

export interface ConnectionInfo {
  clientId?: string;
  /** The transport, for the client id check (Broker.openConnection); in-process connections have none. */
  transport?: ConnectionTransport;
  /**
   * ActiveMQ's transport connector option `allowLinkStealing`: a connection with a client id that a
   * live connection holds takes it over (the older one is closed with INVALID_CLIENT_ID) instead of
   * being refused.
   */
  allowLinkStealing?: boolean;
  username?: string;
  protocol: ConnectionProtocol;
  remoteAddress?: string;
}

/** A local transaction: sends and acks that take effect together at commit. */
export interface Transaction {
  id: string;
  sends: Message[];
  acks: InflightRef[];
}

/** Broker-side state of one client connection. Behaviour lives in Broker; see broker.ts. */
export class ConnectionState {
  readonly consumers = new Map<string, BrokerConsumer>();
  readonly transactions = new Map<string, Transaction>();
  readonly tempDestinations = new Set<string>();
  readonly connectedAt = Date.now();
  writable = true;
  closed = false;
  messagesIn = 0;
  messagesOut = 0;

  constructor(
    readonly id: string,
    readonly clientId: string,
    readonly info: ConnectionInfo,
  ) {}
}
