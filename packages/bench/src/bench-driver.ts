/**
 * What a scenario needs from a broker connection. The STOMP driver implements it now; a native
 * driver on @keel/client can implement the same interface later and every scenario runs on it.
 */

export interface BenchDestination {
  kind: 'queue' | 'topic';
  name: string;
}

export interface BenchMessage {
  body: Buffer;
  /** Acknowledge this message alone (STOMP ack:client-individual). */
  ack(): void;
}

export interface BenchSubscribeOptions {
  /** Unacknowledged messages the broker may push to this subscription. */
  prefetch: number;
  onMessage(message: BenchMessage): void;
}

export interface BenchSubscription {
  unsubscribe(): Promise<void>;
}

export interface BenchConnection {
  /** Send one persistent message; resolves when the broker has confirmed it (its receipt). */
  send(destination: BenchDestination, body: Buffer): Promise<void>;
  /** Subscribe with individual acknowledgement; resolves once the broker confirmed the subscription. */
  subscribe(destination: BenchDestination, options: BenchSubscribeOptions): Promise<BenchSubscription>;
  /** Called once if the connection fails (error frame, socket error, unexpected close). */
  onError(listener: (err: Error) => void): void;
  /** Disconnect gracefully (bounded in time), then release the socket. */
  close(): Promise<void>;
}

export interface BenchDriver {
  /** For reports: `stomp`, later `native`. */
  readonly protocol: string;
  connect(name: string): Promise<BenchConnection>;
}
