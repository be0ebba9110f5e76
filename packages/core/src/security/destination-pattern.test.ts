import { patternCovers } from './destination-pattern';

describe('patternCovers (ActiveMQ wildcards)', () => {
  test.each([
    ['orders', 'orders', true],
    ['orders', 'orders.eu', false],
    ['orders.>', 'orders.eu', true],
    ['orders.>', 'orders.eu.new', true],
    ['orders.>', 'orders', false],
    ['orders.*', 'orders.eu', true],
    ['orders.*', 'orders.eu.new', false],
    ['orders.*.new', 'orders.eu.new', true],
    ['orders.*.new', 'orders.eu.old', false],
    ['>', 'anything.at.all', true],
    ['ActiveMQ.Advisory.>', 'ActiveMQ.Advisory.Consumer.Queue.x', true],
  ])('%s covers the name %s: %s', (pattern, name, expected) => {
    expect(patternCovers(pattern, name)).toBe(expected);
  });

  test.each([
    ['orders.>', 'orders.>', true],
    ['orders.>', 'orders.*', true],
    ['orders.>', 'orders.*.eu', true],
    ['>', 'orders.>', true],
    ['orders.*', 'orders.*', true],
    ['orders.*', 'orders.>', false],
    ['orders.eu', 'orders.*', false],
    ['orders.eu.>', 'orders.>', false],
    ['orders.*.eu', 'orders.>', false],
    ['ActiveMQ.Advisory.>', 'ActiveMQ.Advisory.Consumer.>', true],
  ])('%s covers every name of the wildcard %s: %s', (pattern, name, expected) => {
    expect(patternCovers(pattern, name)).toBe(expected);
  });
});
