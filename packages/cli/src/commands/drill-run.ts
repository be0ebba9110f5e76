/**
 * What every `keel drill` mode shares around its work: progress lines on stderr stamped with the
 * seconds since the start, polling with a timeout that Ctrl-C ends, a temporary directory, and a
 * cleanup list run in reverse at the end (an error and Ctrl-C included), plus synchronous
 * kill-now hooks for the process's `exit` (a second Ctrl-C).
 */
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { KeelError } from '@keel/protocol';
import type { Output } from '../output';
import { sleep } from './load-options';

const POLL_MS = 50;

export class DrillInterruptedError extends KeelError {
  constructor() {
    super('INTERRUPTED', 'drill interrupted');
  }
}

export class DrillRun {
  readonly startedAt = Date.now();
  /** The run's temporary directory (mode 0755: Postgres run as `postgres` must enter it). */
  readonly tmp: string;
  private readonly cleanups: { what: string; fn: () => Promise<void> | void }[] = [];
  private readonly killNowHooks: (() => void)[] = [];
  private readonly onExit = () => {
    for (const hook of this.killNowHooks) {
      try {
        hook();
      } catch {
        // best effort on the way out
      }
    }
    rmSync(this.tmp, { recursive: true, force: true });
  };

  constructor(
    private readonly output: Output,
    readonly signal: AbortSignal | undefined,
    private readonly command = 'keel drill',
  ) {
    this.tmp = mkdtempSync(path.join(os.tmpdir(), 'keel-drill-'));
    chmodSync(this.tmp, 0o755);
    process.once('exit', this.onExit);
    this.cleanup('temporary directory', () => rmSync(this.tmp, { recursive: true, force: true }));
  }

  /** A progress line on stderr: `[  12.3s] line`. */
  readonly log = (line: string): void => {
    this.output.err(`[${((Date.now() - this.startedAt) / 1000).toFixed(1).padStart(6)}s] ${line}\n`);
  };

  checkAbort(): void {
    if (this.signal?.aborted) throw new DrillInterruptedError();
  }

  sleep(ms: number): Promise<void> {
    return sleep(ms, this.signal);
  }

  /** Polls until check() gives a value; throws on timeout (with why()) and on Ctrl-C. */
  async waitFor<T>(
    check: () => T | undefined | null | false,
    timeoutMs: number,
    why: () => string,
  ): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      this.checkAbort();
      const value = check();
      if (value !== undefined && value !== null && value !== false) return value;
      if (Date.now() >= deadline) throw new Error(why());
      await sleep(POLL_MS, this.signal);
    }
  }

  /** Runs at the end, in reverse order of registration. */
  cleanup(what: string, fn: () => Promise<void> | void): void {
    this.cleanups.push({ what, fn });
  }

  /** Runs synchronously if the process exits before finish() (kill children, Postgres). */
  onKillNow(hook: () => void): void {
    this.killNowHooks.push(hook);
  }

  async finish(): Promise<void> {
    this.log('cleaning up...');
    for (const { what, fn } of this.cleanups.reverse()) {
      try {
        await fn();
      } catch (err) {
        this.output.err(`${this.command}: cleaning up ${what}: ${(err as Error).message}\n`);
      }
    }
    process.off('exit', this.onExit);
  }
}
