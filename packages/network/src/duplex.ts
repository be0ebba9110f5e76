import type { Connection, Consumer, ReceivedMessage, Session } from '@keel/client';
import type { Broker, ConnectionState, Delivery, Logger } from '@keel/core';
import { ConnectionError, type Message, type Properties, type PropertyValue } from '@keel/protocol';
import {
  CONSUMER_ADVISORY_WILDCARD,
  demandSelector,
  SELECTORS_PROPERTY,
  SNAPSHOT_END_PROPERTY,
} from './advisory-publisher';
import { DEFAULT_NETWORK_CONNECTOR_OPTIONS, type NetworkConnectorOptions } from './connector-config';
import { ForwardingLink } from './forwarding-link';

/**
 * Duplex network connectors (ActiveMQ `duplex=true`): the one connection broker A opens to broker B
 * carries both directions, so only A needs a connector (B may be unable to reach A).
 *
 * Keel's native protocol is client → broker, so the B → A direction rides on ordinary frames of A's
 * connection, through two temporary queues on B named after the link:
 *
 *   temp-queue://keel.duplex.<id>.to-initiator   B → A: `ready`, forwarded messages
 *   temp-queue://keel.duplex.<id>.to-acceptor    A → B: `hello`, A's consumer advisories, confirmations
 *
 * A connects with client id `network-duplex:<id>`. B's network service sees that connection open
 * and starts a DuplexAcceptor, which consumes `to-acceptor` in process. A subscribes `to-initiator`,
 * then sends `hello` (its cluster name and its connector options: as in ActiveMQ, the accepting side
 * runs its half of the bridge with the initiator's configuration). B answers `ready` (its cluster
 * name). A then relays its own consumer advisories (snapshot first, then every change) and B runs a
 * ForwardingLink B → A on that demand, with the usual brokerPath/TTL rules and replay. Each message
 * it forwards is put on `to-initiator` (in memory: temporary queues are not stored) with its
 * destination and B's message id in properties; A stores it on its own broker (producerId
 * `net:<B>:<id>`, so a resend is a duplicate A drops) and, after that commit, confirms B's id on
 * `to-acceptor`; only then does B acknowledge the message. When the connection drops, B's
 * unconfirmed messages return to their queues (no redelivery count) and both temporary queues go
 * with their owners' connections; A relinks with a new id and both directions resume.
 */

export const DUPLEX_CLIENT_ID_PREFIX = 'network-duplex:';
/** How long the initiator waits for `ready` before it warns and runs one-way. */
export const DUPLEX_READY_TIMEOUT_MS = 5000;
/** Confirmations of one control message at most. */
export const DUPLEX_CONFIRM_BATCH = 500;

/** Property naming the kind of a duplex control or data message. */
export const DUPLEX_KIND = 'keelDuplex';
const P_DEST = 'keelDuplexDestination';
const P_ID = 'keelDuplexId';
const P_EXPIRATION = 'keelDuplexExpiration';
const P_PRODUCER = 'keelDuplexProducerId';
const P_SEQ = 'keelDuplexProducerSeq';
/** The acceptor forwarded it before (a redelivery there): the initiator checks for a duplicate. */
const P_RESENT = 'keelDuplexResent';

type DuplexKind = 'hello' | 'ready' | 'advisory' | 'confirm' | 'refuse' | 'message';

export function duplexQueues(linkId: string): { toInitiator: string; toAcceptor: string } {
  return {
    toInitiator: `temp-queue://keel.duplex.${linkId}.to-initiator`,
    toAcceptor: `temp-queue://keel.duplex.${linkId}.to-acceptor`,
  };
}

function control(destination: string, kind: DuplexKind, properties: Properties = {}): Message {
  return {
    destination,
    persistent: false,
    priority: 4,
    timestamp: Date.now(),
    expiration: 0,
    properties: { ...properties, [DUPLEX_KIND]: kind },
    body: Buffer.alloc(0),
  };
}

/** The connector options the initiator sends in `hello` (credentials stay home). */
function optionsForPeer(o: NetworkConnectorOptions): string {
  return JSON.stringify({ ...o, userName: null, password: null });
}

/**
 * The options the acceptor runs with: the initiator's, each checked against the type of its
 * default (a missing or mistyped one takes Keel's default).
 */
