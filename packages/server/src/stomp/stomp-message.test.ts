import { type DeliveredMessage, getStompHeader, StompDecoder } from '@keel/protocol';
import { messageFrameHead } from './stomp-message';

/**
 * The hot MESSAGE head keeps every header value exactly, for both versions. STOMP 1.1 has no
 * escape for CR and its EOL is [CR] LF, so a value ending in CR (a 1.2 producer may send one,
 * escaped as \r) needs one more CR before the LF; found by the codec fuzzer's round trip.
 */
describe('messageFrameHead', () => {
  const message: DeliveredMessage = {
    messageId: 'ID:1',
    destination: 'queue://q',
    persistent: true,
    priority: 4,
    timestamp: 1,
    expiration: 0,
    correlationId: 'ends in CR\r',
    type: 'a\rb:c\\d\ne',
    properties: { p: 'x\r', q: '\r' },
    body: Buffer.from('body'),
    deliveryCount: 0,
    redelivered: false,
  };

  it.each(['1.1', '1.2'] as const)('keeps CR, LF, colon and backslash in values (STOMP %s)', (version) => {
    const head = messageFrameHead(message, { subscription: 's', connectionId: 'c' }, version);
    const bytes = Buffer.concat([Buffer.from(head), message.body, Buffer.from([0])]);
    const [event] = new StompDecoder({ version }).push(bytes);
    if (event?.type !== 'frame') throw new Error('no frame');
    expect(getStompHeader(event.frame, 'correlation-id')).toBe('ends in CR\r');
    expect(getStompHeader(event.frame, 'type')).toBe('a\rb:c\\d\ne');
    expect(getStompHeader(event.frame, 'p')).toBe('x\r');
    expect(getStompHeader(event.frame, 'q')).toBe('\r');
  });
});
