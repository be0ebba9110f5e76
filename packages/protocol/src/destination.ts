import { InvalidArgumentError } from './errors';

/**
 * Destinations follow ActiveMQ: queues and topics with dot-separated names, temporary queues and
 * topics owned by a connection. Canonical string form: `queue://orders`, `topic://prices.eu`,
 * `temp-queue://ID:conn-1:1`.
 */
export type DestinationType = 'queue' | 'topic' | 'temp-queue' | 'temp-topic';

export interface Destination {
  readonly type: DestinationType;
  readonly name: string;
}

const TYPES: readonly DestinationType[] = ['queue', 'topic', 'temp-queue', 'temp-topic'];
export const MAX_DESTINATION_NAME_LENGTH = 200;

export function isTopicType(type: DestinationType): boolean {
  return type === 'topic' || type === 'temp-topic';
}

/** Validate a destination name: non-empty, bounded, no control characters. */
export function checkDestinationName(name: string): string {
  if (typeof name !== 'string' || name.length === 0) {
    throw new InvalidArgumentError('destination name must be a non-empty string');
  }
  if (name.length > MAX_DESTINATION_NAME_LENGTH) {
    throw new InvalidArgumentError(`destination name longer than ${MAX_DESTINATION_NAME_LENGTH} characters`);
  }
  if (/[\u0000-\u001f\u007f]/.test(name)) {
    throw new InvalidArgumentError('destination name contains control characters');
  }
  return name;
}

/** Parse `queue://x`, `topic://x`, `temp-queue://x`, `temp-topic://x`. */
export function parseDestination(value: string): Destination {
  const i = typeof value === 'string' ? value.indexOf('://') : -1;
  if (i <= 0) {
    throw new InvalidArgumentError(`invalid destination "${value}": expected queue://NAME or topic://NAME`);
  }
  const type = value.slice(0, i) as DestinationType;
  if (!TYPES.includes(type)) {
    throw new InvalidArgumentError(`invalid destination type "${type}" in "${value}"`);
  }
  return { type, name: checkDestinationName(value.slice(i + 3)) };
}

export function formatDestination(d: Destination): string {
  return `${d.type}://${d.name}`;
}

export function queue(name: string): Destination {
  return { type: 'queue', name: checkDestinationName(name) };
}

export function topic(name: string): Destination {
  return { type: 'topic', name: checkDestinationName(name) };
}

/**
 * ActiveMQ wildcards: `.` separates segments, `*` matches one segment, `>` matches one or more
 * trailing segments (only as the last segment).
 */
export function isWildcard(name: string): boolean {
  return name.split('.').some((s) => s === '*' || s === '>');
}

export function matchesWildcard(pattern: string, name: string): boolean {
  const p = pattern.split('.');
  const n = name.split('.');
  for (let i = 0; i < p.length; i++) {
    const seg = p[i];
    if (seg === '>') return n.length > i;
    if (i >= n.length) return false;
    if (seg !== '*' && seg !== n[i]) return false;
  }
  return p.length === n.length;
}
