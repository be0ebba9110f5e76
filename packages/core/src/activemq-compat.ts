import { InvalidArgumentError, type Properties } from '@keel/protocol';
import { hasOnlyConsumerOptions } from './dispatch/destination-options';

/**
 * What Keel does with each thing ActiveMQ Classic gives a meaning to in a SEND or a SUBSCRIBE
 * (ActiveMQ "Stomp" page: SUBSCRIBE headers, "Stomp extensions for JMS message semantics";
 * "Delay and Schedule Message Delivery"; "Message Groups"; "Destination Options"; "Composite
 * Destinations"; "Virtual Destinations"; "Advisory Message"; "StatisticsBrokerPlugin").
 *
 * - `supported`: Keel does what ActiveMQ does (the code named in `note`);
 * - `refused`: Keel would silently do something else, so the frame is refused with `NOT_SUPPORTED`
 *   naming it, and nothing is stored or subscribed — until the feature exists;
 * - `ignored`: a hint with no effect a client could observe on Keel; accepted on purpose.
 *
 * docs/protocol.md section 11.1 lists these tables; keep them in step.
 */
export type CompatVerdict = 'supported' | 'refused' | 'ignored';

export interface HeaderRule {
  verdict: CompatVerdict;
  /** The ActiveMQ feature, as the ERROR and the docs name it. */
  feature: string;
  /** For `refused`: true when this value asks for the feature (default: any value). */
  refuses?: (value: string) => boolean;
  /** Only a STOMP header has this meaning (a native property of that name is an ordinary one). */
  stompOnly?: boolean;
  note?: string;
}

const isTrue = (v: string): boolean => v.trim().toLowerCase() === 'true';

/** SUBSCRIBE headers (ActiveMQ "Stomp", "SUBSCRIBE" table) — STOMP only; native SUBSCRIBE has fields. */
export const SUBSCRIBE_HEADER_RULES: Readonly<Record<string, HeaderRule>> = {
  'activemq.dispatchAsync': {
    verdict: 'ignored',
    feature: 'asynchronous dispatch',
    note: 'a broker-side threading hint; ActiveMQ 5.15.5+ always dispatches asynchronously',
  },
  'activemq.exclusive': {
    verdict: 'supported',
    feature: 'exclusive consumers',
    note: 'dispatch/exclusive-consumer.ts',
  },
  'activemq.maximumPendingMessageLimit': {
    verdict: 'refused',
    feature: 'slow-consumer message dropping (maximumPendingMessageLimit)',
    // ActiveMQ TopicSubscription: a limit of 0 or less drops nothing.
    refuses: (v) => !(/^\s*-?\d+\s*$/.test(v) && Number(v) <= 0),
  },
  'activemq.noLocal': { verdict: 'supported', feature: 'no-local topic subscriptions' },
  'activemq.prefetchSize': { verdict: 'supported', feature: 'prefetch size' },
  'activemq.priority': { verdict: 'supported', feature: 'consumer priority' },
  'activemq.retroactive': { verdict: 'refused', feature: 'retroactive consumers', refuses: isTrue },
  'activemq.subscriptionName': { verdict: 'supported', feature: 'durable topic subscriptions' },
  'durable-subscription-name': { verdict: 'supported', feature: 'durable topic subscriptions' },
  // JMS message selectors (selector/; Broker.subscribe parses them, INVALID_SELECTOR when invalid).
  selector: { verdict: 'supported', feature: 'message selectors' },
  transformation: { verdict: 'refused', feature: 'STOMP message transformations' },
};

/** SEND headers (STOMP) and message properties (native, admin API) with an ActiveMQ meaning. */
export const SEND_PROPERTY_RULES: Readonly<Record<string, HeaderRule>> = {
  JMSXGroupID: { verdict: 'supported', feature: 'message groups', note: 'dispatch/message-groups.ts' },
  JMSXGroupSeq: { verdict: 'supported', feature: 'message groups', note: 'dispatch/message-groups.ts' },
  AMQ_SCHEDULED_DELAY: {
    verdict: 'supported',
    feature: 'scheduled delivery',
    note: 'scheduler/message-scheduler.ts',
  },
  AMQ_SCHEDULED_PERIOD: {
    verdict: 'supported',
    feature: 'scheduled delivery',
    note: 'scheduler/message-scheduler.ts',
  },
  AMQ_SCHEDULED_REPEAT: {
    verdict: 'supported',
    feature: 'scheduled delivery',
    note: 'scheduler/message-scheduler.ts',
  },
  AMQ_SCHEDULED_CRON: {
    verdict: 'supported',
    feature: 'scheduled delivery',
    note: 'scheduler/message-scheduler.ts',
  },
  AMQ_SCHEDULER_ACTION: {
    verdict: 'supported',
    feature: 'scheduler management',
    note: 'on ActiveMQ.Scheduler.Management: BROWSE, REMOVE, REMOVEALL (scheduler/message-scheduler.ts)',
  },
  transformation: { verdict: 'refused', feature: 'STOMP message transformations', stompOnly: true },
  'amq-msg-type': {
    verdict: 'ignored',
    feature: 'text or bytes message type',
    stompOnly: true,
    note: 'Keel bodies are bytes either way; the header travels as a property',
  },
};

export interface DestinationRule {
  verdict: CompatVerdict;
  feature: string;
  /** What a name (after `type://`) looks like; `type` limits the rule to queues or topics. */
  matches: (name: string, type: string) => boolean;
  /** The rule's verdict for a subscription, when it differs from a send's. */
  subscribe?: CompatVerdict;
}

