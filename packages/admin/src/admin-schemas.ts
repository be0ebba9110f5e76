import { MAX_DESTINATION_NAME_LENGTH, MAX_PRIORITY, MIN_PRIORITY } from '@keel/protocol';
import { NODE_ROLES } from './admin-context';

/**
 * JSON schemas of the admin API: fastify validates input with them (400 on a mismatch) and
 * serializes output with them, and @fastify/swagger publishes them as OpenAPI at /docs.
 */

export const DEFAULT_BROWSE_LIMIT = 50;
export const MAX_BROWSE_LIMIT = 1000;
export const MAX_BROWSE_OFFSET = 1_000_000;
export const DEFAULT_PREVIEW_BYTES = 1024;
export const MAX_PREVIEW_BYTES = 65_536;
export const DEFAULT_TAKEOVER_LIMIT = 20;

const int = { type: 'integer' } as const;
const nullableInt = { type: ['integer', 'null'] } as const;
const nullableNumber = { type: ['number', 'null'] } as const;
const nullableString = { type: ['string', 'null'] } as const;
const dateTime = { type: 'string', format: 'date-time' } as const;

/** A destination name as the broker accepts it (see checkDestinationName in @keel/protocol). */
export const destinationName = {
  type: 'string',
  minLength: 1,
  maxLength: MAX_DESTINATION_NAME_LENGTH,
  pattern: '^[^\\u0000-\\u001f\\u007f]+$',
  description: `Destination name without the queue:// prefix: 1-${MAX_DESTINATION_NAME_LENGTH} characters, no control characters.`,
} as const;

export const nameParams = {
  type: 'object',
  required: ['name'],
  additionalProperties: false,
  properties: { name: destinationName },
} as const;

export const messageParams = {
  type: 'object',
  required: ['name', 'id'],
  additionalProperties: false,
  properties: {
    name: destinationName,
    id: {
      type: 'string',
      pattern: '^[0-9]{1,16}$',
      description: 'Message id (decimal, as browse shows it).',
    },
  },
} as const;

export const durableParams = {
  type: 'object',
  required: ['clientId', 'name'],
  additionalProperties: false,
  properties: {
    clientId: { type: 'string', minLength: 1, maxLength: 256 },
    name: { type: 'string', minLength: 1, maxLength: 256 },
  },
} as const;

export const browseQuery = {
  type: 'object',
  additionalProperties: false,
  properties: {
    limit: { type: 'integer', minimum: 1, maximum: MAX_BROWSE_LIMIT, default: DEFAULT_BROWSE_LIMIT },
    offset: { type: 'integer', minimum: 0, maximum: MAX_BROWSE_OFFSET, default: 0 },
    previewBytes: {
      type: 'integer',
      minimum: 0,
      maximum: MAX_PREVIEW_BYTES,
      default: DEFAULT_PREVIEW_BYTES,
      description: 'How many bytes of each body to show.',
    },
  },
} as const;

export const takeoverQuery = {
  type: 'object',
  additionalProperties: false,
  properties: { limit: { type: 'integer', minimum: 1, maximum: 1000, default: DEFAULT_TAKEOVER_LIMIT } },
} as const;

export const errorReply = {
  type: 'object',
  required: ['statusCode', 'error', 'code', 'message'],
  properties: {
    statusCode: int,
    error: { type: 'string' },
    code: { type: 'string', description: 'Stable error code (docs/errors.md).' },
    message: { type: 'string' },
    master: {
      ...nullableString,
      description: 'On 409 NOT_MASTER: the node holding the master lock, if known.',
    },
  },
} as const;

const role = { type: 'string', enum: [...NODE_ROLES] } as const;

