/**
 * Bookkeeping for the end-to-end tests: what producers attempted, what the broker receipted, what
 * the application was given, and what that means (lost, duplicated, corrupt).
 *
 * A message body is `<producer>|<seq>|<attempt>|<filler>` where the filler is derived from the three
 * fields, so every body can be checked for integrity wherever it is read (from a consumer or from
 * the keel_messages table). `attempt` > 1 marks an application-level retry of a send that failed with
 * a retryable error: from the broker's point of view it is a new message (new producerSeq), so it is
 * its own key here; a retried message whose first attempt was stored too shows up as a "retry
 * duplicate" (counted, not a broker duplicate).
 */

export interface BodyFields {
  producer: string;
  seq: number;
  attempt: number;
}

/** `producer:seq#attempt`: one send attempt of one application message. */
export function keyOf(f: BodyFields): string {
  return `${f.producer}:${f.seq}#${f.attempt}`;
}

/** `producer:seq`: the application message, whatever the attempt. */
export function appKeyOf(f: BodyFields): string {
  return `${f.producer}:${f.seq}`;
}

function filler(prefix: string, bytes: number): string {
  if (bytes <= 0) return '';
  // Deterministic and position-dependent, so a truncated or shifted body does not pass.
  let out = '';
  let i = 0;
  while (out.length < bytes) out += `${prefix}${(i++).toString(36)};`;
  return out.slice(0, bytes);
}

/** The body of one send attempt, `size` bytes long at least (longer if the header needs it). */
export function makeBody(f: BodyFields, size = 256): Buffer {
  const head = `${f.producer}|${f.seq}|${f.attempt}|`;
  return Buffer.from(head + filler(`${f.producer}.${f.seq}.${f.attempt}/`, size - head.length), 'utf8');
}

/** The fields of a body made by makeBody, or null when it is not intact. */
export function parseBody(body: Buffer): BodyFields | null {
  const text = body.toString('utf8');
  const m = /^([^|]+)\|(\d+)\|(\d+)\|/.exec(text);
  if (!m) return null;
  const f: BodyFields = { producer: m[1] as string, seq: Number(m[2]), attempt: Number(m[3]) };
  const expected = makeBody(f, body.length);
  return expected.equals(body) ? f : null;
}

export interface LedgerSummary {
  attempted: number;
  receipted: number;
  failed: number;
  retried: number;
  delivered: number;
  distinctDelivered: number;
  lost: number;
  duplicates: number;
  retryDuplicates: number;
  corrupt: number;
  unknown: number;
  redelivered: number;
}

export class Ledger {
  /** Every send attempt, by key. */
  readonly attempted = new Set<string>();
  readonly receipted = new Set<string>();
  /** Attempts whose send() rejected: key -> error code. */
  readonly failed = new Map<string, string>();
  retried = 0;
  /** key -> times the application was given it. */
  readonly delivered = new Map<string, number>();
  /** appKey -> distinct attempt keys delivered. */
  private readonly appDelivered = new Map<string, Set<string>>();
  /** Keys delivered more than once (each extra delivery listed). */
  readonly duplicates: string[] = [];
  /** Bodies that did not parse or did not match their filler. */
  readonly corrupt: string[] = [];
  /** Delivered keys that no producer attempted. */
  readonly unknown: string[] = [];
  redelivered = 0;
  deliveredTotal = 0;
  private readonly waiters = new Set<() => void>();

  attempt(f: BodyFields): string {
    const key = keyOf(f);
    this.attempted.add(key);
    if (f.attempt > 1) this.retried++;
    return key;
  }

  receipt(key: string): void {
    this.receipted.add(key);
    this.failed.delete(key);
  }

  fail(key: string, code: string): void {
    this.failed.set(key, code);
  }

  /** key -> who got it first (consumer tag, message id), to explain duplicates. */
  private readonly firstDelivery = new Map<string, string>();
  /** One line per duplicate delivery: key, first and second receiver. */
  readonly duplicateDetails: string[] = [];

  /** Records one message handed to the application (tag: which consumer, for the details). */
  deliver(body: Buffer, redelivered = false, tag = '', messageId = ''): BodyFields | null {
    this.deliveredTotal++;
    if (redelivered) this.redelivered++;
    const f = parseBody(body);
    if (!f) {
      this.corrupt.push(body.subarray(0, 40).toString('utf8'));
      this.notify();
      return null;
    }
    const key = keyOf(f);
    if (!this.attempted.has(key)) this.unknown.push(key);
    const n = (this.delivered.get(key) ?? 0) + 1;
    this.delivered.set(key, n);
    const who = `${tag}/${messageId}${redelivered ? '/redelivered' : ''}`;
    if (n === 1) this.firstDelivery.set(key, who);
    else {
      this.duplicates.push(key);
      this.duplicateDetails.push(`${key}: first ${this.firstDelivery.get(key)}, again ${who}`);
    }
    const app = appKeyOf(f);
    let set = this.appDelivered.get(app);
    if (!set) {
      set = new Set();
      this.appDelivered.set(app, set);
    }
    set.add(key);
    this.notify();
    return f;
  }

  /** What the ledger knows of one body (for failure messages). */
  describe(body: Buffer): string {
    const f = parseBody(body);
    if (!f) return 'corrupt body';
    const key = keyOf(f);
    const failed = this.failed.get(key);
    return `${key}: attempted=${this.attempted.has(key)} receipted=${this.receipted.has(key)}${failed ? ` failed=${failed}` : ''} delivered=${this.delivered.get(key) ?? 0}`;
  }

  /** Receipted keys the application never got. */
  lost(): string[] {
    return [...this.receipted].filter((k) => !this.delivered.has(k));
  }

  /** Application messages delivered under two attempts (an application retry of a stored send). */
  retryDuplicates(): string[] {
    return [...this.appDelivered].filter(([, keys]) => keys.size > 1).map(([app]) => app);
  }

  summary(): LedgerSummary {
    return {
      attempted: this.attempted.size,
      receipted: this.receipted.size,
      failed: this.failed.size,
      retried: this.retried,
      delivered: this.deliveredTotal,
      distinctDelivered: this.delivered.size,
      lost: this.lost().length,
      duplicates: this.duplicates.length,
      retryDuplicates: this.retryDuplicates().length,
      corrupt: this.corrupt.length,
      unknown: this.unknown.length,
      redelivered: this.redelivered,
    };
  }

  /** Resolves when predicate() holds (checked on every delivery); rejects after timeoutMs. */
  waitFor(predicate: () => boolean, timeoutMs: number, what: string): Promise<void> {
    return new Promise((resolve, reject) => {
      const check = () => {
        if (!predicate()) return;
        clearTimeout(timer);
        this.waiters.delete(check);
        resolve();
      };
      const timer = setTimeout(() => {
        this.waiters.delete(check);
        reject(
          new Error(`timed out after ${timeoutMs} ms waiting for ${what}: ${JSON.stringify(this.summary())}`),
        );
      }, timeoutMs);
      this.waiters.add(check);
      check();
    });
  }

  private notify(): void {
    for (const w of [...this.waiters]) w();
  }
}
