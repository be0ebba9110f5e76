import { randomUUID } from 'node:crypto';
import {
  DEFAULT_PRIORITY,
  InvalidArgumentError,
  MAX_PRIORITY,
  type Message,
  MIN_PRIORITY,
  type Properties,
} from '@keel/protocol';
import type { SendResult } from './connection';
import type { Session } from './session';

export interface ProducerOptions {
  /** Persistent messages are stored before the broker's receipt (default true). */
  persistent?: boolean;
  /** 0..9, default 4 (JMS). */
  priority?: number;
  /** Messages expire this many ms after the send; 0 = never (default). */
  timeToLiveMs?: number;
}

export interface SendOptions {
  properties?: Properties;
  correlationId?: string;
  replyTo?: string;
  type?: string;
  priority?: number;
  persistent?: boolean;
  timeToLiveMs?: number;
}

const NO_OPTIONS: SendOptions = {};

function checkPriority(p: unknown, name: string): number {
  if (typeof p !== 'number' || !Number.isInteger(p) || p < MIN_PRIORITY || p > MAX_PRIORITY) {
    throw new InvalidArgumentError(
      `invalid value ${JSON.stringify(p)} for option "${name}": expected an integer ${MIN_PRIORITY}..${MAX_PRIORITY}`,
    );
  }
  return p;
}

function checkTtl(v: unknown, name: string): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) {
    throw new InvalidArgumentError(
      `invalid value ${JSON.stringify(v)} for option "${name}": expected an integer >= 0`,
    );
  }
  return v;
}

/**
 * Sends to one destination. Every send carries this producer's `producerId` (a UUID) and the
 * next `producerSeq` (1, 2, …) so that a resend after a failover is recognised by the broker's
 * duplicate detection and stored once.
 */
export class Producer {
  readonly producerId = randomUUID();
  closed = false;
  private seq = 0;
  private readonly persistent: boolean;
  private readonly priority: number;
  private readonly timeToLiveMs: number;

  /** @internal Use session.createProducer(). */
  constructor(
    private readonly session: Session,
    /** Canonical destination, e.g. `queue://orders`. */
    readonly destination: string,
    options: ProducerOptions = {},
  ) {
    this.persistent = options.persistent ?? true;
    this.priority =
      options.priority === undefined ? DEFAULT_PRIORITY : checkPriority(options.priority, 'priority');
    this.timeToLiveMs =
      options.timeToLiveMs === undefined ? 0 : checkTtl(options.timeToLiveMs, 'timeToLiveMs');
  }

  /** The sequence number of the last send (0 before the first). */
  get lastSeq(): number {
    return this.seq;
  }

  /**
   * Send one message; resolves once, after the broker's RECEIPT (for a persistent message,
   * after the store commit). In a transacted session the message is part of the open
   * transaction and takes effect at commit.
   */
  send(body: Buffer | string, options?: SendOptions): Promise<SendResult> {
    // Not an async function: one promise per send (the receipt's) instead of two.
    try {
      return this.session._send(this.message(body, options ?? NO_OPTIONS));
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /** The message of one send, checked (throws InvalidArgumentError). */
  private message(body: Buffer | string, options: SendOptions): Message {
    if (this.closed || this.session.closed)
      throw new InvalidArgumentError('the producer or its session is closed');
    let bytes: Buffer;
    if (Buffer.isBuffer(body)) bytes = body;
    else if (typeof body === 'string') bytes = Buffer.from(body, 'utf8');
    else throw new InvalidArgumentError('message body must be a Buffer or a string');
    const priority =
      options.priority === undefined ? this.priority : checkPriority(options.priority, 'priority');
    const ttl =
      options.timeToLiveMs === undefined ? this.timeToLiveMs : checkTtl(options.timeToLiveMs, 'timeToLiveMs');
    const properties = options.properties ?? {};
    for (const k in properties) {
      const v = properties[k];
      if (!(v === null || typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean')) {
        throw new InvalidArgumentError(`property "${k}" must be a string, number, boolean or null`);
      }
    }
    const now = Date.now();
    this.seq += 1;
    const message: Message = {
      destination: this.destination,
      persistent: options.persistent ?? this.persistent,
      priority,
      timestamp: now,
      expiration: ttl > 0 ? now + ttl : 0,
      correlationId: options.correlationId,
      replyTo: options.replyTo,
      type: options.type,
      producerId: this.producerId,
      producerSeq: this.seq,
      properties,
      body: bytes,
    };
    return message;
  }

  close(): void {
    this.closed = true;
  }
}
