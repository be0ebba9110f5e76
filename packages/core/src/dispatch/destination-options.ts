import { InvalidArgumentError } from '@keel/protocol';

/**
 * ActiveMQ "Destination Options" that Keel applies to a consumer: `queue://orders?consumer.exclusive=true`
 * or `?consumer.priority=10` on a SUBSCRIBE's destination (ActiveMQ parses the query with
 * URISupport.parseQuery and sets the `consumer.`-prefixed ones on the ConsumerInfo, after the STOMP
 * headers: they win). Other options stay refused (activemq-compat.ts).
 */
const SUPPORTED = new Set(['consumer.exclusive', 'consumer.priority']);

function parseQuery(query: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const part of query.split('&')) {
    if (part === '') continue;
    const eq = part.indexOf('=');
    const key = decodeURIComponent(eq < 0 ? part : part.slice(0, eq));
    out.set(key, eq < 0 ? '' : decodeURIComponent(part.slice(eq + 1)));
  }
  return out;
}

/** True when the destination has options and Keel applies every one of them. */
export function hasOnlyConsumerOptions(destination: string): boolean {
  const q = destination.indexOf('?');
  if (q < 0) return false;
  try {
    const options = parseQuery(destination.slice(q + 1));
    if (options.size === 0) return false;
    for (const key of options.keys()) if (!SUPPORTED.has(key)) return false;
    return true;
  } catch {
    return false; // a malformed %-escape
  }
}

/**
 * The subscription with its destination's options applied and removed from the destination
 * (`destination` without `?…`). Throws INVALID_ARGUMENT for a value ActiveMQ would not parse.
 */
export function applyConsumerOptions<
  T extends { destination: string; exclusive?: boolean; priority?: number },
>(subscription: T): T {
  const q = subscription.destination.indexOf('?');
  if (q < 0) return subscription;
  const out = { ...subscription, destination: subscription.destination.slice(0, q) };
  for (const [key, value] of parseQuery(subscription.destination.slice(q + 1))) {
    if (key === 'consumer.exclusive') {
      const v = value.trim().toLowerCase();
      if (v !== 'true' && v !== 'false')
        throw new InvalidArgumentError(
          `destination option consumer.exclusive must be true or false, got ${JSON.stringify(value)}`,
        );
      out.exclusive = v === 'true';
    } else if (key === 'consumer.priority') {
      const n = Number(value);
      if (value.trim() === '' || !Number.isInteger(n) || n < -128 || n > 127)
        throw new InvalidArgumentError(
          `destination option consumer.priority must be an integer -128..127, got ${JSON.stringify(value)}`,
        );
      out.priority = n;
    } else {
      throw new InvalidArgumentError(
        `destination option ${key} (ActiveMQ destination options) is not supported by Keel yet; refused (docs/protocol.md, "ActiveMQ features")`,
        'NOT_SUPPORTED',
      );
    }
  }
  return out;
}