export function duplexOptions(json: unknown): NetworkConnectorOptions {
  let given: Record<string, unknown> = {};
  try {
    const v = typeof json === 'string' ? JSON.parse(json) : null;
    if (v && typeof v === 'object') given = v as Record<string, unknown>;
  } catch {
    // defaults
  }
  const out: Record<string, unknown> = { ...DEFAULT_NETWORK_CONNECTOR_OPTIONS };
  for (const [k, def] of Object.entries(DEFAULT_NETWORK_CONNECTOR_OPTIONS)) {
    const v = given[k];
    if (Array.isArray(def)) {
      if (Array.isArray(v) && v.every((x) => typeof x === 'string')) out[k] = v;
    } else if (typeof def === 'number') {
      if (typeof v === 'number' && Number.isFinite(v) && v >= 0) out[k] = v;
    } else if (typeof def === 'boolean' || typeof def === 'string') {
      if (typeof v === typeof def) out[k] = v;
    }
  }
  const ttl = (k: string): number => {
    const v = given[k];
    return typeof v === 'number' && Number.isInteger(v) && v >= 1 ? v : (out.networkTTL as number);
  };
  out.messageTTL = ttl('messageTTL');
  out.consumerTTL = ttl('consumerTTL');
  out.userName = null;
  out.password = null;
  if ((out.prefetchSize as number) < 1) out.prefetchSize = DEFAULT_NETWORK_CONNECTOR_OPTIONS.prefetchSize;
  return out as unknown as NetworkConnectorOptions;
}

// ----- the initiating side (A) ---------------------------------------------------------------------

export interface DuplexInitiatorOptions {
  broker: Broker;
  localName: string;
  remoteName: string;
  linkId: string;
  conn: Connection;
  session: Session;
  options: NetworkConnectorOptions;
  logger: Logger;
  /** A message the peer forwarded was stored here. */
  onReceived: () => void;
}

/**
 * A's half of the peer's direction: relays A's consumer advisories to B and stores what B forwards.
 */
export class DuplexInitiator {
  private readonly local: ConnectionState;
  private readonly q: { toInitiator: string; toAcceptor: string };
  private consumer: Consumer | null = null;
  private closed = false;
  private ready: (() => void) | null = null;
  private confirms: string[] = [];
  private flushScheduled = false;

  constructor(private readonly o: DuplexInitiatorOptions) {
    this.q = duplexQueues(o.linkId);
    this.local = o.broker.openConnection({
      protocol: 'network',
      clientId: `network:${o.localName}<-${o.remoteName}:${o.options.name}:${o.linkId}`,
    });
  }

  /** Resolves true once the peer accepted the duplex link, false if it did not answer in time. */
  async start(): Promise<boolean> {
    const { session } = this.o;
    const readyP = new Promise<boolean>((resolve) => {
      const t = setTimeout(() => resolve(false), DUPLEX_READY_TIMEOUT_MS);
      t.unref?.();
      this.ready = () => {
        clearTimeout(t);
        resolve(true);
      };
    });
    this.consumer = await session.createConsumer(this.q.toInitiator, { prefetch: 4000 });
    // Returns at once (auto mode acknowledges the relay entry): the real confirmation is the
    // `confirm` sent after the local commit, so the stores of many messages run together.
    this.consumer.onMessage((m) => {
      this.onMessage(m);
    });
    this.consumer.on('error', (err) =>
      this.o.logger.warn({ err: err.message }, 'duplex bridge: handling a message failed'),
    );
    await session._send(
      control(this.q.toAcceptor, 'hello', {
        cluster: this.o.localName,
        options: optionsForPeer(this.o.options),
      }),
    );
    const ok = await readyP;
    if (!ok || this.closed) return false;
    // Our demand, as B's bridges would learn it from our advisories: subscribing makes the advisory
    // publisher send the snapshot (ended by `snapshotEnd`), then every change.
    await this.o.broker.subscribe(
      this.local,
      {
        consumerId: 'duplex-advisories',
        destination: CONSUMER_ADVISORY_WILDCARD,
        prefetch: 10000,
        ackOnDelivery: true,
      },
      (d) => this.relayAdvisory(d),
    );
    return true;
  }

  private relayAdvisory(d: Delivery): void {
    if (this.closed) return;
    const p = d.message.properties;
    const props: Properties = {};
    for (const k of ['destination', 'consumerCount', 'durableCount', SNAPSHOT_END_PROPERTY]) {
      if (p[k] !== undefined) props[k] = p[k] as PropertyValue;
    }
    this.o.session._send(control(this.q.toAcceptor, 'advisory', props)).catch(() => {});
  }

