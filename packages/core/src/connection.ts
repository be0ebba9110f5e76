import type { Message } from '@keel/protocol';
import type { BrokerConsumer, InflightRef } from './consumer';

export type ConnectionProtocol = 'native' | 'stomp' | 'network' | 'admin' | 'internal';

export interface ConnectionInfo {
  clientId?: string;
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
