import { readFileSync } from 'node:fs';

/** VmRSS in KiB from the text of /proc/PID/status (proc(5): "VmRSS: <n> kB"); null when absent. */
export function parseVmRssKiB(status: string): number | null {
  const m = /^VmRSS:\s+(\d+)\s+kB\s*$/m.exec(status);
  return m ? Number(m[1]) : null;
}

export interface RssSample {
  /** Milliseconds since the sampler started. */
  tMs: number;
  phase: string;
  rssKiB: number;
}

/** Reads a process's VmRSS every `intervalMs` (Linux /proc); silent when the process is gone. */
export class RssSampler {
  readonly samples: RssSample[] = [];
  phase = '';
  private timer: NodeJS.Timeout | null = null;
  private readonly startedAt = performance.now();

  constructor(
    private readonly pid: number,
    private readonly intervalMs = 1000,
  ) {}

  /** One reading now; null if the process or /proc is not there. */
  read(): number | null {
    try {
      return parseVmRssKiB(readFileSync(`/proc/${this.pid}/status`, 'utf8'));
    } catch {
      return null;
    }
  }

  start(): void {
    if (this.timer) return;
    this.sample();
    this.timer = setInterval(() => this.sample(), this.intervalMs);
  }

  /** Stop sampling, with a last reading; a second call does nothing. */
  stop(): void {
    if (!this.timer) return;
    clearInterval(this.timer);
    this.timer = null;
    this.sample();
  }

  /** Milliseconds since the sampler was made: the clock of the samples' `tMs`. */
  elapsedMs(): number {
    return performance.now() - this.startedAt;
  }

  get peakKiB(): number | null {
    return this.samples.length === 0 ? null : Math.max(...this.samples.map((s) => s.rssKiB));
  }

  private sample(): void {
    const rssKiB = this.read();
    if (rssKiB !== null)
      this.samples.push({ tMs: Math.round(performance.now() - this.startedAt), phase: this.phase, rssKiB });
  }
}
