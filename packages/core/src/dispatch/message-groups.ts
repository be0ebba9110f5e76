import type { QueueConsumer } from '../message-queue';
import type { QueueEntry } from '../queue-entry';

/** ActiveMQ "Message Groups": the group a message belongs to (JMS 2.0 section 3.5.9, JMSX properties). */
export const GROUP_ID = 'JMSXGroupID';
/** The message's position in its group; a value below 1 (ActiveMQ: -1) closes the group. */
export const GROUP_SEQ = 'JMSXGroupSeq';
/** Set (true) on the first message of a group a consumer is given (ActiveMQ Message.setJMSXGroupFirstForConsumer). */
export const GROUP_FIRST_FOR_CONSUMER = 'JMSXGroupFirstForConsumer';

/**
 * How many group assignments a queue remembers (ActiveMQ's CachedMessageGroupMap, its default
 * message group map, keeps 1024 in LRU order). Past it the least recently used group with nothing
 * in flight is forgotten: its next message is assigned afresh, as ActiveMQ does.
 */
export const MAX_GROUPS = 1024;

/** The message's group id, or undefined when it belongs to none (an empty id is none). */
export function groupIdOf(entry: QueueEntry): string | undefined {
  const p = entry.message.properties;
  if (p === undefined) return undefined;
  const g = p[GROUP_ID];
  return g === undefined || g === null || g === '' ? undefined : String(g);
}

/** ActiveMQ Queue.assignMessageGroup: "A group sequence < 1 is an end of group signal" (sequence 0 = unset). */
function closesGroup(entry: QueueEntry): boolean {
  const s = entry.message.properties?.[GROUP_SEQ];
  if (s === undefined || s === null) return false;
  const n = Number(s);
  return Number.isFinite(n) && n < 0;
}

/**
 * Message group ownership of one queue, a dispatch policy (DESIGN.md, "Consumer-side features are
 * dispatch policies"). A group's messages go to one consumer, its owner, until the group closes
 * (JMSXGroupSeq -1) or the owner leaves; the owner gets them in queue order.
 *
 * A group without an owner goes to the consumer with credit, of the highest priority, that owns
 * the fewest groups (ActiveMQ counts assigned groups per consumer the same way,
 * ConsumerInfo.assignedGroupCount), so groups spread across consumers.
 *
 * Order is kept by one rule beyond ActiveMQ's: a group moves to another consumer only when none of
 * its messages is in flight (delivered, not yet acknowledged or returned) and none waits for a
 * redelivery delay. So a leaving owner's unacknowledged messages come back before the group's next
 * one goes anywhere, and after a master takeover (no assignment survives it: the new master
 * rebuilds them as consumers come back) each group is again delivered in stored order.
 */
export class MessageGroups {
  /** Group id → owner, least recently used first. */
  private readonly owners = new Map<string, QueueConsumer>();
  /** Groups each consumer owns. */
  private readonly owned = new Map<QueueConsumer, number>();
  /** Grouped entries in flight → their group id. */
  private readonly flying = new Map<QueueEntry, string>();
  private readonly flyingPerGroup = new Map<string, number>();

  constructor(private readonly maxGroups = MAX_GROUPS) {}

  get size(): number {
    return this.owners.size;
  }

  ownerOf(group: string): QueueConsumer | undefined {
    return this.owners.get(group);
  }

  groupsOf(consumer: QueueConsumer): number {
    return this.owned.get(consumer) ?? 0;
  }

  /**
   * The consumer that may take the group's next message now, or null. `only`: the queue's
   * exclusive consumer, which takes every group; `consumers` in priority order, highest first.
   */
  consumerFor(
    group: string,
    only: QueueConsumer | null,
    consumers: readonly QueueConsumer[],
  ): QueueConsumer | null {
    const owner = this.owners.get(group);
    if (owner !== undefined && (only === null || owner === only)) return owner.canTake() ? owner : null;
    if (this.flyingPerGroup.has(group)) return null;
    if (only !== null) return only.canTake() ? only : null;
    let best: QueueConsumer | null = null;
    let bestLoad = 0;
    for (const c of consumers) {
      if (best !== null && c.priority < best.priority) break;
      if (!c.canTake()) continue;
      const load = this.owned.get(c) ?? 0;
      if (best === null || load < bestLoad) {
        best = c;
        bestLoad = load;
      }
    }
    return best;
  }

  /**
   * The entry of `group` goes to `consumer` now. Returns true when this makes the consumer the
   * group's owner (the delivery carries JMSXGroupFirstForConsumer).
   */
  dispatched(entry: QueueEntry, group: string, consumer: QueueConsumer): boolean {
    const owner = this.owners.get(group);
    const first = owner !== consumer;
    if (first && owner !== undefined) this.release(group, owner);
    this.flying.set(entry, group);
    this.flyingPerGroup.set(group, (this.flyingPerGroup.get(group) ?? 0) + 1);
    if (closesGroup(entry)) {
      if (!first) this.release(group, consumer);
      return first;
    }
    if (first) {
      this.owned.set(consumer, (this.owned.get(consumer) ?? 0) + 1);
      this.owners.set(group, consumer);
      if (this.owners.size > this.maxGroups) this.evict();
    } else {
      // Most recently used last.
      this.owners.delete(group);
      this.owners.set(group, consumer);
    }
    return first;
  }

  /**
   * The entry left flight (acknowledged, returned, redelivered, dead-lettered). Returns true when
   * its group became free to move to another consumer (the queue should dispatch again).
   */
  settled(entry: QueueEntry): boolean {
    const group = this.flying.get(entry);
    if (group === undefined) return false;
    this.flying.delete(entry);
    const n = this.flyingPerGroup.get(group)! - 1;
    if (n > 0) {
      this.flyingPerGroup.set(group, n);
      return false;
    }
    this.flyingPerGroup.delete(group);
    return !this.owners.has(group);
  }

  /** The consumer left the queue: its groups have no owner (their next messages are assigned afresh). */
  consumerLeft(consumer: QueueConsumer): boolean {
    if (!this.owned.has(consumer)) return false;
    for (const [group, owner] of this.owners) if (owner === consumer) this.owners.delete(group);
    this.owned.delete(consumer);
    return true;
  }

  private release(group: string, owner: QueueConsumer): void {
    this.owners.delete(group);
    const n = (this.owned.get(owner) ?? 1) - 1;
    if (n > 0) this.owned.set(owner, n);
    else this.owned.delete(owner);
  }

  /** Forget the least recently used group with nothing in flight (CachedMessageGroupMap's LRU). */
  private evict(): void {
    for (const [group, owner] of this.owners) {
      if (this.flyingPerGroup.has(group)) continue;
      this.release(group, owner);
      return;
    }
  }
}
