/**
 * `keel produce` and `keel consume` against a real broker node (packages/cli/dist/main.js broker,
 * started by the testkit on this file's own database): the summaries must add up.
 * Needs the built CLI: `npx tsc -b tsconfig.json` first.
 */
import { type BrokerProcess, startBroker, useTestDatabase } from '@keel/testkit';
import { bufferOutput } from '../output';
import { runConsume } from './consume';
import { runProduce } from './produce';

const db = useTestDatabase();
let broker: BrokerProcess;

beforeAll(async () => {
  broker = await startBroker({ db: db.url, name: 'pc-1', cluster: `pc-${process.pid}` });
  await broker.waitForRole('master', 30_000);
});

afterAll(async () => {
  await broker?.stop();
});

describe('keel produce / keel consume on a real broker', () => {
  it('sends N numbered persistent messages and receives each once, in full', async () => {
    const url = `tcp://127.0.0.1:${broker.port}`;
    const produced = bufferOutput();
    const sent = await runProduce(
      { url, queue: 'cli-pc', count: '500', size: '300', persistent: true },
      produced,
      { tty: false, progressIntervalMs: 100 },
    );
    expect(sent).toMatchObject({ sent: 500, receipted: 500, failed: 0, url });
    expect(sent.ratePerS).toBeGreaterThan(0);
    // stdout is exactly the JSON summary; progress went to stderr
    expect(JSON.parse(produced.stdout())).toEqual(sent);
    expect(produced.stderr()).toMatch(/produce: sent 500\/500, receipted 500, failed 0/);

    const consumed = bufferOutput();
    const got = await runConsume(
      { url, queue: 'cli-pc', count: '500', timeout: '10000', print: true },
      consumed,
      {
        tty: false,
      },
    );
    expect(got).toMatchObject({
      received: 500,
      duplicates: 0,
      gaps: 0,
      redelivered: 0,
      firstSeq: 1,
      lastSeq: 500,
    });
    const lines = consumed.stdout().trimEnd().split('\n');
    expect(lines).toHaveLength(501);
    expect(lines[0]).toBe(`000001 ${'x'.repeat(73)}`);
    expect(lines[499]?.startsWith('000500 ')).toBe(true);
    expect(JSON.parse(lines[500] as string)).toEqual(got);

    // Everything was acknowledged: nothing is left on the queue.
    const left = await runConsume({ url, queue: 'cli-pc', timeout: '500' }, bufferOutput(), { tty: false });
    expect(left).toMatchObject({ received: 0, duplicates: 0, gaps: 0, firstSeq: null, lastSeq: null });
  });

  it('paces sends with --rate', async () => {
    const url = `tcp://127.0.0.1:${broker.port}`;
    const summary = await runProduce({ url, queue: 'cli-rate', count: '20', rate: '50' }, bufferOutput(), {
      tty: false,
    });
    expect(summary.receipted).toBe(20);
    // 20 messages at 50/s: the last one is due 380 ms after the first.
    expect(summary.elapsedMs).toBeGreaterThanOrEqual(370);
    const got = await runConsume({ url, queue: 'cli-rate', count: '20' }, bufferOutput(), { tty: false });
    expect(got).toMatchObject({ received: 20, duplicates: 0, gaps: 0 });
  });
});
