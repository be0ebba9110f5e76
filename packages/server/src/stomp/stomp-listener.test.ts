import {
  headersOf,
  RawStomp,
  type StompFixture,
  startStomp,
  stompitCollect,
  stompitConnect,
  stompitDisconnect,
  stompitSend,
} from './__tests__/stomp-test-kit';

describe('StompListener with stompit', () => {
  let fx: StompFixture;
  afterEach(async () => {
    await fx?.close();
  });

  it('sends to and receives from a queue, with ActiveMQ headers', async () => {
    fx = await startStomp();
    const producer = await stompitConnect(fx.port);
    for (let i = 0; i < 3; i++) {
      await stompitSend(producer, { destination: '/queue/orders', persistent: 'true', 'x-order': `n${i}` }, `order ${i}`);
    }
    const consumer = await stompitConnect(fx.port);
    const inbox = stompitCollect(consumer, { destination: '/queue/orders', ack: 'auto' });
    await inbox.wait(3);
    expect(inbox.texts()).toEqual(['order 0', 'order 1', 'order 2']);
    const h = inbox.items[0]!.headers;
    expect(h.destination).toBe('/queue/orders');
    expect(h['x-order']).toBe('n0');
    expect(h.persistent).toBe('true');
    expect(h.redelivered).toBe('false');
    await stompitDisconnect(producer);
    await stompitDisconnect(consumer);
  });
});
