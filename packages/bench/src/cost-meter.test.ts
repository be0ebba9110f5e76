import { useTestDatabase } from '@keel/testkit';
import { Client } from 'pg';
import {
  CostMeter,
  type CostReading,
  costPerMessage,
  parseProcIo,
  parseProcStat,
  processCpuSeconds,
  processTreeCpuSeconds,
} from './cost-meter';

describe('parseProcStat', () => {
  test('counts the fields from the last parenthesis (a comm may hold spaces and parentheses)', () => {
    // proc(5): pid (comm) state ppid pgrp session tty_nr tpgid flags minflt cminflt majflt cmajflt
    // utime stime cutime cstime priority ...
    const line = '4242 (postgres: w (x) 1) S 17 4242 4242 0 -1 4194560 50 0 0 0 311 27 5 3 20 0 1 0 9 0 0\n';
    expect(parseProcStat(line)).toEqual({ ppid: 17, utime: 311, stime: 27, cutime: 5, cstime: 3 });
  });

  test('refuses text that is not a stat line', () => {
    expect(() => parseProcStat('garbage')).toThrow(RangeError);
  });
});

describe('parseProcIo', () => {
  test('reads syscr and syscw', () => {
    const io = 'rchar: 6976\nwchar: 0\nsyscr: 10\nsyscw: 3\nread_bytes: 0\nwrite_bytes: 0\n';
    expect(parseProcIo(io)).toEqual({ reads: 10, writes: 3 });
    expect(parseProcIo('rchar: 1\n')).toBeNull();
  });
});

describe('process CPU from /proc', () => {
  test('this process burns CPU that /proc sees, and a tree counts at least its root', () => {
    const before = processCpuSeconds(process.pid)!;
    // 100 ms of CPU as the process itself counts it (wall time on a loaded machine says nothing).
    const start = process.cpuUsage();
    let x = 0;
    while (process.cpuUsage(start).user < 100_000) x += Math.sqrt(x + 1);
    expect(x).toBeGreaterThan(0);
    const after = processCpuSeconds(process.pid)!;
    // Clock ticks of 10 ms: at least 0.08 s of the 0.1 s show.
    expect(after - before).toBeGreaterThanOrEqual(0.08);
    expect(processTreeCpuSeconds(process.pid)!).toBeGreaterThanOrEqual(after);
    expect(processCpuSeconds(2 ** 22 + 12345)).toBeNull();
  });
});

describe('costPerMessage', () => {
  const reading = (over: Partial<CostReading>): CostReading => ({
    atMs: 0,
    brokerCpuS: null,
    brokerSyscalls: null,
    pgCpuS: null,
    loadCpuS: 0,
    wal: null,
    ...over,
  });

  test('divides each difference by the messages; absent counters stay absent', () => {
    const c = costPerMessage(
      reading({
        atMs: 1000,
        brokerCpuS: 10,
        brokerSyscalls: { reads: 100, writes: 50 },
        pgCpuS: 4,
        loadCpuS: 1,
        wal: { walBytes: 1e6, walSync: 10, walWrite: 20, walRecords: 5 },
      }),
      reading({
        atMs: 3000,
        brokerCpuS: 11,
        brokerSyscalls: { reads: 2100, writes: 1050 },
        pgCpuS: 4.5,
        loadCpuS: 1.2,
        wal: { walBytes: 1e6 + 2e6, walSync: 510, walWrite: 600, walRecords: 9 },
      }),
      1000,
    );
    expect(c.wallMs).toBe(2000);
    expect(c.brokerCpuUsPerMsg).toBeCloseTo(1000);
    expect(c.pgCpuUsPerMsg).toBeCloseTo(500);
    expect(c.loadCpuUsPerMsg).toBeCloseTo(200);
    expect(c.walBytesPerMsg).toBe(2000);
    expect(c.walSyncsPerMsg).toBe(0.5);
    expect([c.brokerReadsPerMsg, c.brokerWritesPerMsg]).toEqual([2, 1]);
    const bare = costPerMessage(reading({ loadCpuS: 1 }), reading({ loadCpuS: 2 }), 100);
    expect(bare.brokerCpuUsPerMsg).toBeUndefined();
    expect(bare.pgCpuUsPerMsg).toBeUndefined();
    expect(bare.walBytesPerMsg).toBeUndefined();
    expect(bare.loadCpuUsPerMsg).toBeCloseTo(10_000);
  });
});

describe('CostMeter on a real Postgres', () => {
  const db = useTestDatabase();

  test('durable commits show as WAL bytes, fsyncs and Postgres CPU', async () => {
    const work = new Client({ connectionString: db.url });
    await work.connect();
    try {
      await work.query('CREATE TABLE cost_probe (id bigserial PRIMARY KEY, body bytea)');
      // Settle 1.2 s: this backend's WAL stats are flushed at its next transaction end a second on.
      const meter = new CostMeter({ brokerPid: process.pid, pgUrl: db.url, settleMs: 0 });
      await meter.start();
      for (let i = 0; i < 50; i++) {
        await work.query('INSERT INTO cost_probe (body) VALUES ($1)', [Buffer.alloc(1024, i)]);
      }
      await new Promise((r) => setTimeout(r, 1100));
      // A transaction after PGSTAT_MIN_INTERVAL flushes this backend's pending WAL counters.
      await work.query('SELECT 1');
      await work.query('INSERT INTO cost_probe (body) VALUES ($1)', [Buffer.alloc(1024, 1)]);
      const cost = await meter.finish(51);
      // 51 autocommitted inserts of 1 KiB: each at least its row in the WAL and a flush.
      expect(cost.totals.walBytes).toBeGreaterThan(51 * 1024);
      expect(cost.totals.walSyncs).toBeGreaterThanOrEqual(1);
      expect(cost.pgCpuUsPerMsg).toBeGreaterThan(0);
      expect(cost.brokerCpuUsPerMsg).toBeGreaterThanOrEqual(0);
      // This process wrote to its Postgres socket for every insert.
      expect(cost.brokerWritesPerMsg).toBeGreaterThanOrEqual(1);
      expect(cost.loadCpuUsPerMsg).toBeGreaterThan(0);
    } finally {
      await work.end();
    }
  });
});
