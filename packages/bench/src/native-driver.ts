import { type Connection, type ConnectOptions, connect, type Producer, type Session } from '@keel/client';
import { ConnectionError } from '@keel/protocol';
import type {
  BenchConnection,
  BenchDestination,
  BenchDriver,
  BenchLinkEvent,
  BenchMessage,
  BenchSubscribeOptions,
  BenchSubscription,
} from './bench-driver';

export interface NativeDriverOptions {
  /** `tcp://host:port` or `failover:(tcp://a:61616,tcp://b:61616)?options` (@keel/client). */
  url: string;
  username?: string;
  password?: string;
  /**
   * Heartbeat interval asked of the broker (0 = none, the default here: load and idle connections
   * do not need them, and a SIGKILLed broker's sockets close at once).
   */
  heartbeatMs?: number;
  /** Extra @keel/client options (failover overrides win over the URL's). */
  connectOptions?: ConnectOptions;
}

/**
 * Keel's native protocol through @keel/client: one connection per BenchConnection with one
 * session in `individual` ack mode (every `ack()` acknowledges that message alone, as STOMP's
 * `ack:client-individual`); a producer per destination, persistent, each `send()` resolved by the
 * broker's RECEIPT, sent after the store commit. With a `failover:` URL the client reconnects,
 * restores the consumers and resends unreceipted sends (the broker's duplicate detection keeps
 * them single); `onLinkEvent` reports the drops.
 */
export class NativeDriver implements BenchDriver {
  readonly protocol = 'native';

  constructor(private readonly options: NativeDriverOptions) {}

  async connect(name: string): Promise<BenchConnection> {
    const o = this.options;
    const conn = await connect(o.url, {
      // Acks one-way, as the STOMP driver sends them (ActiveMQ's default for JMS clients too).
      sendAcksAsync: true,
      ...o.connectOptions,
      heartbeatMs: o.heartbeatMs ?? 0,
      ...(o.username !== undefined ? { username: o.username } : {}),
      ...(o.password !== undefined ? { password: o.password } : {}),
    });
    try {
      const session = await conn.createSession({ ackMode: 'individual' });
      return new NativeBenchConnection(conn, session, name);
    } catch (err) {
      await conn.close().catch(() => undefined);
      throw err;
    }
  }
}

const noop = (): void => undefined;

function destinationUri(d: BenchDestination): string {
  return `${d.kind}://${d.name}`;
}

class NativeBenchConnection implements BenchConnection {
  private readonly producers = new Map<string, Producer>();
  private readonly errorListeners: Array<(err: Error) => void> = [];
  private closing = false;
  private failed = false;

  constructor(
    private readonly conn: Connection,
    private readonly session: Session,
    private readonly name: string,
  ) {
    conn.on('close', ({ error }) => {
      if (error !== undefined) this.fail(error);
    });
    // Asynchronous errors that belong to no call (e.g. an ERROR frame for an ack): a load run
    // reports them with the connection's name; the call that failed reports its own.
    conn.on('error', (err) => {
      if (!this.closing) for (const l of this.errorListeners) l(new Error(`${this.name}: ${err.message}`));
    });
  }

  onError(listener: (err: Error) => void): void {
    this.errorListeners.push(listener);
  }

  onLinkEvent(listener: (event: BenchLinkEvent) => void): void {
    this.conn.on('interrupted', ({ url, error }) =>
      listener({ event: 'interrupted', detail: `${url}: ${error.message}` }),
    );
    this.conn.on('resumed', ({ url }) => listener({ event: 'resumed', detail: url }));
  }

  send(destination: BenchDestination, body: Buffer): Promise<void> {
    const uri = destinationUri(destination);
    let producer = this.producers.get(uri);
    if (producer === undefined) {
      try {
        producer = this.session.createProducer(uri, { persistent: true });
      } catch (err) {
        return Promise.reject(err);
      }
      this.producers.set(uri, producer);
    }
    // The receipt's promise itself (its SendResult is not used): no async wrapper per send.
    return producer.send(body) as Promise<unknown> as Promise<void>;
  }

  async subscribe(destination: BenchDestination, options: BenchSubscribeOptions): Promise<BenchSubscription> {
    const consumer = await this.session.createConsumer(destinationUri(destination), {
      prefetch: options.prefetch,
    });
    consumer.on('error', (err) => {
      if (!this.closing) for (const l of this.errorListeners) l(new Error(`${this.name}: ${err.message}`));
    });
    const onMessage = options.onMessage;
    consumer.on('message', (m) => {
      const message: BenchMessage = {
        body: m.body,
        // Individual mode: this message only. Its completion (the broker's receipt) is not waited
        // for, as STOMP ACKs carry none; a failed ack surfaces as a redelivery (a duplicate).
        ack: () => {
          m.ack().catch(noop);
        },
      };
      onMessage(message);
    });
    return { unsubscribe: () => consumer.close() };
  }

  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    // Bounded by the client: CLOSE waits 2 s at most for its receipt, then the socket is cut.
    await this.conn.close().catch(noop);
  }

  private fail(err: Error): void {
    if (this.failed || this.closing) return;
    this.failed = true;
    const e = err instanceof ConnectionError ? err : new ConnectionError(`${this.name}: ${err.message}`);
    for (const l of this.errorListeners) l(e);
  }
}
