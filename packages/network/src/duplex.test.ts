import { parseNetworkConnector } from './connector-config';
import { DUPLEX_CLIENT_ID_PREFIX, duplexOptions, duplexQueues } from './duplex';

describe('duplex links', () => {
  it("runs the accepting side with the initiator's options, credentials excluded", () => {
    const sent = parseNetworkConnector(
      'static:(tcp://b:61616)?duplex=true&name=east&networkTTL=3&prefetchSize=7&excludedDestinations=queue://x.>&userName=u&password=p',
    ).options;
    const o = duplexOptions(JSON.stringify({ ...sent, userName: null, password: null }));
    expect(o).toMatchObject({
      name: 'east',
      duplex: true,
      networkTTL: 3,
      messageTTL: 3,
      consumerTTL: 3,
      prefetchSize: 7,
      excludedDestinations: ['queue://x.>'],
      userName: null,
      password: null,
    });
  });

  it('falls back to the defaults for missing or mistyped options', () => {
    const o = duplexOptions(
      JSON.stringify({ prefetchSize: 'lots', messageTTL: 0, name: 5, excludedDestinations: [1] }),
    );
    expect(o).toMatchObject({ name: 'bridge', prefetchSize: 1000, messageTTL: 1, excludedDestinations: [] });
    expect(duplexOptions('not json').networkTTL).toBe(1);
    expect(duplexOptions(undefined).replayWhenNoConsumers).toBe(true);
  });

  it('names the two temporary queues after the link id carried in the client id', () => {
    expect(DUPLEX_CLIENT_ID_PREFIX).toBe('network-duplex:');
    expect(duplexQueues('abc')).toEqual({
      toInitiator: 'temp-queue://keel.duplex.abc.to-initiator',
      toAcceptor: 'temp-queue://keel.duplex.abc.to-acceptor',
    });
  });
});
