/**
 * A small TCP proxy for `keel drill --mode db-cut`: each broker node reaches Postgres through one
 * of these, so the drill can cut one node from the database while the others keep theirs.
 *
 * `cut()` is a black hole, as a network partition is: nothing passes in either direction any
 * more, but no socket is closed, so neither the node nor Postgres learns of it from a FIN or RST —
 * they must notice by their own timeouts (the lock session's keep-alive and
 * `idle_in_transaction_session_timeout`, TCP keepalives). New connections are accepted and held
 * without a byte of answer. `heal()` ends the partition: connections that lived through it are
 * destroyed (their TCP sessions would not have survived) and new ones pass again.
 */
import * as net from 'node:net';

interface Pair {
  client: net.Socket;
  upstream: net.Socket | null;
  cut: boolean;
}

export interface DrillProxyStats {
  /** Connections accepted so far. */
  accepted: number;
  /** Connections open now. */
  open: number;
  cut: boolean;
}

export class DrillProxy {
  private readonly pairs = new Set<Pair>();
  private isCut = false;
  private accepted = 0;
  private closed = false;

  private constructor(
    private readonly server: net.Server,
    readonly port: number,
    readonly targetHost: string,
    readonly targetPort: number,
  ) {}

  /** Listens on 127.0.0.1 (any free port unless given) and forwards to targetHost:targetPort. */
  static async start(targetHost: string, targetPort: number, listenPort = 0): Promise<DrillProxy> {
    let proxy: DrillProxy | undefined;
    const server = net.createServer((socket) => proxy?.onConnection(socket));
    server.on('error', () => {});
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host: '127.0.0.1', port: listenPort }, () => {
        server.off('error', reject);
        resolve();
      });
    });
    const address = server.address();
    const port = typeof address === 'object' && address ? address.port : 0;
    proxy = new DrillProxy(server, port, targetHost, targetPort);
    return proxy;
  }

  get stats(): DrillProxyStats {
    return { accepted: this.accepted, open: this.pairs.size, cut: this.isCut };
  }

  private onConnection(client: net.Socket): void {
    this.accepted++;
    const pair: Pair = { client, upstream: null, cut: this.isCut };
    this.pairs.add(pair);
    client.on('error', () => {});
    client.on('close', () => this.onClose(pair));
    if (pair.cut) {
      // Held: the peer sees an open connection that never answers.
      client.pause();
      return;
    }
    const upstream = net.connect({ host: this.targetHost, port: this.targetPort });
    pair.upstream = upstream;
    upstream.on('error', () => {});
    upstream.on('close', () => this.onClose(pair));
    this.forward(pair, client, upstream);
    this.forward(pair, upstream, client);
  }

  private forward(pair: Pair, from: net.Socket, to: net.Socket): void {
    from.on('data', (chunk: Buffer) => {
      if (pair.cut) return; // dropped, as a partition drops packets
      if (!to.write(chunk)) from.pause();
    });
    to.on('drain', () => {
      if (!pair.cut) from.resume();
    });
    from.on('end', () => {
      if (!pair.cut) to.end();
    });
  }

  private onClose(pair: Pair): void {
    // Across a cut, one side closing tells the other nothing; heal() ends them.
    if (pair.cut && !this.closed) return;
    pair.client.destroy();
    pair.upstream?.destroy();
    this.pairs.delete(pair);
  }

  /** Starts the black hole (see the file comment). */
  cut(): void {
    this.isCut = true;
    for (const pair of this.pairs) {
      pair.cut = true;
      pair.client.pause();
      pair.upstream?.pause();
    }
  }

  /** Ends it: connections that lived through the cut are destroyed, new ones pass. */
  heal(): void {
    this.isCut = false;
    for (const pair of [...this.pairs]) {
      if (!pair.cut) continue;
      this.pairs.delete(pair);
      pair.client.destroy();
      pair.upstream?.destroy();
    }
  }

  /** Stops listening and destroys every connection. */
  async close(): Promise<void> {
    this.closed = true;
    for (const pair of this.pairs) {
      pair.client.destroy();
      pair.upstream?.destroy();
    }
    this.pairs.clear();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
