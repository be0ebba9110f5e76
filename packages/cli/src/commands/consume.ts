/**
 * `keel consume`: receives from a queue or a topic (optionally a durable subscription) and
 * acknowledges each message on its own ('individual' acknowledgement mode). It stops after
 * `--count` messages, after `--timeout` ms without one, on Ctrl-C, or when the connection closes
 * for good; then it prints one JSON summary line with the duplicates and gaps found in the
 * sequence numbers at the start of the bodies (see sequence-body.ts).
 */
import { connect, type ReceivedMessage } from '@keel/client';
import { InvalidArgumentError } from '@keel/protocol';
import type { Output } from '../output';
import {
  integerOption,
  ProgressLine,
  type RawTargetOptions,
  type Target,
  targetOptions,
  withInterrupt,
} from './load-options';
import type { RunLoadOptions } from './produce';
import { SequenceTracker } from './sequence-body';

/** The consumer's prefetch (ActiveMQ's default for queues is 1000), lowered to --count when smaller. */
export const CONSUME_PREFETCH = 1000;
/** `--print` cuts bodies to this many characters. */
export const PRINT_WIDTH = 80;

export interface ConsumeOptions extends RawTargetOptions {
  count?: string;
  timeout?: string;
  durable?: string;
  clientId?: string;
  print?: boolean;
}

export interface ConsumeSettings {
  target: Target;
  count?: number;
  timeoutMs?: number;
  durableName?: string;
  clientId?: string;
  print: boolean;
  prefetch: number;
}

export interface ConsumeSummary {
  received: number;
  duplicates: number;
  gaps: number;
  redelivered: number;
  elapsedMs: number;
  /** Lowest and highest sequence number received (null when none). */
  firstSeq: number | null;
  lastSeq: number | null;
}

export function consumeSettings(options: ConsumeOptions): ConsumeSettings {
  const target = targetOptions(options);
  const count = integerOption(options.count, '--count', 1);
  const timeoutMs = integerOption(options.timeout, '--timeout', 1);
  if (options.durable !== undefined) {
    if (options.durable.trim() === '') throw new InvalidArgumentError('--durable needs a subscription name');
    if (!target.destination.startsWith('topic://')) {
      throw new InvalidArgumentError('--durable is for topics: use it with --topic');
    }
    if (options.clientId === undefined) {
      throw new InvalidArgumentError(
        '--durable needs --client-id (a durable subscription belongs to a client id)',
      );
    }
  }
  if (options.clientId !== undefined && options.clientId.trim() === '') {
    throw new InvalidArgumentError('--client-id must not be empty');
  }
  return {
    target,
    ...(count !== undefined ? { count } : {}),
    ...(timeoutMs !== undefined ? { timeoutMs } : {}),
    ...(options.durable !== undefined ? { durableName: options.durable.trim() } : {}),
    ...(options.clientId !== undefined ? { clientId: options.clientId.trim() } : {}),
    print: options.print === true,
    prefetch: Math.min(CONSUME_PREFETCH, count ?? CONSUME_PREFETCH),
  };
}

/** A body as one printable line of at most `width` characters. */
export function printableBody(message: Pick<ReceivedMessage, 'body'>, width = PRINT_WIDTH): string {
  const text = message.body.toString('utf8').replace(/[\u0000-\u001f\u007f]+/g, ' ');
  return [...text].slice(0, width).join('');
}