const ADVISORY = 'ActiveMQ.Advisory.';
/** Keel publishes the consumer advisories (network bridges subscribe to them), no others. */
const CONSUMER_ADVISORY = `${ADVISORY}Consumer.`;

/** Destination names ActiveMQ reads a meaning into, in the order they are checked. */
export const DESTINATION_RULES: readonly DestinationRule[] = [
  // ActiveMQ "Composite Destinations": `/queue/a,/queue/b` is delivered to each (routing/
  // destination-router.ts). Consuming from several destinations at once is not offered.
  {
    verdict: 'supported',
    subscribe: 'refused',
    feature: 'composite destinations (subscribing to one)',
    matches: (n) => n.includes(','),
  },
  // ActiveMQ "Destination Options": `orders?consumer.exclusive=true` (ActiveMQDestination parses them).
  // A consumer's exclusive and priority options are applied (dispatch/destination-options.ts); any
  // other option, and options on a send, are refused.
  {
    verdict: 'refused',
    subscribe: 'supported',
    feature: 'destination options',
    matches: (n) => n.includes('?') && hasOnlyConsumerOptions(n),
  },
  { verdict: 'refused', feature: 'destination options', matches: (n) => n.includes('?') },
  // StatisticsBrokerPlugin: ActiveMQ.Statistics.Broker, .Destination.<name>, .Subscription.
  {
    verdict: 'refused',
    feature: 'statistics plugin destinations',
    matches: (n) => n.startsWith('ActiveMQ.Statistics.'),
  },
  // Sends only (AMQ_SCHEDULER_ACTION); nothing is ever published there to subscribe to.
  {
    verdict: 'supported',
    subscribe: 'refused',
    feature: 'scheduler management destination (a send with AMQ_SCHEDULER_ACTION)',
    matches: (n) => n === 'ActiveMQ.Scheduler.Management',
  },
  // Advisory topics are the broker's: a client's send would forge one. Subscribing to the consumer
  // advisories is supported (network-service's AdvisoryPublisher); to any other, refused.
  {
    verdict: 'refused',
    subscribe: 'refused',
    feature: 'advisory topics; Keel publishes only ActiveMQ.Advisory.Consumer.*',
    matches: (n) => n.startsWith(ADVISORY) && !n.startsWith(CONSUMER_ADVISORY),
  },
  {
    verdict: 'refused',
    subscribe: 'supported',
    feature: 'advisory topics, which only the broker publishes',
    matches: (n) => n.startsWith(CONSUMER_ADVISORY),
  },
  // ActiveMQ "Virtual Destinations" (topic VirtualTopic.X feeding queues Consumer.*.VirtualTopic.X)
  // are supported: routing/destination-router.ts.
];

function ruleOf(rules: Readonly<Record<string, HeaderRule>>, name: string): HeaderRule | undefined {
  return Object.hasOwn(rules, name) ? rules[name] : undefined;
}

function notSupported(what: string, feature: string): InvalidArgumentError {
  return new InvalidArgumentError(
    `${what} (ActiveMQ ${feature}) is not supported by Keel yet; refused (docs/protocol.md, "ActiveMQ features")`,
    'NOT_SUPPORTED',
  );
}

function checkDestination(destination: string, op: 'send' | 'subscribe'): void {
  const i = destination.indexOf('://');
  const type = i > 0 ? destination.slice(0, i) : '';
  const name = i > 0 ? destination.slice(i + 3) : destination;
  // Every rule needs one of these; most names have none (the send path's common case).
  if (!name.includes(',') && !name.includes('?') && !/^(ActiveMQ|VirtualTopic|Consumer)\./.test(name)) return;
  for (const rule of DESTINATION_RULES) {
    if (!rule.matches(name, type)) continue;
    const verdict = op === 'subscribe' ? (rule.subscribe ?? rule.verdict) : rule.verdict;
    if (verdict === 'refused') throw notSupported(`destination ${destination}`, rule.feature);
    return;
  }
}

/**
 * Throw `NOT_SUPPORTED` if this message asks for an ActiveMQ feature Keel does not have (its
 * destination or a property). `stomp`: the properties are a STOMP SEND's headers.
 */
export function checkActiveMqSend(
  message: { destination: string; properties?: Properties },
  options: { stomp?: boolean } = {},
): void {
  checkDestination(message.destination, 'send');
  const properties = message.properties;
  if (!properties) return;
  for (const name in properties) {
    const rule = ruleOf(SEND_PROPERTY_RULES, name);
    if (rule === undefined || rule.verdict !== 'refused' || (rule.stompOnly && !options.stomp)) continue;
    const value = properties[name];
    if (rule.refuses && !rule.refuses(value === null || value === undefined ? '' : String(value))) continue;
    throw notSupported(`${options.stomp ? 'SEND header' : 'message property'} ${name}`, rule.feature);
  }
}

/**
 * Throw `NOT_SUPPORTED` if this subscription asks for an ActiveMQ feature Keel does not have: its
 * destination (Keel form, `queue://x`) or, for STOMP, a SUBSCRIBE header.
 */
export function checkActiveMqSubscribe(
  destination: string,
  stompHeaders?: Readonly<Record<string, string | undefined>>,
): void {
  checkDestination(destination, 'subscribe');
  if (!stompHeaders) return;
  for (const name in stompHeaders) {
    const rule = ruleOf(SUBSCRIBE_HEADER_RULES, name);
    const value = stompHeaders[name];
    if (rule === undefined || rule.verdict !== 'refused' || value === undefined) continue;
    if (rule.refuses && !rule.refuses(value)) continue;
    throw notSupported(`SUBSCRIBE header ${name}`, rule.feature);
  }
}
