/**
 * A primary and a streaming standby on loopback for tests (issue #20): @keel/server's
 * startPostgresPair (shared with `keel drill --mode pg-failover`) on two free ports.
 */
import { type PostgresPair, startPostgresPair as startPair } from '@keel/server';
import { freePort } from './free-port';

export type { PairRejoin, PostgresNode, PostgresPair } from '@keel/server';

export async function startPostgresPair(options: { synchronous?: boolean } = {}): Promise<PostgresPair> {
  const first = await freePort();
  let second = await freePort();
  while (second === first) second = await freePort();
  return startPair({ ...options, ports: [first, second] });
}
