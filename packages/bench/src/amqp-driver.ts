import { ConnectionError } from '@keel/protocol';
import * as amqp from 'amqplib';
import type {
  BenchConnection,
  BenchDestination,
  BenchDriver,
  BenchMessage,
  BenchSubscribeOptions,
  BenchSubscription,
} from './bench-driver';

/** RabbitMQ's queue types (`x-queue-type`): a durable classic queue or a replicated quorum queue. */
export type AmqpQueueType = 'classic' | 'quorum';

export interface AmqpDriverOptions {
  /** `amqp://host:port[/vhost]`; credentials from `username`/`password` (RabbitMQ: guest/guest on loopback). */
  url: string;
  username?: string;
  password?: string;
  queueType: AmqpQueueType;
  /** Heartbeat asked of the broker, seconds (0 = none, as the other drivers). */
  heartbeatS?: number;
}

/** Topics go through RabbitMQ's built-in topic exchange, as its STOMP plugin routes `/topic/x`. */
const TOPIC_EXCHANGE = 'amq.topic';
const CLOSE_BOUND_MS = 2_000;

/**
 * RabbitMQ over AMQP 0-9-1 with amqplib, shaped like the other drivers so every scenario runs on
 * it: one AMQP connection per BenchConnection; sends on a confirm channel (RabbitMQ "Publisher
 * Confirms": `confirm.select`, then every `basic.publish` is answered by a `basic.ack` once the
 * broker has taken responsibility for the message, for a persistent message on a durable queue
 * after it is written to disk), `deliveryMode` 2 (persistent); each `send()` resolves on its
 * confirm, so the bench's window of sends per producer is the window of unconfirmed publishes.
 * Consumers get a channel each with `basic.qos` prefetch-count (per consumer) and manual acks
 * (`noAck: false`, `basic.ack` of that delivery alone). Queues are declared durable with
 * `x-queue-type` classic or quorum by whichever side touches them first; topics are the
 * `amq.topic` exchange with an exclusive server-named queue per subscriber.
 */
export class AmqpDriver implements BenchDriver {
  readonly protocol = 'amqp';
  /**
   * Queues this driver's connections have declared: a queue exists broker-wide once declared, so a
   * producer need not declare again what a consumer (or another producer) declared.
   */
  private readonly declaredQueues = new Set<string>();

  constructor(private readonly options: AmqpDriverOptions) {}

  async connect(name: string): Promise<BenchConnection> {
    const o = this.options;
    const url = new URL(o.url);
    const model = await amqp.connect({
      protocol: 'amqp',
      hostname: url.hostname,
      port: Number(url.port || 5672),
      vhost: decodeURIComponent(url.pathname.slice(1)) || '/',
      username: o.username ?? 'guest',
      password: o.password ?? 'guest',
      heartbeat: o.heartbeatS ?? 0,
    });
    try {
      const confirm = await model.createConfirmChannel();
      return new AmqpBenchConnection(model, confirm, name, o.queueType, this.declaredQueues);
    } catch (err) {
      await model.close().catch(() => undefined);
      throw err;
    }
  }
}

class AmqpBenchConnection implements BenchConnection {
  private readonly errorListeners: Array<(err: Error) => void> = [];
  /** Declarations in progress on this connection (the ones done are the driver's declaredQueues). */
  private readonly declaring = new Map<string, Promise<unknown>>();
  private closing = false;
  private failed = false;

  constructor(
    private readonly model: amqp.ChannelModel,
    private readonly confirm: amqp.ConfirmChannel,
    private readonly name: string,
    private readonly queueType: AmqpQueueType,
    /** Queues declared by any connection of the driver (a declaration is idempotent; once is enough). */
    private readonly declaredQueues: Set<string>,
  ) {
    model.on('error', (err: Error) => this.fail(err));
    model.on('close', (err?: Error) => this.fail(err ?? new Error('connection closed by the broker')));
    // A channel error closes that channel (and reaches the connection's 'error' only if fatal).
    confirm.on('error', (err: Error) => this.fail(err));
  }

  onError(listener: (err: Error) => void): void {
    this.errorListeners.push(listener);
  }

  send(destination: BenchDestination, body: Buffer): Promise<void> {
    const publish = (): Promise<void> =>
      new Promise<void>((resolve, reject) => {
        const callback = (err: unknown) => (err ? reject(toError(err, 'publish nacked')) : resolve());
        if (destination.kind === 'queue') {
          this.confirm.sendToQueue(destination.name, body, { persistent: true }, callback);
        } else {
          this.confirm.publish(TOPIC_EXCHANGE, destination.name, body, { persistent: true }, callback);
        }
      });
    if (destination.kind === 'topic') return publish();
    // The default exchange drops (and still confirms) a message for a queue that does not exist:
    // the queue is declared before the first publish to it.
    const declared = this.declare(this.confirm, destination.name);
    return declared === true ? publish() : declared.then(publish);
  }

  async subscribe(destination: BenchDestination, options: BenchSubscribeOptions): Promise<BenchSubscription> {
    const ch = await this.model.createChannel();
    ch.on('error', (err: Error) => this.fail(err));
    let queue: string;
    if (destination.kind === 'queue') {
      await this.declare(ch, destination.name);
      queue = destination.name;
    } else {
      // Quorum queues cannot be exclusive: a subscriber's own queue is classic in both targets.
      const q = await ch.assertQueue('', { exclusive: true, durable: false, autoDelete: true });
      await ch.bindQueue(q.queue, TOPIC_EXCHANGE, destination.name);
      queue = q.queue;
    }
    // basic.qos prefetch-count, per consumer (global=false): the unacknowledged deliveries allowed.
    await ch.prefetch(options.prefetch, false);
    const onMessage = options.onMessage;
    const { consumerTag } = await ch.consume(
      queue,
      (msg) => {
        if (msg === null) {
          this.fail(new Error(`${this.name}: consumer cancelled by the broker`));
          return;
        }
        const message: BenchMessage = { body: msg.content, ack: () => ch.ack(msg) };
        onMessage(message);
      },
      { noAck: false },
    );
    return {
      unsubscribe: async () => {
        await ch.cancel(consumerTag).catch(() => undefined);
        await ch.close().catch(() => undefined);
      },
    };
  }

  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    let timer: NodeJS.Timeout | undefined;
    const bound = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, CLOSE_BOUND_MS);
    });
    await Promise.race([this.model.close().catch(() => undefined), bound]);
    clearTimeout(timer);
  }

  /** `true` when the queue is known declared; otherwise the declaration's promise. */
  private declare(ch: amqp.Channel, queue: string): true | Promise<unknown> {
    if (this.declaredQueues.has(queue)) return true;
    let p = this.declaring.get(queue);
    if (p === undefined) {
      p = ch.assertQueue(queue, {
        durable: true,
        autoDelete: false,
        arguments: { 'x-queue-type': this.queueType },
      });
      this.declaring.set(queue, p);
      p.then(
        () => this.declaredQueues.add(queue),
        () => undefined,
      ).finally(() => this.declaring.delete(queue));
    }
    return p;
  }

  private fail(err: Error): void {
    if (this.failed || this.closing) return;
    this.failed = true;
    const e = new ConnectionError(`${this.name}: ${err.message}`);
    for (const l of this.errorListeners) l(e);
  }
}

function toError(err: unknown, fallback: string): Error {
  return err instanceof Error ? err : new Error(typeof err === 'string' ? err : fallback);
}
