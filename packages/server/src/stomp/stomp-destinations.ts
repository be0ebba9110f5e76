import { checkDestinationName, InvalidArgumentError } from '@keel/protocol';

/**
 * ActiveMQ's STOMP destination names (ActiveMQ "Stomp" page, "Working with Destinations with
 * Stomp"; its LegacyFrameTranslator):
 *
 *   /queue/NAME              queue://NAME
 *   /topic/NAME              topic://NAME
 *   /temp-queue/X            temp-queue://<connection-id>.X   (scoped to the connection)
 *   /temp-topic/X            temp-topic://<connection-id>.X
 *   /remote-temp-queue/Y     temp-queue://Y                   (another connection's temp queue)
 *   /remote-temp-topic/Y     temp-topic://Y
 *   NAME (no known prefix)   queue://NAME                     (ActiveMQ treats it as a queue)
 *
 * Going back, a temporary destination owned by the receiving connection is shown as
 * `/temp-queue/X`, and one owned by another connection as `/remote-temp-queue/<id>.X`, so a reply
 * sent to a MESSAGE's `reply-to` reaches the requester's `/temp-queue/X` subscription.
 */
const PREFIXES = [
  ['/queue/', 'queue'],
  ['/topic/', 'topic'],
  ['/temp-queue/', 'temp-queue'],
  ['/temp-topic/', 'temp-topic'],
  ['/remote-temp-queue/', 'remote-temp-queue'],
  ['/remote-temp-topic/', 'remote-temp-topic'],
] as const;

/** Map a STOMP destination to Keel's canonical form for the connection `connectionId`. */
export function stompToKeelDestination(value: string, connectionId: string): string {
  if (typeof value !== 'string' || value.length === 0) {
    throw new InvalidArgumentError('STOMP destination must not be empty');
  }
  for (const [prefix, kind] of PREFIXES) {
    if (!value.startsWith(prefix)) continue;
    const name = value.slice(prefix.length);
    checkDestinationName(name);
    switch (kind) {
      case 'queue':
      case 'topic':
        return `${kind}://${name}`;
      case 'temp-queue':
      case 'temp-topic':
        return `${kind}://${connectionId}.${name}`;
      case 'remote-temp-queue':
        return `temp-queue://${name}`;
      case 'remote-temp-topic':
        return `temp-topic://${name}`;
    }
  }
  // ActiveMQ: a name without a destination prefix is a queue.
  return `queue://${checkDestinationName(value)}`;
}

/** Map Keel's canonical destination back to ActiveMQ's STOMP form as seen by `connectionId`. */
export function keelToStompDestination(value: string, connectionId: string): string {
  const i = value.indexOf('://');
  if (i <= 0) return value;
  const type = value.slice(0, i);
  const name = value.slice(i + 3);
  switch (type) {
    case 'queue':
      return `/queue/${name}`;
    case 'topic':
      return `/topic/${name}`;
    case 'temp-queue':
    case 'temp-topic': {
      const own = `${connectionId}.`;
      if (name.startsWith(own) && name.length > own.length) return `/${type}/${name.slice(own.length)}`;
      return `/remote-${type}/${name}`;
    }
    default:
      return value;
  }
}
