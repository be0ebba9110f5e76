import type { Broker, BrokerConsumer, ConnectionState, Logger } from '@keel/core';
import { silentLogger } from '@keel/core';
import { formatDestination, parseDestination } from '@keel/protocol';

/** ActiveMQ's consumer advisory topics: `ActiveMQ.Advisory.Consumer.Queue.<name>`, `…Topic.<name>`. */
export const ADVISORY_PREFIX = 'ActiveMQ.Advisory.';
export const CONSUMER_ADVISORY_PREFIX = `${ADVISORY_PREFIX}Consumer.`;
/** What a bridge subscribes to on its peer: every consumer advisory. */
export const CONSUMER_ADVISORY_WILDCARD = `topic://${CONSUMER_ADVISORY_PREFIX}>`;

/** The advisory topic for a destination key (`queue://x` → `topic://ActiveMQ.Advisory.Consumer.Queue.x`). */
export function consumerAdvisoryTopic(destination: string): string {
  const d = parseDestination(destination);
  return `topic://${CONSUMER_ADVISORY_PREFIX}${d.type === 'queue' ? 'Queue' : 'Topic'}.${d.name}`;
}

export interface AdvisoryPublisherOptions {
  logger?: Logger;
}

/**
 * Tells peers which destinations have consumers here: on every change of the number of local
 * consumers of a queue or topic it publishes a non-persistent message on that destination's
 * consumer advisory topic with the properties `destination` (`queue://x`) and `consumerCount`.
 * Consumers of network bridges (connections with protocol 'network') do not count, so demand does
 * not echo between brokers (Keel propagates local demand only: ActiveMQ's consumerTTL=1).
 * When a consumer subscribes to an advisory topic (a bridge linking up), every non-zero count is
 * published again: that is the snapshot a new bridge starts from.
 */
export class AdvisoryPublisher {
  private readonly logger: Logger;
  private readonly counts = new Map<string, number>();
  private readonly tracked = new Map<BrokerConsumer, string>();
  private attached = false;

  constructor(
    private readonly broker: Broker,
    options: AdvisoryPublisherOptions = {},
  ) {
    this.logger = options.logger ?? silentLogger;
  }

  private readonly onAdd = (e: {
    connection: ConnectionState;
    consumer: BrokerConsumer;
    destination: string;
  }): void => {
    const key = normalize(e.destination);
    if (key === null) return;
    if (isAdvisory(key)) {
      if (key.startsWith(`topic://${CONSUMER_ADVISORY_PREFIX}`)) this.publishSnapshot();
      return;
    }
    if (e.connection.info.protocol === 'network' || !isForwardableType(key)) return;
    this.tracked.set(e.consumer, key);
    this.change(key, +1);
  };

  private readonly onRemove = (e: { consumer: BrokerConsumer }): void => {
    const key = this.tracked.get(e.consumer);
    if (key === undefined) return;
    this.tracked.delete(e.consumer);
    this.change(key, -1);
  };

  attach(): this {
    if (this.attached) return this;
    this.attached = true;
    this.broker.on('consumer:add', this.onAdd);
    this.broker.on('consumer:remove', this.onRemove);
    return this;
  }

  detach(): void {
    if (!this.attached) return;
    this.attached = false;
    this.broker.off('consumer:add', this.onAdd);
    this.broker.off('consumer:remove', this.onRemove);
  }

  /** Local (non-network) consumers per destination, for tests and status. */
  consumerCounts(): Record<string, number> {
    return Object.fromEntries(this.counts);
  }

  /** Local (non-network) consumers of one destination (`queue://x`). */
  consumerCount(destination: string): number {
    const key = normalize(destination);
    return key === null ? 0 : (this.counts.get(key) ?? 0);
  }

  private change(key: string, delta: number): void {
    const n = Math.max(0, (this.counts.get(key) ?? 0) + delta);
    if (n === 0) this.counts.delete(key);
    else this.counts.set(key, n);
    this.publish(key, n);
  }

  private publishSnapshot(): void {
    for (const [key, n] of this.counts) this.publish(key, n);
  }

  private publish(key: string, consumerCount: number): void {
    if (!this.broker.isRunning) return;
    this.broker
      .sendInternal({
        destination: consumerAdvisoryTopic(key),
        persistent: false,
        priority: 4,
        timestamp: Date.now(),
        expiration: 0,
        properties: { destination: key, consumerCount, origin: this.broker.nodeName },
        body: Buffer.alloc(0),
      })
      .catch((err: Error) =>
        this.logger.debug({ err: err.message, destination: key }, 'consumer advisory not published'),
      );
  }
}

function normalize(destination: string): string | null {
  try {
    return formatDestination(parseDestination(destination));
  } catch {
    return null;
  }
}

function isAdvisory(key: string): boolean {
  return key.startsWith(`topic://${ADVISORY_PREFIX}`) || key.startsWith(`queue://${ADVISORY_PREFIX}`);
}

function isForwardableType(key: string): boolean {
  return key.startsWith('queue://') || key.startsWith('topic://');
}
