import type { Message } from '@keel/protocol';
import type { SelectorValue } from './ast';

/** What a selector is evaluated over: a queue entry, or a message being published to a topic. */
export interface SelectorSubject {
  /** Store id, also the wire message id (formatMessageId). */
  readonly id: number;
  readonly message: Message;
  readonly priority: number;
  readonly deliveryCount: number;
  readonly redelivered: boolean;
}

/**
 * Header identifiers a selector may name (Jakarta Messaging 2.0 §3.8.1.1: JMSDeliveryMode,
 * JMSPriority, JMSMessageID, JMSTimestamp, JMSCorrelationID, JMSType; and those ActiveMQ's
 * PropertyExpression adds: JMSDestination, JMSReplyTo, JMSExpiration, JMSRedelivered,
 * JMSXDeliveryCount). Any other name is a message property (JMSXGroupID, JMSXGroupSeq … are
 * properties in Keel). `sql`: the same value over a keel_messages row (jsonb `headers`), or null
 * when the store's row does not hold it as the broker sees it (delivery state).
 */
interface HeaderIdentifier {
  get: (s: SelectorSubject) => SelectorValue;
  sql: SqlValue | null;
}

/** A typed SQL expression: the value when it is of that type, else SQL NULL; `isNull` when absent. */
export interface SqlValue {
  isNull: string;
  num: string | null;
  str: string | null;
  bool: string | null;
}

const orNull = <T>(v: T | undefined): T | null => (v === undefined ? null : v);

function jsonbNumber(path: string, zeroIsNull: boolean): SqlValue {
  const n = `(headers->>'${path}')::float8`;
  return {
    isNull: zeroIsNull ? `(${n} IS NULL OR ${n} = 0)` : `(${n} IS NULL)`,
    num: zeroIsNull ? `NULLIF(${n}, 0)` : n,
    str: null,
    bool: null,
  };
}

function stringHeader(path: string): SqlValue {
  const v = `(headers->'${path}')`;
  return {
    isNull: `(jsonb_typeof(${v}) IS DISTINCT FROM 'string')`,
    num: null,
    str: `(CASE WHEN jsonb_typeof(${v}) = 'string' THEN ${v} #>> '{}' END)`,
    bool: null,
  };
}

export const HEADERS: Readonly<Record<string, HeaderIdentifier>> = {
  // §3.8.1.1: "JMSDeliveryMode … the values 'PERSISTENT' and 'NON_PERSISTENT'".
  JMSDeliveryMode: {
    get: (s) => (s.message.persistent ? 'PERSISTENT' : 'NON_PERSISTENT'),
    sql: {
      isNull: 'false',
      num: null,
      str: `(CASE WHEN (headers->>'persistent')::boolean THEN 'PERSISTENT' ELSE 'NON_PERSISTENT' END)`,
      bool: null,
    },
  },
  JMSPriority: {
    get: (s) => s.priority,
    sql: { isNull: 'false', num: 'priority::float8', str: null, bool: null },
  },
  JMSMessageID: {
    get: (s) => String(s.id),
    sql: { isNull: 'false', num: null, str: 'id::text', bool: null },
  },
  // A timestamp of 0 is none (JMS: "JMSTimestamp … set to zero" when disabled): null, as ActiveMQ.
  JMSTimestamp: {
    get: (s) => (s.message.timestamp ? s.message.timestamp : null),
    sql: jsonbNumber('timestamp', true),
  },
  JMSExpiration: {
    get: (s) => s.message.expiration,
    sql: jsonbNumber('expiration', false),
  },
  JMSCorrelationID: { get: (s) => orNull(s.message.correlationId), sql: stringHeader('correlationId') },
  JMSType: { get: (s) => orNull(s.message.type), sql: stringHeader('type') },
  JMSReplyTo: { get: (s) => orNull(s.message.replyTo), sql: stringHeader('replyTo') },
  JMSDestination: { get: (s) => s.message.destination, sql: stringHeader('destination') },
  JMSRedelivered: { get: (s) => s.redelivered || s.deliveryCount > 0, sql: null },
  JMSXDeliveryCount: { get: (s) => s.deliveryCount + 1, sql: null },
};

/** A message property's value; a property that holds null is absent (unknown). */
export function propertyValue(s: SelectorSubject, name: string): SelectorValue {
  const props = s.message.properties;
  if (!Object.hasOwn(props, name)) return null;
  const v = props[name];
  return v === undefined ? null : v;
}

export function headerOf(name: string): HeaderIdentifier | undefined {
  return Object.hasOwn(HEADERS, name) ? HEADERS[name] : undefined;
}

/** SQL for a property (jsonb `headers->'properties'->'name'`), typed by jsonb_typeof. */
export function propertySql(name: string): SqlValue {
  const v = `(headers->'properties'->${sqlString(name)})`;
  const t = `jsonb_typeof(${v})`;
  return {
    isNull: `(${v} IS NULL OR ${t} = 'null')`,
    num: `(CASE WHEN ${t} = 'number' THEN (${v})::float8 END)`,
    str: `(CASE WHEN ${t} = 'string' THEN ${v} #>> '{}' END)`,
    bool: `(CASE WHEN ${t} = 'boolean' THEN (${v})::boolean END)`,
  };
}

/** A SQL string literal (standard_conforming_strings, Postgres' default since 9.1). */
export function sqlString(s: string): string {
  return `'${s.replace(/'/g, "''")}'`;
}
