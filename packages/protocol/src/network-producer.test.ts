import { networkProducerId, parseNetworkProducerId } from './message';

describe('network producer ids (net:<origin>:<id>)', () => {
  it('round-trips origin and id, origins with colons included', () => {
    expect(parseNetworkProducerId(networkProducerId('east', '4294967297'))).toEqual({
      origin: 'east',
      id: 4294967297,
    });
    expect(parseNetworkProducerId(networkProducerId('dc1:east', '12'))).toEqual({
      origin: 'dc1:east',
      id: 12,
    });
  });

  it('is null for every other producer id', () => {
    for (const pid of [
      undefined,
      '',
      'p1',
      '1b4e28ba-2fa1-11d2-883f-0016d3cca427',
      'net:',
      'net:east',
      'net::12',
      'net:east:',
      'net:east:12a',
      'net:east:-12',
      'net:east:1.5',
      'net:east:99999999999999999',
      'NET:east:12',
    ]) {
      expect(parseNetworkProducerId(pid)).toBeNull();
    }
  });
});
