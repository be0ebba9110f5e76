import {
  type Destination,
  type DestinationType,
  formatDestination,
  InvalidArgumentError,
  isWildcard,
  matchesWildcard,
  parseDestination,
} from '@keel/protocol';

/**
 * ActiveMQ's virtual destinations, as routing in front of the queues and topics (DESIGN.md, "Wave
 * 2"): a send to one destination is delivered to a set of physical ones, stored in one commit.
 *
 * - Virtual topics (ActiveMQ "Virtual Destinations", VirtualTopic `name`, `prefix`, `postfix`;
 *   on by default with name `VirtualTopic.>` and prefix `Consumer.*.`): a message published to
 *   topic `VirtualTopic.X` goes to the topic (its subscribers, as usual) and to every queue that
 *   exists named `Consumer.<anything>.VirtualTopic.X` — ActiveMQ's VirtualTopicInterceptor sends to
 *   the queues matching the wildcard `<prefix><topic><postfix>`, i.e. the queues that exist (created
 *   by a consumer, or recovered from the store) when the message is published.
 * - Composite destinations, sent to (ActiveMQ "Composite Destinations"): a destination whose name
 *   holds commas, `queue://a,b,topic://c` (STOMP `/queue/a,/topic/c`); a member without a type
 *   takes the first member's type.
 * - Configured composite queues and topics (ActiveMQ `compositeQueue`/`compositeTopic` with
 *   `forwardTo` and `forwardOnly`, default true): a send to the composite goes to its members, and
 *   to the composite itself too when `forwardOnly` is false.
 *
 * Members are routed again (a composite may forward to a virtual topic), once each, to a depth of
 * MAX_ROUTING_DEPTH.
 */
export interface VirtualTopicOptions {
  /** Topics this applies to, an ActiveMQ wildcard (`VirtualTopic.>`). */
  name: string;
  /** Consumer queue prefix, a wildcard prefix ending in `.` (`Consumer.*.`). */
  prefix: string;
  /** Consumer queue postfix (ActiveMQ's `postfix`, default empty). */
  postfix?: string;
}

export interface CompositeDestinationOptions {
  /** A composite queue's name (ActiveMQ compositeQueue `name`); give `queue` or `topic`. */
  queue?: string;
  /** A composite topic's name (ActiveMQ compositeTopic `name`). */
  topic?: string;
  /** Members: `/queue/x`, `/topic/x`, `queue://x` or `topic://x`. */
  forwardTo: string[];
  /** ActiveMQ `forwardOnly` (default true): false also delivers to the composite itself. */
  forwardOnly?: boolean;
}

export interface RoutingOptions {
  /** Default DEFAULT_VIRTUAL_TOPICS (ActiveMQ's default); [] turns virtual topics off. */
  virtualTopics?: VirtualTopicOptions[];
  compositeDestinations?: CompositeDestinationOptions[];
}

/** ActiveMQ's default VirtualTopic (VirtualDestinationInterceptor with no configuration). */
export const DEFAULT_VIRTUAL_TOPICS: readonly VirtualTopicOptions[] = Object.freeze([
  Object.freeze({ name: 'VirtualTopic.>', prefix: 'Consumer.*.', postfix: '' }),
]);

export const MAX_ROUTING_DEPTH = 8;

/** Parse one composite member or forwardTo entry; `fallback`: the type of a bare name. */
export function parseRouteMember(text: string, fallback?: DestinationType): Destination {
  const s = text.trim();
  if (s.startsWith('/queue/')) return parseDestination(`queue://${s.slice(7)}`);
  if (s.startsWith('/topic/')) return parseDestination(`topic://${s.slice(7)}`);
  if (s.includes('://')) return parseDestination(s);
  if (fallback === undefined)
    throw new InvalidArgumentError(
      `destination "${text}": expected /queue/NAME, /topic/NAME, queue://NAME or topic://NAME`,
    );
  return parseDestination(`${fallback}://${s}`);
}

interface Composite {
  members: Destination[];
  forwardOnly: boolean;
}

export class DestinationRouter {
  private readonly virtualTopics: readonly Required<VirtualTopicOptions>[];
  private readonly composites = new Map<string, Composite>();
  /** Consumer queues per virtual topic name; cleared when queues come or go. */
  private readonly consumerQueues = new Map<string, string[]>();

