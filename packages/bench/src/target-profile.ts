import type { BenchDestination } from './bench-driver';
import type { Target } from './bench-options';

/**
 * What differs between brokers over STOMP: destination names, the prefetch header, the CONNECT
 * `host` header and the headers that make a queue durable.
 */
export interface TargetProfile {
  /** The CONNECT `host` header (RabbitMQ: the virtual host). */
  connectHost(urlHost: string): string;
  destination(d: BenchDestination): string;
  /** Extra SEND headers besides `persistent:true` and `receipt`. */
  sendHeaders(d: BenchDestination): Record<string, string>;
  /** Extra SUBSCRIBE headers, the prefetch among them. */
  subscribeHeaders(d: BenchDestination, prefetch: number): Record<string, string>;
}

/** ActiveMQ conventions, which Keel follows: `/queue/x`, `/topic/x`, `activemq.prefetchSize`. */
const ACTIVEMQ_PROFILE: TargetProfile = {
  connectHost: (host) => host,
  destination: (d) => `/${d.kind}/${d.name}`,
  sendHeaders: () => ({}),
  // ActiveMQ "Stomp" page, "Prefetch size": `activemq.prefetchSize` on SUBSCRIBE.
  subscribeHeaders: (_d, prefetch) => ({ 'activemq.prefetchSize': String(prefetch) }),
};

const DURABLE_QUEUE: Readonly<Record<string, string>> = { durable: 'true', 'auto-delete': 'false' };

/**
 * RabbitMQ's STOMP plugin: `/queue/x` is a queue on the default exchange, `/topic/x` routes
 * through `amq.topic`; `prefetch-count` on SUBSCRIBE; `durable`/`auto-delete` are declaration
 * headers, sent on SEND too because a SEND to `/queue/x` declares the queue.
 */
const RABBITMQ_PROFILE: TargetProfile = {
  connectHost: () => '/',
  destination: (d) => `/${d.kind}/${d.name}`,
  sendHeaders: (d) => (d.kind === 'queue' ? { ...DURABLE_QUEUE } : {}),
  subscribeHeaders: (d, prefetch) => ({
    'prefetch-count': String(prefetch),
    ...(d.kind === 'queue' ? DURABLE_QUEUE : {}),
  }),
};

export function targetProfile(target: Target): TargetProfile {
  return target === 'rabbitmq' ? RABBITMQ_PROFILE : ACTIVEMQ_PROFILE;
}