export const brokerReply = {
  type: 'object',
  required: [
    'name',
    'cluster',
    'role',
    'epoch',
    'nodeEpoch',
    'startedAt',
    'uptimeSeconds',
    'version',
    'lockHolder',
    'readOnly',
    'listeners',
  ],
  properties: {
    name: { type: 'string' },
    cluster: { type: 'string' },
    role,
    epoch: {
      ...int,
      description: "The cluster's current epoch (the lock's), read from Postgres on a slave.",
    },
    nodeEpoch: {
      type: ['integer', 'null'],
      description: 'The epoch this node last served at as master; null when it never was master.',
    },
    startedAt: dateTime,
    uptimeSeconds: { type: 'number' },
    version: { type: 'string' },
    lockHolder: nullableString,
    locker: {
      type: 'object',
      description:
        'The master lock: row, lease or file; the file locker names its directory and the holder its lock file records.',
      required: ['kind', 'directory', 'holder'],
      properties: {
        kind: { type: 'string', enum: ['row', 'lease', 'file'] },
        directory: nullableString,
        holder: {
          type: ['object', 'null'],
          required: ['name', 'host', 'pid', 'epoch', 'acquiredAt'],
          properties: {
            name: { type: 'string' },
            host: { type: 'string' },
            pid: { type: 'integer' },
            epoch: { type: 'integer' },
            acquiredAt: { type: 'string' },
          },
        },
        lease: {
          type: ['object', 'null'],
          description:
            "The master's lease as the lock records it (lease locker; file locker with leaseDuration): last renewal and expiry; null without a lease.",
          required: ['holder', 'renewedAt', 'expiresAt', 'durationMs'],
          properties: {
            holder: nullableString,
            renewedAt: { type: 'string' },
            expiresAt: { type: 'string' },
            durationMs: { type: 'integer' },
          },
        },
      },
    },
    readOnly: { type: 'boolean', description: 'True unless this node is the serving master.' },
    listeners: {
      type: 'object',
      required: ['native', 'stomp', 'admin'],
      properties: {
        native: nullableString,
        stomp: nullableString,
        ssl: nullableString,
        stompSsl: nullableString,
        admin: { type: 'string' },
      },
    },
    postgres: {
      type: 'array',
      description:
        "The node's Postgres pools (store, lock, admin): the URL's host list, target_session_attrs, the host in use and why hosts were passed over.",
      items: {
        type: 'object',
        required: ['name', 'target', 'hosts', 'current', 'rejected'],
        properties: {
          name: { type: 'string' },
          target: { type: 'string' },
          hosts: { type: 'array', items: { type: 'string' } },
          current: nullableString,
          rejected: { type: 'object', additionalProperties: { type: 'string' } },
        },
      },
    },
  },
} as const;

export const clusterReply = {
  type: 'object',
  required: ['cluster', 'master', 'epoch', 'nodes', 'takeovers'],
  properties: {
    cluster: { type: 'string' },
    master: nullableString,
    epoch: int,
    nodes: {
      type: 'array',
      items: {
        type: 'object',
        required: ['name', 'role', 'lastSeen'],
        properties: {
          name: { type: 'string' },
          role: { type: 'string', enum: [...NODE_ROLES, 'unknown'] },
          lastSeen: { type: ['string', 'null'], format: 'date-time' },
        },
      },
    },
    takeovers: {
      type: 'array',
      description: 'Newest first.',
      items: {
        type: 'object',
        required: ['node', 'epoch', 'reason', 'at'],
        properties: { node: { type: 'string' }, epoch: int, reason: { type: 'string' }, at: dateTime },
      },
    },
  },
} as const;

const queueProperties = {
  name: { type: 'string' },
  temporary: { type: 'boolean' },
  depth: { ...int, description: 'Pending messages (in flight included).' },
  enqueued: nullableInt,
  dequeued: nullableInt,
  expired: nullableInt,
  deadLettered: nullableInt,
  consumers: nullableInt,
  inflight: nullableInt,
  inMemory: {
    ...nullableInt,
    description:
      'Messages held in memory (waiting, in flight, delayed); the rest stays in the store. Master only.',
  },
  oldestMessageAgeMs: nullableNumber,
} as const;
const queueRequired = Object.keys(queueProperties).filter((k) => k !== 'inMemory');

export const queueReply = {
  type: 'object',
  description: 'Counters are null on a slave (it answers from the store).',
  required: ['readOnly', ...queueRequired],
  properties: { readOnly: { type: 'boolean' }, ...queueProperties },
} as const;

export const queueListReply = {
  type: 'object',
  required: ['readOnly', 'queues'],
  properties: {
    readOnly: { type: 'boolean' },
    queues: {
      type: 'array',
      items: { type: 'object', required: queueRequired, properties: queueProperties },
    },
  },
} as const;

const propertiesObject = {
  type: 'object',
  additionalProperties: { type: ['string', 'number', 'boolean', 'null'] },
} as const;

