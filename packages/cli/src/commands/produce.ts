/**
 * `keel produce`: sends N numbered messages (bodies `000001 xxx…`, see sequence-body.ts) to a queue
 * or a topic and waits for the broker's receipt of each; a window of sends stays in flight for
 * speed, `--rate` paces them. A progress line goes to stderr; the summary, one JSON object, to
 * stdout.
 */
import { connect, type Producer } from '@keel/client';
import { InvalidArgumentError } from '@keel/protocol';
import type { Output } from '../output';
import {
  integerOption,
  ProgressLine,
  type RawTargetOptions,
  rateOption,
  sleep,
  type Target,
  targetOptions,
  withInterrupt,
} from './load-options';
import { sequenceBody } from './sequence-body';

/** Sends waiting for their receipt at any one time. */
export const PRODUCE_WINDOW = 64;
export const DEFAULT_PRODUCE_SIZE_BYTES = 100;
/** Largest body `--size` accepts (the client's default maximum frame is 4 MiB). */
export const MAX_PRODUCE_SIZE_BYTES = 4 * 1024 * 1024 - 4096;

/** What commander hands over: strings, as typed. */
export interface ProduceOptions extends RawTargetOptions {
  count?: string;
  size?: string;
  persistent?: boolean;
  rate?: string;
}

export interface ProduceSettings {
  target: Target;
  count: number;
  sizeBytes: number;
  persistent: boolean;
  /** Messages per second; undefined = as fast as the window allows. */
  ratePerS?: number;
  window: number;
}

export interface ProduceSummary {
  sent: number;
  receipted: number;
  failed: number;
  elapsedMs: number;
  ratePerS: number;
  url: string;
}

export interface RunLoadOptions {
  /** Stops the command early (Ctrl-C); the summary is still printed. */
  signal?: AbortSignal;
  /** Rewrite the progress line in place (default: whether stderr is a terminal). */
  tty?: boolean;
  /** How often the progress line changes. */
  progressIntervalMs?: number;
}

/** Checks the options and fills in the defaults; errors name the option. */
export function produceSettings(options: ProduceOptions): ProduceSettings {
  const target = targetOptions(options);
  const count = integerOption(options.count, '--count', 1);
  if (count === undefined) throw new InvalidArgumentError('--count is required');
  const sizeBytes =
    integerOption(options.size, '--size', 1, MAX_PRODUCE_SIZE_BYTES) ?? DEFAULT_PRODUCE_SIZE_BYTES;
  const ratePerS = rateOption(options.rate, '--rate');
  return {
    target,
    count,
    sizeBytes,
    persistent: options.persistent === true,
    ...(ratePerS !== undefined ? { ratePerS } : {}),
    window: PRODUCE_WINDOW,
  };
}

export interface SendLoopOptions {
  producer: Producer;
  sizeBytes: number;
  /** The body size of message seq, when they vary (default sizeBytes for each). */
  sizeOf?: (seq: number) => number;
  /** Stop after this many sends; undefined = until stopped. */
  count?: number;
  /** First sequence number (default 1). */
  firstSeq?: number;
  ratePerS?: number;
  window: number;
  signal?: AbortSignal;
  /** Checked before each send: true stops the loop (e.g. the connection closed for good). */
  shouldStop?: () => boolean;
  onSent?: (seq: number) => void;
  onReceipt?: (seq: number, atMs: number) => void;
  onFailure?: (seq: number, err: Error) => void;
}

/**
 * Sends numbered messages with at most `window` waiting for their receipt, paced to `ratePerS`
 * (each send has its slot at start + i / rate: a pause is not made up by a burst beyond the window).
 * Resolves when every send has its receipt or its failure.
 */
