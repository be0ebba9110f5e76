import { ConnectionError } from '@keel/protocol';
import type {
  BenchConnection,
  BenchDestination,
  BenchDriver,
  BenchLinkEvent,
  BenchSubscribeOptions,
} from './bench-driver';
import { StompFailoverDriver } from './stomp-failover-driver';

/** An in-memory broker: `up` decides whether it accepts connections; `crash()` fails every link. */
class FakeBroker implements BenchDriver {
  readonly protocol = 'fake';
  up = true;
  readonly stored: string[] = [];
  /** Sends held without a receipt (as a master that dies before its commit). */
  holdReceipts = false;
  readonly links = new Set<FakeLink>();
  subscriptions = 0;

  async connect(): Promise<BenchConnection> {
    if (!this.up) throw new ConnectionError('connection refused');
    const link = new FakeLink(this);
    this.links.add(link);
    return link;
  }

  crash(): void {
    this.up = false;
    for (const l of [...this.links]) l.fail(new ConnectionError('the broker closed the connection'));
  }
}

class FakeLink implements BenchConnection {
  private readonly errorListeners: Array<(err: Error) => void> = [];
  private readonly pending: Array<{ reject: (err: Error) => void }> = [];
  failed = false;

  constructor(private readonly broker: FakeBroker) {}

  async send(_d: BenchDestination, body: Buffer): Promise<void> {
    if (this.failed) throw new ConnectionError('failed');
    if (this.broker.holdReceipts) {
      await new Promise<void>((_resolve, reject) => this.pending.push({ reject }));
    }
    this.broker.stored.push(body.toString());
  }

  async subscribe(_d: BenchDestination, _o: BenchSubscribeOptions) {
    if (this.failed) throw new ConnectionError('failed');
    this.broker.subscriptions++;
    return { unsubscribe: async () => undefined };
  }

  onError(listener: (err: Error) => void): void {
    this.errorListeners.push(listener);
  }

  async close(): Promise<void> {
    this.broker.links.delete(this);
  }

  fail(err: Error): void {
    if (this.failed) return;
    this.failed = true;
    this.broker.links.delete(this);
    for (const p of this.pending.splice(0)) p.reject(err);
    for (const l of this.errorListeners) l(err);
  }
}

const queue: BenchDestination = { kind: 'queue', name: 'q' };
const sub: BenchSubscribeOptions = { prefetch: 10, onMessage: () => undefined };

describe('StompFailoverDriver', () => {
  it('connects to the first broker that answers, resends a send lost with its link, subscribes again', async () => {
    const a = new FakeBroker();
    const b = new FakeBroker();
    b.up = false; // a slave: refuses until it takes over
    const driver = new StompFailoverDriver({
      members: [
        { url: 'stomp://a', driver: a },
        { url: 'stomp://b', driver: b },
      ],
      initialReconnectDelayMs: 1,
      maxReconnectDelayMs: 5,
      reconnectTimeoutMs: 5_000,
    });
    const conn = await driver.connect('c1');
    const events: BenchLinkEvent[] = [];
    conn.onLinkEvent?.((e) => events.push(e));
    await conn.subscribe(queue, sub);
    await conn.send(queue, Buffer.from('m1'));
    expect(a.stored).toEqual(['m1']);

    a.holdReceipts = true;
    const inFlight = conn.send(queue, Buffer.from('m2'));
    await new Promise((r) => setImmediate(r));
    a.crash();
    // Both down for a moment, then the slave takes over.
    setTimeout(() => {
      b.up = true;
    }, 20);
    await inFlight;
    expect(a.stored).toEqual(['m1']);
    expect(b.stored).toEqual(['m2']);
    expect(b.subscriptions).toBe(1);
    expect(events.map((e) => e.event)).toEqual(['interrupted', 'resumed']);
    expect(events[1]!.detail).toBe('stomp://b');
    await conn.close();
    expect(b.links.size).toBe(0);
  });

  it('fails the connection when no broker comes back within the bound', async () => {
    const a = new FakeBroker();
    const driver = new StompFailoverDriver({
      members: [{ url: 'stomp://a', driver: a }],
      initialReconnectDelayMs: 1,
      maxReconnectDelayMs: 2,
      reconnectTimeoutMs: 30,
    });
    const conn = await driver.connect('c1');
    const errors: Error[] = [];
    conn.onError((e) => errors.push(e));
    a.crash();
    await expect(conn.send(queue, Buffer.from('x'))).rejects.toThrow(/no broker of stomp:\/\/a within 30 ms/);
    expect(errors).toHaveLength(1);
    await conn.close();
  });

  it('refuses to start when no broker answers', async () => {
    const a = new FakeBroker();
    a.up = false;
    const driver = new StompFailoverDriver({ members: [{ url: 'stomp://a', driver: a }] });
    await expect(driver.connect('c1')).rejects.toThrow(/connection refused/);
  });
});
