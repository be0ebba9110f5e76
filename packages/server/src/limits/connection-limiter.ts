import type { Socket } from 'node:net';
import { InvalidArgumentError } from '@keel/protocol';

/**
 * ActiveMQ's transport connector option `maximumConnections` (issue #23.3), for the whole node
 * (native and STOMP listeners share one limiter), plus a bound per remote address so one host
 * cannot take every slot. A socket over either limit is closed before a byte of it is read.
 */
export interface ConnectionLimits {
  /** ActiveMQ `maximumConnections`: open client sockets on this node; 0 = no limit. */
  maximumConnections: number;
  /** Open client sockets from one remote address; 0 = no limit. */
  maximumConnectionsPerAddress: number;
}

export const CONNECTION_LIMIT_DEFAULTS: Readonly<ConnectionLimits> = Object.freeze({
  /**
   * ActiveMQ's default is 1000 per transport connector; Keel's is higher because its `connections`
   * benchmark holds 5,000 idle clients, and an unauthenticated one costs at most its pre-CONNECT
   * frame limit (64 KiB) for connectTimeout.
   */
  maximumConnections: 10_000,
  /** Off by default: behind a load balancer or NAT every client has the same address. */
  maximumConnectionsPerAddress: 0,
});

export type ConnectionRefusal = 'maximumConnections' | 'maximumConnectionsPerAddress';

export class ConnectionLimiter {
  readonly limits: ConnectionLimits;
  private total = 0;
  private readonly byAddress = new Map<string, number>();
  /** Sockets refused so far. */
  refused = 0;

  constructor(limits: Partial<ConnectionLimits> = {}) {
    this.limits = { ...CONNECTION_LIMIT_DEFAULTS, ...limits };
    for (const [k, v] of Object.entries(this.limits)) {
      if (!Number.isSafeInteger(v) || v < 0)
        throw new InvalidArgumentError(`ConnectionLimiter option ${k} must be an integer >= 0, got ${v}`);
    }
  }

  get open(): number {
    return this.total;
  }

  /**
   * Count `socket` in, or say which limit refuses it. An admitted socket is counted out by itself
   * when it closes.
   */
  admit(socket: Socket): ConnectionRefusal | null {
    const { maximumConnections, maximumConnectionsPerAddress } = this.limits;
    const address = socket.remoteAddress ?? '?';
    const fromAddress = this.byAddress.get(address) ?? 0;
    if (maximumConnections > 0 && this.total >= maximumConnections) {
      this.refused += 1;
      return 'maximumConnections';
    }
    if (maximumConnectionsPerAddress > 0 && fromAddress >= maximumConnectionsPerAddress) {
      this.refused += 1;
      return 'maximumConnectionsPerAddress';
    }
    this.total += 1;
    this.byAddress.set(address, fromAddress + 1);
    socket.once('close', () => {
      this.total -= 1;
      const n = (this.byAddress.get(address) ?? 1) - 1;
      if (n <= 0) this.byAddress.delete(address);
      else this.byAddress.set(address, n);
    });
    return null;
  }

  /** The text a refused client is told (ActiveMQ: "Exceeded the maximum number of allowed client connections"). */
  static message(refusal: ConnectionRefusal, limits: ConnectionLimits): string {
    return refusal === 'maximumConnections'
      ? `Exceeded the maximum number of allowed client connections (maximumConnections ${limits.maximumConnections})`
      : `Exceeded the maximum number of client connections from one address (maximumConnectionsPerAddress ${limits.maximumConnectionsPerAddress})`;
  }
}

/** How long a refused client has to read its goodbye before its socket is destroyed (ms). */
const REFUSED_GRACE_MS = 1000;

/** Close a socket refused by a limit: `goodbye` (a STOMP ERROR frame) first when given. */
export function closeRefused(socket: Socket, goodbye?: Buffer): void {
  socket.on('error', () => {});
  socket.pause();
  if (goodbye === undefined) {
    socket.destroy();
    return;
  }
  socket.end(goodbye);
  setTimeout(() => socket.destroy(), REFUSED_GRACE_MS).unref();
}
