/**
 * `keel hash-password`: reads a password from standard input (its first line; not an argument, so it
 * stays out of shell history and `ps`) and prints its scrypt hash, `scrypt$N$r$p$salt$hash`, for a
 * user's `passwordHash` in the configuration file.
 */

import { InvalidArgumentError } from '@keel/protocol';
import { hashPassword } from '@keel/server';
import type { Output } from '../output';

export interface HashPasswordOptions {
  /** Standard input's text (tests); defaults to reading process.stdin. */
  input?: string;
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

export async function hashPasswordCommand(options: HashPasswordOptions, output: Output): Promise<string> {
  const text = options.input ?? (await readStdin());
  const password = (text.split(/\r?\n/)[0] ?? '').toString();
  if (password === '') {
    throw new InvalidArgumentError(
      'no password on standard input: run `keel hash-password` and type it, or pipe it in (printf %s "$PW" | keel hash-password)',
    );
  }
  const hash = hashPassword(password);
  output.out(`${hash}\n`);
  return hash;
}
