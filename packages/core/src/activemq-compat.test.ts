import { KeelError } from '@keel/protocol';
import {
  checkActiveMqSend,
  checkActiveMqSubscribe,
  DESTINATION_RULES,
  SEND_PROPERTY_RULES,
  SUBSCRIBE_HEADER_RULES,
} from './activemq-compat';

/** The NOT_SUPPORTED error `fn` throws, or null. */
function refusal(fn: () => void): KeelError | null {
  try {
    fn();
    return null;
  } catch (err) {
    if (!KeelError.isInstance(err)) throw err;
    return err;
  }
}

describe('ActiveMQ compatibility rules', () => {
  const sends: Array<[string, string, Record<string, string>, boolean, string | null]> = [
    // [case, destination, properties, stomp, refused naming (null: accepted)]
    ['plain queue', 'queue://orders', {}, true, null],
    ['plain topic with properties', 'topic://prices.eu', { colour: 'red' }, false, null],
    ['composite (STOMP form)', 'queue://compA,/queue/compB', {}, true, null],
    ['composite (ActiveMQ form)', 'queue://a,b', {}, false, null],
    ['destination options', 'queue://orders?consumer.exclusive=true', {}, true, 'destination options'],
    ['statistics: destination', 'queue://ActiveMQ.Statistics.Destination.orders', {}, true, 'statistics'],
    ['statistics: broker', 'queue://ActiveMQ.Statistics.Broker', {}, false, 'ActiveMQ.Statistics.Broker'],
    ['statistics: subscription', 'queue://ActiveMQ.Statistics.Subscription', {}, true, 'statistics'],
    ['scheduler management (supported)', 'topic://ActiveMQ.Scheduler.Management', {}, true, null],
    ['advisory topic', 'topic://ActiveMQ.Advisory.Connection', {}, false, 'advisory'],
    ['consumer advisory topic', 'topic://ActiveMQ.Advisory.Consumer.Queue.x', {}, true, 'advisory'],
    ['the DLQ', 'queue://ActiveMQ.DLQ', {}, true, null],
    ['virtual topic', 'topic://VirtualTopic.Orders', {}, true, null],
    ['a queue named like a virtual topic', 'queue://VirtualTopic.Orders', {}, true, null],
    ['message group (supported)', 'queue://q', { JMSXGroupID: 'g1' }, true, null],
    ['message group sequence (supported)', 'queue://q', { JMSXGroupSeq: '-1' }, false, null],
    ['scheduled delay (supported)', 'queue://q', { AMQ_SCHEDULED_DELAY: '1000' }, true, null],
    ['scheduled period (supported)', 'queue://q', { AMQ_SCHEDULED_PERIOD: '10' }, true, null],
    ['scheduled repeat (supported)', 'queue://q', { AMQ_SCHEDULED_REPEAT: '3' }, true, null],
    ['scheduled cron (supported)', 'queue://q', { AMQ_SCHEDULED_CRON: '* * * * *' }, false, null],
    ['scheduler action (supported)', 'queue://q', { AMQ_SCHEDULER_ACTION: 'BROWSE' }, true, null],
    ['STOMP transformation', 'queue://q', { transformation: 'jms-map-json' }, true, 'transformation'],
    ['native property named transformation', 'queue://q', { transformation: 'x' }, false, null],
    ['amq-msg-type (ignored)', 'queue://q', { 'amq-msg-type': 'text' }, true, null],
    ['a property named constructor', 'queue://q', { constructor: 'x' }, true, null],
  ];

  it.each(sends)('send: %s', (_case, destination, properties, stomp, naming) => {
    const err = refusal(() => checkActiveMqSend({ destination, properties }, { stomp }));
    if (naming === null) {
      expect(err).toBeNull();
      return;
    }
    expect(err?.code).toBe('NOT_SUPPORTED');
    expect(err?.message).toContain(naming);
  });

  const subscribes: Array<[string, string, Record<string, string> | undefined, string | null]> = [
    ['plain queue', 'queue://orders', undefined, null],
    ['consumer advisories (network bridges)', 'topic://ActiveMQ.Advisory.Consumer.>', undefined, null],
    ['one consumer advisory', 'topic://ActiveMQ.Advisory.Consumer.Queue.orders', undefined, null],
    ['other advisories', 'topic://ActiveMQ.Advisory.Connection', undefined, 'advisory topics'],
    ['every advisory', 'topic://ActiveMQ.Advisory.>', undefined, 'advisory topics'],
    ['composite', 'queue://a,/queue/b', undefined, 'composite destinations'],
    ['destination options', 'queue://q?consumer.prefetchSize=1', undefined, 'destination options'],
    [
      'consumer.exclusive and consumer.priority (supported)',
      'queue://q?consumer.exclusive=true&consumer.priority=9',
      undefined,
      null,
    ],
    [
      'a supported option beside another',
      'queue://q?consumer.exclusive=true&consumer.retroactive=true',
      undefined,
      'destination options',
    ],
    ['statistics', 'queue://ActiveMQ.Statistics.Broker', undefined, 'statistics'],
    ['virtual topic consumer queue', 'queue://Consumer.A.VirtualTopic.Orders', undefined, null],
    ['exclusive (supported)', 'queue://q', { 'activemq.exclusive': 'true' }, null],
    ['exclusive false', 'queue://q', { 'activemq.exclusive': 'false' }, null],
    ['retroactive', 'topic://t', { 'activemq.retroactive': 'TRUE' }, 'activemq.retroactive'],
    ['retroactive false', 'topic://t', { 'activemq.retroactive': 'false' }, null],
    [
      'pending limit',
      'topic://t',
      { 'activemq.maximumPendingMessageLimit': '10' },
      'maximumPendingMessageLimit',
    ],
    ['pending limit 0', 'topic://t', { 'activemq.maximumPendingMessageLimit': '0' }, null],
    ['pending limit -1', 'topic://t', { 'activemq.maximumPendingMessageLimit': '-1' }, null],
    ['selector (supported)', 'queue://q', { selector: "colour = 'red'" }, null],
    ['empty selector', 'queue://q', { selector: ' ' }, null],
    ['transformation', 'queue://q', { transformation: 'jms-json' }, 'transformation'],
    ['dispatchAsync (ignored)', 'queue://q', { 'activemq.dispatchAsync': 'true' }, null],
    [
      'supported ones',
      'topic://t',
      {
        'activemq.noLocal': 'true',
        'activemq.prefetchSize': '5',
        'activemq.priority': '3',
        'activemq.subscriptionName': 'd',
        'durable-subscription-name': 'd',
        id: '1',
        ack: 'client',
      },
      null,
    ],
  ];

  it.each(subscribes)('subscribe: %s', (_case, destination, headers, naming) => {
    const err = refusal(() => checkActiveMqSubscribe(destination, headers));
    if (naming === null) {
      expect(err).toBeNull();
      return;
    }
    expect(err?.code).toBe('NOT_SUPPORTED');
    expect(err?.message).toContain(naming);
  });

  it('gives every rule a verdict and a feature (the docs list them)', () => {
    const rules = [
      ...Object.values(SUBSCRIBE_HEADER_RULES),
      ...Object.values(SEND_PROPERTY_RULES),
      ...DESTINATION_RULES,
    ];
    for (const r of rules) {
      expect(['supported', 'refused', 'ignored']).toContain(r.verdict);
      expect(r.feature.length).toBeGreaterThan(0);
    }
  });
});
