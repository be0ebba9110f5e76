import type { QueueConsumer } from '../message-queue';

/**
 * ActiveMQ "Exclusive Consumer" (`activemq.exclusive:true`, `consumer.exclusive=true`), a dispatch
 * policy (DESIGN.md): while a queue has an exclusive consumer, that one consumer, its owner, gets
 * every message and the others none; when it leaves, its unacknowledged messages come back and the
 * next exclusive consumer takes over (with none left, every consumer competes again).
 *
 * The owner is the first exclusive consumer in the queue's consumer order (priority, highest first,
 * then arrival), as ActiveMQ's Queue.addSubscription picks it: the first to come, unless one of a
 * higher priority joins.
 */
export function exclusiveOwner(consumers: readonly QueueConsumer[]): QueueConsumer | null {
  for (const c of consumers) if (c.exclusive === true) return c;
  return null;
}