export const browsedMessage = {
  type: 'object',
  required: [
    'id',
    'destination',
    'persistent',
    'priority',
    'timestamp',
    'expiration',
    'properties',
    'deliveryCount',
    'redelivered',
    'bodySize',
    'bodyEncoding',
    'bodyPreview',
    'bodyTruncated',
  ],
  properties: {
    id: { type: 'string' },
    destination: { type: 'string' },
    persistent: { type: 'boolean' },
    priority: int,
    timestamp: { type: 'number', description: 'ms since the epoch' },
    expiration: { type: 'number', description: 'ms since the epoch, 0 = never' },
    correlationId: { type: 'string' },
    replyTo: { type: 'string' },
    type: { type: 'string' },
    producerId: { type: 'string' },
    originalDestination: { type: 'string', description: 'Set on dead-lettered messages.' },
    dlqReason: { type: 'string' },
    properties: propertiesObject,
    deliveryCount: int,
    redelivered: { type: 'boolean' },
    bodySize: { ...int, description: 'Body length in bytes.' },
    bodyEncoding: { type: 'string', enum: ['utf8', 'base64'] },
    bodyPreview: { type: 'string', description: 'The first previewBytes bytes of the body.' },
    bodyTruncated: { type: 'boolean' },
  },
} as const;

export const browseReply = {
  type: 'object',
  required: ['queue', 'readOnly', 'offset', 'limit', 'messages'],
  properties: {
    queue: { type: 'string' },
    readOnly: { type: 'boolean' },
    offset: int,
    limit: int,
    messages: { type: 'array', items: browsedMessage },
  },
} as const;

export const sendBody = {
  type: 'object',
  required: ['body'],
  additionalProperties: false,
  properties: {
    body: { type: 'string', description: 'The body, as text or base64 (see encoding).' },
    encoding: { type: 'string', enum: ['utf8', 'base64'], default: 'utf8' },
    persistent: { type: 'boolean', default: true },
    priority: { type: 'integer', minimum: MIN_PRIORITY, maximum: MAX_PRIORITY, default: 4 },
    timeToLiveMs: { type: 'integer', minimum: 0, default: 0, description: '0: never expires.' },
    correlationId: { type: 'string', maxLength: 1024 },
    replyTo: { type: 'string', maxLength: 1024, description: 'e.g. queue://replies' },
    type: { type: 'string', maxLength: 1024 },
    properties: propertiesObject,
  },
} as const;

export const sendReply = {
  type: 'object',
  required: ['messageId', 'destination', 'duplicate'],
  properties: {
    messageId: { type: 'string' },
    destination: { type: 'string' },
    duplicate: { type: 'boolean' },
  },
} as const;

export const moveBody = {
  type: 'object',
  required: ['to'],
  additionalProperties: false,
  properties: { to: { ...destinationName, description: 'Target queue name.' } },
} as const;

export const moveReply = {
  type: 'object',
  required: ['messageId', 'from', 'to'],
  properties: { messageId: { type: 'string' }, from: { type: 'string' }, to: nullableString },
} as const;

export const purgeReply = {
  type: 'object',
  required: ['queue', 'purged'],
  properties: { queue: { type: 'string' }, purged: int },
} as const;

export const deletedReply = {
  type: 'object',
  required: ['deleted'],
  properties: { deleted: { type: 'string' } },
} as const;

const topicProperties = {
  name: { type: 'string' },
  temporary: { type: 'boolean' },
  enqueued: nullableInt,
  subscribers: nullableInt,
  durableSubscriptions: int,
} as const;

const durableProperties = {
  clientId: { type: 'string' },
  name: { type: 'string' },
  topic: { type: 'string' },
  active: { type: ['boolean', 'null'] },
  pending: int,
  inflight: nullableInt,
} as const;
const durableItem = {
  type: 'object',
  required: Object.keys(durableProperties),
  properties: durableProperties,
} as const;

export const topicListReply = {
  type: 'object',
  required: ['readOnly', 'topics'],
  properties: {
    readOnly: { type: 'boolean' },
    topics: {
      type: 'array',
      items: { type: 'object', required: Object.keys(topicProperties), properties: topicProperties },
    },
  },
} as const;

export const topicReply = {
  type: 'object',
  required: ['readOnly', ...Object.keys(topicProperties), 'subscriptions'],
  properties: {
    readOnly: { type: 'boolean' },
    ...topicProperties,
    subscriptions: { type: 'array', items: durableItem },
  },
} as const;

export const durableListReply = {
  type: 'object',
  required: ['readOnly', 'subscriptions'],
  properties: { readOnly: { type: 'boolean' }, subscriptions: { type: 'array', items: durableItem } },
} as const;

export const connectionListReply = {
  type: 'object',
  required: ['readOnly', 'connections'],
  properties: {
    readOnly: { type: 'boolean' },
    connections: {
      type: 'array',
      items: {
        type: 'object',
        required: [
          'id',
          'clientId',
          'protocol',
          'username',
          'remoteAddress',
          'connectedAt',
          'consumers',
          'messagesIn',
          'messagesOut',
        ],
        properties: {
          id: { type: 'string' },
          clientId: { type: 'string' },
          protocol: { type: 'string' },
          username: nullableString,
          remoteAddress: nullableString,
          connectedAt: dateTime,
          consumers: int,
          messagesIn: int,
          messagesOut: int,
        },
      },
    },
  },
} as const;

