/**
 * Checks shared by `keel produce`, `keel consume` and `keel drill`: commander hands over strings,
 * these turn them into numbers, URLs and destinations, and every error names the option.
 */
import { parseConnectUrl } from '@keel/client';
import { InvalidArgumentError } from '@keel/protocol';

/** The options every load command takes to reach a broker and a destination. */
export interface RawTargetOptions {
  url?: string;
  queue?: string;
  topic?: string;
  user?: string;
  password?: string;
}

export interface Target {
  /** `tcp://host:port` or `failover:(…)`, as given. */
  url: string;
  /** Canonical destination, `queue://NAME` or `topic://NAME`. */
  destination: string;
  username?: string;
  password?: string;
}

/** An integer option: `min` and optionally `max`; `undefined` stays undefined. */
export function integerOption(
  value: string | number | undefined,
  option: string,
  min: number,
  max = Number.MAX_SAFE_INTEGER,
): number | undefined {
  if (value === undefined) return undefined;
  const text = String(value).trim().replace(/_/g, '');
  const n = /^-?\d+$/.test(text) ? Number(text) : Number.NaN;
  if (!Number.isSafeInteger(n) || n < min || n > max) {
    const range = max === Number.MAX_SAFE_INTEGER ? `>= ${min}` : `${min}..${max}`;
    throw new InvalidArgumentError(
      `${option} must be an integer ${range} (got ${JSON.stringify(String(value))})`,
    );
  }
  return n;
}

/** A rate in messages per second: a positive number, decimals allowed. */
export function rateOption(value: string | number | undefined, option: string): number | undefined {
  if (value === undefined) return undefined;
  const text = String(value).trim();
  const n = /^\d+(\.\d+)?$/.test(text) ? Number(text) : Number.NaN;
  if (!Number.isFinite(n) || n <= 0) {
    throw new InvalidArgumentError(
      `${option} must be a positive number of messages per second (got ${JSON.stringify(String(value))})`,
    );
  }
  return n;
}

/** `--url` (required, tcp://, ssl:// or failover:; ssl:// trusts NODE_EXTRA_CA_CERTS besides Node's roots), one of `--queue`/`--topic`, `--user` with `--password`. */
export function targetOptions(raw: RawTargetOptions): Target {
  const url = raw.url?.trim();
  if (!url)
    throw new InvalidArgumentError('--url is required (tcp://host:61616 or failover:(tcp://a,tcp://b))');
  if (!/^(tcp|ssl|failover):/i.test(url)) {
    throw new InvalidArgumentError(
      `--url must be a tcp://, ssl:// or failover: URL (got ${JSON.stringify(url)})`,
    );
  }
  try {
    parseConnectUrl(url);
  } catch (err) {
    throw new InvalidArgumentError(`--url: ${(err as Error).message}`);
  }
  if (raw.queue !== undefined && raw.topic !== undefined) {
    throw new InvalidArgumentError('--queue and --topic exclude each other: give one');
  }
  const name = raw.queue ?? raw.topic;
  if (name === undefined) throw new InvalidArgumentError('--queue or --topic is required');
  const option = raw.queue !== undefined ? '--queue' : '--topic';
  if (name.trim() === '' || name.includes('://')) {
    throw new InvalidArgumentError(
      `${option} takes a plain name such as "orders" (got ${JSON.stringify(name)})`,
    );
  }
  if ((raw.user === undefined) !== (raw.password === undefined)) {
    throw new InvalidArgumentError(
      raw.user === undefined ? '--password needs --user' : '--user needs --password',
    );
  }
  return {
    url,
    destination: `${raw.queue !== undefined ? 'queue' : 'topic'}://${name.trim()}`,
    ...(raw.user !== undefined ? { username: raw.user, password: raw.password } : {}),
  };
}

/**
 * A progress line on stderr: rewritten in place (`\r`) on a terminal, one line per interval
 * otherwise, so logs stay readable.
 */
export class ProgressLine {
  private last = 0;
  private shown = false;

  constructor(
    private readonly write: (text: string) => void,
    private readonly tty: boolean,
    private readonly intervalMs: number,
  ) {}

  /** Shows `text` unless the last one was shown less than the interval ago (force: show anyway). */
  update(text: string, force = false): void {
    const now = Date.now();
    if (!force && now - this.last < this.intervalMs) return;
    this.last = now;
    this.shown = true;
    if (this.tty) this.write(`\r\x1b[K${text}`);
    else this.write(`${text}\n`);
  }

  /** Ends the line on a terminal so what follows starts on a fresh line. */
  done(): void {
    if (this.tty && this.shown) this.write('\n');
    this.shown = false;
  }
}

/** A promise that resolves after ms, or at once when signal aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}

/**
 * Runs fn with a signal that aborts on the first SIGINT/SIGTERM (the command stops and still
 * reports); a second signal exits at once with 130.
 */
export async function withInterrupt<T>(fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const controller = new AbortController();
  let signals = 0;
  const onSignal = () => {
    signals++;
    if (signals === 1) controller.abort();
    else process.exit(130);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    return await fn(controller.signal);
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}
