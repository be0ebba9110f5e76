import { KeelError } from '@keel/protocol';
import { ConfigError } from '@keel/server';

/** Exit status for a configuration or usage error (as sysexits' EX_USAGE is 64; 2 as shells use). */
export const EXIT_USAGE = 2;
export const EXIT_FAILURE = 1;

/** Writes a one-line error for people and returns the exit status to use. */
export function reportError(err: unknown, write: (text: string) => void): number {
  if (err instanceof ConfigError) {
    write(`keel: ${err.message}\n`);
    return EXIT_USAGE;
  }
  if (KeelError.isInstance(err)) {
    write(`keel: ${err.message} [${err.code}]\n`);
    return EXIT_FAILURE;
  }
  write(`keel: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  return EXIT_FAILURE;
}