  private onMessage(m: ReceivedMessage): void {
    if (this.closed) return;
    const kind = m.properties[DUPLEX_KIND];
    if (kind === 'ready') {
      this.o.logger.info({ remote: this.o.remoteName }, 'duplex bridge: the peer forwards over this link');
      this.ready?.();
      this.ready = null;
      return;
    }
    if (kind !== 'message') return;
    const id = String(m.properties[P_ID]);
    const properties: Properties = {};
    for (const [k, v] of Object.entries(m.properties)) {
      if (!k.startsWith('keelDuplex')) properties[k] = v;
    }
    const out: Message = {
      destination: String(m.properties[P_DEST]),
      persistent: m.persistent,
      priority: m.priority,
      timestamp: m.timestamp,
      expiration: Number(m.properties[P_EXPIRATION] ?? 0),
      correlationId: m.correlationId,
      replyTo: m.replyTo,
      type: m.type,
      originalDestination: m.originalDestination,
      brokerPath: m.brokerPath,
      properties,
      body: m.body,
    };
    if (typeof m.properties[P_PRODUCER] === 'string') {
      out.producerId = m.properties[P_PRODUCER] as string;
      out.producerSeq = Number(m.properties[P_SEQ] ?? 1);
    }
    let sent: Promise<unknown>;
    try {
      // A first forward (not a redelivery on the acceptor) cannot be here yet: no duplicate check.
      sent = this.o.broker.send(this.local, out, undefined, {
        resent: m.properties[P_RESENT] === false ? false : undefined,
      });
    } catch (err) {
      sent = Promise.reject(err);
    }
    sent.then(
      () => {
        this.o.onReceived();
        this.confirm(id);
      },
      (err: Error) => {
        if (this.closed || !this.o.broker.isRunning) return; // the link goes; B sends it again
        this.o.logger.warn(
          { err: err.message, destination: out.destination },
          'duplex bridge: message refused here',
        );
        this.o.session
          ._send(control(this.q.toAcceptor, 'refuse', { id, error: err.message }))
          .catch(() => {});
      },
    );
  }

  private confirm(id: string): void {
    if (this.closed) return;
    this.confirms.push(id);
    if (this.confirms.length >= DUPLEX_CONFIRM_BATCH) this.flush();
    else if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(() => {
        this.flushScheduled = false;
        this.flush();
      });
    }
  }

  private flush(): void {
    if (this.closed || this.confirms.length === 0) return;
    const ids = this.confirms.splice(0).join(',');
    // Lost with the link: B gives the messages back to their queues and sends them again; they are
    // duplicates here then, and confirmed again.
    this.o.session._send(control(this.q.toAcceptor, 'confirm', { ids })).catch(() => {});
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.ready?.();
    this.ready = null;
    this.o.broker.closeConnection(this.local, { redeliver: false });
  }
}

// ----- the accepting side (B) ----------------------------------------------------------------------

export interface DuplexAcceptorOptions {
  broker: Broker;
  localName: string;
  /** The initiator's connection here (client id `network-duplex:<id>`). */
  peer: ConnectionState;
  logger: Logger;
  localConsumers?: (destination: string) => number;
  /** `hello` arrived: the initiator's cluster and connector name (to replace a stale acceptor). */
  onHello?: (acceptor: DuplexAcceptor) => void;
}

interface Pending {
  resolve: () => void;
  reject: (err: Error) => void;
}

/** B's half: runs the bridge B → A on A's demand, over A's connection (see the module comment). */
export class DuplexAcceptor {
  readonly linkId: string;
  readonly openedAt = Date.now();
  private readonly q: { toInitiator: string; toAcceptor: string };
  private readonly own: ConnectionState;
  private link: ForwardingLink | null = null;
  /** Relayed messages awaiting the initiator's confirmation, by relay key (one per send). */
  private readonly pending = new Map<string, Pending>();
  private nextKey = 0;
  /** Advisories apply one at a time, in order. */
  private chain: Promise<void> = Promise.resolve();
  private closed = false;
  private forwarded = 0;
  private lastError: string | null = null;
  remoteName: string | null = null;
  connector: string | null = null;

  constructor(private readonly o: DuplexAcceptorOptions) {
    this.linkId = o.peer.clientId.slice(DUPLEX_CLIENT_ID_PREFIX.length);
    this.q = duplexQueues(this.linkId);
    this.own = o.broker.openConnection({
      protocol: 'network',
      clientId: `network:${o.localName}:duplex-acceptor:${this.linkId}`,
      // The peer's bridge is authorized here as the user it logged in as (issue #23.2).
      username: o.peer.info.username,
    });
  }

  async start(): Promise<void> {
    await this.o.broker.subscribe(
      this.own,
      { consumerId: 'duplex-control', destination: this.q.toAcceptor, prefetch: 10000, ackOnDelivery: true },
      (d) => this.onControl(d),
    );
  }

