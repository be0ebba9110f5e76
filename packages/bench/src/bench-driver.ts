/**
 * What a scenario needs from a broker connection. Implemented over STOMP (stomp-driver.ts, and
 * stomp-failover-driver.ts for a list of brokers) and over Keel's native protocol on @keel/client
 * (native-driver.ts), so every scenario runs on each.
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
  /** Called once if the connection fails for good (error frame, socket error, unexpected close). */
  onError(listener: (err: Error) => void): void;
  /**
   * Failover connections: the link dropped (`interrupted`) or is back, restored (`resumed`);
   * `detail` names the broker URL and the error. Optional: plain connections never call it.
   */
  onLinkEvent?(listener: (event: BenchLinkEvent) => void): void;
  /** Disconnect gracefully (bounded in time), then release the socket. */
  close(): Promise<void>;
}

export interface BenchLinkEvent {
  event: 'interrupted' | 'resumed';
  detail: string;
}

export interface BenchDriver {
  /** For reports: `stomp` or `native`. */
  readonly protocol: string;
  connect(name: string): Promise<BenchConnection>;
}
