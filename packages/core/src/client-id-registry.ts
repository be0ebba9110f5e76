import { InvalidClientIdError } from '@keel/protocol';
import type { ConnectionInfo, ConnectionState } from './connection';
import type { Logger } from './ports';

/** Client ids of network bridges' own connections (network package): not held unique, see below. */
const NETWORK_CLIENT_ID_PREFIX = 'network:';

/**
 * One live connection per client id (ActiveMQ RegionBroker.addConnection: a second connection with
 * a client id that is connected gets InvalidClientIDException, "Broker: <broker> - Client: <id>
 * already connected from <address>").
 *
 * - An older connection whose transport is dead (socket gone, or heart-beats agreed and missed: a
 *   half-open one) does not hold its id: it is closed and the newer one is accepted.
 * - With `allowLinkStealing` (ActiveMQ's transport connector option) the newer connection wins:
 *   the older one is closed with an ERROR (INVALID_CLIENT_ID).
 * - Generated ids (`ID:<connection>`) are unique already; network bridges' connections
 *   (`network:…`) are the network package's to manage and are not checked.
 */
export class ClientIdRegistry {
  private readonly holders = new Map<string, ConnectionState>();

  constructor(
    private readonly brokerName: string,
    /** Broker.closeConnection: the older connection's consumers and transactions go. */
    private readonly closeConnection: (conn: ConnectionState) => void,
    private readonly logger: Logger,
  ) {}

  /** Throw INVALID_CLIENT_ID if `clientId` is held by a live connection (unless link stealing). */
  claim(clientId: string | undefined, info: ConnectionInfo): void {
    if (!clientId || clientId.startsWith(NETWORK_CLIENT_ID_PREFIX)) return;
    const old = this.holders.get(clientId);
    if (old === undefined || old.closed) return;
    const dead = old.info.transport !== undefined && !old.info.transport.alive();
    if (!dead && info.allowLinkStealing !== true) {
      throw new InvalidClientIdError(
        `Broker: ${this.brokerName} - Client: ${clientId} already connected from ${old.info.remoteAddress ?? `connection ${old.id}`}`,
      );
    }
    this.logger.info(
      {
        clientId,
        old: old.id,
        remote: info.remoteAddress ?? null,
        reason: dead ? 'dead' : 'allowLinkStealing',
      },
      dead ? 'client id held by a dead connection: closing it' : 'client id taken over (allowLinkStealing)',
    );
    const why = dead
      ? `connection closed: its client id ${clientId} was claimed by a new connection and this one had stopped answering`
      : `connection closed: client id ${clientId} was taken over by a newer connection (allowLinkStealing)`;
    this.holders.delete(clientId);
    old.info.transport?.close(new InvalidClientIdError(why));
    this.closeConnection(old);
  }

  /** `conn` holds its client id from now on (after `claim` passed). */
  hold(conn: ConnectionState, explicit: boolean): void {
    if (!explicit || conn.clientId.startsWith(NETWORK_CLIENT_ID_PREFIX)) return;
    this.holders.set(conn.clientId, conn);
  }

  release(conn: ConnectionState): void {
    if (this.holders.get(conn.clientId) === conn) this.holders.delete(conn.clientId);
  }
}