  private onControl(d: Delivery): void {
    if (this.closed) return;
    const p = d.message.properties;
    switch (p[DUPLEX_KIND]) {
      case 'hello':
        this.onHello(String(p.cluster), duplexOptions(p.options));
        return;
      case 'advisory': {
        const link = this.link;
        if (!link) return;
        const destination = p.destination;
        const count = Number(p.consumerCount);
        const durable = Number(p.durableCount ?? 0);
        this.chain = this.chain.then(async () => {
          if (p[SNAPSHOT_END_PROPERTY] === true) await link.endSnapshot();
          else if (typeof destination === 'string' && Number.isFinite(count)) {
            // The selectors of the initiator's consumers, when it relays them (SELECTORS_PROPERTY).
            const selector = demandSelector(p[SELECTORS_PROPERTY]);
            await link.demand(destination, count, Number.isFinite(durable) ? durable : 0, 0, selector);
          }
        });
        this.chain.catch((err: Error) =>
          this.o.logger.warn({ err: err.message }, 'duplex bridge: demand handling failed'),
        );
        return;
      }
      case 'confirm':
        for (const id of String(p.ids ?? '').split(',')) {
          const w = this.pending.get(id);
          this.pending.delete(id);
          w?.resolve();
        }
        return;
      case 'refuse': {
        const id = String(p.id);
        const w = this.pending.get(id);
        this.pending.delete(id);
        w?.reject(new Error(String(p.error ?? 'refused by the peer')));
        return;
      }
      default:
    }
  }

  private onHello(remoteName: string, options: NetworkConnectorOptions): void {
    if (this.link) return;
    this.remoteName = remoteName;
    this.connector = options.name;
    if (remoteName === this.o.localName) {
      this.lastError = `duplex peer ${remoteName} is this broker's cluster: not bridging to itself`;
      this.o.logger.warn({ remote: remoteName }, this.lastError);
      return;
    }
    this.o.onHello?.(this);
    const link = new ForwardingLink({
      broker: this.o.broker,
      localName: this.o.localName,
      remoteName,
      options,
      username: this.o.peer.info.username,
      logger: this.o.logger,
      localConsumers: this.o.localConsumers,
      send: (out, localId, resent) => this.relay(out, localId, resent),
      onForwarded: () => {
        this.forwarded += 1;
      },
      onError: (message) => {
        this.lastError = message;
      },
    });
    this.link = link;
    link.beginSnapshot();
    this.chain = this.chain.then(() => link.start());
    this.o.logger.info(
      { remote: remoteName, connector: options.name, address: this.o.peer.info.remoteAddress ?? null },
      'duplex bridge accepted',
    );
    this.o.broker
      .send(this.own, control(this.q.toInitiator, 'ready', { cluster: this.o.localName }))
      .catch((err: Error) => this.o.logger.warn({ err: err.message }, 'duplex bridge: cannot answer hello'));
  }

  /** Put one forwarded message on the initiator's queue; resolves on its confirmation. */
  private relay(out: Message, _localId: string, resent: boolean): Promise<void> {
    if (this.closed) return Promise.reject(new ConnectionError('duplex link closed'));
    this.nextKey += 1;
    const key = String(this.nextKey);
    const properties: Properties = {
      ...out.properties,
      [DUPLEX_KIND]: 'message',
      [P_DEST]: out.destination,
      [P_ID]: key,
      [P_EXPIRATION]: out.expiration,
      [P_RESENT]: resent,
    };
    if (out.producerId !== undefined) {
      properties[P_PRODUCER] = out.producerId;
      properties[P_SEQ] = out.producerSeq ?? 1;
    }
    const relay: Message = {
      ...out,
      destination: this.q.toInitiator,
      // The relay entry never expires or dedups here: the real expiration and producer travel in
      // properties and apply on the initiator's broker.
      expiration: 0,
      producerId: undefined,
      producerSeq: undefined,
      properties,
    };
    delete relay.producerId;
    delete relay.producerSeq;
    return new Promise<void>((resolve, reject) => {
      this.pending.set(key, { resolve, reject });
      this.o.broker.send(this.own, relay).catch((err: Error) => {
        this.pending.delete(key);
        reject(new ConnectionError(`duplex relay failed: ${err.message}`));
      });
    });
  }

  status() {
    const link = this.link;
    return {
      connector: this.connector ?? 'duplex',
      localName: this.o.localName,
      peerUrl: `duplex:${this.o.peer.info.remoteAddress ?? this.linkId}`,
      remoteName: this.remoteName,
      state: (this.closed ? 'stopped' : 'connected') as 'stopped' | 'connected',
      forwarding: link ? link.forwarding() : [],
      forwarded: this.forwarded,
      inflight: link ? link.inflight() : 0,
      connects: 1,
      lastError: this.lastError,
      duplex: true,
      accepted: true,
      received: 0,
    };
  }

  close(reason: string): void {
    if (this.closed) return;
    this.closed = true;
    this.link?.close();
    const err = new ConnectionError(`duplex link closed: ${reason}`);
    for (const w of this.pending.values()) w.reject(err);
    this.pending.clear();
    this.o.broker.closeConnection(this.own, { redeliver: false });
    if (this.remoteName !== null)
      this.o.logger.info({ remote: this.remoteName, reason }, 'duplex bridge disconnected');
  }
}
