/** Where a command writes what people read: `out` for results, `err` for errors and warnings. */
export interface Output {
  out(text: string): void;
  err(text: string): void;
}

export function processOutput(): Output {
  return {
    out: (text) => process.stdout.write(text),
    err: (text) => process.stderr.write(text),
  };
}

/** An Output that keeps what is written (tests). */
export function bufferOutput(): Output & { stdout: () => string; stderr: () => string } {
  let out = '';
  let err = '';
  return {
    out: (text) => {
      out += text;
    },
    err: (text) => {
      err += text;
    },
    stdout: () => out,
    stderr: () => err,
  };
}