export async function runConsume(
  options: ConsumeOptions,
  output: Output,
  run: RunLoadOptions = {},
): Promise<ConsumeSummary> {
  const settings = consumeSettings(options);
  const { target } = settings;
  const tty = run.tty ?? process.stderr.isTTY === true;
  const progress = new ProgressLine(output.err, tty, run.progressIntervalMs ?? (tty ? 250 : 1000));
  const conn = await connect(target.url, {
    ...(target.username !== undefined ? { username: target.username, password: target.password } : {}),
    ...(settings.clientId !== undefined ? { clientId: settings.clientId } : {}),
  });
  conn.on('interrupted', ({ url, error }) => output.err(`consume: lost ${url}: ${error.message}\n`));
  conn.on('resumed', ({ url }) => output.err(`consume: resumed on ${url}\n`));
  conn.on('error', (err) => output.err(`consume: ${err.message}\n`));

  const tracker = new SequenceTracker();
  let redelivered = 0;
  let ackFailures = 0;
  let lastAckError: Error | null = null;
  const acks = new Set<Promise<void>>();
  let finish: (why: string) => void = () => {};
  const finished = new Promise<string>((resolve) => {
    finish = resolve;
  });
  let done = false;
  let idleTimer: NodeJS.Timeout | undefined;
  const armIdle = () => {
    if (settings.timeoutMs === undefined) return;
    clearTimeout(idleTimer);
    idleTimer = setTimeout(() => finish('timeout'), settings.timeoutMs);
  };
  const onAbort = () => finish('aborted');
  run.signal?.addEventListener('abort', onAbort, { once: true });
  if (run.signal?.aborted) finish('aborted');
  conn.on('close', ({ error }) =>
    finish(error ? `connection closed: ${error.message}` : 'connection closed'),
  );

  const started = Date.now();
  const show = (force = false) => {
    const seconds = (Date.now() - started) / 1000;
    const c = tracker.counts();
    progress.update(
      `consume: received ${c.received}${settings.count ? `/${settings.count}` : ''}, duplicates ${c.duplicates}, gaps ${c.gaps}, ${seconds > 0 ? Math.round(c.received / seconds) : 0} msg/s`,
      force,
    );
  };

  let why: string;
  try {
    const session = await conn.createSession({ ackMode: 'individual' });
    const consumer = await session.createConsumer(target.destination, {
      prefetch: settings.prefetch,
      ...(settings.durableName !== undefined ? { durableName: settings.durableName } : {}),
    });
    consumer.on('error', (err) => output.err(`consume: ${err.message}\n`));
    armIdle();
    // A synchronous listener: the next message comes at once; acks go out without waiting.
    consumer.on('message', (m) => {
      if (done) return; // beyond --count: not acknowledged, so the broker redelivers it to others
      tracker.add(m.body);
      if (m.redelivered) redelivered++;
      if (settings.print) output.out(`${printableBody(m)}\n`);
      const ack = m.ack().catch((err: unknown) => {
        ackFailures++;
        lastAckError = err instanceof Error ? err : new Error(String(err));
      });
      acks.add(ack);
      void ack.finally(() => acks.delete(ack));
      show();
      armIdle();
      if (settings.count !== undefined && tracker.counts().received >= settings.count) finish('count');
    });
    why = await finished;
    done = true;
    clearTimeout(idleTimer);
    await Promise.all([...acks]);
    if (conn.status !== 'closed') await consumer.close().catch(() => {});
  } finally {
    done = true;
    clearTimeout(idleTimer);
    run.signal?.removeEventListener('abort', onAbort);
    show(true);
    progress.done();
    await conn.close().catch(() => {});
  }
  const elapsedMs = Date.now() - started;
  const ackError = lastAckError as Error | null;
  if (ackFailures > 0 && ackError) {
    output.err(`consume: ${ackFailures} acknowledgements failed; last error: ${ackError.message}\n`);
  }
  if (why !== 'count' && why !== 'timeout' && why !== 'aborted') output.err(`consume: stopped: ${why}\n`);
  const c = tracker.counts();
  const summary: ConsumeSummary = {
    received: c.received,
    duplicates: c.duplicates,
    gaps: c.gaps,
    redelivered,
    elapsedMs,
    firstSeq: c.firstSeq,
    lastSeq: c.lastSeq,
  };
  output.out(`${JSON.stringify(summary)}\n`);
  return summary;
}

/** The `keel consume` action: Ctrl-C stops it and prints the summary. */
export function consumeCommand(options: ConsumeOptions, output: Output): Promise<ConsumeSummary> {
  return withInterrupt((signal) => runConsume(options, output, { signal }));
}