export const consumerListReply = {
  type: 'object',
  required: ['readOnly', 'consumers'],
  properties: {
    readOnly: { type: 'boolean' },
    consumers: {
      type: 'array',
      items: {
        type: 'object',
        required: [
          'connectionId',
          'clientId',
          'consumerId',
          'destinations',
          'credit',
          'inflight',
          'delivered',
        ],
        properties: {
          connectionId: { type: 'string' },
          clientId: { type: 'string' },
          consumerId: { type: 'string' },
          destinations: { type: 'array', items: { type: 'string' } },
          credit: int,
          inflight: int,
          delivered: int,
        },
      },
    },
  },
} as const;

export const healthReply = {
  type: 'object',
  required: ['status'],
  properties: { status: { type: 'string' }, role, node: { type: 'string' } },
} as const;

export const handoverReply = {
  type: 'object',
  required: ['node', 'handedOver'],
  properties: { node: { type: 'string' }, handedOver: { type: 'boolean' } },
} as const;

export const bridgeListReply = {
  type: 'object',
  required: ['readOnly', 'bridges'],
  properties: {
    readOnly: { type: 'boolean' },
    bridges: {
      type: 'array',
      items: {
        type: 'object',
        required: ['connector', 'peerUrl', 'state', 'forwarding', 'forwarded', 'inflight'],
        properties: {
          connector: { type: 'string' },
          localName: { type: 'string' },
          peerUrl: { type: 'string' },
          remoteName: { type: ['string', 'null'] },
          state: { type: 'string' },
          forwarding: {
            type: 'array',
            items: { type: 'string' },
            description: 'destinations with demand on the peer',
          },
          forwarded: { type: 'integer' },
          inflight: { type: 'integer' },
          connects: { type: 'integer' },
          lastError: { type: ['string', 'null'] },
          duplex: { type: 'boolean', description: 'the link carries both directions (ActiveMQ duplex)' },
          accepted: {
            type: 'boolean',
            description: "the accepting end of a peer's duplex connector (this node has no connector for it)",
          },
          received: {
            type: 'integer',
            description: 'messages the peer forwarded to this node over the duplex link',
          },
        },
      },
    },
  },
} as const;

// ----- scheduled delivery (AMQ_SCHEDULED_*) ------------------------------------------------------

export const DEFAULT_SCHEDULED_LIMIT = 100;
export const MAX_SCHEDULED_LIMIT = 1000;

export const scheduledQuery = {
  type: 'object',
  additionalProperties: false,
  properties: {
    limit: { type: 'integer', minimum: 1, maximum: MAX_SCHEDULED_LIMIT, default: DEFAULT_SCHEDULED_LIMIT },
    after: {
      type: 'string',
      pattern: '^-?\\d+:.+$',
      description: 'Page after this job: the `next` of the previous page (`<nextDueMs>:<jobId>`).',
    },
  },
} as const;

export const jobParams = {
  type: 'object',
  required: ['id'],
  properties: { id: { type: 'string', minLength: 1, maxLength: 200 } },
} as const;

export const scheduledJob = {
  type: 'object',
  required: [
    'jobId',
    'destination',
    'nextDue',
    'delayMs',
    'periodMs',
    'repeat',
    'repeatsLeft',
    'cron',
    'fired',
    'createdAt',
    'bodySize',
  ],
  properties: {
    jobId: {
      type: 'string',
      description: 'scheduledJobId: the id of the message that asked for the schedule.',
    },
    destination: { type: 'string' },
    nextDue: { type: 'string', format: 'date-time' },
    delayMs: int,
    periodMs: int,
    repeat: { ...int, description: 'AMQ_SCHEDULED_REPEAT: firings after the first of each series.' },
    repeatsLeft: { ...int, description: 'Firings of the current series still to come after the next one.' },
    cron: nullableString,
    fired: int,
    createdAt: { type: 'string', format: 'date-time' },
    bodySize: int,
  },
} as const;

export const scheduledListReply = {
  type: 'object',
  required: ['jobs', 'next'],
  properties: {
    jobs: { type: 'array', items: scheduledJob },
    next: { ...nullableString, description: 'Pass as `after` for the next page; null on the last page.' },
  },
} as const;

export const scheduledCancelReply = {
  type: 'object',
  required: ['cancelled'],
  properties: { cancelled: { type: 'string' } },
} as const;
