import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePorts } from '@keel/testkit';
import * as amqp from 'amqplib';
import { AmqpDriver } from './amqp-driver';
import type { BenchConnection, BenchMessage } from './bench-driver';
import { runBench } from './run-bench';

/**
 * The AMQP 0-9-1 driver against a real RabbitMQ (Debian's rabbitmq-server), started for this file
 * by scripts/peers.sh in a directory and on ports of its own. CI does not install RabbitMQ: there
 * the tests are skipped, and say so.
 */
const RABBIT = '/usr/lib/rabbitmq/bin/rabbitmq-server';
const installed = existsSync(RABBIT);
const describeRabbit = installed ? describe : describe.skip;
if (!installed) {
  console.warn(
    `amqp-driver.test.ts: SKIPPED, RabbitMQ is not installed (${RABBIT}); apt-get install rabbitmq-server`,
  );
}

const exec = promisify(execFile);
const PEERS = join(__dirname, '../scripts/peers.sh');

describeRabbit('AmqpDriver against RabbitMQ', () => {
  jest.setTimeout(120_000);
  let dir: string;
  let env: NodeJS.ProcessEnv;
  let url: string;
  let brokerPid: number;
  let raw: amqp.ChannelModel;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'keel-amqp-test-'));
    const [amqpPort, stompPort, distPort, epmdPort] = await freePorts(4);
    env = {
      ...process.env,
      KEEL_PEERS_DIR: dir,
      RABBIT_AMQP_PORT: String(amqpPort),
      RABBIT_STOMP_PORT: String(stompPort),
      RABBIT_DIST_PORT: String(distPort),
      ERL_EPMD_PORT: String(epmdPort),
      RABBIT_NODE: `keeltest${process.pid}@localhost`,
      // Beside two CPU-bound processes and the rest of the suite, RabbitMQ took over 110 s to boot.
      PEER_START_WAIT_S: '270',
    };
    const { stdout } = await exec('bash', [PEERS, 'start', 'rabbitmq'], { env, timeout: 280_000 });
    brokerPid = Number(stdout.trim().split('\n').pop());
    url = `amqp://127.0.0.1:${amqpPort}`;
    raw = await amqp.connect(url);
  }, 300_000);

  afterAll(async () => {
    await raw?.close().catch(() => undefined);
    if (env) await exec('bash', [PEERS, 'stop', 'rabbitmq'], { env, timeout: 60_000 }).catch(() => undefined);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const open: BenchConnection[] = [];
  afterEach(async () => {
    await Promise.all(open.splice(0).map((c) => c.close()));
  });
  const connect = async (queueType: 'classic' | 'quorum', name: string) => {
    const c = await new AmqpDriver({ url, queueType }).connect(name);
    open.push(c);
    return c;
  };

  test('confirmed persistent sends on a durable classic queue, every one received and acked', async () => {
    const q = { kind: 'queue' as const, name: `t-classic-${Date.now()}` };
    const producer = await connect('classic', 'p');
    const consumer = await connect('classic', 'c');
    const got: string[] = [];
    let done!: () => void;
    const all = new Promise<void>((r) => {
      done = r;
    });
    await consumer.subscribe(q, {
      prefetch: 50,
      onMessage: (m: BenchMessage) => {
        got.push(m.body.toString());
        m.ack();
        if (got.length === 200) done();
      },
    });
    // A window of 16 sends awaiting their confirm, as the bench's producers do.
    let next = 0;
    const loop = async () => {
      while (next < 200) await producer.send(q, Buffer.from(`m${next++}`));
    };
    await Promise.all(Array.from({ length: 16 }, loop));
    await all;
    expect(new Set(got).size).toBe(200);
    // Durable and classic: re-declaring with those arguments is accepted; nothing left ready.
    const ch = await raw.createChannel();
    const ok = await ch.assertQueue(q.name, { durable: true, arguments: { 'x-queue-type': 'classic' } });
    expect(ok.messageCount).toBe(0);
    await ch.close();
  });

  test('messages are persistent (delivery-mode 2) and the quorum target declares a quorum queue', async () => {
    const q = { kind: 'queue' as const, name: `t-quorum-${Date.now()}` };
    const producer = await connect('quorum', 'p');
    await producer.send(q, Buffer.from('kept'));
    const ch = await raw.createChannel();
    ch.on('error', () => undefined); // the 406 below closes this channel
    const m = await ch.get(q.name, { noAck: false });
    if (m === false) throw new Error('the message was not in the queue');
    expect(m.content.toString()).toBe('kept');
    expect(m.properties.deliveryMode).toBe(2);
    ch.ack(m);
    // x-queue-type is an equivalence argument: a classic re-declaration is refused (406).
    await expect(
      ch.assertQueue(q.name, { durable: true, arguments: { 'x-queue-type': 'classic' } }),
    ).rejects.toThrow(/PRECONDITION_FAILED|inequivalent/);
  });

  test('prefetch bounds the unacknowledged deliveries of a consumer (manual acks)', async () => {
    const q = { kind: 'queue' as const, name: `t-prefetch-${Date.now()}` };
    const producer = await connect('classic', 'p');
    for (let i = 0; i < 20; i++) await producer.send(q, Buffer.from(`m${i}`));
    const consumer = await connect('classic', 'c');
    const held: BenchMessage[] = [];
    let five!: () => void;
    const gotFive = new Promise<void>((r) => {
      five = r;
    });
    await consumer.subscribe(q, {
      prefetch: 5,
      onMessage: (m) => {
        held.push(m);
        if (held.length === 5) five();
      },
    });
    await gotFive;
    // RabbitMQ counts ready messages only: 5 delivered unacked, 15 still ready.
    const ch = await raw.createChannel();
    expect((await ch.checkQueue(q.name)).messageCount).toBe(15);
    await ch.close();
    expect(held.length).toBe(5);
  });

  test('runBench drives rabbitmq-amqp end to end and reports the broker CPU per message', async () => {
    const lines: string[] = [];
    const sink = { write: (s: string) => lines.push(s) !== 0 } as unknown as NodeJS.WritableStream;
    const report = await runBench(
      [
        'throughput',
        '--target',
        'rabbitmq-amqp',
        '--url',
        url,
        '--count',
        '500',
        '--in-flight',
        '8',
        '--producers',
        '2',
        '--consumers',
        '2',
        '--broker-pid',
        String(brokerPid),
        '--quiet',
      ],
      { stdout: sink, stderr: sink },
    );
    const run = report!.runs[0]!;
    expect(report!.protocol).toBe('amqp');
    expect(run.kind).toBe('flow');
    if (run.kind !== 'flow') return;
    expect(run.sent).toBe(500);
    expect(run.received).toBe(500);
    expect(run.missing).toBe(0);
    expect(run.cost?.brokerCpuUsPerMsg).toBeGreaterThan(0);
    expect(lines.join('')).toContain('broker µs/msg');
  });

  test('many-queues over AMQP: queues × 4 consumers on channels of a few connections, each message once (#25.4)', async () => {
    const sink = { write: () => true } as unknown as NodeJS.WritableStream;
    const report = await runBench(
      [
        'many-queues',
        '--target',
        'rabbitmq-amqp',
        '--url',
        url,
        '--queues',
        '20',
        '--consumers',
        '3',
        '--count',
        '400',
      ].concat([
        '--in-flight',
        '8',
        '--producers',
        '2',
        '--idle-settle-ms',
        '500',
        '--broker-pid',
        String(brokerPid),
        '--quiet',
      ]),
      { stdout: sink, stderr: sink },
    );
    const run = report!.runs[0]!;
    if (run.kind !== 'many-queues') throw new Error(`not a many-queues run: ${run.kind}`);
    expect(run.errors).toEqual([]);
    expect([run.sent, run.received, run.missing, run.duplicates]).toEqual([400, 400, 0, 0]);
    expect(run.subscriptions).toBe(80);
    expect(run.rss?.idleKiB).toBeGreaterThan(0);
    expect(run.cost?.brokerCpuUsPerMsg).toBeGreaterThan(0);
    // 20 messages on each queue, all consumed.
    const ch = await raw.createChannel();
    const name = run.destinationPrefix.replace('/queue/', '');
    expect((await ch.checkQueue(`${name}.q-19`)).messageCount).toBe(0);
    await ch.close();
  });

  test('connections over AMQP: idle connections (a channel each) beside a paced load (#25.4)', async () => {
    const sink = { write: () => true } as unknown as NodeJS.WritableStream;
    const report = await runBench(
      [
        'connections',
        '--target',
        'rabbitmq-amqp',
        '--url',
        url,
        '--idle-connections',
        '30',
        '--duration-ms',
        '1500',
      ].concat(['--rate', '100', '--broker-pid', String(brokerPid), '--quiet']),
      { stdout: sink, stderr: sink },
    );
    const run = report!.runs[0]!;
    if (run.kind !== 'connections') throw new Error(`not a connections run: ${run.kind}`);
    expect(run.idle.opened).toBe(30);
    expect(run.idle.failed).toBe(0);
    expect(run.missing).toBe(0);
    expect(run.before.sent).toBeGreaterThan(0);
    expect(run.withIdle.sent).toBeGreaterThan(0);
    expect(run.rss?.perIdleConnectionKiB).not.toBeNull();
  });
});
