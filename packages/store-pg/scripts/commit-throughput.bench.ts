/**
 * Write-path throughput of PgStore.commit: each commit inserts a batch of 1 KiB messages and
 * deletes the previous batch by id (a queue in steady state: produce and consume), one writer,
 * as in DESIGN.md's measurements. Bounded: BENCH_MESSAGES messages per case (default 50,000).
 *
 *   KEEL_TEST_DATABASE_URL=postgres://postgres@127.0.0.1:55432/postgres \
 *     npx jest --testMatch '**' 'packages/store-pg/scripts/commit-throughput.bench.ts' --testTimeout 600000
 */
import { emptyBatch, type StoredMessage } from '@keel/core';
import { createTestDatabase } from '@keel/testkit';
import { PgStore } from '../src/pg-store';

const TOTAL = Number(process.env.BENCH_MESSAGES ?? 50_000);
const BODY = Buffer.alloc(1024, 'x');

function message(id: number, destId: number): StoredMessage {
  return {
    id,
    destId,
    priority: 4,
    expiration: 0,
    deliveryCount: 0,
    headers: {
      messageId: `ID:${id}`,
      destination: 'queue://bench',
      persistent: true,
      priority: 4,
      timestamp: Date.now(),
      expiration: 0,
      producerId: 'bench-producer',
      producerSeq: id,
      properties: { n: id },
    },
    body: BODY,
  };
}

test('commit throughput', async () => {
  const db = await createTestDatabase();
  const lines: string[] = [];
  try {
    for (const batchSize of (process.env.BENCH_BATCHES ?? '10,100,500').split(',').map(Number)) {
      for (const [label, pipeline, copyThresholdRows] of [
        ['pipelined', true, 1_000_000],
        ['sequential', false, 1_000_000],
        ['sequential+COPY', false, 1],
      ] as const) {
        const store = new PgStore({
          // BENCH_SYNC_COMMIT=off isolates the client/protocol/executor cost from the WAL flush.
          connectionString: process.env.BENCH_SYNC_COMMIT
            ? `${db.url}?options=${encodeURIComponent(`-c synchronous_commit=${process.env.BENCH_SYNC_COMMIT}`)}`
            : db.url,
          cluster: `bench-${batchSize}-${label}`,
          pipeline,
          copyThresholdRows,
        });
        try {
          const q = await store.ensureDestination('queue', 'bench');
          await store.takeOver('bench', 'bench');
          let next = store.idBlock * 2 ** 32;
          let previous: number[] = [];
          const rounds = Math.ceil(TOTAL / batchSize);
          // warm-up (connections, prepared statements)
          for (let i = 0; i < 5; i++) {
            const inserts = Array.from({ length: batchSize }, () => message(++next, q));
            await store.commit({ ...emptyBatch(), inserts, deletes: previous });
            previous = inserts.map((m) => m.id);
          }
          const t0 = process.hrtime.bigint();
          const perCommit: number[] = [];
          for (let r = 0; r < rounds; r++) {
            const inserts = Array.from({ length: batchSize }, () => message(++next, q));
            const c0 = performance.now();
            await store.commit({ ...emptyBatch(), inserts, deletes: previous });
            perCommit.push(performance.now() - c0);
            previous = inserts.map((m) => m.id);
          }
          const s = Number(process.hrtime.bigint() - t0) / 1e9;
          await store.commit({ ...emptyBatch(), deletes: previous });
          const rate = Math.round((rounds * batchSize) / s);
          perCommit.sort((a, b) => a - b);
          const p = (f: number) =>
            perCommit[Math.min(perCommit.length - 1, Math.floor(f * perCommit.length))]!;
          const best = Math.round(batchSize / (p(0.1) / 1000));
          lines.push(
            `batch ${String(batchSize).padStart(3)} ${label.padEnd(15)}: ${rate} msg/s (insert+delete per commit, ${rounds} commits, ${(
              (s * 1000) / rounds
            ).toFixed(
              2,
            )} ms/commit; per commit p10 ${p(0.1).toFixed(2)} p50 ${p(0.5).toFixed(2)} ms; at p10 ${best} msg/s)`,
          );
          expect(await store.countMessages(q)).toBe(0);
        } finally {
          await store.close();
        }
      }
    }
  } finally {
    await db.drop();
  }
  process.stdout.write(`${lines.join('\n')}\n`);
});