export async function sendLoop(options: SendLoopOptions): Promise<{ sent: number }> {
  let inFlight = 0;
  let wake: (() => void) | null = null;
  const settle = () => {
    inFlight--;
    const w = wake;
    wake = null;
    w?.();
  };
  const start = Date.now();
  let sent = 0;
  const first = options.firstSeq ?? 1;
  const intervalMs = options.ratePerS ? 1000 / options.ratePerS : 0;
  while (options.count === undefined || sent < options.count) {
    if (options.signal?.aborted || options.shouldStop?.()) break;
    if (intervalMs > 0) {
      const due = start + sent * intervalMs;
      const wait = due - Date.now();
      if (wait > 1) await sleep(wait, options.signal);
      if (options.signal?.aborted) break;
    }
    while (inFlight >= options.window) {
      await new Promise<void>((resolve) => {
        wake = resolve;
      });
    }
    if (options.signal?.aborted || options.shouldStop?.()) break;
    const seq = first + sent;
    sent++;
    inFlight++;
    options.onSent?.(seq);
    let promise: Promise<unknown>;
    try {
      promise = options.producer.send(sequenceBody(seq, options.sizeOf?.(seq) ?? options.sizeBytes));
    } catch (err) {
      promise = Promise.reject(err);
    }
    promise.then(
      () => {
        options.onReceipt?.(seq, Date.now());
        settle();
      },
      (err: unknown) => {
        options.onFailure?.(seq, err instanceof Error ? err : new Error(String(err)));
        settle();
      },
    );
  }
  while (inFlight > 0) {
    await new Promise<void>((resolve) => {
      wake = resolve;
    });
  }
  return { sent };
}

export async function runProduce(
  options: ProduceOptions,
  output: Output,
  run: RunLoadOptions = {},
): Promise<ProduceSummary> {
  const settings = produceSettings(options);
  const { target } = settings;
  const tty = run.tty ?? process.stderr.isTTY === true;
  const progress = new ProgressLine(output.err, tty, run.progressIntervalMs ?? (tty ? 250 : 1000));
  const conn = await connect(target.url, {
    ...(target.username !== undefined ? { username: target.username, password: target.password } : {}),
  });
  let closed = false;
  let lastError: Error | null = null;
  conn.on('close', ({ error }) => {
    closed = true;
    if (error) lastError = error;
  });
  conn.on('interrupted', ({ url, error }) => output.err(`produce: lost ${url}: ${error.message}\n`));
  conn.on('resumed', ({ url }) => output.err(`produce: resumed on ${url}\n`));
  conn.on('error', (err) => {
    lastError = err;
  });

  let receipted = 0;
  let failed = 0;
  let sentSoFar = 0;
  const started = Date.now();
  const show = (force = false) => {
    const seconds = (Date.now() - started) / 1000;
    const rate = seconds > 0 ? Math.round(receipted / seconds) : 0;
    progress.update(
      `produce: sent ${sentSoFar}/${settings.count}, receipted ${receipted}, failed ${failed}, ${rate} msg/s`,
      force,
    );
  };
  let sent = 0;
  try {
    const session = await conn.createSession();
    const producer = session.createProducer(target.destination, { persistent: settings.persistent });
    ({ sent } = await sendLoop({
      producer,
      sizeBytes: settings.sizeBytes,
      count: settings.count,
      ...(settings.ratePerS !== undefined ? { ratePerS: settings.ratePerS } : {}),
      window: settings.window,
      ...(run.signal ? { signal: run.signal } : {}),
      shouldStop: () => closed,
      onSent: () => {
        sentSoFar++;
        show();
      },
      onReceipt: () => {
        receipted++;
        show();
      },
      onFailure: (_seq, err) => {
        failed++;
        lastError = err;
      },
    }));
  } finally {
    show(true);
    progress.done();
    await conn.close().catch(() => {});
  }
  const elapsedMs = Date.now() - started;
  const failure = lastError as Error | null;
  if (failed > 0 && failure) output.err(`produce: ${failed} sends failed; last error: ${failure.message}\n`);
  const summary: ProduceSummary = {
    sent,
    receipted,
    failed,
    elapsedMs,
    ratePerS: elapsedMs > 0 ? Math.round((receipted / elapsedMs) * 10_000) / 10 : 0,
    url: target.url,
  };
  output.out(`${JSON.stringify(summary)}\n`);
  return summary;
}

/** The `keel produce` action: Ctrl-C stops it early; exit status 1 unless every send was receipted. */
export async function produceCommand(options: ProduceOptions, output: Output): Promise<ProduceSummary> {
  const summary = await withInterrupt((signal) => runProduce(options, output, { signal }));
  if (summary.failed > 0 || summary.receipted < summary.sent) process.exitCode = 1;
  return summary;
}