  constructor(
    options: RoutingOptions,
    /** The names of the queues (type `queue`) that exist now. */
    private readonly queueNames: () => Iterable<string>,
  ) {
    this.virtualTopics = (options.virtualTopics ?? DEFAULT_VIRTUAL_TOPICS).map((v, i) => {
      const where = `virtualTopics[${i}]`;
      if (typeof v?.name !== 'string' || v.name === '')
        throw new InvalidArgumentError(`${where}.name missing`);
      if (typeof v.prefix !== 'string') throw new InvalidArgumentError(`${where}.prefix must be a string`);
      return { name: v.name, prefix: v.prefix, postfix: v.postfix ?? '' };
    });
    (options.compositeDestinations ?? []).forEach((c, i) => {
      const where = `compositeDestinations[${i}]`;
      if ((c?.queue === undefined) === (c?.topic === undefined))
        throw new InvalidArgumentError(`${where}: give exactly one of queue or topic`);
      const dest = parseDestination(c.queue !== undefined ? `queue://${c.queue}` : `topic://${c.topic}`);
      if (!Array.isArray(c.forwardTo) || c.forwardTo.length === 0)
        throw new InvalidArgumentError(`${where}.forwardTo must list at least one destination`);
      const members = c.forwardTo.map((m) => {
        if (typeof m !== 'string') throw new InvalidArgumentError(`${where}.forwardTo holds a non-string`);
        const d = parseRouteMember(m);
        if (isWildcard(d.name)) throw new InvalidArgumentError(`${where}.forwardTo: ${m} is a wildcard`);
        return d;
      });
      this.composites.set(formatDestination(dest), { members, forwardOnly: c.forwardOnly ?? true });
    });
  }

  /** A queue was created or removed: virtual topics look their consumer queues up again. */
  queuesChanged(): void {
    this.consumerQueues.clear();
  }

  /**
   * The physical destinations a send to `dest` is delivered to, or null when it is just `dest`
   * (the common case, answered without allocating).
   */
  routes(dest: Destination): Destination[] | null {
    if (!this.routed(dest)) return null;
    const out = new Map<string, Destination>();
    this.expand(dest, out, 0);
    return [...out.values()];
  }

  private routed(dest: Destination): boolean {
    if (dest.name.includes(',')) return true;
    if (this.composites.size > 0 && this.composites.has(formatDestination(dest))) return true;
    return dest.type === 'topic' && this.virtualTopicOf(dest.name) !== null;
  }

  private expand(dest: Destination, out: Map<string, Destination>, depth: number): void {
    if (depth > MAX_ROUTING_DEPTH)
      throw new InvalidArgumentError(
        `destination ${formatDestination(dest)}: composite destinations nested more than ${MAX_ROUTING_DEPTH} deep`,
      );
    if (dest.name.includes(',')) {
      let type: DestinationType | undefined;
      for (const part of dest.name.split(',')) {
        if (part.trim() === '') continue;
        const member =
          type === undefined ? { type: dest.type, name: part.trim() } : parseRouteMember(part, type);
        type ??= member.type;
        if (isWildcard(member.name))
          throw new InvalidArgumentError(
            `cannot send to a wildcard destination ${formatDestination(member)}`,
          );
        this.expand(parseDestination(formatDestination(member)), out, depth + 1);
      }
      return;
    }
    const key = formatDestination(dest);
    if (out.has(key)) return;
    const composite = this.composites.get(key);
    if (composite) {
      out.set(key, dest); // visited: a cycle back to it ends here; kept unless forwardOnly
      for (const m of composite.members) this.expand(m, out, depth + 1);
      if (composite.forwardOnly) out.delete(key);
      return;
    }
    out.set(key, dest);
    if (dest.type !== 'topic') return;
    const vt = this.virtualTopicOf(dest.name);
    if (vt === null) return;
    for (const name of this.consumerQueuesOf(dest.name, vt)) {
      const q: Destination = { type: 'queue', name };
      const qk = formatDestination(q);
      if (!out.has(qk)) this.expand(q, out, depth + 1);
    }
  }

  private virtualTopicOf(topicName: string): Required<VirtualTopicOptions> | null {
    for (const vt of this.virtualTopics) if (matchesWildcard(vt.name, topicName)) return vt;
    return null;
  }

  private consumerQueuesOf(topicName: string, vt: Required<VirtualTopicOptions>): string[] {
    let names = this.consumerQueues.get(topicName);
    if (names === undefined) {
      const pattern = `${vt.prefix}${topicName}${vt.postfix}`;
      names = [];
      for (const q of this.queueNames()) if (matchesWildcard(pattern, q)) names.push(q);
      names.sort();
      if (this.consumerQueues.size > 10_000) this.consumerQueues.clear();
      this.consumerQueues.set(topicName, names);
    }
    return names;
  }
}
