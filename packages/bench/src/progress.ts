import { formatNumber } from './table';

export interface ProgressCounters {
  sent: number;
  received: number;
}

/**
 * One status line on stderr, refreshed every second: sent, received and their rates over the last
 * second. On a terminal the line is rewritten in place; otherwise one line per second.
 */
export class ProgressLine {
  private timer: NodeJS.Timeout | null = null;
  private last: ProgressCounters = { sent: 0, received: 0 };
  private lastAt = 0;
  private startedAt = 0;
  private readonly tty: boolean;

  constructor(
    private readonly label: string,
    private readonly counters: () => ProgressCounters,
    private readonly stream: NodeJS.WritableStream & { isTTY?: boolean } = process.stderr,
    private readonly enabled = true,
    /** Appended to the line (a scenario's own state: the kill, idle connections open). */
    private readonly extra?: () => string,
  ) {
    this.tty = stream.isTTY === true;
  }

  start(): void {
    if (!this.enabled || this.timer) return;
    this.startedAt = this.lastAt = performance.now();
    this.last = { ...this.counters() };
    this.timer = setInterval(() => this.tick(), 1000);
    this.timer.unref();
  }

  stop(): void {
    if (!this.timer) return;
    clearInterval(this.timer);
    this.timer = null;
    this.tick();
    if (this.tty) this.stream.write('\n');
  }

  private tick(): void {
    const now = performance.now();
    const c = this.counters();
    const dt = (now - this.lastAt) / 1000;
    const sendRate = dt > 0 ? (c.sent - this.last.sent) / dt : 0;
    const recvRate = dt > 0 ? (c.received - this.last.received) / dt : 0;
    this.last = { ...c };
    this.lastAt = now;
    const line =
      `${this.label} ${((now - this.startedAt) / 1000).toFixed(0)}s  sent ${formatNumber(c.sent)} (${formatNumber(sendRate)}/s)` +
      `  received ${formatNumber(c.received)} (${formatNumber(recvRate)}/s)` +
      (this.extra ? `  ${this.extra()}` : '');
    this.stream.write(this.tty ? `\r\x1b[2K${line}` : `${line}\n`);
  }
}
